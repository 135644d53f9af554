// crypto/certificate.hpp — an X.509 certificate as a value, and the per-key-type checks
// that decide whether it can receive encrypted mail.
//
// Ownership: Certificate holds one OpenSSL reference (X509_up_ref on copy); native() is a
//            borrowed pointer valid while the Certificate lives. A certificate made by
//            from_der_lazily() holds its DER and parses it on first use (shared by its copies):
//            the key store indexes 100,000 certificates without parsing one.
// Threads:   a Certificate is immutable after construction (the lazy parse runs once, under
//            std::call_once); copies may cross threads.
// Errors:    parsing returns an empty vector / std::nullopt-like status with a reason string;
//            no exceptions for bad input. CryptoError only for allocation failures.
#pragma once

#include "crypto/ossl.hpp"

#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sealmilter::crypto {

enum class KeyKind { Rsa, Ec, Other };

class Certificate {
public:
    explicit Certificate(X509_ptr x509);  // takes ownership; x509 must be non-null
    Certificate(const Certificate& other);
    Certificate& operator=(const Certificate& other);
    Certificate(Certificate&&) noexcept = default;
    Certificate& operator=(Certificate&&) noexcept = default;
    ~Certificate() = default;

    // DER bytes the caller vouches for (e.g. checked against a stored SHA-256 fingerprint),
    // parsed on the first call that needs the X509; a DER that then fails to parse throws
    // CryptoError from that call.
    static Certificate from_der_lazily(std::string der);

    X509* native() const { return x509_ ? x509_.get() : parse_lazily(); }  // borrowed

    KeyKind key_kind() const;
    int key_bits() const;                 // RSA modulus bits / EC field bits
    std::string key_description() const;  // "RSA-2048", "EC prime256v1"
    std::string subject() const;          // RFC 2253 one line
    std::string issuer() const;
    std::string fingerprint_sha256() const;  // upper-case hex with colons
    std::time_t not_before() const;
    std::time_t not_after() const;
    // rfc822Name subjectAltNames; the subject emailAddress only when there is no SAN
    // extension at all (RFC 8550 §3).
    std::vector<std::string> email_addresses() const;
    // Empty when the key can receive a CMS content-encryption key, else the reason:
    // RSA needs keyEncipherment (when keyUsage is present) and >= 2048 bits; EC needs
    // keyAgreement (when keyUsage is present) on P-256, P-384 or P-521.
    std::string encryption_unsuitability() const;
    std::vector<unsigned char> der() const;
    std::string pem() const;  // "-----BEGIN CERTIFICATE-----" ... with its final newline

private:
    struct Lazy;
    Certificate() = default;
    X509* parse_lazily() const;

    X509_ptr x509_;               // null in lazy mode
    std::shared_ptr<Lazy> lazy_;  // lazy mode: the DER and, once parsed, its X509
};

struct ParsedCertificates {
    std::vector<Certificate> certificates;
    std::string error;  // set when nothing usable was parsed
};

// PEM (one or many "CERTIFICATE" blocks) or a single DER certificate.
ParsedCertificates parse_certificates(std::string_view bytes);
// Reads and parses a file; error says "cannot read PATH: ..." when the file is unreadable.
ParsedCertificates load_certificate_file(const std::string& path, bool* unreadable = nullptr);

std::string format_time_utc(std::time_t t);

// A distinguished name as one RFC 2253 line ("CN=Alice,O=Example"), UTF-8.
std::string name_to_string(const X509_NAME* name);

// A certificate or key file, whole (base::read_file); std::nullopt and *error = "cannot read
// PATH: reason" when it cannot be read.
std::optional<std::string> read_crypto_file(const std::string& path, std::string* error);  // "2031-01-26T14:38:35Z"

}  // namespace sealmilter::crypto
