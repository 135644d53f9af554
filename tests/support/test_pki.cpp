// tests/support/test_pki.cpp — see test_pki.hpp.
#include "tests/support/test_pki.hpp"

#include <openssl/ec.h>
#include <openssl/rsa.h>

namespace sealmilter::testing {
namespace {

crypto::EVP_PKEY_ptr make_key(const std::string& kind) {
    EVP_PKEY* k = nullptr;
    if (kind.rfind("rsa", 0) == 0) {
        k = EVP_RSA_gen(static_cast<unsigned>(std::stoul(kind.substr(3))));
    } else if (kind == "ec-p256") {
        k = EVP_EC_gen("prime256v1");
    } else if (kind == "ec-p384") {
        k = EVP_EC_gen("secp384r1");
    } else if (kind == "ec-secp256k1") {
        k = EVP_EC_gen("secp256k1");
    }
    return crypto::owned_or_throw<crypto::EVP_PKEY_ptr>(k, "keygen");
}

void add_ext(X509* x, int nid, const std::string& value) {
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    if (ext == nullptr) crypto::throw_openssl("X509V3_EXT_conf_nid " + value);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
}

}  // namespace

crypto::KeyMaterial TestIdentity::material() const {
    crypto::KeyMaterial m;
    EVP_PKEY_up_ref(key.get());
    m.key.reset(key.get());
    m.certificate = cert;
    return m;
}

TestIdentity make_identity(const CertSpec& spec) {
    crypto::EVP_PKEY_ptr key = make_key(spec.key);
    crypto::X509_ptr x(X509_new());
    X509_set_version(x.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x.get()),
                     spec.serial != 0 ? spec.serial : static_cast<long>(std::hash<std::string>{}(spec.email) & 0x7fffffff));
    X509_gmtime_adj(X509_getm_notBefore(x.get()), spec.days_valid >= 0 ? -60 : -86400L * 400);
    X509_gmtime_adj(X509_getm_notAfter(x.get()), 86400L * spec.days_valid);
    X509_NAME* name = X509_get_subject_name(x.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>("Test"), -1, -1, 0);
    if (!spec.san)
        X509_NAME_add_entry_by_txt(name, "emailAddress", MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(spec.email.c_str()), -1, -1, 0);
    X509_set_issuer_name(x.get(), name);
    X509_set_pubkey(x.get(), key.get());
    if (spec.san) add_ext(x.get(), NID_subject_alt_name, "email:" + spec.email);
    std::string ku = spec.key_usage;
    if (ku == "default") ku = spec.key.rfind("ec", 0) == 0 ? "keyAgreement,digitalSignature" : "keyEncipherment,digitalSignature";
    if (ku != "none") add_ext(x.get(), NID_key_usage, "critical," + ku);
    add_ext(x.get(), NID_ext_key_usage, "emailProtection");
    if (X509_sign(x.get(), key.get(), EVP_sha256()) == 0) crypto::throw_openssl("X509_sign");
    return TestIdentity{std::move(key), crypto::Certificate(std::move(x))};
}

}  // namespace sealmilter::testing
