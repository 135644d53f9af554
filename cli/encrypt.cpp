// cli/encrypt.cpp — `sealmilter encrypt`: the milter's transform, offline (SPEC §3).
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/wiring.hpp"
#include "core/transform.hpp"

#include <algorithm>
#include <iostream>

namespace po = boost::program_options;

namespace sealmilter::cli {
namespace {

crypto::Certificate load_recipient(const std::string& path) {
    bool unreadable = false;
    crypto::ParsedCertificates parsed = crypto::load_certificate_file(path, &unreadable);
    if (unreadable) throw CliError(kNoInput, parsed.error);
    if (!parsed.error.empty()) throw CliError(kDataErr, parsed.error);
    if (parsed.certificates.size() > 1)
        note(path + ": holds " + std::to_string(parsed.certificates.size()) +
             " certificates; only the first is a recipient");
    crypto::Certificate cert = parsed.certificates.front();
    if (const std::string why = cert.encryption_unsuitability(); !why.empty())
        throw CliError(kDataErr, path + ": certificate '" + cert.subject() + "' cannot receive encrypted mail: " + why);
    return cert;
}

// NSS 3.87 (Thunderbird) cannot decode an envelope holding any KeyAgreeRecipientInfo, not
// even for its RSA recipients (SPEC §5): refuse rather than produce one silently.
void refuse_mixed_key_types(const std::vector<crypto::Certificate>& certs) {
    bool rsa = false;
    bool ec = false;
    for (const auto& c : certs) {
        rsa = rsa || c.key_kind() == crypto::KeyKind::Rsa;
        ec = ec || c.key_kind() == crypto::KeyKind::Ec;
    }
    if (rsa && ec)
        throw CliError(kDataErr,
                       "refusing to put RSA and EC recipients into one envelope: NSS/Thunderbird cannot "
                       "decode an envelope that contains an ECDH recipient, not even for its RSA recipients; "
                       "run encrypt once for the RSA certificates and once for the EC ones");
}

void warn_unmatched(const std::vector<std::string>& to, const std::vector<crypto::Certificate>& certs) {
    for (const std::string& addr : to) {
        bool matched = false;
        for (const auto& c : certs)
            for (const std::string& e : c.email_addresses()) matched = matched || core::iequals(e, addr);
        if (!matched) note("warning: no given certificate names " + addr);
    }
}

// Without --cert: every --to address through the configured chain (SPEC §3).
std::vector<crypto::Certificate> resolve_recipients(const conf::Config& config, const std::vector<std::string>& to) {
    std::unique_ptr<LookupStack> stack = build_lookup(config, [](const std::string& e) { note(e); });
    std::vector<crypto::Certificate> certs;
    for (const lookup::LookupResult& r : stack->chain->resolve(to)) {
        if (r.outcome == lookup::Outcome::TempError)
            throw CliError(kTempFail, "certificate lookup for " + r.email + " failed: " + r.reason);
        if (r.outcome == lookup::Outcome::NotFound)
            throw CliError(kDataErr, "no usable certificate for " + r.email + ": " + r.reason);
        for (const crypto::Certificate& c : r.selected) {
            const bool dup = std::any_of(certs.begin(), certs.end(), [&](const crypto::Certificate& have) {
                return have.fingerprint_sha256() == c.fingerprint_sha256();
            });
            if (!dup) certs.push_back(c);
        }
        note(r.email + ": " + std::to_string(r.selected.size()) + " certificate(s) via " + r.source);
    }
    return certs;
}

}  // namespace

int cmd_encrypt(int argc, char** argv) {
    po::options_description desc(
        "sealmilter encrypt --to EMAIL... --cert FILE... [options] < in.eml > out.eml\n"
        "Encrypts a message as S/MIME exactly as the milter does. Already-encrypted mail is\n"
        "copied unchanged. Without --cert the addresses are resolved through lookup.order.\n"
        "Exit: 0 ok, 64 usage, 65 bad data or no usable certificate, 66 unreadable file,\n"
        "75 a certificate source failed (try again)");
    desc.add_options()("to", po::value<std::vector<std::string>>()->composing()->multitoken(), "recipient address")(
        "cert", po::value<std::vector<std::string>>()->composing()->multitoken(),
        "recipient certificate (PEM or DER); with --cert no lookup is made")(
        "sign", "sign first, then encrypt (RFC 8551 §3.5), with the signer `sealmilter sign` chooses")(
        "key", po::value<std::string>(), "with --sign: PEM / PKCS#12 signing key with its certificate (instead of the store)")(
        "passphrase", po::value<std::string>(), "passphrase of --key")(
        "from", po::value<std::string>(), "with --sign: sign as this address instead of the From field's");
    Parsed p = parse_command(argc, argv, desc);
    if (p.help) return kOk;
    if (p.vm.count("to") == 0U) throw CliError(kUsage, "encrypt: at least one --to EMAIL is required");
    const auto to = p.vm["to"].as<std::vector<std::string>>();
    std::vector<crypto::Certificate> certs;
    if (p.vm.count("cert") != 0U) {
        for (const std::string& path : p.vm["cert"].as<std::vector<std::string>>()) certs.push_back(load_recipient(path));
        refuse_mixed_key_types(certs);
        warn_unmatched(to, certs);
    }

    const std::unique_ptr<Input> input = read_input(*p.config);
    const core::Message& message = input->message;
    StdoutSink out;
    const core::TransformOptions options = transform_options(*p.config, message.eol);
    const core::Plan plan = core::plan_encryption(message, options);
    if (plan.kind == core::PlanKind::PassThrough) {
        note("passing the message through unchanged: " + plan.reason);
        input->raw.for_each_chunk([&](std::string_view c) { out.write(c.data(), c.size()); });
    } else {
        if (certs.empty()) {  // no --cert: look the recipients up only when there is something to encrypt
            certs = resolve_recipients(*p.config, to);
            refuse_mixed_key_types(certs);
        }
        if (p.vm.count("sign") != 0U) {
            std::shared_ptr<keys::KeyRing> ring;
            const std::optional<core::Signer> signer = cli_signer(*p.config, p.vm, message, ring);
            core::write_signed_encrypted(message, *signer, core::entity_options(*signer, sign_settings(*p.config)), certs,
                                         options, out);
        } else {
            core::write_transformed(message, plan, certs, options, out);
        }
    }
    out.flush();
    return kOk;
}

}  // namespace sealmilter::cli
