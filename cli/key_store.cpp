// cli/key_store.cpp — keys.* -> the key store; key files -> key material (see key_store.hpp).
#include "cli/key_store.hpp"

#include "base/file.hpp"
#include "cli/common.hpp"
#include "cli/wiring.hpp"
#include "pg/keys.hpp"
#include "pg/schema.hpp"
#include "crypto/pkcs12.hpp"

#include <sys/stat.h>

#include <algorithm>

namespace sealmilter::cli {

keys::StoreOptions store_options(const conf::Config& c) {
    keys::StoreOptions o;
    o.dir = c.get("keys.dir");
    o.master_key_file = c.get("keys.master_key_file");
    o.pkcs11_module = c.get("keys.pkcs11_module");
    o.pkcs11_pin_file = c.get("keys.pkcs11_pin_file");
    return o;
}

keys::IssueSettings issue_settings(const conf::Config& c) {
    keys::IssueSettings s;
    s.org_name = c.get("issue.org_name");
    s.ca_subject = c.get("issue.ca_subject");
    s.key_bits = static_cast<unsigned>(std::stoul(c.get("issue.key_bits")));
    s.validity_days = static_cast<long>(c.get_int("issue.validity_days"));
    s.pool_size = static_cast<size_t>(c.get_int("issue.pool_size"));
    s.pool_threads = static_cast<unsigned>(c.get_int("issue.pool_threads"));
    s.keep_escrow = c.get_bool("issue.keep_escrow");
    return s;
}

std::shared_ptr<keys::KeyStore> open_configured_store(const conf::Config& c, bool required, const SharedState* shared,
                                                      bool migrate) {
    keys::StoreOptions o = store_options(c);
    const std::vector<std::string> names = c.get_list("database.shared");
    if (std::find(names.begin(), names.end(), "keys") != names.end()) {
        const SharedState own = shared != nullptr ? SharedState{} : shared_state(c);
        const SharedState& state = shared != nullptr ? *shared : own;
        if (o.master_key_file.empty()) {
            if (!required) return nullptr;
            throw CliError(kConfig, "keys.master_key_file is not set (make one with `sealmilter keys new-master-key FILE`)");
        }
        if (migrate) {
            const pg::MigrateResult r = pg::migrate(*state.pool, pg::kKeyStorageTimeoutMs);
            if (!r.error.empty()) throw CliError(kTempFail, "database (database.dsn_file): " + r.error);
        }
        o.storage = pg::key_storage(state.pool);
        std::string error;
        std::shared_ptr<keys::KeyStore> store = keys::KeyStore::open(o, &error);
        if (!store) throw CliError(error.find("cannot read the index") != std::string::npos ? kTempFail : kConfig, error);
        return store;
    }
    if (o.master_key_file.empty()) {
        struct stat st {};
        if (stat((o.dir + "/index").c_str(), &st) == 0)
            throw CliError(kConfig, "keys.dir " + o.dir + " holds a key store but keys.master_key_file is not set (" +
                                        c.origin("keys.master_key_file") + ")");
        if (!required) return nullptr;
        throw CliError(kConfig, "keys.master_key_file is not set (make one with `sealmilter keys new-master-key FILE`)");
    }
    std::string error;
    std::shared_ptr<keys::KeyStore> store = keys::KeyStore::open(o, &error);
    if (!store) throw CliError(kConfig, error);
    return store;
}

std::vector<crypto::KeyMaterial> read_key_file(const std::string& path, const std::string& passphrase,
                                               const std::string& what, int bad_file_code) {
    std::string error;
    const std::optional<std::string> bytes = crypto::read_crypto_file(path, &error);
    if (!bytes) throw CliError(kNoInput, what + ": " + error);
    if (bytes->find("-----BEGIN") == std::string::npos) {
        crypto::Pkcs12Read r = crypto::read_pkcs12_all(*bytes, passphrase);
        if (!r.error.empty()) throw CliError(bad_file_code, what + " " + path + ": " + r.error);
        return std::move(r.keys);
    }
    crypto::KeyLoad load = crypto::load_key_material(path, passphrase);
    if (!load.material) throw CliError(load.unreadable ? kNoInput : bad_file_code, what + ": " + load.error);
    std::vector<crypto::KeyMaterial> out;
    out.push_back(std::move(*load.material));
    return out;
}

std::shared_ptr<keys::MemoryKeyRing> one_off_ring(const std::vector<std::string>& files, const std::string& what) {
    auto ring = std::make_shared<keys::MemoryKeyRing>();
    for (const std::string& f : files) {
        for (crypto::KeyMaterial& k : read_key_file(f, "", what, kConfig))
            if (!ring->add(std::move(k), f))
                throw CliError(kConfig, what + " " + f + ": a key without its certificate cannot be indexed (put the "
                                                         "certificate in the same PEM or PKCS#12 file)");
    }
    return ring;
}

std::shared_ptr<const keys::KeyRing> harvest_ring(const conf::Config& c, const std::shared_ptr<const keys::KeyRing>& store,
                                                  const std::vector<std::string>& extra) {
    std::vector<std::string> files = c.get_list("harvest.keys");
    files.insert(files.end(), extra.begin(), extra.end());
    if (store && extra.empty()) return store;
    if (files.empty()) return store;
    return one_off_ring(files, c.origin("harvest.keys") + ": harvest key");
}

}  // namespace sealmilter::cli
