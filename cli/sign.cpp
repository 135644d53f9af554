// cli/sign.cpp — `sealmilter sign` (the milter's signing, offline) and `sealmilter verify`
// (signer, chain verdict and signed attributes of an S/MIME signed message). docs/signing.md.
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/key_store.hpp"
#include "cli/wiring.hpp"
#include "core/entity_walk.hpp"
#include "core/sign.hpp"
#include "crypto/signed_data.hpp"

#include <ctime>
#include <iostream>

namespace po = boost::program_options;

namespace sealmilter::cli {
namespace {

// --key FILE: a ring of that one key (tests, a signer kept outside the store); else the store.
std::shared_ptr<keys::KeyRing> signing_ring(const conf::Config& config, const po::variables_map& vm) {
    if (vm.count("key") == 0U) return open_configured_store(config, true);
    auto ring = std::make_shared<keys::MemoryKeyRing>();
    const std::string path = vm["key"].as<std::string>();
    const std::string pass = vm.count("passphrase") != 0U ? vm["passphrase"].as<std::string>() : std::string();
    for (crypto::KeyMaterial& k : read_key_file(path, pass, "signing key", kDataErr))
        if (!ring->add(std::move(k), path)) throw CliError(kDataErr, path + ": the key has no certificate; it cannot sign");
    return ring;
}

std::string signer_for(const core::Message& m, const po::variables_map& vm) {
    if (vm.count("from") != 0U) return vm["from"].as<std::string>();
    return core::from_address(m);
}

std::string time_text(std::time_t t) {
    char buf[32];
    std::tm tm{};
    gmtime_r(&t, &tm);
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

}  // namespace

std::optional<core::Signer> cli_signer(const conf::Config& config, const po::variables_map& vm, const core::Message& m,
                                       std::shared_ptr<keys::KeyRing>& ring) {
    ring = signing_ring(config, vm);
    const std::string from = signer_for(m, vm);
    std::string why;
    std::optional<core::Signer> s = core::choose_signer(ring.get(), from, sign_settings(config), std::time(nullptr), &why);
    if (!s) throw CliError(kDataErr, "no usable signing key for <" + from + ">: " + why);
    note("signing as <" + s->address + "> (" + s->rule + ", key " + s->entry->id + ")");
    return s;
}

int cmd_sign(int argc, char** argv) {
    po::options_description desc(
        "sealmilter sign [-c FILE] [--key FILE] [--from ADDRESS] < in.eml > out.eml\n"
        "Signs a message as the milter does (crypto.sign_format, crypto.sign_digest): the signer is\n"
        "the From address's active key in the key store, else crypto.sign_key_domains / crypto.sign_key\n"
        "(--key FILE: that key instead of the store). The output uses CRLF line endings.\n"
        "Exit: 0 ok, 64 usage, 65 no usable signer or bad data, 66 unreadable file, 78 bad configuration");
    desc.add_options()("key", po::value<std::string>(), "PEM / PKCS#12 key with its certificate (instead of the store)")(
        "passphrase", po::value<std::string>(), "passphrase of --key")(
        "from", po::value<std::string>(), "sign as this address instead of the From field's");
    Parsed p = parse_command(argc, argv, desc);
    if (p.help) return kOk;
    const std::unique_ptr<Input> input = read_input(*p.config);
    const core::Message& message = input->message;
    std::shared_ptr<keys::KeyRing> ring;
    const std::optional<core::Signer> signer = cli_signer(*p.config, p.vm, message, ring);
    const core::SignedEntityOptions o = core::entity_options(*signer, sign_settings(*p.config));
    StdoutSink out;
    core::write_signed_message(message, *signer, o, "\r\n", out);
    out.flush();
    return kOk;
}

namespace {

// The trusted roots `verify` checks a signer's chain against (66 unreadable, 65 malformed).
std::vector<crypto::Certificate> load_anchors(const std::vector<std::string>& files) {
    std::vector<crypto::Certificate> anchors;
    for (const std::string& path : files) {
        bool unreadable = false;
        crypto::ParsedCertificates parsed = crypto::load_certificate_file(path, &unreadable);
        if (unreadable) throw CliError(kNoInput, parsed.error);
        if (!parsed.error.empty()) throw CliError(kDataErr, parsed.error);
        anchors.insert(anchors.end(), parsed.certificates.begin(), parsed.certificates.end());
    }
    return anchors;
}

// One signer as `verify` reports it: subject and addresses, digest, signingTime,
// SMIMECapabilities, SMIMEEncryptionKeyPreference.
void print_signer(const crypto::SignerDetails& s) {
    std::cout << "signer: " << (s.certificate ? s.certificate->subject() : std::string("(certificate not carried)"));
    if (s.certificate)
        for (const std::string& a : s.certificate->email_addresses()) std::cout << " <" << a << ">";
    std::cout << "\ndigest: " << s.digest << "\n";
    if (s.signing_time) std::cout << "signing-time: " << time_text(*s.signing_time) << "\n";
    std::cout << "capabilities:";
    for (const std::string& c : s.capabilities) std::cout << " " << c;
    std::cout << (s.capabilities.empty() ? " (none)\n" : "\n");
    if (s.key_preference)
        std::cout << "encryption-key-preference: " << s.key_preference->subject() << " "
                  << s.key_preference->fingerprint_sha256() << "\n";
    else if (!s.key_preference_note.empty())
        std::cout << "encryption-key-preference: " << s.key_preference_note << "\n";
}

}  // namespace

int cmd_verify(int argc, char** argv) {
    po::options_description desc(
        "sealmilter verify [-c FILE] [--ca FILE...] < in.eml\n"
        "Checks an S/MIME signed message (multipart/signed or opaque signed-data): the signature over\n"
        "the exact signed bytes and the signer's chain to --ca (else lookup.trust_anchors, else the\n"
        "system bundle); reports the signer, digest, signingTime, SMIMECapabilities and\n"
        "SMIMEEncryptionKeyPreference. Exit: 0 valid, 1 invalid, untrusted chain or unsigned,\n"
        "64 usage, 66 unreadable file");
    desc.add_options()("ca", po::value<std::vector<std::string>>()->composing()->multitoken(),
                       "PEM file(s) of trusted roots (default: lookup.trust_anchors)");
    Parsed p = parse_command(argc, argv, desc);
    if (p.help) return kOk;
    std::vector<std::string> ca_files = p.vm.count("ca") != 0U ? p.vm["ca"].as<std::vector<std::string>>()
                                                               : p.config->get_list("lookup.trust_anchors");
    const std::vector<crypto::Certificate> anchors = load_anchors(ca_files);
    const std::unique_ptr<Input> input = read_input(*p.config);
    std::string text;
    input->raw.for_each_chunk([&](std::string_view c) { text += c; });
    text = core::to_crlf(text);
    const core::MimeEntity top = core::MimeEntity::parse(text);
    const std::string type = top.media_type();
    std::optional<std::string> detached;
    std::string der;
    if (type == "multipart/signed") {
        const std::string boundary = top.content_type() ? top.content_type()->param("boundary") : std::string();
        const std::vector<std::string_view> parts = core::split_multipart(top.body(), boundary);
        if (parts.size() != 2) {
            std::cout << "unsigned: multipart/signed with " << parts.size() << " part(s), not 2\n";
            return 1;
        }
        detached = std::string(parts[0]);
        der = core::MimeEntity::parse(parts[1]).decoded_body();
    } else if (type == "application/pkcs7-mime" || type == "application/x-pkcs7-mime") {
        der = top.decoded_body();
    } else {
        std::cout << "unsigned: the message is " << (type.empty() ? "text/plain" : type) << "\n";
        return 1;
    }
    std::string error;
    const std::optional<crypto::SignedData> sd = crypto::SignedData::parse(der, &error);
    if (!sd) {
        std::cout << "unsigned: " << error << "\n";
        return 1;
    }
    std::string detail;
    const bool signature_ok = detached ? sd->verify_detached(*detached, &detail) : sd->verify_opaque(&detail).has_value();
    std::string chain_detail;
    const bool chain_ok = signature_ok && sd->verify_chain(detached, anchors, &chain_detail);
    for (const crypto::SignerDetails& s : sd->signers()) print_signer(s);
    std::cout << "format: " << (detached ? "multipart/signed" : "opaque signed-data") << "\n";
    std::cout << "signature: " << (signature_ok ? "valid" : "INVALID (" + detail + ")") << "\n";
    if (signature_ok) std::cout << "chain: " << (chain_ok ? "trusted" : "UNTRUSTED (" + chain_detail + ")") << "\n";
    return signature_ok && chain_ok ? kOk : 1;
}

}  // namespace sealmilter::cli
