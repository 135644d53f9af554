// Certificate inspection and encryption suitability, one row per case.
#include "tests/support/test_pki.hpp"

#include <gtest/gtest.h>
#include <openssl/pem.h>

#include <fstream>
#include <iterator>

using sealmilter::testing::CertSpec;
using sealmilter::testing::make_identity;
namespace crypto = sealmilter::crypto;

struct SuitabilityRow {
    const char* name;
    CertSpec spec;
    const char* expect_reason;  // "" = suitable; else a substring of the reason
};

class Suitability : public ::testing::TestWithParam<SuitabilityRow> {};

TEST_P(Suitability, Row) {
    const auto& row = GetParam();
    const auto id = make_identity(row.spec);
    const std::string why = id.cert.encryption_unsuitability();
    if (std::string(row.expect_reason).empty()) {
        EXPECT_EQ(why, "") << row.name;
    } else {
        EXPECT_NE(why.find(row.expect_reason), std::string::npos) << row.name << ": " << why;
    }
}

INSTANTIATE_TEST_SUITE_P(
    Table, Suitability,
    ::testing::Values(
        SuitabilityRow{"rsa2048", {.key = "rsa2048"}, ""},
        SuitabilityRow{"rsa3072_no_ku_extension", {.key = "rsa3072", .key_usage = "none"}, ""},
        SuitabilityRow{"rsa_sign_only", {.key = "rsa2048", .key_usage = "digitalSignature"}, "keyEncipherment"},
        SuitabilityRow{"rsa1024", {.key = "rsa1024"}, "below 2048"},
        SuitabilityRow{"ec_p256", {.key = "ec-p256"}, ""},
        SuitabilityRow{"ec_p384", {.key = "ec-p384"}, ""},
        // The OpenSSL trap (SPEC §6): an EC encryption cert has keyAgreement, not keyEncipherment.
        SuitabilityRow{"ec_keyencipherment_only", {.key = "ec-p256", .key_usage = "keyEncipherment"}, "keyAgreement"},
        SuitabilityRow{"ec_secp256k1", {.key = "ec-secp256k1"}, "not P-256"}),
    [](const auto& row_info) { return std::string(row_info.param.name); });

TEST(Certificate, AddressesComeFromSanElseSubject) {
    auto with_san = make_identity({.email = "Eve@Example.com", .san = true});
    EXPECT_EQ(with_san.cert.email_addresses(), std::vector<std::string>{"Eve@Example.com"});
    auto subject_only = make_identity({.email = "alice@example.com", .san = false});
    EXPECT_EQ(subject_only.cert.email_addresses(), std::vector<std::string>{"alice@example.com"});
}

TEST(Certificate, FingerprintAndDescription) {
    auto id = make_identity({.key = "ec-p384"});
    EXPECT_EQ(id.cert.fingerprint_sha256().size(), 32u * 3 - 1);
    EXPECT_EQ(id.cert.key_description(), "EC secp384r1");
    EXPECT_LT(id.cert.not_before(), id.cert.not_after());
}

TEST(Certificate, ParsesPemBundleAndDerAndRejectsGarbage) {
    auto a = make_identity({.email = "a@x.example"});
    auto b = make_identity({.email = "b@x.example", .key = "ec-p256"});
    const auto der = a.cert.der();
    auto parsed_der = crypto::parse_certificates(std::string(der.begin(), der.end()));
    ASSERT_EQ(parsed_der.certificates.size(), 1u);
    EXPECT_EQ(parsed_der.certificates[0].fingerprint_sha256(), a.cert.fingerprint_sha256());

    std::string pem;
    for (const auto* c : {&a.cert, &b.cert}) {
        crypto::BIO_ptr mem(BIO_new(BIO_s_mem()));
        PEM_write_bio_X509(mem.get(), c->native());
        char* data = nullptr;
        const long n = BIO_get_mem_data(mem.get(), &data);
        pem.append(data, static_cast<size_t>(n));
    }
    auto parsed_pem = crypto::parse_certificates("junk before\n" + pem);
    ASSERT_EQ(parsed_pem.certificates.size(), 2u);
    EXPECT_EQ(parsed_pem.certificates[1].key_kind(), crypto::KeyKind::Ec);

    EXPECT_TRUE(crypto::parse_certificates("garbage \x01\x02").certificates.empty());
    EXPECT_FALSE(crypto::parse_certificates("garbage").error.empty());
    EXPECT_TRUE(crypto::parse_certificates("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").certificates.empty());
}

TEST(Certificate, NssAliceHasAddressOnlyInSubject) {
    const std::string path = std::string(SEALMILTER_SOURCE_DIR) + "/tests/data/nss-smime/Alice.p12";
    auto load = crypto::load_key_material(path, "nss");
    ASSERT_TRUE(load.material) << load.error;
    ASSERT_TRUE(load.material->certificate);
    EXPECT_EQ(load.material->certificate->email_addresses(), std::vector<std::string>{"Alice@example.com"});
    EXPECT_EQ(load.material->certificate->encryption_unsuitability(), "");
}

TEST(Certificate, UnreadableFileIsReported) {
    bool unreadable = false;
    auto r = crypto::load_certificate_file("/nonexistent/cert.pem", &unreadable);
    EXPECT_TRUE(unreadable);
    EXPECT_NE(r.error.find("cannot read"), std::string::npos);
}
