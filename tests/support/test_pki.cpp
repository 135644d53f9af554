// tests/support/test_pki.cpp — see test_pki.hpp.
#include "tests/support/test_pki.hpp"

#include "crypto/certificate_builder.hpp"

#include <openssl/core_names.h>
#include <openssl/x509.h>

#include <ctime>

namespace sealmilter::testing {
namespace {

crypto::EVP_PKEY_ptr make_key(const std::string& kind) {
    if (kind.rfind("rsa", 0) == 0) return crypto::generate_rsa_key(static_cast<unsigned>(std::stoul(kind.substr(3))));
    if (kind == "ec-p256") return crypto::generate_ec_key("prime256v1");
    if (kind == "ec-p384") return crypto::generate_ec_key("secp384r1");
    if (kind == "ec-secp256k1") return crypto::generate_ec_key("secp256k1");
    throw crypto::CryptoError("test_pki: unknown key kind " + kind);
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
    crypto::CertificateBuilder b;
    b.public_key(key.get()).common_name("Test").extended_key_usage({"emailProtection"});
    b.serial(spec.serial != 0 ? static_cast<uint64_t>(spec.serial) : std::hash<std::string>{}(spec.email) & 0x7fffffff);
    const std::time_t now = std::time(nullptr);
    b.validity(spec.days_valid >= 0 ? now - 60 : now - 86400L * 400, now + 86400L * spec.days_valid);
    if (spec.san) b.add_email_san(spec.email);
    else b.subject_email(spec.email);
    std::string ku = spec.key_usage;
    if (ku == "default") ku = spec.key.rfind("ec", 0) == 0 ? "keyAgreement,digitalSignature" : "keyEncipherment,digitalSignature";
    if (ku != "none") b.key_usage(crypto::key_usage_from_names(ku));
    return TestIdentity{std::move(key), b.build()};
}

std::string der_of_private(EVP_PKEY* key) {
    unsigned char* der = nullptr;
    const int n = i2d_PrivateKey(key, &der);
    if (n <= 0) return {};
    std::string out(reinterpret_cast<const char*>(der), static_cast<size_t>(n));
    OPENSSL_free(der);
    return out;
}

std::string private_component(EVP_PKEY* key) {
    BIGNUM* bn = nullptr;
    if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_D, &bn) != 1 &&
        EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &bn) != 1)
        return "";
    std::string out(static_cast<size_t>(BN_num_bytes(bn)), '\0');
    BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
    BN_clear_free(bn);
    return out;
}

}  // namespace sealmilter::testing
