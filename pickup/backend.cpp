// pickup/backend.cpp — the pickup service's view of the issued state (see backend.hpp).
#include "pickup/backend.hpp"

#include "crypto/certificate.hpp"
#include "crypto/ossl.hpp"

#include <openssl/pem.h>

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

namespace {

// "AB:CD:..." -> "abcd..." (the registry's form of a fingerprint).
std::string plain_hex(std::string_view colons) {
    std::string out;
    for (const char c : colons)
        if (c != ':') out.push_back(static_cast<char>(c >= 'A' && c <= 'F' ? c - 'A' + 'a' : c));
    return out;
}

}  // namespace

std::time_t IssuerBackend::now() const {
    const std::shared_ptr<keys::Issuer> i = issuer_();
    return i ? i->registry().now() : std::time(nullptr);
}

std::optional<keys::IssuedRecord> IssuerBackend::by_token_hash(std::string_view token_hash) const {
    const std::shared_ptr<keys::Issuer> i = issuer_();
    if (!i) return std::nullopt;
    return i->registry().by_token_hash(token_hash);
}

bool IssuerBackend::update(std::string_view address, const RecordChange& change, std::string* error) {
    const std::shared_ptr<keys::Issuer> i = issuer_();
    if (!i) {
        *error = "issuing is not configured";
        return false;
    }
    return i->registry().update(address, change, error);
}

std::optional<crypto::KeyMaterial> IssuerBackend::key_material(const keys::IssuedRecord& record,
                                                               std::string* error) const {
    const std::shared_ptr<keys::Issuer> i = issuer_();
    if (!i) {
        *error = "issuing is not configured";
        return std::nullopt;
    }
    std::optional<crypto::KeyMaterial> m = i->escrowed_key(record.address, error);
    // The record the code was checked against must still be the one whose key this is.
    if (m && (!m->certificate || plain_hex(m->certificate->fingerprint_sha256()) != record.sha256)) {
        *error = "the escrowed key of <" + record.address + "> changed during the pickup";
        return std::nullopt;
    }
    return m;
}

std::string IssuerBackend::ca_pem() const {
    const std::shared_ptr<keys::Issuer> i = issuer_();
    if (!i) return {};
    std::vector<crypto::Certificate> certs{i->ca().certificate()};
    for (const crypto::Certificate& c : i->ca().chain()) certs.push_back(c);
    return certificates_pem(certs);
}

bool IssuerBackend::picked_up(const keys::IssuedRecord& record, std::string* error) {
    const std::shared_ptr<keys::Issuer> i = issuer_();
    if (!i) {
        *error = "issuing is not configured";
        return false;
    }
    return i->picked_up(record.address, record.key_id, error);
}

bool IssuerBackend::keeps_escrow() const {
    const std::shared_ptr<keys::Issuer> i = issuer_();
    return i && i->settings().keep_escrow;
}

}  // namespace sealmilter::pickup
