// keys/token_proxy.cpp — see token_proxy.hpp. The RSA_METHOD / EC_KEY_METHOD interfaces are
// deprecated in OpenSSL 3 but remain the only way (short of writing a provider) to put a
// key that is not in memory behind an EVP_PKEY; libp11 itself is built on them.
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "keys/token_proxy.hpp"

#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/rsa.h>

#include <memory>

namespace sealmilter::keys::detail {
namespace {

using RSA_ptr = std::unique_ptr<RSA, base::Deleter<RSA_free>>;
using EC_KEY_ptr = std::unique_ptr<EC_KEY, base::Deleter<EC_KEY_free>>;

// What a proxy forwards to: the libp11 key and the lock of its module.
struct Target {
    crypto::EVP_PKEY_ptr key;  // the libp11 EVP_PKEY (keeps rsa/ec alive)
    RSA_ptr rsa;               // its RSA (get1), or null
    EC_KEY_ptr ec;             // its EC_KEY (get1), or null
    base::Mutex* mutex = nullptr;
};
using TargetRef = std::shared_ptr<const Target>;

// ex_data holds a heap TargetRef; a duplicated RSA / EC_KEY (EC_KEY_dup for cofactor ECDH,
// EVP_PKEY_dup) gets its own TargetRef, so each owner frees exactly one.
void free_target(void* /*parent*/, void* ptr, CRYPTO_EX_DATA* /*ad*/, int /*idx*/, long /*argl*/,
                 void* /*argp*/) {
    const std::unique_ptr<TargetRef> owned(static_cast<TargetRef*>(ptr));
}

int dup_target(CRYPTO_EX_DATA* /*to*/, const CRYPTO_EX_DATA* /*from*/, void** from_d, int /*idx*/,
               long /*argl*/, void* /*argp*/) {
    const auto* ref = static_cast<const TargetRef*>(*from_d);
    if (ref == nullptr) return 1;
    *from_d = std::make_unique<TargetRef>(*ref).release();
    return 1;
}

int rsa_index() {
    static const int index =
        CRYPTO_get_ex_new_index(CRYPTO_EX_INDEX_RSA, 0, nullptr, nullptr, dup_target, free_target);
    return index;
}

int ec_index() {
    static const int index = CRYPTO_get_ex_new_index(CRYPTO_EX_INDEX_EC_KEY, 0, nullptr, nullptr,
                                                     dup_target, free_target);
    return index;
}

const Target* rsa_target(const RSA* rsa) {
    const auto* ref = static_cast<const TargetRef*>(RSA_get_ex_data(rsa, rsa_index()));
    return ref == nullptr ? nullptr : ref->get();
}

const Target* ec_target(const EC_KEY* ec) {
    const auto* ref = static_cast<const TargetRef*>(EC_KEY_get_ex_data(ec, ec_index()));
    return ref == nullptr ? nullptr : ref->get();
}

// RSA private operations: OpenSSL pads OAEP (decrypt) and PSS (sign) itself and asks for a raw
// (RSA_NO_PADDING) operation, which libp11 maps to CKM_RSA_X_509; PKCS#1 v1.5 maps to
// CKM_RSA_PKCS.
int rsa_priv_dec(int flen, const unsigned char* from, unsigned char* to, RSA* rsa, int padding) {
    const Target* t = rsa_target(rsa);
    if (t == nullptr || !t->rsa) return -1;
    base::MutexLock lock(*t->mutex);
    return RSA_private_decrypt(flen, from, to, t->rsa.get(), padding);
}

int rsa_priv_enc(int flen, const unsigned char* from, unsigned char* to, RSA* rsa, int padding) {
    const Target* t = rsa_target(rsa);
    if (t == nullptr || !t->rsa) return -1;
    base::MutexLock lock(*t->mutex);
    return RSA_private_encrypt(flen, from, to, t->rsa.get(), padding);
}

const RSA_METHOD* proxy_rsa_method() {
    static RSA_METHOD* const method = [] {
        RSA_METHOD* m = RSA_meth_dup(RSA_PKCS1_OpenSSL());
        if (m == nullptr) return m;
        RSA_meth_set1_name(m, "sealmilter PKCS#11 proxy");
        RSA_meth_set_flags(m, RSA_meth_get_flags(m) | RSA_FLAG_EXT_PKEY);
        RSA_meth_set_priv_dec(m, rsa_priv_dec);
        RSA_meth_set_priv_enc(m, rsa_priv_enc);
        return m;
    }();  // lives for the process, like the module
    return method;
}

int ec_sign(int type, const unsigned char* dgst, int dlen, unsigned char* sig, unsigned int* siglen,
            const BIGNUM* /*kinv*/, const BIGNUM* /*r*/, EC_KEY* ec) {
    const Target* t = ec_target(ec);
    if (t == nullptr || !t->ec) return 0;
    base::MutexLock lock(*t->mutex);
    return ECDSA_sign(type, dgst, dlen, sig, siglen, t->ec.get());
}

ECDSA_SIG* ec_sign_sig(const unsigned char* dgst, int dlen, const BIGNUM* /*kinv*/,
                       const BIGNUM* /*r*/, EC_KEY* ec) {
    const Target* t = ec_target(ec);
    if (t == nullptr || !t->ec) return nullptr;
    base::MutexLock lock(*t->mutex);
    return ECDSA_do_sign(dgst, dlen, t->ec.get());
}

// ECDH (CMS key agreement, RFC 5753): the shared secret is derived on the token
// (CKM_ECDH1_DERIVE in libp11); OpenSSL applies the X9.63 KDF to it afterwards.
int ec_compute_key(unsigned char** psec, size_t* pseclen, const EC_POINT* pub, const EC_KEY* ec) {
    const Target* t = ec_target(ec);
    if (t == nullptr || !t->ec) return 0;
    int (*derive)(unsigned char**, size_t*, const EC_POINT*, const EC_KEY*) = nullptr;
    EC_KEY_METHOD_get_compute_key(EC_KEY_get_method(t->ec.get()), &derive);
    if (derive == nullptr) return 0;
    base::MutexLock lock(*t->mutex);
    return derive(psec, pseclen, pub, t->ec.get());
}

const EC_KEY_METHOD* proxy_ec_method() {
    static EC_KEY_METHOD* const method = [] {
        EC_KEY_METHOD* m = EC_KEY_METHOD_new(EC_KEY_OpenSSL());
        if (m == nullptr) return m;
        EC_KEY_METHOD_set_sign(m, ec_sign, nullptr, ec_sign_sig);
        EC_KEY_METHOD_set_compute_key(m, ec_compute_key);
        return m;
    }();
    return method;
}

crypto::EVP_PKEY_ptr rsa_proxy(const std::shared_ptr<Target>& target) {
    const BIGNUM* n = nullptr;
    const BIGNUM* e = nullptr;
    RSA_get0_key(target->rsa.get(), &n, &e, nullptr);
    if (n == nullptr || e == nullptr || proxy_rsa_method() == nullptr) return nullptr;
    RSA_ptr rsa(RSA_new());
    if (!rsa || RSA_set_method(rsa.get(), proxy_rsa_method()) != 1) return nullptr;
    BIGNUM* n2 = BN_dup(n);
    BIGNUM* e2 = BN_dup(e);
    if (n2 == nullptr || e2 == nullptr || RSA_set0_key(rsa.get(), n2, e2, nullptr) != 1) {
        BN_free(n2);
        BN_free(e2);
        return nullptr;
    }
    RSA_set_flags(rsa.get(), RSA_FLAG_EXT_PKEY);
    auto ref = std::make_unique<TargetRef>(target);
    if (RSA_set_ex_data(rsa.get(), rsa_index(), ref.get()) != 1) return nullptr;
    (void)ref.release();  // set0: now freed by free_target with the RSA
    crypto::EVP_PKEY_ptr pkey(EVP_PKEY_new());
    if (!pkey || EVP_PKEY_assign_RSA(pkey.get(), rsa.get()) != 1) return nullptr;
    (void)rsa.release();  // assign0: the EVP_PKEY owns it now
    return pkey;
}

crypto::EVP_PKEY_ptr ec_proxy(const std::shared_ptr<Target>& target) {
    const EC_GROUP* group = EC_KEY_get0_group(target->ec.get());
    const EC_POINT* point = EC_KEY_get0_public_key(target->ec.get());
    if (group == nullptr || point == nullptr || proxy_ec_method() == nullptr) return nullptr;
    EC_KEY_ptr ec(EC_KEY_new());
    if (!ec || EC_KEY_set_method(ec.get(), proxy_ec_method()) != 1 ||
        EC_KEY_set_group(ec.get(), group) != 1 || EC_KEY_set_public_key(ec.get(), point) != 1) {
        return nullptr;
    }
    auto ref = std::make_unique<TargetRef>(target);
    if (EC_KEY_set_ex_data(ec.get(), ec_index(), ref.get()) != 1) return nullptr;
    (void)ref.release();  // freed by free_target with the EC_KEY
    crypto::EVP_PKEY_ptr pkey(EVP_PKEY_new());
    if (!pkey || EVP_PKEY_assign_EC_KEY(pkey.get(), ec.get()) != 1) return nullptr;
    (void)ec.release();  // assign0: the EVP_PKEY owns it now
    return pkey;
}

}  // namespace

crypto::EVP_PKEY_ptr make_token_proxy(crypto::EVP_PKEY_ptr token_key, base::Mutex& mutex) {
    if (!token_key) return nullptr;
    auto target = std::make_shared<Target>();
    target->mutex = &mutex;
    const int type = EVP_PKEY_get_base_id(token_key.get());
    if (type == EVP_PKEY_RSA) {
        target->rsa.reset(EVP_PKEY_get1_RSA(token_key.get()));
        if (!target->rsa) return nullptr;
        target->key = std::move(token_key);
        return rsa_proxy(target);
    }
    if (type == EVP_PKEY_EC) {
        target->ec.reset(EVP_PKEY_get1_EC_KEY(token_key.get()));
        if (!target->ec) return nullptr;
        target->key = std::move(token_key);
        return ec_proxy(target);
    }
    return nullptr;
}

}  // namespace sealmilter::keys::detail
