// keys/issuing.cpp — Issuer: one certificate per new address, its key escrowed in the store,
// its record in the registry; and the administrator's revoke / resend (see issuer.hpp).
#include "keys/issuer.hpp"

#include "base/ascii.hpp"
#include "keys/store.hpp"

#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cctype>

namespace sealmilter::keys {
namespace {

bool fail(std::string* error, const std::string& why) {
    if (error != nullptr) *error = why;
    return false;
}

bool is_current(const IssuedRecord& r) { return r.state == IssuedState::Escrowed || r.state == IssuedState::PickedUp; }

std::optional<crypto::Certificate> certificate_of(const IssuedRecord& r) {
    const crypto::ParsedCertificates parsed = crypto::parse_certificates(r.certificate_pem);
    if (parsed.certificates.empty()) return std::nullopt;
    return parsed.certificates.front();
}

// The key into the store as `escrowed`. The store re-reads its index under its writer lock
// before it changes it; a backend that still sees another writer in between (PostgreSQL: the
// stored index changed) refuses, and one more try starts again from the index as it is then.
KeyEntry escrow(KeyStore& store, EVP_PKEY* key, const crypto::Certificate& cert, std::string* error) {
    for (int attempt = 0; attempt < 2; ++attempt) {
        if (EVP_PKEY_up_ref(key) != 1) return nullptr;
        std::vector<crypto::KeyMaterial> one;
        one.push_back(crypto::KeyMaterial{crypto::EVP_PKEY_ptr(key), cert, {}});
        const std::optional<KeyStore::ImportReport> r = store.import_keys(std::move(one), KeyState::Escrowed, error);
        if (r) return r->added.empty() ? nullptr : r->added.front();
    }
    return nullptr;
}

// The record -> `state`; the store entry -> retired (when the key is still there).
bool end_record(KeyStore& store, IssuedRegistry& registry, std::string_view address, IssuedState state,
                std::string* error) {
    std::string key_id;
    std::string sha256;
    const bool written = registry.update(
        address,
        [&](const std::optional<IssuedRecord>& current) -> std::optional<IssuedRecord> {
            if (!current) return std::nullopt;
            key_id = current->key_id;
            sha256 = current->sha256;
            if (current->state == state) return std::nullopt;
            IssuedRecord r = *current;
            r.state = state;
            r.state_changed_at = registry.now();
            r.notice_due = false;
            return r;
        },
        error);
    if (!written) return false;
    if (key_id.empty()) return fail(error, "no issued certificate for " + std::string(address));
    // The certificate may live on elsewhere (issue.publish put it into the directory): the
    // marker outlives this record, so the chain refuses it from any source.
    if (!sha256.empty() && !registry.mark_withdrawn(sha256, error)) return false;
    const KeyEntry entry = store.resolve(key_id);
    if (entry && entry->state != KeyState::Retired && !store.set_state(key_id, KeyState::Retired, error)) return false;
    return true;
}

}  // namespace

Issuer::Issuer(std::shared_ptr<KeyStore> store, std::shared_ptr<IssuedRegistry> registry, IssueSettings settings,
               IssuingCa ca)
    : store_(std::move(store)),
      registry_(std::move(registry)),
      settings_(std::move(settings)),
      ca_(std::move(ca)),
      pool_(std::make_unique<KeyPairPool>(settings_.key_bits, settings_.pool_size, settings_.pool_threads)) {}

Issuer::~Issuer() = default;

std::shared_ptr<Issuer> Issuer::open(std::shared_ptr<KeyStore> store, std::shared_ptr<IssuedRegistry> registry,
                                     IssueSettings settings, std::string* error) {
    if (!store || !registry) {
        fail(error, "issuing needs the key store (keys.master_key_file) and keys.dir");
        return nullptr;
    }
    std::optional<IssuingCa> ca = IssuingCa::load(store->options().dir, *store, error);
    if (!ca) return nullptr;
    return std::make_shared<Issuer>(std::move(store), std::move(registry), std::move(settings), std::move(*ca));
}

std::optional<crypto::Certificate> Issuer::current(std::string_view address) const {
    const std::optional<IssuedRecord> r = registry_->get(address);
    if (!r || !is_current(*r)) return std::nullopt;
    return certificate_of(*r);
}

bool Issuer::withdrawn(std::string_view address, const crypto::Certificate& candidate) const {
    // Only our CA's certificates can be ours: anything else costs one name comparison.
    if (X509_NAME_cmp(X509_get_issuer_name(candidate.native()), X509_get_subject_name(ca_->certificate().native())) != 0)
        return false;
    std::string sha;
    for (const char c : candidate.fingerprint_sha256())
        if (c != ':') sha += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (registry_->is_withdrawn(sha)) return true;
    // Revoked or retired before the markers existed: the record itself says so.
    const std::optional<IssuedRecord> r = registry_->get(address);
    return r && !is_current(*r) && r->sha256 == sha;
}

bool Issuer::ready() const { return pool_->ready() > 0; }

std::optional<crypto::Certificate> Issuer::issue(std::string_view address, std::string* error) {
    if (const std::optional<std::string> why = uncertifiable_reason(address)) {
        fail(error, *why);
        return std::nullopt;
    }
    const std::string lower = base::to_lower(address);
    const base::MutexLock lock(write_mu_);
    std::string why;
    if (const std::optional<IssuedRecord> r = registry_->get(lower, &why); r && is_current(*r)) {
        if (std::optional<crypto::Certificate> c = certificate_of(*r)) return c;
    }
    if (!why.empty()) {  // a damaged record is never overwritten by a second certificate
        fail(error, why);
        return std::nullopt;
    }
    crypto::EVP_PKEY_ptr key = pool_->take();
    if (!key) {
        fail(error, "no key pair is ready (the pool of issue.pool_size is being refilled)");
        return std::nullopt;
    }
    const std::time_t now = registry_->now();
    std::optional<crypto::Certificate> cert;
    try {
        cert = ca_->make_recipient_certificate(lower, key.get(), settings_, now);
    } catch (const std::exception& e) {
        fail(error, std::string("issuing a certificate for ") + lower + " failed: " + e.what());
        return std::nullopt;
    }
    const KeyEntry entry = escrow(*store_, key.get(), *cert, error);
    if (!entry) {
        fail(error, "the escrowed key of " + lower + " was not stored: " + (error != nullptr ? *error : std::string()));
        return std::nullopt;
    }
    std::optional<crypto::Certificate> winner = cert;
    const bool written = registry_->update(
        lower,
        [&](const std::optional<IssuedRecord>& current) -> std::optional<IssuedRecord> {
            if (current && is_current(*current)) {  // another process issued meanwhile: theirs stands
                winner = certificate_of(*current);
                return std::nullopt;
            }
            IssuedRecord r;
            r.address = lower;
            r.key_id = entry->id;
            r.sha256 = entry->sha256();
            r.certificate_pem = cert->pem();
            r.state = IssuedState::Escrowed;
            r.issued_at = now;
            r.state_changed_at = now;
            r.notice_due = true;
            return r;
        },
        error);
    if (written && winner && winner->fingerprint_sha256() != cert->fingerprint_sha256()) {
        // Another process issued meanwhile and its record stands: the key escrowed above belongs
        // to no record and is never picked up; it leaves the store again.
        std::string why_kept;
        if (!store_->remove_key(entry->id, &why_kept) && error != nullptr)
            *error = "the unused escrowed key " + entry->id + " stays in the store: " + why_kept;
    }
    if (!written || !winner) return std::nullopt;
    return winner;
}

void Issuer::retire(std::string_view address, const std::string& /*reason*/) {
    const base::MutexLock lock(write_mu_);
    std::string ignored;
    end_record(*store_, *registry_, address, IssuedState::Retired, &ignored);
}

std::optional<crypto::KeyMaterial> Issuer::escrowed_key(std::string_view address, std::string* error) const {
    const std::optional<IssuedRecord> r = registry_->get(address, error);
    if (!r || !is_current(*r)) {
        if (error != nullptr && error->empty()) *error = "no key is held for " + std::string(address);
        return std::nullopt;
    }
    const base::MutexLock lock(write_mu_);  // the store's writers replace its index in place
    KeyEntry entry = store_->resolve(r->key_id);
    // Issued by another process or node (`issued new`, database.shared = keys): its index is newer.
    if (!entry && store_->refresh(error)) entry = store_->resolve(r->key_id);
    if (!entry || entry->state != KeyState::Escrowed) {
        fail(error, "the escrowed key of " + r->address + " is no longer in the key store");
        return std::nullopt;
    }
    const PrivateKey key = store_->private_key(*entry, error);
    if (!key || !key->key || EVP_PKEY_up_ref(key->key.get()) != 1) return std::nullopt;
    crypto::KeyMaterial out;
    out.key.reset(key->key.get());
    out.certificate = entry->certificate;
    out.chain.push_back(ca_->certificate());
    for (const crypto::Certificate& c : ca_->chain()) out.chain.push_back(c);
    return out;
}

bool Issuer::picked_up(std::string_view address, std::string_view key_id, std::string* error) {
    const base::MutexLock lock(write_mu_);
    bool matched = false;
    const bool written = registry_->update(
        address,
        [&](const std::optional<IssuedRecord>& current) -> std::optional<IssuedRecord> {
            // Only the key that was packaged: a record revoked and issued anew meanwhile holds
            // another key, which this download did not deliver.
            if (!current || !is_current(*current) || key_id.empty() || current->key_id != key_id)
                return std::nullopt;
            IssuedRecord r = *current;
            matched = true;
            const std::time_t now = registry_->now();
            if (r.state != IssuedState::PickedUp) r.state_changed_at = now;
            r.state = IssuedState::PickedUp;
            ++r.pickups;
            r.last_pickup_at = now;
            return r;
        },
        error);
    if (!written) return false;
    if (!matched)
        return fail(error, "the current certificate of " + std::string(address) + " is not the one whose key was picked up");
    if (!settings_.keep_escrow) return store_->remove_key(std::string(key_id), error);
    return true;
}

bool revoke_issued(KeyStore& store, IssuedRegistry& registry, std::string_view address, std::string* error) {
    return end_record(store, registry, address, IssuedState::Revoked, error);
}

bool resend_issued(IssuedRegistry& registry, std::string_view address, std::string* error) {
    bool found = false;
    std::string refused;
    const bool written = registry.update(
        address,
        [&](const std::optional<IssuedRecord>& current) -> std::optional<IssuedRecord> {
            if (!current) return std::nullopt;
            found = true;
            if (!is_current(*current)) {
                refused = std::string("the certificate of ") + current->address + " is " +
                          issued_state_name(current->state) + ": nothing to pick up";
                return std::nullopt;
            }
            IssuedRecord r = *current;
            r.notice_due = true;
            // The old link dies at once (its token file goes with it): the lock and the
            // wrong-code count are reset below, which must never reopen a link that may have
            // been guessed at; the notice worker makes the new one.
            r.token_hash.clear();
            r.token_expires = 0;
            r.notice_sent_at = 0;
            r.notice_attempts = 0;
            r.locked = false;
            r.wrong_codes = 0;
            r.code_hash.clear();
            r.code_expires = 0;
            return r;
        },
        error);
    if (!written) return false;
    if (!found) return fail(error, "no issued certificate for " + std::string(address));
    if (!refused.empty()) return fail(error, refused);
    return true;
}

}  // namespace sealmilter::keys
