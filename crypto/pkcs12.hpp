// crypto/pkcs12.hpp — PKCS#12 files holding several keys: reading every key and certificate,
// writing a key history.
//
// Purpose:   PKCS12_parse() returns one key and one certificate; a user's export from a
//            mail client, or the history `sealmilter keys export` writes, holds many.
//            read_pkcs12_all() walks every SafeBag (RFC 7292 §4.2: keyBag,
//            pkcs8ShroudedKeyBag, certBag) and pairs each key with the certificate that
//            carries its public key; the remaining certificates become each key's chain.
//            write_pkcs12_all() writes keys with their certificates and chains, keys shrouded
//            with PBES2/AES-256-CBC and the certificates encrypted likewise, a SHA-256 MAC
//            (or, asked for, the legacy 3DES protection; see Pkcs12Protection).
// Ownership: values; KeyMaterial owns its key.
// Threads:   re-entrant (loads OpenSSL's legacy provider once, for RC2/3DES files from NSS).
// Errors:    read: a Pkcs12Read with error set (wrong password, damaged); write: throws
//            CryptoError. Passwords are never put into error strings.
#pragma once

#include "crypto/private_key.hpp"

#include <string>
#include <vector>

namespace sealmilter::crypto {

struct Pkcs12Read {
    std::vector<KeyMaterial> keys;         // every key of the file, with its certificate when found
    std::vector<Certificate> certificates;  // certificates that belong to no key in the file
    std::string error;
};

Pkcs12Read read_pkcs12_all(const std::string& der, const std::string& password);

// How a written file is protected. Aes256: keys and certificates PBES2 (PBKDF2-HMAC-SHA256,
// AES-256-CBC), 100,000 iterations, MAC SHA-256 — what current Outlook, Thunderbird and Apple
// Mail import. TripleDes: the legacy pbeWithSHAAnd3-KeyTripleDES-CBC for both, 2,048
// iterations, MAC SHA-1 — only for old mail programs, on explicit request (the pickup's
// "legacy format" box); 3DES is in OpenSSL's default provider, no legacy provider needed.
enum class Pkcs12Protection { Aes256, TripleDes };

// DER of a PKCS#12 holding every key of `keys` (certificate and chain included).
std::string write_pkcs12_all(const std::vector<const KeyMaterial*>& keys, const std::string& password,
                             Pkcs12Protection protection = Pkcs12Protection::Aes256);

}  // namespace sealmilter::crypto
