// cli/ca.cpp — `sealmilter ca init|import|show`: the CA that issues certificates for
// recipients who have none (issue 13, docs/issuing.md). Its key lives in the key store
// (keys.*); keys.dir/ca.pem names it.
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/key_store.hpp"
#include "keys/issuer.hpp"

#include <openssl/pem.h>

#include <iostream>

namespace po = boost::program_options;

namespace sealmilter::cli {
namespace {

constexpr const char* kCaUsage =
    "sealmilter ca COMMAND [ARGS] [-c FILE]\n"
    "  init [--token URI]             a new CA key in the key store (RSA-3072, or the token key the\n"
    "                                 pkcs11: URI names) and a self-signed root named by\n"
    "                                 issue.ca_subject; writes keys.dir/ca.pem, prints the root (PEM)\n"
    "  import FILE [--password-file F]  a sub-CA of your PKI: its key, certificate and chain\n"
    "                                 (PKCS#12, or PEM with the chain beside the key)\n"
    "  show                           the CA: subject, fingerprint, validity, key, chain\n"
    "Exit: 0 ok, 1 no CA (show), 64 usage, 65 bad input (not a CA, wrong password), 66 unreadable\n"
    "file, 73 a CA exists already, 78 bad key store or configuration";

int exists_or(const std::string& error, int otherwise) {
    return error.find("exists already") != std::string::npos ? 73 : otherwise;
}

// One key with its certificate; a PEM's other certificates become its chain (load_key_material
// keeps only the key's own).
crypto::KeyMaterial read_ca_material(const std::string& path, const std::string& pass) {
    std::vector<crypto::KeyMaterial> found = read_key_file(path, pass, "ca import", kDataErr);
    if (found.size() != 1) throw CliError(kDataErr, "ca import " + path + ": holds " + std::to_string(found.size()) + " keys; one CA key is expected");
    crypto::KeyMaterial m = std::move(found.front());
    if (!m.certificate) throw CliError(kDataErr, "ca import " + path + ": the CA's certificate is not in the file");
    if (m.chain.empty()) {
        std::string error;
        const std::optional<std::string> bytes = crypto::read_crypto_file(path, &error);
        if (bytes && bytes->find("-----BEGIN") != std::string::npos) {
            for (crypto::Certificate& c : crypto::parse_certificates(*bytes).certificates)
                if (c.fingerprint_sha256() != m.certificate->fingerprint_sha256()) m.chain.push_back(std::move(c));
        }
    }
    return m;
}

int show(const keys::KeyStore& store) {
    const std::string file = store.options().dir + "/ca.pem";
    const crypto::ParsedCertificates parsed = crypto::load_certificate_file(file);
    if (parsed.certificates.empty()) throw CliError(1, "no issuing CA (" + parsed.error + "); make one with `sealmilter ca init`");
    const crypto::Certificate& c = parsed.certificates.front();
    const keys::KeyEntry e = store.resolve(c.fingerprint_sha256());
    std::cout << "subject   " << c.subject() << "\nissuer    " << c.issuer() << "\nsha256    " << c.fingerprint_sha256()
              << "\nvalid     " << crypto::format_time_utc(c.not_before()) << " .. " << crypto::format_time_utc(c.not_after())
              << "\nkey       " << c.key_description() << "\nstore     "
              << (e ? e->id + " " + keys::state_name(e->state) + " " + keys::origin_name(e->origin) + " " + e->location
                    : std::string("** the key is not in the key store: nothing can be issued **"))
              << "\n";
    for (size_t i = 1; i < parsed.certificates.size(); ++i)
        std::cout << "chain     " << parsed.certificates[i].subject() << " sha256 " << parsed.certificates[i].fingerprint_sha256() << "\n";
    std::cout << "file      " << file << "\n";
    return e ? kOk : kConfig;
}

}  // namespace

int cmd_ca(int argc, char** argv) {
    po::options_description desc(kCaUsage);
    desc.add_options()("command", po::value<std::string>(), "")("args", po::value<std::vector<std::string>>(), "")(
        "token", po::value<std::string>(), "init: the pkcs11: URI of the token key that becomes the CA key")(
        "password-file", po::value<std::string>(), "import: file holding the PKCS#12 password (first line)");
    po::positional_options_description pos;
    pos.add("command", 1).add("args", -1);
    Parsed p = parse_command(argc, argv, desc, &pos);
    if (p.help) return kOk;
    if (p.vm.count("command") == 0U) throw CliError(kUsage, std::string("ca: a command is required\n") + kCaUsage);
    const std::string cmd = p.vm["command"].as<std::string>();
    const std::vector<std::string> args =
        p.vm.count("args") != 0U ? p.vm["args"].as<std::vector<std::string>>() : std::vector<std::string>{};
    if (cmd != "init" && cmd != "import" && cmd != "show") throw CliError(kUsage, "ca: unknown command '" + cmd + "'\n" + kCaUsage);
    if (args.size() != (cmd == "import" ? 1U : 0U))
        throw CliError(kUsage, "ca " + cmd + (cmd == "import" ? ": expects FILE" : ": takes no arguments"));
    const std::shared_ptr<keys::KeyStore> store = open_configured_store(*p.config, true, nullptr, true);
    std::string error;
    if (cmd == "show") return show(*store);
    if (cmd == "init") {
        const std::string token = p.vm.count("token") != 0U ? p.vm["token"].as<std::string>() : "";
        const std::optional<crypto::Certificate> c = keys::init_ca(*store, issue_settings(*p.config), token, &error);
        if (!c) {
            const int code = error.find("issue.ca_subject") != std::string::npos ? kConfig : token.empty() ? kIoErr : kDataErr;
            throw CliError(exists_or(error, code), "ca init: " + error);
        }
        note("issuing CA " + c->subject() + " sha256 " + c->fingerprint_sha256() + " written to " + store->options().dir + "/ca.pem");
        std::cout << c->pem();
        return std::cout.flush() ? kOk : kIoErr;
    }
    const std::string pass = p.vm.count("password-file") != 0U ? read_secret_file(p.vm["password-file"].as<std::string>()) : "";
    const std::optional<crypto::Certificate> c = keys::import_ca(*store, read_ca_material(args.front(), pass), &error);
    if (!c) throw CliError(exists_or(error, kDataErr), "ca import " + args.front() + ": " + error);
    std::cout << "imported issuing CA " << c->subject() << " sha256 " << c->fingerprint_sha256() << " (issuer " << c->issuer()
              << ")\n";
    return kOk;
}

}  // namespace sealmilter::cli
