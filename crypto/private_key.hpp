// crypto/private_key.hpp — loading a private key (PEM, or PKCS#12 with its certificate).
//
// Ownership: KeyMaterial owns its key and certificates.
// Threads:   load_key_material() may be called from any thread; it loads the OpenSSL
//            "legacy" provider once (NSS and older Windows export PKCS#12 with RC2/3DES).
// Errors:    a KeyLoad with error set; never throws for bad input. Passphrases are never
//            logged or put into error strings.
#pragma once

#include "crypto/certificate.hpp"
#include "crypto/ossl.hpp"

#include <optional>
#include <string>
#include <vector>

namespace sealmilter::crypto {

struct KeyMaterial {
    EVP_PKEY_ptr key;
    std::optional<Certificate> certificate;  // the key's own certificate when known
    std::vector<Certificate> chain;           // extra certificates from a PKCS#12 bag
};

struct KeyLoad {
    std::optional<KeyMaterial> material;
    std::string error;
    bool unreadable = false;  // the file could not be opened
};

// PEM private key (PKCS#8 or traditional; encrypted PEM uses passphrase) or PKCS#12 (DER).
KeyLoad load_key_material(const std::string& path, const std::string& passphrase);

// Loads OpenSSL's "legacy" provider (with "default") once per process, for PKCS#12 files
// protected with RC2/3DES; every PKCS#12 reader calls it first.
void load_legacy_provider_once();

}  // namespace sealmilter::crypto
