// crypto/private_key.cpp — PEM / PKCS#12 key loading (see private_key.hpp).
#include "crypto/private_key.hpp"

#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/provider.h>

#include <cstring>


namespace sealmilter::crypto {
namespace {

int unload_provider(OSSL_PROVIDER* p) { return OSSL_PROVIDER_unload(p); }
using Provider_ptr = std::unique_ptr<OSSL_PROVIDER, Deleter<unload_provider>>;

struct Providers {
    Provider_ptr legacy;
    Provider_ptr fallback;
};

Providers load_providers() {
    // OpenSSL must be initialised before this static completes, so that its exit-time cleanup
    // (registered at init) runs after the static's destructor unloads the providers.
    OPENSSL_init_crypto(0, nullptr);
    // Loading "legacy" explicitly disables the implicit default provider, so load both.
    Providers p{Provider_ptr(OSSL_PROVIDER_load(nullptr, "legacy")),
                Provider_ptr(OSSL_PROVIDER_load(nullptr, "default"))};
    drain_errors();  // a missing legacy module only limits which PKCS#12 files open
    return p;
}

int pem_password_cb(char* buf, int size, int /*rwflag*/, void* userdata) {
    const auto* pass = static_cast<const std::string*>(userdata);
    const int n = static_cast<int>(std::min<size_t>(pass->size(), static_cast<size_t>(size)));
    std::memcpy(buf, pass->data(), static_cast<size_t>(n));
    return n;
}

KeyLoad from_pkcs12(const std::string& bytes, const std::string& passphrase) {
    KeyLoad r;
    load_legacy_provider_once();
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
    PKCS12_ptr p12(d2i_PKCS12(nullptr, &p, static_cast<long>(bytes.size())));
    if (!p12) {
        r.error = "neither a PEM private key nor a PKCS#12 file";
        drain_errors();
        return r;
    }
    EVP_PKEY* key = nullptr;
    X509* cert = nullptr;
    STACK_OF(X509)* ca = nullptr;
    if (PKCS12_parse(p12.get(), passphrase.c_str(), &key, &cert, &ca) != 1) {
        r.error = "cannot open PKCS#12 (wrong passphrase?): " + drain_errors();
        return r;
    }
    KeyMaterial m;
    m.key.reset(key);
    if (cert != nullptr) m.certificate.emplace(X509_ptr(cert));
    X509_STACK_ptr chain(ca);
    // Bounded by the bag size; ownership of each element moves into a Certificate.
    while (chain && sk_X509_num(chain.get()) > 0) m.chain.emplace_back(X509_ptr(sk_X509_shift(chain.get())));
    if (!m.key) {
        r.error = "PKCS#12 file holds no private key";
        return r;
    }
    r.material = std::move(m);
    return r;
}

}  // namespace

void load_legacy_provider_once() {
    static const Providers providers = load_providers();  // thread-safe static init
    (void)providers;
}

KeyLoad load_key_material(const std::string& path, const std::string& passphrase) {
    KeyLoad r;
    const std::optional<std::string> file = read_crypto_file(path, &r.error);
    if (!file) {
        r.unreadable = true;
        return r;
    }
    const std::string& bytes = *file;
    if (bytes.find("-----BEGIN") == std::string::npos) {
        r = from_pkcs12(bytes, passphrase);
        if (!r.error.empty()) r.error = path + ": " + r.error;
        return r;
    }
    BIO_ptr mem(BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())));
    if (!mem) throw_openssl("BIO_new_mem_buf");
    std::string pass = passphrase;
    EVP_PKEY_ptr key(PEM_read_bio_PrivateKey(mem.get(), nullptr, pem_password_cb, &pass));
    if (!key) {
        r.error = path + ": no PEM private key could be read: " + drain_errors();
        return r;
    }
    KeyMaterial m;
    m.key = std::move(key);
    // A PEM file may carry the certificate beside the key.
    ParsedCertificates certs = parse_certificates(bytes);
    for (auto& c : certs.certificates) {
        if (!m.certificate && X509_check_private_key(c.native(), m.key.get()) == 1)
            m.certificate.emplace(std::move(c));
    }
    drain_errors();
    r.material = std::move(m);
    return r;
}

}  // namespace sealmilter::crypto
