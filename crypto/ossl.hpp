// crypto/ossl.hpp — RAII ownership for every OpenSSL object sealmilter touches.
//
// Purpose:   one unique_ptr alias per OpenSSL type, each with a stateless deleter, so no
//            other file ever calls a *_free function by hand.
// Ownership: a Foo_ptr owns exactly one reference. OpenSSL's naming tells what to wrap:
//            get0 = borrowed (never wrap), get1 / new / d2i / PEM_read = owned (wrap at once),
//            add0 / set0 = ownership moves only on success (release() after success).
// Threads:   the aliases carry no state; objects are as thread-safe as OpenSSL makes them.
// Errors:    drain_errors() empties the calling thread's OpenSSL error queue into a string,
//            to be attached to the log line or exception at the failure site.
#pragma once

#include "base/handle.hpp"

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <stdexcept>
#include <string>

namespace sealmilter::crypto {

using base::Deleter;  // the one stateless deleter (base/handle.hpp)

using BIO_ptr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using X509_ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using EVP_PKEY_ptr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using EVP_PKEY_CTX_ptr = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX_free>>;
using EVP_CIPHER_ptr = std::unique_ptr<EVP_CIPHER, Deleter<EVP_CIPHER_free>>;
using EVP_MD_CTX_ptr = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX_free>>;
using CMS_ptr = std::unique_ptr<CMS_ContentInfo, Deleter<CMS_ContentInfo_free>>;
using PKCS12_ptr = std::unique_ptr<PKCS12, Deleter<PKCS12_free>>;
using BIO_METHOD_ptr = std::unique_ptr<BIO_METHOD, Deleter<BIO_meth_free>>;
using GENERAL_NAMES_ptr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES_free>>;
using ASN1_BIT_STRING_ptr = std::unique_ptr<ASN1_BIT_STRING, Deleter<ASN1_BIT_STRING_free>>;
using EXTENDED_KEY_USAGE_ptr =
    std::unique_ptr<EXTENDED_KEY_USAGE, Deleter<EXTENDED_KEY_USAGE_free>>;

inline void free_x509_stack(STACK_OF(X509) * s) noexcept { sk_X509_pop_free(s, X509_free); }
using X509_STACK_ptr = std::unique_ptr<STACK_OF(X509), Deleter<free_x509_stack>>;

// Frees a BIO chain element alone (BIO_free), for BIOs that are still linked elsewhere.
using BIO_single_ptr = std::unique_ptr<BIO, Deleter<BIO_free>>;

// Empties this thread's OpenSSL error queue; returns "lib:reason; lib:reason" or "".
std::string drain_errors();

// A broken invariant or an OpenSSL failure that callers cannot act upon locally.
class CryptoError : public std::runtime_error {
public:
    explicit CryptoError(const std::string& what) : std::runtime_error(what) {}
};

// Throws CryptoError(what + ": " + drained OpenSSL errors).
[[noreturn]] void throw_openssl(const std::string& what);

// Takes ownership of a freshly returned pointer; throws CryptoError when it is null.
template <typename Ptr, typename Raw>
Ptr owned_or_throw(Raw* raw, const char* what) {
    if (raw == nullptr) throw_openssl(what);
    return Ptr(raw);
}

}  // namespace sealmilter::crypto
