// crypto/digest.hpp — the message digests sealmilter signs with (certificates and SignedData).
//
// Purpose:   one enumeration for SHA-256/384/512 (RFC 8551 §2.1 requires SHA-256, allows the
//            others), its OpenSSL algorithm and its multipart/signed micalg name (RFC 8551 §3.5.3).
// Ownership: the EVP_MD is OpenSSL's static object (never freed).
// Threads:   pure functions.
// Errors:    none.
#pragma once

#include <openssl/evp.h>

namespace sealmilter::crypto {

enum class Digest { Sha256, Sha384, Sha512 };

inline const EVP_MD* evp_md(Digest d) noexcept {
    switch (d) {
    case Digest::Sha256: return EVP_sha256();
    case Digest::Sha384: return EVP_sha384();
    case Digest::Sha512: return EVP_sha512();
    }
    return EVP_sha256();
}

inline const char* micalg(Digest d) noexcept {
    switch (d) {
    case Digest::Sha256: return "sha-256";
    case Digest::Sha384: return "sha-384";
    case Digest::Sha512: return "sha-512";
    }
    return "sha-256";
}

}  // namespace sealmilter::crypto
