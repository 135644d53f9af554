// pg/keys.cpp — the key store's bytes on PostgreSQL (see keys.hpp).
#include "pg/keys.hpp"

#include "base/mutex.hpp"

#include <openssl/evp.h>

#include <stdexcept>

namespace sealmilter::pg {
namespace {

constexpr std::string_view kPrefix = "postgresql:";

std::string sha256(const std::string& bytes) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr) != 1)
        throw std::runtime_error("SHA-256 failed");
    return {reinterpret_cast<const char*>(md), len};
}

class SEALMILTER_SCOPED_CAPABILITY ProcessGuard final : public keys::KeyStorage::Guard {
public:
    explicit ProcessGuard(base::Mutex& mu) SEALMILTER_ACQUIRE(mu) : mu_(mu) { mu_.lock(); }
    ~ProcessGuard() override SEALMILTER_RELEASE() { mu_.unlock(); }
    ProcessGuard(const ProcessGuard&) = delete;
    ProcessGuard& operator=(const ProcessGuard&) = delete;

private:
    base::Mutex& mu_;
};

class PgKeyStorage final : public keys::KeyStorage {
public:
    explicit PgKeyStorage(std::shared_ptr<Pool> pool) : pool_(std::move(pool)) {}

    std::string describe() const override { return "PostgreSQL (database.shared keys)"; }
    std::string location(const std::string& name) const override { return std::string(kPrefix) + name; }
    std::string name_at(const std::string& location) const override {
        return location.rfind(kPrefix, 0) == 0 ? location.substr(kPrefix.size()) : location;
    }

    std::optional<std::string> read_index(std::string* error) const override {
        std::optional<std::string> out;
        const std::string e = pool_->run(
            [&](Conn& c) {
                Rows r = c.exec("SELECT body FROM sealmilter_key_index");
                if (r.size() == 1) out = r.bytes(0, 0);
            },
            kKeyStorageTimeoutMs);
        if (!e.empty()) {
            if (error != nullptr) *error = "key store (PostgreSQL): cannot read the index: " + e;
            return std::nullopt;
        }
        if (!out && error != nullptr) error->clear();  // no index yet: an empty store
        return out;
    }

    std::optional<std::string> read_key(const std::string& name, std::string* error) const override {
        std::optional<std::string> out;
        const std::string e = pool_->run([&](Conn& c) {
            Rows r = c.exec("SELECT body FROM sealmilter_key_texts WHERE name = $1", {Param::text(name)});
            if (r.size() == 1) out = r.bytes(0, 0);
        });
        if (error != nullptr) {
            if (!e.empty()) *error = "PostgreSQL: " + e;
            else if (!out) *error = "no key text " + name + " in sealmilter_key_texts";
        }
        return e.empty() ? out : std::nullopt;
    }

    std::unique_ptr<Guard> lock() override { return std::make_unique<ProcessGuard>(mu_); }

    void put_keys(const std::vector<std::pair<std::string, std::string>>& named_texts) override {
        const std::string e = pool_->run(
            [&](Conn& c) {
                c.exec("BEGIN");
                for (const auto& [name, text] : named_texts)
                    c.exec("INSERT INTO sealmilter_key_texts (name, body) VALUES ($1, $2) "
                           "ON CONFLICT (name) DO UPDATE SET body = EXCLUDED.body",
                           {Param::text(name), Param::bytes(text)});
                c.exec("COMMIT");  // durable (synchronous_commit) before the index names them
            },
            kKeyStorageTimeoutMs);
        if (!e.empty()) throw std::runtime_error("key store (PostgreSQL): cannot write key texts: " + e);
    }

    void replace_index(const std::string& text, const std::optional<std::string>& previous) override {
        bool replaced = false;
        const std::string e = pool_->run(
            [&](Conn& c) {
                Rows r = previous ? c.exec("UPDATE sealmilter_key_index SET body = $1 WHERE sha256(body) = $2",
                                           {Param::bytes(text), Param::bytes(sha256(*previous))})
                                  : c.exec("INSERT INTO sealmilter_key_index (singleton, body) VALUES (true, $1) "
                                           "ON CONFLICT DO NOTHING",
                                           {Param::bytes(text)});
                replaced = r.affected() == 1;
            },
            kKeyStorageTimeoutMs);
        if (!e.empty()) throw std::runtime_error("key store (PostgreSQL): cannot write the index: " + e);
        if (!replaced)
            throw std::runtime_error("key store (PostgreSQL): the index was changed by another writer (another node) "
                                     "meanwhile; nothing was changed, run the command again");
    }

    void remove_keys(const std::vector<std::string>& names) noexcept override {
        (void)pool_->run(
            [&](Conn& c) {
                c.exec("BEGIN");
                for (const std::string& n : names) c.exec("DELETE FROM sealmilter_key_texts WHERE name = $1", {Param::text(n)});
                c.exec("COMMIT");
            },
            kKeyStorageTimeoutMs);
    }

private:
    std::shared_ptr<Pool> pool_;
    base::Mutex mu_;
};

}  // namespace

std::shared_ptr<keys::KeyStorage> key_storage(std::shared_ptr<Pool> pool) {
    return std::make_shared<PgKeyStorage>(std::move(pool));
}

}  // namespace sealmilter::pg
