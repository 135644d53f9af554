// crypto/certificate_builder.hpp — issuing X.509 v3 certificates, and generating their keys.
//
// Purpose:   one way to mint a certificate: the issuing CA (certificates for recipients who
//            have none), and every test, fuzz and bench fixture. Each setter states what lands
//            in the certificate; nothing is added that was not asked for, except what RFC 5280
//            requires (version 3, a positive serial, the issuer's name).
// Ownership: the builder keeps its own references to the keys and the issuer certificate it
//            is given (EVP_PKEY_up_ref / Certificate copy); the caller's stay theirs. build()
//            returns a new Certificate value; the builder can build again.
// Threads:   a builder is one thread's; distinct builders may run concurrently.
// Errors:    CryptoError (with the drained OpenSSL queue) for a missing public or signing key,
//            an unknown name (curve, key usage, extended key usage) or an OpenSSL failure.
#pragma once

#include "crypto/certificate.hpp"
#include "crypto/digest.hpp"

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sealmilter::crypto {

// A fresh RSA key of `bits` (2048 and up for anything that leaves a test).
EVP_PKEY_ptr generate_rsa_key(unsigned bits);
// A fresh EC key on a named curve: "prime256v1" (P-256), "secp384r1", "secp521r1", ...
EVP_PKEY_ptr generate_ec_key(const std::string& curve);

// keyUsage bits (RFC 5280 §4.2.1.3), combined with |.
enum KeyUsage : uint32_t {
    kDigitalSignature = 1U << 0,
    kNonRepudiation = 1U << 1,  // contentCommitment
    kKeyEncipherment = 1U << 2,
    kDataEncipherment = 1U << 3,
    kKeyAgreement = 1U << 4,
    kKeyCertSign = 1U << 5,
    kCrlSign = 1U << 6,
};
// "keyEncipherment,digitalSignature" (OpenSSL's names, as in openssl.cnf) -> bits.
uint32_t key_usage_from_names(std::string_view comma_list);

class CertificateBuilder {
public:
    CertificateBuilder();

    // Subject DN attributes, in this order: O, CN, emailAddress (each only when set).
    CertificateBuilder& common_name(std::string cn);
    CertificateBuilder& organization(std::string o);
    CertificateBuilder& subject_email(std::string email);
    // Any further subject attribute by OpenSSL short name or OID ("OU", "C", "L", ...), after
    // those three, in call order (a CA subject such as issue.ca_subject).
    CertificateBuilder& subject_attribute(std::string field, std::string value);
    // One rfc822Name subjectAltName per call (RFC 8550 §3 puts the address here).
    CertificateBuilder& add_email_san(std::string email);

    CertificateBuilder& public_key(EVP_PKEY* key);  // the subject's key (public part used)
    // Signed by `issuer_key` with `issuer`'s subject as issuer name. Without it, self-signed:
    // then the signing key is the subject's own, which must include its private part.
    CertificateBuilder& issuer(const Certificate& issuer, EVP_PKEY* issuer_key);

    // Default: from one minute ago, for 365 days.
    CertificateBuilder& validity(std::time_t not_before, std::time_t not_after);
    CertificateBuilder& valid_days(long days);  // from one minute ago (clock skew)

    // Default: 128 random bits, positive (RFC 5280 §4.1.2.2: at most 20 octets).
    CertificateBuilder& serial(uint64_t serial);

    // Each extension is added only when set. keyUsage and basicConstraints are critical.
    CertificateBuilder& key_usage(uint32_t bits);
    // OpenSSL short names ("emailProtection", "clientAuth") or dotted OIDs.
    CertificateBuilder& extended_key_usage(std::vector<std::string> purposes);
    CertificateBuilder& basic_constraints(bool ca, std::optional<int> path_length = std::nullopt);
    CertificateBuilder& subject_key_identifier();    // SHA-1 of the public key (RFC 5280 §4.2.1.2)
    CertificateBuilder& authority_key_identifier();  // the issuer's key identifier

    CertificateBuilder& digest(Digest d);  // default SHA-256

    Certificate build() const;

private:
    struct Spec {
        std::string cn, o, email;
        std::vector<std::string> sans;
        std::vector<std::pair<std::string, std::string>> extra_subject;
        std::time_t not_before = 0;
        std::time_t not_after = 0;
        std::optional<uint64_t> serial;
        std::optional<uint32_t> key_usage;
        std::vector<std::string> eku;
        std::optional<std::pair<bool, std::optional<int>>> basic_constraints;
        bool ski = false;
        bool aki = false;
        Digest digest = Digest::Sha256;
    };
    void add_extensions(X509* x, X509* issuer) const;

    Spec spec_;
    EVP_PKEY_ptr key_;
    EVP_PKEY_ptr issuer_key_;
    std::optional<Certificate> issuer_;
};

}  // namespace sealmilter::crypto
