// tests/support/test_pki.hpp — throw-away keys and certificates for tests (crypto::CertificateBuilder).
// Ownership: TestIdentity owns its key; certificates are ref-counted values.
#pragma once

#include "crypto/certificate.hpp"
#include "crypto/private_key.hpp"

#include <optional>
#include <string>

namespace sealmilter::testing {

struct CertSpec {
    std::string email = "bob@partner.example";
    std::string key = "rsa2048";  // rsa1024, rsa2048, rsa3072, ec-p256, ec-p384, ec-secp256k1
    std::string key_usage = "default";  // "default" (per key type), "none" (no extension), or an OpenSSL list
    bool san = true;                    // rfc822Name SAN (else the address goes into the subject DN)
    long days_valid = 365;
    long serial = 0;  // 0: derived from the address
};

struct TestIdentity {
    crypto::EVP_PKEY_ptr key;
    crypto::Certificate cert;
    crypto::KeyMaterial material() const;  // key + certificate, for decrypt_envelope
};

TestIdentity make_identity(const CertSpec& spec);

// A private key's own bytes, for the at-rest tests that search stored data for them: its DER
// (i2d_PrivateKey), and its private component alone (RSA d, EC scalar; "" for other kinds).
std::string der_of_private(EVP_PKEY* key);
std::string private_component(EVP_PKEY* key);

}  // namespace sealmilter::testing
