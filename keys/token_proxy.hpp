// keys/token_proxy.hpp — (internal to keys/) an EVP_PKEY that forwards every private-key
// operation to a libp11 token key under one lock.
//
// Purpose:   libp11 hands out an EVP_PKEY whose RSA_METHOD / EC_KEY_METHOD call the token, but
//            it does not serialise calls per slot. The proxy is a second RSA / EC_KEY holding
//            only the public half, whose private operations (RSA private decrypt and encrypt —
//            PKCS#1 v1.5, raw for OAEP and PSS, which OpenSSL pads in software —, ECDSA sign,
//            ECDH compute_key) take the module's base::Mutex and then call the libp11 key.
//            CMS_decrypt and signing see an ordinary "foreign" OpenSSL key.
// Ownership: the proxy holds a reference to the libp11 EVP_PKEY (released with the proxy); the
//            mutex must outlive every proxy (the module registry never frees it).
// Threads:   any; every token call is serialised on `mutex`.
// Errors:    nullptr when the key type is neither RSA nor EC or OpenSSL fails (queue left for
//            the caller to drain).
#pragma once

#include "base/mutex.hpp"
#include "crypto/ossl.hpp"

namespace sealmilter::keys::detail {

// `token_key`: an EVP_PKEY from PKCS11_get_private_key (reference taken over).
crypto::EVP_PKEY_ptr make_token_proxy(crypto::EVP_PKEY_ptr token_key, base::Mutex& mutex);

}  // namespace sealmilter::keys::detail
