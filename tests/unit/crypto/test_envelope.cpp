// CMS envelopes: every cipher x key type x padding encrypts and decrypts; wrong keys are
// reported as such. Ciphertext is random, so tests decrypt and compare, never byte-compare.
#include "crypto/envelope.hpp"
#include "tests/support/test_pki.hpp"

#include <gtest/gtest.h>

using sealmilter::testing::CertSpec;
using sealmilter::testing::make_identity;
using sealmilter::testing::TestIdentity;
namespace crypto = sealmilter::crypto;

namespace {

std::string encrypt(const std::vector<crypto::Certificate>& to, const crypto::EnvelopeOptions& opt,
                    const std::string& plain, size_t chunk) {
    crypto::StringSink der;
    crypto::EnvelopeWriter w(to, opt, der);
    for (size_t off = 0; off < plain.size(); off += chunk) w.write(plain.data() + off, std::min(chunk, plain.size() - off));
    w.finish();
    return der.out;
}

crypto::DecryptOutcome decrypt(const std::string& der, const crypto::KeyMaterial& key, std::string* out) {
    crypto::BIO_ptr in(BIO_new_mem_buf(der.data(), static_cast<int>(der.size())));
    crypto::StringSink sink;
    auto r = crypto::decrypt_envelope(in.get(), key, sink);
    *out = sink.out;
    return r;
}

std::string sample(size_t n) {
    std::string s(n, '\0');
    for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(i * 2654435761u >> 13);
    return s;
}

}  // namespace

struct EnvelopeRow {
    const char* name;
    const char* key;
    crypto::Cipher cipher;
    crypto::RsaPadding padding;
};

class EnvelopeMatrix : public ::testing::TestWithParam<EnvelopeRow> {};

TEST_P(EnvelopeMatrix, RoundTrip) {
    const auto& row = GetParam();
    const TestIdentity id = make_identity({.key = row.key});
    const crypto::EnvelopeOptions opt{row.cipher, row.padding};
    for (size_t len : {0u, 1u, 15u, 16u, 17u, 100000u}) {
        const std::string plain = sample(len);
        if (len == 0 && row.cipher == crypto::Cipher::Aes256Gcm) {
            // OpenSSL 3.0 emits nothing for empty GCM content; the writer must refuse.
            // (The transform never encrypts empty content: the entity has at least CRLF.)
            EXPECT_THROW(encrypt({id.cert}, opt, plain, 1), crypto::CryptoError);
            continue;
        }
        const std::string der = encrypt({id.cert}, opt, plain, 4093);
        ASSERT_GT(der.size(), len);
        std::string got;
        const auto r = decrypt(der, id.material(), &got);
        ASSERT_EQ(r.status, crypto::DecryptStatus::Ok) << r.detail;
        EXPECT_EQ(got, plain) << row.name << " len " << len;
    }
}

INSTANTIATE_TEST_SUITE_P(
    Table, EnvelopeMatrix,
    ::testing::Values(EnvelopeRow{"rsa_pkcs1_aes256cbc", "rsa2048", crypto::Cipher::Aes256Cbc, crypto::RsaPadding::Pkcs1},
                      EnvelopeRow{"rsa_oaep_aes256cbc", "rsa2048", crypto::Cipher::Aes256Cbc, crypto::RsaPadding::Oaep},
                      EnvelopeRow{"rsa_pkcs1_aes128cbc", "rsa3072", crypto::Cipher::Aes128Cbc, crypto::RsaPadding::Pkcs1},
                      EnvelopeRow{"rsa_pkcs1_aes256gcm", "rsa2048", crypto::Cipher::Aes256Gcm, crypto::RsaPadding::Pkcs1},
                      EnvelopeRow{"ec_p256_aes256cbc", "ec-p256", crypto::Cipher::Aes256Cbc, crypto::RsaPadding::Pkcs1},
                      EnvelopeRow{"ec_p384_aes128cbc", "ec-p384", crypto::Cipher::Aes128Cbc, crypto::RsaPadding::Pkcs1},
                      EnvelopeRow{"ec_p256_aes256gcm", "ec-p256", crypto::Cipher::Aes256Gcm, crypto::RsaPadding::Oaep}),
    [](const auto& row_info) { return std::string(row_info.param.name); });

TEST(Envelope, ContentTypeOidMatchesCipher) {
    const TestIdentity id = make_identity({});
    for (auto [cipher, nid] : {std::pair{crypto::Cipher::Aes256Cbc, NID_pkcs7_enveloped},
                               std::pair{crypto::Cipher::Aes256Gcm, NID_id_smime_ct_authEnvelopedData}}) {
        const std::string der = encrypt({id.cert}, {cipher, crypto::RsaPadding::Pkcs1}, "x", 1);
        crypto::BIO_ptr in(BIO_new_mem_buf(der.data(), static_cast<int>(der.size())));
        crypto::CMS_ptr cms(d2i_CMS_bio(in.get(), nullptr));
        ASSERT_TRUE(cms);
        EXPECT_EQ(OBJ_obj2nid(CMS_get0_type(cms.get())), nid);
    }
}

TEST(Envelope, EveryRecipientOfAMultiRecipientEnvelopeDecrypts) {
    std::vector<TestIdentity> ids;
    int n = 0;
    for (const char* k : {"rsa2048", "rsa3072", "rsa2048"})
        ids.push_back(make_identity({.email = "r" + std::to_string(++n) + "@x.example", .key = k}));
    std::vector<crypto::Certificate> certs;
    for (const auto& id : ids) certs.push_back(id.cert);
    const std::string plain = sample(5000);
    const std::string der = encrypt(certs, {}, plain, 1);
    for (const auto& id : ids) {
        std::string got;
        ASSERT_EQ(decrypt(der, id.material(), &got).status, crypto::DecryptStatus::Ok);
        EXPECT_EQ(got, plain);
    }
}

TEST(Envelope, WrongKeyIsNoMatchingRecipient) {
    const TestIdentity to = make_identity({.email = "to@x.example"});
    const TestIdentity other = make_identity({.email = "other@x.example"});
    const std::string der = encrypt({to.cert}, {}, "secret", 6);
    std::string got;
    EXPECT_EQ(decrypt(der, other.material(), &got).status, crypto::DecryptStatus::NoMatchingRecipient);
    EXPECT_EQ(got, "");
    // Without a certificate the key is tried and fails plainly (CMS_DEBUG_DECRYPT).
    crypto::KeyMaterial bare = other.material();
    bare.certificate.reset();
    const auto r = decrypt(der, bare, &got);
    EXPECT_NE(r.status, crypto::DecryptStatus::Ok);
    EXPECT_EQ(got, "");
}

TEST(Envelope, GarbageIsNotCms) {
    const TestIdentity id = make_identity({});
    std::string got;
    EXPECT_EQ(decrypt("not der at all", id.material(), &got).status, crypto::DecryptStatus::NotCms);
}

TEST(Envelope, NoRecipientsIsAnError) {
    crypto::StringSink sink;
    EXPECT_THROW(crypto::EnvelopeWriter({}, {}, sink), crypto::CryptoError);
}

TEST(Envelope, FailingSinkSurfacesItsException) {
    struct Failing : crypto::ByteSink {
        void write(const char*, size_t) override { throw std::runtime_error("disk full"); }
    } failing;
    const TestIdentity id = make_identity({});
    auto attempt = [&] {
        crypto::EnvelopeWriter w({id.cert}, {}, failing);
        const std::string big = sample(200000);
        w.write(big.data(), big.size());
        w.finish();
    };
    EXPECT_THROW(attempt(), std::runtime_error);
}

TEST(KeyMaterial, Pkcs12FromNssOpensOnlyWithItsPassphrase) {
    const std::string dir = std::string(SEALMILTER_SOURCE_DIR) + "/tests/data/nss-smime/";
    auto load = crypto::load_key_material(dir + "Bob.p12", "nss");
    ASSERT_TRUE(load.material) << load.error;
    auto wrong = crypto::load_key_material(dir + "Bob.p12", "wrong");
    EXPECT_FALSE(wrong.material);
    EXPECT_NE(wrong.error.find("passphrase"), std::string::npos);
}
