// keys/wrap.cpp — AES-256-GCM key wrapping under the master key (see wrap.hpp).
#include "keys/wrap.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <cstring>

namespace sealmilter::keys {
namespace {

constexpr std::string_view kVersion = "v1";
constexpr size_t kNonce = 12;
constexpr size_t kTag = 16;

using EVP_CIPHER_CTX_ptr = std::unique_ptr<EVP_CIPHER_CTX, crypto::Deleter<EVP_CIPHER_CTX_free>>;
using PKCS8_ptr = std::unique_ptr<PKCS8_PRIV_KEY_INFO, crypto::Deleter<PKCS8_PRIV_KEY_INFO_free>>;

const unsigned char* bytes(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }
unsigned char* bytes(std::string& s) { return reinterpret_cast<unsigned char*>(s.data()); }

// Wipes its contents when it goes (plaintext key bytes).
struct Secret {
    std::string s;
    Secret() = default;
    Secret(const Secret&) = delete;
    Secret& operator=(const Secret&) = delete;
    ~Secret() { OPENSSL_cleanse(s.data(), s.size()); }
};

}  // namespace

std::string wrap(const MasterKey& key, std::string_view secret, std::string_view aad) {
    std::string out(kVersion);
    out.resize(kVersion.size() + kNonce + secret.size() + kTag);
    unsigned char* nonce = bytes(out) + kVersion.size();
    unsigned char* ct = nonce + kNonce;
    if (RAND_bytes(nonce, kNonce) != 1) crypto::throw_openssl("RAND_bytes");
    EVP_CIPHER_CTX_ptr ctx(EVP_CIPHER_CTX_new());
    int len = 0;
    if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), nonce) != 1 ||
        EVP_EncryptUpdate(ctx.get(), nullptr, &len, bytes(aad), static_cast<int>(aad.size())) != 1 ||
        EVP_EncryptUpdate(ctx.get(), ct, &len, bytes(secret), static_cast<int>(secret.size())) != 1 ||
        EVP_EncryptFinal_ex(ctx.get(), ct + len, &len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTag, ct + secret.size()) != 1)
        crypto::throw_openssl("AES-256-GCM wrap");
    return out;
}

std::optional<std::string> unwrap(const MasterKey& key, std::string_view wrapped, std::string_view aad) {
    if (wrapped.size() < kVersion.size() + kNonce + kTag || wrapped.substr(0, kVersion.size()) != kVersion)
        return std::nullopt;
    const std::string_view nonce = wrapped.substr(kVersion.size(), kNonce);
    const std::string_view ct = wrapped.substr(kVersion.size() + kNonce, wrapped.size() - kVersion.size() - kNonce - kTag);
    std::string tag(wrapped.substr(wrapped.size() - kTag));
    std::string plain(ct.size(), '\0');
    EVP_CIPHER_CTX_ptr ctx(EVP_CIPHER_CTX_new());
    int len = 0;
    const bool ok = ctx && EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), bytes(nonce)) == 1 &&
                    EVP_DecryptUpdate(ctx.get(), nullptr, &len, bytes(aad), static_cast<int>(aad.size())) == 1 &&
                    EVP_DecryptUpdate(ctx.get(), bytes(plain), &len, bytes(ct), static_cast<int>(ct.size())) == 1 &&
                    EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTag, tag.data()) == 1 &&
                    EVP_DecryptFinal_ex(ctx.get(), bytes(plain) + len, &len) == 1;
    crypto::drain_errors();
    if (!ok) {
        OPENSSL_cleanse(plain.data(), plain.size());
        return std::nullopt;
    }
    return plain;
}

std::string wrap_private_key(const MasterKey& key, EVP_PKEY* pkey, std::string_view aad) {
    const PKCS8_ptr p8(EVP_PKEY2PKCS8(pkey));
    if (!p8) crypto::throw_openssl("EVP_PKEY2PKCS8");
    unsigned char* der = nullptr;
    const int n = i2d_PKCS8_PRIV_KEY_INFO(p8.get(), &der);
    if (n <= 0) crypto::throw_openssl("i2d_PKCS8_PRIV_KEY_INFO");
    Secret plain;
    plain.s.assign(reinterpret_cast<const char*>(der), static_cast<size_t>(n));
    OPENSSL_clear_free(der, static_cast<size_t>(n));
    return wrap(key, plain.s, aad);
}

crypto::EVP_PKEY_ptr unwrap_private_key(const MasterKey& key, std::string_view wrapped, std::string_view aad) {
    std::optional<std::string> der = unwrap(key, wrapped, aad);
    if (!der) return nullptr;
    Secret plain;
    plain.s = std::move(*der);
    const unsigned char* p = bytes(std::string_view(plain.s));
    const PKCS8_ptr p8(d2i_PKCS8_PRIV_KEY_INFO(nullptr, &p, static_cast<long>(plain.s.size())));
    crypto::EVP_PKEY_ptr pkey(p8 ? EVP_PKCS82PKEY(p8.get()) : nullptr);
    crypto::drain_errors();
    return pkey;
}

}  // namespace sealmilter::keys
