// keys/wrap.hpp — private keys wrapped under the master key (AES-256-GCM, authenticated).
//
// Purpose:   wrap() encrypts a secret (a private key's DER) under the master key with
//            AES-256-GCM (a fresh random 96-bit nonce each time, NIST SP 800-38D) and binds it
//            to `aad` — the key's id and certificate fingerprint — so a wrapped key copied to
//            another entry's file does not open. The result is
//            "v1" || nonce(12) || ciphertext || tag(16), binary. unwrap() checks the tag
//            before anything is returned: a wrong master key, a damaged file or a moved blob
//            all fail the same way.
//            wrap_private_key()/unwrap_private_key() do the same for an EVP_PKEY (DER
//            PKCS#8 in between, wiped after use).
// Ownership: values; returned keys are owned by the caller.
// Threads:   re-entrant.
// Errors:    unwrap returns std::nullopt (authentication failed or malformed); wrap throws
//            crypto::CryptoError only when OpenSSL cannot allocate.
#pragma once

#include "crypto/ossl.hpp"
#include "keys/master_key.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace sealmilter::keys {

std::string wrap(const MasterKey& key, std::string_view secret, std::string_view aad);
std::optional<std::string> unwrap(const MasterKey& key, std::string_view wrapped, std::string_view aad);

std::string wrap_private_key(const MasterKey& key, EVP_PKEY* pkey, std::string_view aad);
crypto::EVP_PKEY_ptr unwrap_private_key(const MasterKey& key, std::string_view wrapped, std::string_view aad);

}  // namespace sealmilter::keys
