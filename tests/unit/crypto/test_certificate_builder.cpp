// crypto::CertificateBuilder: each option lands in the certificate as asked, read back with
// OpenSSL's own accessors; a chain it issues verifies with X509_verify_cert.
#include "crypto/certificate_builder.hpp"

#include <gtest/gtest.h>
#include <openssl/x509v3.h>

#include <set>

namespace crypto = sealmilter::crypto;

namespace {

EVP_PKEY* ec_key() {
    static const crypto::EVP_PKEY_ptr key = crypto::generate_ec_key("prime256v1");
    return key.get();
}

std::string serial_hex(const crypto::Certificate& c) {
    std::unique_ptr<BIGNUM, crypto::Deleter<BN_free>> bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(c.native()), nullptr));
    char* h = BN_bn2hex(bn.get());
    std::string out(h);
    OPENSSL_free(h);
    return out;
}

int digest_nid(const crypto::Certificate& c) {
    int md = 0;
    int pk = 0;
    EXPECT_EQ(OBJ_find_sigid_algs(X509_get_signature_nid(c.native()), &md, &pk), 1);
    return md;
}

}  // namespace

TEST(CertificateBuilder, SubjectSansValidityAndSerialAsAsked) {
    const crypto::Certificate c = crypto::CertificateBuilder()
                                      .public_key(ec_key())
                                      .organization("Bank")
                                      .common_name("Alice")
                                      .subject_email("alice@bank.example")
                                      .add_email_san("alice@bank.example")
                                      .add_email_san("a@bank.example")
                                      .validity(1800000000, 1900000000)
                                      .serial(4711)
                                      .build();
    EXPECT_EQ(c.subject(), "emailAddress=alice@bank.example,CN=Alice,O=Bank");
    EXPECT_EQ(c.issuer(), c.subject());  // self-signed
    EXPECT_EQ(c.email_addresses(), (std::vector<std::string>{"alice@bank.example", "a@bank.example"}));
    EXPECT_EQ(c.not_before(), 1800000000);
    EXPECT_EQ(c.not_after(), 1900000000);
    EXPECT_EQ(serial_hex(c), "1267");
    EXPECT_EQ(X509_get_version(c.native()), X509_VERSION_3);
    EXPECT_EQ(X509_verify(c.native(), ec_key()), 1);
    EXPECT_EQ(X509_get_ext_count(c.native()), 1);  // only the SAN: nothing that was not asked for
}

TEST(CertificateBuilder, DefaultSerialIs128RandomBitsAndPositive) {
    std::set<std::string> seen;
    for (int i = 0; i < 8; ++i) {
        const crypto::Certificate c = crypto::CertificateBuilder().public_key(ec_key()).common_name("x").build();
        EXPECT_EQ(serial_hex(c).size(), 32u);
        EXPECT_NE(serial_hex(c)[0], '-');
        seen.insert(serial_hex(c));
        EXPECT_LE(c.not_before(), std::time(nullptr));
        EXPECT_NEAR(static_cast<double>(c.not_after() - std::time(nullptr)), 365.0 * 86400, 120);
    }
    EXPECT_EQ(seen.size(), 8u);
}

TEST(CertificateBuilder, KeyUsageEkuAndBasicConstraints) {
    const crypto::Certificate c = crypto::CertificateBuilder()
                                      .public_key(ec_key())
                                      .key_usage(crypto::key_usage_from_names("keyAgreement,digitalSignature"))
                                      .extended_key_usage({"emailProtection", "1.3.6.1.5.5.7.3.2"})
                                      .basic_constraints(true, 0)
                                      .build();
    EXPECT_EQ(X509_get_key_usage(c.native()), static_cast<uint32_t>(KU_KEY_AGREEMENT | KU_DIGITAL_SIGNATURE));
    EXPECT_EQ(X509_get_extended_key_usage(c.native()), static_cast<uint32_t>(XKU_SMIME | XKU_SSL_CLIENT));
    EXPECT_NE(X509_get_extension_flags(c.native()) & EXFLAG_CA, 0u);  // CA:TRUE
    EXPECT_EQ(X509_get_pathlen(c.native()), 0);
    for (const int nid : {NID_key_usage, NID_basic_constraints}) {
        const int at = X509_get_ext_by_NID(c.native(), nid, -1);
        ASSERT_GE(at, 0);
        EXPECT_EQ(X509_EXTENSION_get_critical(X509_get_ext(c.native(), at)), 1) << OBJ_nid2sn(nid);
    }
    const crypto::Certificate leaf = crypto::CertificateBuilder().public_key(ec_key()).basic_constraints(false).build();
    EXPECT_NE(X509_get_extension_flags(leaf.native()) & EXFLAG_BCONS, 0u);  // present, CA:FALSE
    EXPECT_EQ(X509_get_extension_flags(leaf.native()) & EXFLAG_CA, 0u);
    EXPECT_THROW(crypto::key_usage_from_names("keyEncipherment,flying"), crypto::CryptoError);
}

TEST(CertificateBuilder, IssuedChainWithKeyIdentifiersAndDigestVerifies) {
    const crypto::EVP_PKEY_ptr ca_key = crypto::generate_ec_key("secp384r1");
    const crypto::Certificate ca = crypto::CertificateBuilder()
                                       .public_key(ca_key.get())
                                       .common_name("Issuing CA")
                                       .basic_constraints(true)
                                       .key_usage(crypto::kKeyCertSign | crypto::kCrlSign)
                                       .subject_key_identifier()
                                       .authority_key_identifier()
                                       .digest(crypto::Digest::Sha384)
                                       .build();
    const crypto::EVP_PKEY_ptr rsa = crypto::generate_rsa_key(2048);
    const crypto::Certificate leaf = crypto::CertificateBuilder()
                                         .public_key(rsa.get())
                                         .common_name("Bob")
                                         .add_email_san("bob@partner.example")
                                         .issuer(ca, ca_key.get())
                                         .subject_key_identifier()
                                         .authority_key_identifier()
                                         .digest(crypto::Digest::Sha512)
                                         .build();
    EXPECT_EQ(digest_nid(ca), NID_sha384);
    EXPECT_EQ(digest_nid(leaf), NID_sha512);
    EXPECT_EQ(leaf.issuer(), ca.subject());
    EXPECT_EQ(leaf.key_description(), "RSA-2048");
    ASSERT_NE(X509_get0_authority_key_id(leaf.native()), nullptr);
    EXPECT_EQ(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(leaf.native()), X509_get0_subject_key_id(ca.native())), 0);
    EXPECT_EQ(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(ca.native()), X509_get0_subject_key_id(ca.native())), 0);
    EXPECT_NE(ASN1_OCTET_STRING_cmp(X509_get0_subject_key_id(leaf.native()), X509_get0_subject_key_id(ca.native())), 0);

    std::unique_ptr<X509_STORE, crypto::Deleter<X509_STORE_free>> store(X509_STORE_new());
    X509_STORE_add_cert(store.get(), ca.native());
    std::unique_ptr<X509_STORE_CTX, crypto::Deleter<X509_STORE_CTX_free>> ctx(X509_STORE_CTX_new());
    ASSERT_EQ(X509_STORE_CTX_init(ctx.get(), store.get(), leaf.native(), nullptr), 1);
    EXPECT_EQ(X509_verify_cert(ctx.get()), 1) << X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
}

TEST(CertificateBuilder, MissingKeyIsAnError) {
    EXPECT_THROW(crypto::CertificateBuilder().common_name("x").build(), crypto::CryptoError);
    EXPECT_THROW(crypto::CertificateBuilder().public_key(ec_key()).key_usage(0).build(), crypto::CryptoError);
}
