// pickup/backend.cpp — the pickup service's view of keys.dir (see backend.hpp).
#include "pickup/backend.hpp"

#include "crypto/certificate.hpp"
#include "crypto/ossl.hpp"

#include <openssl/pem.h>

#include <algorithm>

namespace sealmilter::pickup {

std::string certificates_pem(const std::vector<crypto::Certificate>& certs) {
    const crypto::BIO_ptr bio(BIO_new(BIO_s_mem()));
    if (!bio) crypto::throw_openssl("BIO_new");
    for (const crypto::Certificate& c : certs)
        if (PEM_write_bio_X509(bio.get(), c.native()) != 1) crypto::throw_openssl("PEM_write_bio_X509");
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio.get(), &data);
    return len > 0 ? std::string(data, static_cast<size_t>(len)) : std::string();
}

std::optional<keys::IssuedRecord> RegistryBackend::by_token_hash(std::string_view token_hash) const {
    std::string error;
    std::optional<keys::IssuedRecord> r = registry_->by_token_hash(token_hash, &error);
    if (!r && !error.empty()) log_.warning("pickup: " + error);
    return r;
}

bool RegistryBackend::update(std::string_view address, const RecordChange& change, std::string* error) {
    return registry_->update(address, change, error);
}

std::optional<crypto::KeyMaterial> RegistryBackend::key_material(const keys::IssuedRecord& record,
                                                                 std::string* error) const {
    const std::shared_ptr<keys::KeyStore> store = keys::KeyStore::open(store_, error);
    if (!store) return std::nullopt;
    const keys::KeyEntry entry = store->resolve(record.key_id);
    if (!entry) {
        *error = "the escrowed key " + record.key_id + " of <" + record.address + "> is not in the key store";
        return std::nullopt;
    }
    if (entry->sha256() != record.sha256) {
        *error = "the key store entry " + record.key_id + " is not the certificate issued to <" + record.address + ">";
        return std::nullopt;
    }
    const keys::PrivateKey key = store->private_key(*entry, error);
    if (!key) return std::nullopt;
    if (EVP_PKEY_up_ref(key->key.get()) != 1) crypto::throw_openssl("EVP_PKEY_up_ref");
    crypto::KeyMaterial m{crypto::EVP_PKEY_ptr(key->key.get()), entry->certificate, entry->chain};
    // The chain ends with what ca.pem names (the CA and what is above it), once each.
    const crypto::ParsedCertificates ca = crypto::load_certificate_file(store_.dir + "/ca.pem");
    for (const crypto::Certificate& c : ca.certificates) {
        const bool present = std::any_of(m.chain.begin(), m.chain.end(), [&](const crypto::Certificate& x) {
            return x.fingerprint_sha256() == c.fingerprint_sha256();
        });
        if (!present) m.chain.push_back(c);
    }
    return m;
}

std::string RegistryBackend::ca_pem() const {
    const crypto::ParsedCertificates ca = crypto::load_certificate_file(store_.dir + "/ca.pem");
    return certificates_pem(ca.certificates);
}

bool RegistryBackend::picked_up(const keys::IssuedRecord& record, std::string* error) {
    const std::time_t now = registry_->now();
    const bool ok = registry_->update(
        record.address,
        [now](const std::optional<keys::IssuedRecord>& cur) -> std::optional<keys::IssuedRecord> {
            if (!cur) return std::nullopt;
            keys::IssuedRecord r = *cur;
            if (r.state == keys::IssuedState::Escrowed) {
                r.state = keys::IssuedState::PickedUp;
                r.state_changed_at = now;
            }
            ++r.pickups;
            r.last_pickup_at = now;
            r.wrong_codes = 0;
            return r;
        },
        error);
    if (!ok || keep_escrow_) return ok;
    return remove_escrowed(record, error);
}

bool RegistryBackend::remove_escrowed(const keys::IssuedRecord& record, std::string* error) {
    // PENDING part A's store removal (keys/): until it is merged, keep_escrow = false keeps the key.
    *error = "removing <" + record.address + ">'s escrowed key is not available in this build";
    log_.error("pickup: " + *error);
    return false;
}

}  // namespace sealmilter::pickup
