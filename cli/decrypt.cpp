// cli/decrypt.cpp — `sealmilter decrypt`: opens S/MIME messages with the key store of the
// configuration (every key it ever held, whatever its state) or a one-off ring of --key files;
// one message (stdin -> stdout) or a whole archive (--maildir / --mbox, see core/archive.hpp).
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/key_store.hpp"
#include "core/archive.hpp"
#include "core/decrypt.hpp"

#include <unistd.h>

#include <cstdio>
#include <optional>
#include <iostream>

namespace po = boost::program_options;

namespace sealmilter::cli {
namespace {

// --key FILE... [--cert FILE]: the one-off ring. A PEM key without its certificate (and no
// --cert) cannot be indexed by RecipientIdentifier: it is kept apart in `loose` and tried on
// the envelope directly (crypto::decrypt_envelope is MMA-safe: a wrong key fails cleanly).
struct KeyArgs {
    std::shared_ptr<keys::MemoryKeyRing> ring = std::make_shared<keys::MemoryKeyRing>();
    std::vector<crypto::KeyMaterial> loose;
};

KeyArgs keys_from_options(const po::variables_map& vm, const std::string& pass) {
    const std::vector<std::string> files = vm["key"].as<std::vector<std::string>>();
    if (vm.count("cert") != 0U && files.size() != 1) throw CliError(kUsage, "decrypt: --cert goes with exactly one --key");
    std::optional<crypto::Certificate> cert;
    if (vm.count("cert") != 0U) {
        const std::string path = vm["cert"].as<std::string>();
        bool unreadable = false;
        crypto::ParsedCertificates certs = crypto::load_certificate_file(path, &unreadable);
        if (!certs.error.empty()) throw CliError(unreadable ? kNoInput : kDataErr, certs.error);
        cert = certs.certificates.front();
    }
    KeyArgs k;
    for (const std::string& f : files) {
        for (crypto::KeyMaterial& m : read_key_file(f, pass, "decrypt --key", kDataErr)) {
            if (cert) m.certificate = cert;
            if (m.certificate) k.ring->add(std::move(m), f);
            else k.loose.push_back(std::move(m));
        }
    }
    return k;
}

// A progress bar on stderr when it is a terminal (redrawn at most every 1%).
core::ArchiveProgress progress_bar() {
    if (isatty(STDERR_FILENO) == 0) return {};
    return [last = size_t{101}](size_t done, size_t total) mutable {
        const size_t pct = total == 0 ? 100 : done * 100 / total;
        if (pct == last && done != total) return;
        last = pct;
        const std::string bar(pct / 4, '#');
        std::fprintf(stderr, "\r[%-25s] %3zu%%  %zu/%zu", bar.c_str(), pct, done, total);
        if (done == total) std::fputc('\n', stderr);
        std::fflush(stderr);
    };
}

int archive(const po::variables_map& vm, const keys::KeyRing& ring) {
    if (vm.count("out") == 0U) throw CliError(kUsage, "decrypt: --maildir and --mbox need --out");
    const std::string out = vm["out"].as<std::string>();
    core::ArchiveSummary s;
    try {
        s = vm.count("maildir") != 0U ? core::open_maildir(vm["maildir"].as<std::string>(), out, ring, progress_bar())
                                      : core::open_mbox(vm["mbox"].as<std::string>(), out, ring, progress_bar());
    } catch (const std::exception& e) {
        throw CliError(kIoErr, e.what());
    }
    std::cout << "messages: " << s.total << "\nopened: " << s.opened << "\nalready plain: " << s.plain
              << "\nno key: " << s.no_key << "\ndamaged: " << s.damaged << "\n";
    for (const auto& [id, n] : s.by_key) std::cout << "opened with key " << id << ": " << n << "\n";
    for (const auto& [id, n] : s.unmatched) std::cout << "no key for " << id << ": " << n << " message(s)\n";
    std::cout << "written to " << out << " (the originals are unchanged)\n";
    return s.no_key + s.damaged == 0 ? kOk : kDataErr;
}

}  // namespace

int cmd_decrypt(int argc, char** argv) {
    po::options_description desc(
        "sealmilter decrypt [-c FILE] [--key FILE]... [--cert FILE] [--pass-file FILE] < in.eml > out.eml\n"
        "sealmilter decrypt [-c FILE] --maildir DIR --out DIR2 | --mbox FILE --out FILE2\n"
        "Decrypts S/MIME enveloped messages with the key store of the configuration (keys.dir: every\n"
        "key it ever held, retired and compromised ones too) or, with --key, with those key files\n"
        "(PEM private key or PKCS#12). An archive is written whole to --out: opened messages\n"
        "decrypted, the others unchanged; a summary says what was opened and which\n"
        "RecipientIdentifiers no key matches. The originals are never changed.\n"
        "Exit: 0 ok, 64 usage, 65 not S/MIME, no key opens it (archive: some message unopened),\n"
        "66 unreadable file, 74 output not writable, 78 bad master key or key store");
    desc.add_options()("key", po::value<std::vector<std::string>>(), "PEM private key or PKCS#12 file (repeatable); "
                                                                     "without it, the key store")(
        "cert", po::value<std::string>(), "the --key's certificate when the PEM file lacks it")(
        "pass-file", po::value<std::string>(), "file holding the PKCS#12 / PEM passphrase")(
        "maildir", po::value<std::string>(), "open every message of this maildir (cur/, new/) or folder")(
        "mbox", po::value<std::string>(), "open every message of this mbox file")(
        "out", po::value<std::string>(), "where --maildir / --mbox write (must not exist, or an empty directory)");
    Parsed p = parse_command(argc, argv, desc);
    if (p.help) return kOk;
    if (p.vm.count("maildir") != 0U && p.vm.count("mbox") != 0U) throw CliError(kUsage, "decrypt: --maildir or --mbox, not both");
    const std::string pass = p.vm.count("pass-file") != 0U ? read_secret_file(p.vm["pass-file"].as<std::string>()) : "";
    std::shared_ptr<const keys::KeyRing> ring;
    KeyArgs key_args;
    if (p.vm.count("key") != 0U) {
        key_args = keys_from_options(p.vm, pass);
        ring = key_args.ring;
        if (!key_args.loose.empty() && (p.vm.count("maildir") != 0U || p.vm.count("mbox") != 0U))
            throw CliError(kUsage, "decrypt: an archive needs each --key with its certificate (PKCS#12, or --cert)");
    } else {
        ring = open_configured_store(*p.config, false);
        if (!ring)
            throw CliError(kUsage, "decrypt: no --key and no key store (keys.master_key_file is not set in " +
                                       p.config->origin("keys.master_key_file") + ")");
    }
    if (p.vm.count("maildir") != 0U || p.vm.count("mbox") != 0U) return archive(p.vm, *ring);

    const std::unique_ptr<Input> input = read_input(*p.config);
    const core::Message& message = input->message;
    StdoutSink out;
    core::RingDecryptOutcome r = core::decrypt_message(message, *ring, message.eol, out);
    for (const crypto::KeyMaterial& k : key_args.loose) {  // keys without a certificate, tried in turn
        if (r.outcome.status != crypto::DecryptStatus::NoMatchingRecipient) break;
        r.outcome = core::decrypt_message(message, k, message.eol, out);
    }
    switch (r.outcome.status) {
    case crypto::DecryptStatus::Ok: break;
    case crypto::DecryptStatus::NotCms:
    case crypto::DecryptStatus::NotEncrypted: throw CliError(kDataErr, "not an S/MIME encrypted message: " + r.outcome.detail);
    case crypto::DecryptStatus::NoMatchingRecipient: throw CliError(kDataErr, "no key opens it: " + r.outcome.detail);
    case crypto::DecryptStatus::Failed: throw CliError(kDataErr, r.outcome.detail);
    }
    out.flush();
    if (r.key) note("opened with key " + r.key->id + " (" + keys::state_name(r.key->state) + ", sha256 " + r.key->sha256() + ")");
    return kOk;
}

}  // namespace sealmilter::cli
