// tests/unit/pickup/pickup_world.cpp — a real keys.dir for the pickup tests: a master key, a CA
// from keys::init_ca, a keys::Issuer (pool without threads, fed one key per issue) and its
// registry; the token set the way the notice worker sets it (docs/issuing.md).
#include "tests/unit/pickup/pickup_world.hpp"

#include "crypto/certificate_builder.hpp"
#include "keys/issuer.hpp"
#include "keys/master_key.hpp"
#include "keys/store.hpp"
#include "pickup/guard.hpp"

namespace sealmilter::pickup {

namespace {

class IssuerWorld final : public PickupWorld {
public:
    IssuerWorld(keys::StoreOptions options, std::shared_ptr<keys::Issuer> issuer,
                std::shared_ptr<keys::Issuer> no_escrow, std::shared_ptr<keys::IssuedRegistry> registry)
        : options_(std::move(options)),
          issuer_(std::move(issuer)),
          registry_(std::move(registry)),
          backend_(std::make_shared<IssuerBackend>([i = issuer_] { return i; })),
          no_escrow_(std::make_shared<IssuerBackend>([i = std::move(no_escrow)] { return i; })) {}

    std::shared_ptr<PickupBackend> backend() override { return backend_; }
    std::shared_ptr<PickupBackend> backend_without_escrow() override { return no_escrow_; }

    std::shared_ptr<PickupBackend> reopened_backend(std::string* error) override {
        std::shared_ptr<keys::KeyStore> store = keys::KeyStore::open(options_, error);
        if (!store) return nullptr;
        keys::IssueSettings s = issuer_->settings();
        std::shared_ptr<keys::Issuer> issuer =
            keys::Issuer::open(store, std::make_shared<keys::IssuedRegistry>(options_.dir), s, error);
        if (!issuer) return nullptr;
        return std::make_shared<IssuerBackend>([issuer] { return issuer; });
    }

    std::string issue(const std::string& address) override {
        std::string error;
        if (!keys::uncertifiable_reason(address)) {
            issuer_->pool().put(crypto::generate_rsa_key(2048));
            if (!issuer_->issue(address, &error)) throw std::runtime_error("issue " + address + ": " + error);
        } else {
            // An address no certificate can name (markup in it): a record without a key, as a
            // hand-edited or damaged registry could hold; the pages must still escape it.
            registry_->update(
                address,
                [&](const std::optional<keys::IssuedRecord>&) {
                    keys::IssuedRecord r;
                    r.address = address;
                    r.issued_at = registry_->now();
                    return std::optional(r);
                },
                &error);
        }
        std::string token = random_token();
        const std::time_t now = registry_->now();
        const bool ok = registry_->update(
            address,
            [&](const std::optional<keys::IssuedRecord>& cur) -> std::optional<keys::IssuedRecord> {
                if (!cur) return std::nullopt;
                keys::IssuedRecord r = *cur;
                r.notice_due = false;
                r.notice_sent_at = now;
                r.token_hash = keys::sha256_hex(token);
                r.token_expires = now + 1209600;
                r.locked = false;
                r.wrong_codes = 0;
                r.code_hash.clear();
                return r;
            },
            &error);
        if (!ok) throw std::runtime_error("notice for " + address + ": " + error);
        return token;
    }

    std::optional<keys::IssuedRecord> record(const std::string& address) override { return registry_->get(address); }

    void revoke(const std::string& address) override {
        std::string error;
        if (!keys::revoke_issued(issuer_->store(), *registry_, address, &error))
            throw std::runtime_error("revoke " + address + ": " + error);
    }

    void change(const std::string& address, const std::function<void(keys::IssuedRecord&)>& fn) override {
        std::string error;
        registry_->update(
            address,
            [&](const std::optional<keys::IssuedRecord>& cur) -> std::optional<keys::IssuedRecord> {
                if (!cur) return std::nullopt;
                keys::IssuedRecord r = *cur;
                fn(r);
                return r;
            },
            &error);
    }

    crypto::Certificate certificate(const std::string& address) override { return *issuer_->current(address); }
    crypto::Certificate ca() override { return issuer_->ca().certificate(); }

private:
    keys::StoreOptions options_;
    std::shared_ptr<keys::Issuer> issuer_;
    std::shared_ptr<keys::IssuedRegistry> registry_;
    std::shared_ptr<PickupBackend> backend_;
    std::shared_ptr<PickupBackend> no_escrow_;
};

}  // namespace

std::unique_ptr<PickupWorld> make_world(const std::string& dir, std::string* error) {
    keys::StoreOptions o;
    o.dir = dir;
    o.master_key_file = dir + ".master";
    if (!keys::create_master_key_file(o.master_key_file, error)) return nullptr;
    std::shared_ptr<keys::KeyStore> store = keys::KeyStore::open(o, error);
    if (!store) return nullptr;
    keys::IssueSettings s;
    s.org_name = "Example Bank";
    s.pool_threads = 0;
    s.pool_size = 4;
    if (!keys::init_ca(*store, s, "", error)) return nullptr;
    auto registry = std::make_shared<keys::IssuedRegistry>(dir);
    std::shared_ptr<keys::Issuer> issuer = keys::Issuer::open(store, registry, s, error);
    if (!issuer) return nullptr;
    s.keep_escrow = false;
    std::shared_ptr<keys::Issuer> no_escrow = keys::Issuer::open(store, registry, s, error);
    if (!no_escrow) return nullptr;
    return std::make_unique<IssuerWorld>(o, std::move(issuer), std::move(no_escrow), std::move(registry));
}

}  // namespace sealmilter::pickup
