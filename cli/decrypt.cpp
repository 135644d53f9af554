// cli/decrypt.cpp — `sealmilter decrypt`: opens an S/MIME message with a private key.
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "core/decrypt.hpp"


namespace po = boost::program_options;

namespace sealmilter::cli {

int cmd_decrypt(int argc, char** argv) {
    po::options_description desc(
        "sealmilter decrypt --key FILE [--cert FILE] [--pass-file FILE] < in.eml > out.eml\n"
        "Decrypts an S/MIME enveloped message. FILE is a PEM private key or a PKCS#12 file.\n"
        "Exit: 0 ok, 64 usage, 65 not S/MIME or wrong key, 66 unreadable file");
    desc.add_options()("key", po::value<std::string>(), "PEM private key or PKCS#12 file")(
        "cert", po::value<std::string>(), "the key's certificate (to pick the recipient; optional)")(
        "pass-file", po::value<std::string>(), "file holding the PKCS#12 / PEM passphrase");
    Parsed p = parse_command(argc, argv, desc);
    if (p.help) return kOk;
    if (p.vm.count("key") == 0U) throw CliError(kUsage, "decrypt: --key FILE is required");
    const std::string pass = p.vm.count("pass-file") != 0U ? read_secret_file(p.vm["pass-file"].as<std::string>()) : "";
    crypto::KeyLoad load = crypto::load_key_material(p.vm["key"].as<std::string>(), pass);
    if (!load.material) throw CliError(load.unreadable ? kNoInput : kDataErr, load.error);
    crypto::KeyMaterial& key = *load.material;
    if (p.vm.count("cert") != 0U) {
        const std::string path = p.vm["cert"].as<std::string>();
        bool unreadable = false;
        crypto::ParsedCertificates certs = crypto::load_certificate_file(path, &unreadable);
        if (!certs.error.empty()) throw CliError(unreadable ? kNoInput : kDataErr, certs.error);
        key.certificate = certs.certificates.front();
    }

    const std::unique_ptr<Input> input = read_input(*p.config);
    const core::Message& message = input->message;

    StdoutSink out;
    const crypto::DecryptOutcome r = core::decrypt_message(message, key, message.eol, out);
    switch (r.status) {
    case crypto::DecryptStatus::Ok: break;
    case crypto::DecryptStatus::NotCms:
    case crypto::DecryptStatus::NotEncrypted: throw CliError(kDataErr, "not an S/MIME encrypted message: " + r.detail);
    case crypto::DecryptStatus::NoMatchingRecipient: throw CliError(kDataErr, "wrong key: " + r.detail);
    case crypto::DecryptStatus::Failed: throw CliError(kDataErr, r.detail);
    }
    out.flush();
    return kOk;
}

}  // namespace sealmilter::cli
