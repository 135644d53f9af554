// cli/keys.cpp — `sealmilter keys COMMAND`: the key store of keys.dir (docs/keys.md).
//   new-master-key FILE | import FILE.p12 [--pass-file F] | import-token URI | list [--json] |
//   export ADDRESS --out F.p12 --pass-file F | retire ID | compromised ID | rewrap NEWFILE
// ID is a key's id or its certificate's SHA-256 fingerprint (hex, colons optional).
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/key_store.hpp"
#include "crypto/pkcs12.hpp"
#include "keys/master_key.hpp"

#include "keys/token.hpp"

#include <nlohmann/json.hpp>
#include <openssl/bn.h>

#include <fcntl.h>
#include <unistd.h>

#include <iostream>

namespace po = boost::program_options;

namespace sealmilter::cli {
namespace {

constexpr const char* kKeysUsage =
    "sealmilter keys COMMAND [ARGS] [-c FILE]\n"
    "  new-master-key FILE [--token URI]   a new random master key (mode 0600; never overwrites);\n"
    "                                 --token: wrapped by that token RSA key, never in the clear\n"
    "  import FILE [--pass-file F]    every key + certificate of a PKCS#12 (or PEM) file\n"
    "  import-token URI               a key that stays on its PKCS#11 token (pkcs11: URI)\n"
    "  list [--json]                  every key: addresses, fingerprints, SKI, issuer/serial,\n"
    "                                 validity, state, file or token\n"
    "  export ADDRESS --out F.p12 --pass-file F   every file key the address ever had\n"
    "  retire ID | compromised ID     change a key's state (ID: id or SHA-256 fingerprint)\n"
    "  rewrap NEWFILE                 re-wrap every key under the master key in NEWFILE\n"
    "Exit: 0 ok, 64 usage, 65 bad input, 66 unreadable file, 73 file exists, 74 write failed,\n"
    "78 bad master key or key store";

std::string hex_of(const ASN1_OCTET_STRING* s) {
    if (s == nullptr) return "";
    std::string out;
    char b[4];
    for (int i = 0; i < ASN1_STRING_length(s); ++i) {
        std::snprintf(b, sizeof b, "%02x", ASN1_STRING_get0_data(s)[i]);
        out += b;
    }
    return out;
}

std::string serial_hex(const crypto::Certificate& c) {
    const std::unique_ptr<BIGNUM, base::Deleter<BN_free>> bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(c.native()), nullptr));
    char* hex = bn ? BN_bn2hex(bn.get()) : nullptr;
    std::string out = hex != nullptr ? hex : "";
    OPENSSL_free(hex);
    return base::to_lower(out);
}

nlohmann::json describe(const keys::KeyEntry& e, std::time_t now) {
    const crypto::Certificate& c = e->certificate;
    const keys::KeyState effective = keys::effective_state(*e, now);
    return {{"id", e->id},
            {"addresses", e->addresses},
            {"sha256", e->sha256()},
            {"state", keys::state_name(effective)},
            {"recorded_state", keys::state_name(e->state)},
            {"expired", c.not_after() < now},
            {"compromised", e->state == keys::KeyState::Compromised},
            {"source", keys::origin_name(e->origin)},
            {"exportable", e->origin == keys::KeyOrigin::File},
            {"not_before", crypto::format_time_utc(c.not_before())},
            {"not_after", crypto::format_time_utc(c.not_after())},
            {"subject", c.subject()},
            {"issuer", c.issuer()},
            {"serial", serial_hex(c)},
            {"ski", hex_of(X509_get0_subject_key_id(c.native()))},
            {"key", c.key_description()},
            {"location", e->location}};
}

// Newest certificate first, then by id: a stable listing.
std::vector<keys::KeyEntry> sorted(const keys::KeyRing& ring) {
    std::vector<keys::KeyEntry> all;
    ring.for_each([&](const keys::KeyEntry& e) { all.push_back(e); });
    std::sort(all.begin(), all.end(), [](const keys::KeyEntry& a, const keys::KeyEntry& b) {
        const std::string aa = a->addresses.empty() ? "" : a->addresses.front();
        const std::string bb = b->addresses.empty() ? "" : b->addresses.front();
        if (aa != bb) return aa < bb;
        if (a->not_before() != b->not_before()) return a->not_before() > b->not_before();
        return a->id < b->id;
    });
    return all;
}

int list(const keys::KeyStore& store, bool json) {
    const std::time_t now = store.now();
    nlohmann::json out = nlohmann::json::array();
    for (const keys::KeyEntry& e : sorted(store)) out.push_back(describe(e, now));
    if (json) {
        std::cout << out.dump(2) << "\n";
        return kOk;
    }
    for (const nlohmann::json& k : out) {
        std::string addresses;
        for (const auto& a : k["addresses"]) addresses += (addresses.empty() ? "" : ",") + a.get<std::string>();
        std::cout << k["id"].get<std::string>() << "  " << k["state"].get<std::string>()
                  << (k["compromised"].get<bool>() ? "  ** COMPROMISED: never signs **" : "")
                  << (k["expired"].get<bool>() ? "  (expired)" : "") << "  " << k["source"].get<std::string>() << "  "
                  << (addresses.empty() ? "-" : addresses) << "\n"
                  << "    sha256 " << k["sha256"].get<std::string>() << "  ski " << (k["ski"].get<std::string>().empty() ? "-" : k["ski"].get<std::string>())
                  << "\n    issuer " << k["issuer"].get<std::string>() << "  serial " << k["serial"].get<std::string>()
                  << "\n    valid " << k["not_before"].get<std::string>() << " .. " << k["not_after"].get<std::string>() << "  "
                  << k["key"].get<std::string>() << "\n    " << (k["source"] == "token" ? "token " : "file ")
                  << k["location"].get<std::string>() << "\n";
    }
    std::cout << out.size() << " key(s) in " << store.options().dir << "\n";
    return kOk;
}

void report_import(const keys::KeyStore::ImportReport& r) {
    for (const keys::KeyEntry& e : r.added)
        std::cout << "imported " << e->id << " " << (e->addresses.empty() ? "-" : e->addresses.front()) << " sha256 " << e->sha256() << "\n";
    for (const keys::KeyEntry& e : r.already) std::cout << "already in the store: " << e->id << " sha256 " << e->sha256() << "\n";
}

int import_file(keys::KeyStore& store, const std::string& path, const std::string& pass) {
    std::vector<crypto::KeyMaterial> found = read_key_file(path, pass, "import", kDataErr);
    std::string error;
    const std::optional<keys::KeyStore::ImportReport> r = store.import_keys(std::move(found), &error);
    if (!r) throw CliError(kDataErr, "import " + path + ": " + error);
    report_import(*r);
    return kOk;
}

int import_token(keys::KeyStore& store, const std::string& uri) {
    const keys::TokenOptions options{store.options().pkcs11_module, store.options().pkcs11_pin_file};
    std::string error;
    const std::vector<keys::TokenObject> objects = keys::list_token_keys(uri, options, &error);
    if (objects.empty()) throw CliError(kDataErr, "import-token " + uri + ": " + (error.empty() ? "no private key matches" : error));
    for (const keys::TokenObject& o : objects) {
        if (!o.certificate) {
            note("skipped " + o.uri + ": the token holds no certificate with the key's CKA_ID");
            continue;
        }
        const std::optional<keys::KeyStore::ImportReport> r = store.import_token_key(o.uri, *o.certificate, {}, &error);
        if (!r) throw CliError(kDataErr, "import-token " + o.uri + ": " + error);
        report_import(*r);
    }
    return kOk;
}

int export_address(const keys::KeyStore& store, const std::string& address, const std::string& out, const std::string& pass) {
    std::vector<keys::PrivateKey> held;
    std::vector<const crypto::KeyMaterial*> materials;
    for (const keys::KeyEntry& e : store.for_address(address)) {
        if (e->origin == keys::KeyOrigin::Token) {
            note("not exported: " + e->id + " stays on its token (" + e->location + ")");
            continue;
        }
        std::string error;
        keys::PrivateKey k = store.private_key(*e, &error);
        if (!k) throw CliError(kConfig, error);
        materials.push_back(k.get());
        held.push_back(std::move(k));
        std::cout << "exporting " << e->id << " " << keys::state_name(keys::effective_state(*e, store.now())) << " sha256 " << e->sha256() << "\n";
    }
    if (materials.empty()) throw CliError(kDataErr, "no file key of " + address + " in " + store.options().dir);
    const std::string der = crypto::write_pkcs12_all(materials, pass);
    const base::UniqueFd fd(open(out.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (fd.get() < 0) throw CliError(errno == EEXIST ? 73 : kIoErr, out + ": " + std::strerror(errno));
    if (write(fd.get(), der.data(), der.size()) != static_cast<ssize_t>(der.size()) || fsync(fd.get()) != 0)
        throw CliError(kIoErr, out + ": " + std::strerror(errno));
    std::cout << materials.size() << " key(s) of " << address << " written to " << out << "\n";
    return kOk;
}

}  // namespace

int cmd_keys(int argc, char** argv) {
    po::options_description desc(kKeysUsage);
    desc.add_options()("command", po::value<std::string>(), "")("args", po::value<std::vector<std::string>>(), "")(
        "pass-file", po::value<std::string>(), "file holding the PKCS#12 password (first line)")(
        "out", po::value<std::string>(), "export: the PKCS#12 file to write (must not exist)")("json", "list: JSON array")(
        "token", po::value<std::string>(), "new-master-key: the pkcs11: URI of the token RSA key that wraps it");
    po::positional_options_description pos;
    pos.add("command", 1).add("args", -1);
    Parsed p = parse_command(argc, argv, desc, &pos);
    if (p.help) return kOk;
    if (p.vm.count("command") == 0U) throw CliError(kUsage, std::string("keys: a command is required\n") + kKeysUsage);
    const std::string cmd = p.vm["command"].as<std::string>();
    const std::vector<std::string> args = p.vm.count("args") != 0U ? p.vm["args"].as<std::vector<std::string>>() : std::vector<std::string>{};
    const auto one_arg = [&](const char* what) {
        if (args.size() != 1) throw CliError(kUsage, "keys " + cmd + ": expects " + what);
        return args.front();
    };
    const std::string pass = p.vm.count("pass-file") != 0U ? read_secret_file(p.vm["pass-file"].as<std::string>()) : "";

    if (cmd == "new-master-key") {
        std::string error;
        if (p.vm.count("token") != 0U) {
            const keys::StoreOptions o = store_options(*p.config);
            if (!keys::create_token_master_key_file(one_arg("FILE"), p.vm["token"].as<std::string>(),
                                                    keys::TokenOptions{o.pkcs11_module, o.pkcs11_pin_file}, &error))
                throw CliError(error.find("already exists") != std::string::npos ? 73 : kConfig, error);
        } else if (!keys::create_master_key_file(one_arg("FILE"), &error)) {
            throw CliError(errno == EEXIST ? 73 : kIoErr, error);
        }
        std::cout << "master key written to " << args.front() << " (mode 0600); set keys.master_key_file = " << args.front() << "\n";
        return kOk;
    }
    const std::shared_ptr<keys::KeyStore> store = open_configured_store(*p.config, true, nullptr, true);
    if (cmd == "import") return import_file(*store, one_arg("FILE"), pass);
    if (cmd == "import-token") return import_token(*store, one_arg("a pkcs11: URI"));
    if (cmd == "list") return list(*store, p.vm.count("json") != 0U);
    if (cmd == "export") {
        if (p.vm.count("out") == 0U || p.vm.count("pass-file") == 0U)
            throw CliError(kUsage, "keys export: --out F.p12 and --pass-file F are required");
        if (pass.empty()) throw CliError(kUsage, "keys export: the password file is empty; private keys leave only encrypted");
        return export_address(*store, one_arg("ADDRESS"), p.vm["out"].as<std::string>(), pass);
    }
    if (cmd == "retire" || cmd == "compromised") {
        const keys::KeyState state = cmd == "retire" ? keys::KeyState::Retired : keys::KeyState::Compromised;
        std::string error;
        if (!store->resolve(one_arg("ID"))) throw CliError(kDataErr, "keys " + cmd + ": no key " + args.front() + " in " + store->options().dir);
        if (!store->set_state(args.front(), state, &error)) throw CliError(kIoErr, error);
        std::cout << store->resolve(args.front())->id << " is now " << keys::state_name(state) << "\n";
        return kOk;
    }
    if (cmd == "rewrap") {
        std::string error;
        const keys::StoreOptions& o = store->options();
        const std::optional<keys::MasterKey> fresh =
            keys::read_master_key(one_arg("NEWFILE"), keys::TokenOptions{o.pkcs11_module, o.pkcs11_pin_file}, &error);
        if (!fresh) throw CliError(kConfig, error);
        if (!store->rewrap(*fresh, &error)) throw CliError(kIoErr, "rewrap: " + error + " (the store still opens with the old master key)");
        std::cout << store->size() << " key(s) re-wrapped; set keys.master_key_file = " << args.front()
                  << " and reload the daemon (SIGHUP): the old master key no longer opens the store\n";
        return kOk;
    }
    throw CliError(kUsage, "keys: unknown command '" + cmd + "'\n" + kKeysUsage);
}

}  // namespace sealmilter::cli
