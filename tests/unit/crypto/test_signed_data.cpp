// crypto/signed_data: the streaming SignedDataWriter signs (RSA and EC, detached and opaque,
// SHA-256/384/512) and SignedData verifies what it wrote; a changed byte fails; signed
// attributes come back as set; a 20 MB content streams through without being held.
#include "crypto/signed_data.hpp"

#include "tests/support/test_pki.hpp"

#include <gtest/gtest.h>

namespace crypto = sealmilter::crypto;
using sealmilter::testing::make_identity;
using sealmilter::testing::TestIdentity;

namespace {

const TestIdentity& signer(bool ec) {
    static const TestIdentity rsa = make_identity({.email = "signer@bank.example"});
    static const TestIdentity e = make_identity({.email = "signer@bank.example", .key = "ec-p256"});
    return ec ? e : rsa;
}

std::string sign(const TestIdentity& who, const crypto::SignOptions& o, const std::string& content, size_t piece = 4096) {
    crypto::StringSink der;
    const crypto::KeyMaterial key = who.material();
    crypto::SignedDataWriter w(key, o, der);
    for (size_t off = 0; off < content.size(); off += piece) w.write(content.data() + off, std::min(piece, content.size() - off));
    w.finish();
    return der.out;
}

const std::string kContent = "Content-Type: text/plain\r\n\r\nStatement 2026-11: balance 1,234.56 EUR\r\n";

}  // namespace

TEST(SignedData, SignedHereVerifiesForEveryKeyModeAndDigest) {
    const std::pair<crypto::Digest, const char*> digests[] = {
        {crypto::Digest::Sha256, "SHA256"}, {crypto::Digest::Sha384, "SHA384"}, {crypto::Digest::Sha512, "SHA512"}};
    for (const bool ec : {false, true}) {
        for (const bool detached : {true, false}) {
            for (const auto& [digest, name] : digests) {
                const std::string what = std::string(ec ? "EC " : "RSA ") + (detached ? "detached " : "opaque ") + name;
                const std::string der = sign(signer(ec), {.digest = digest, .detached = detached}, kContent);
                std::string error;
                const auto sd = crypto::SignedData::parse(der, &error);
                ASSERT_TRUE(sd) << what << ": " << error;
                EXPECT_EQ(crypto::cms_type(der).kind, crypto::CmsKind::Signed);
                if (detached) {
                    EXPECT_FALSE(sd->content()) << what;
                    EXPECT_TRUE(sd->verify_detached(kContent)) << what;
                } else {
                    EXPECT_EQ(sd->content(), kContent) << what;
                    EXPECT_EQ(sd->verify_opaque(), kContent) << what;
                }
                const auto signers = sd->signers();
                ASSERT_EQ(signers.size(), 1u) << what;
                EXPECT_EQ(signers[0].digest, name) << what;
                ASSERT_TRUE(signers[0].certificate) << what;
                EXPECT_EQ(signers[0].certificate->fingerprint_sha256(), signer(ec).cert.fingerprint_sha256()) << what;
                EXPECT_TRUE(signers[0].capabilities.empty()) << what;
            }
        }
    }
}

TEST(SignedData, ATamperedByteFails) {
    const std::string der = sign(signer(false), {}, kContent);
    std::string changed = kContent;
    changed[changed.find("1,234")] = '9';
    std::string detail;
    EXPECT_FALSE(crypto::SignedData::parse(der, nullptr)->verify_detached(changed, &detail));
    EXPECT_FALSE(detail.empty());

    std::string opaque = sign(signer(true), {.detached = false}, kContent);
    const size_t at = opaque.find("1,234");
    ASSERT_NE(at, std::string::npos);
    opaque[at] = '9';
    const auto sd = crypto::SignedData::parse(opaque, nullptr);
    ASSERT_TRUE(sd);
    EXPECT_FALSE(sd->verify_opaque());
}

TEST(SignedData, SigningTimeAndCapabilitiesAreSigned) {
    crypto::SignOptions o;
    o.signing_time = 1800000000;
    o.capabilities = {"aes256-gcm", "aes256-cbc", "rsaes-oaep", "1.2.3.4"};
    const std::string der = sign(signer(false), o, kContent);
    const auto sd = crypto::SignedData::parse(der, nullptr);
    ASSERT_TRUE(sd);
    ASSERT_TRUE(sd->verify_detached(kContent));
    EXPECT_EQ(sd->signers()[0].capabilities, o.capabilities);
    CMS_ContentInfo* raw = nullptr;
    const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
    crypto::CMS_ptr cms(d2i_CMS_ContentInfo(&raw, &p, static_cast<long>(der.size())));
    CMS_SignerInfo* si = sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(cms.get()), 0);
    const int at = CMS_signed_get_attr_by_NID(si, NID_pkcs9_signingTime, -1);
    ASSERT_GE(at, 0);
    const ASN1_TYPE* t = X509_ATTRIBUTE_get0_type(CMS_signed_get_attr(si, at), 0);
    std::tm tm{};
    ASSERT_EQ(ASN1_TIME_to_tm(t->value.utctime, &tm), 1);
    EXPECT_EQ(timegm(&tm), 1800000000);
    EXPECT_THROW(sign(signer(false), {.capabilities = {"no-such-cipher"}}, kContent), crypto::CryptoError);
}

TEST(SignedData, ChainCertificatesAreCarried) {
    const TestIdentity extra = make_identity({.email = "ca@bank.example", .key = "ec-p256"});
    crypto::KeyMaterial key = signer(true).material();
    key.chain = {extra.cert, signer(true).cert};  // the signer's own is not added twice
    crypto::StringSink der;
    crypto::SignedDataWriter w(key, {}, der);
    w.write(kContent.data(), kContent.size());
    w.finish();
    const unsigned char* p = reinterpret_cast<const unsigned char*>(der.out.data());
    crypto::CMS_ptr cms(d2i_CMS_ContentInfo(nullptr, &p, static_cast<long>(der.out.size())));
    ASSERT_TRUE(cms);
    const crypto::X509_STACK_ptr certs(CMS_get1_certs(cms.get()));
    EXPECT_EQ(sk_X509_num(certs.get()), 2);
    crypto::KeyMaterial no_cert;
    no_cert.key = signer(true).material().key;
    EXPECT_THROW(crypto::SignedDataWriter(no_cert, {}, der), crypto::CryptoError);
}

TEST(SignedData, TwentyMegabytesStreamThrough) {
    // Counts what reaches the sink, and how much had arrived before finish().
    struct Counting final : crypto::ByteSink {
        void write(const char*, size_t len) override { bytes += len; }
        unsigned long long bytes = 0;
    };
    std::string chunk(64 * 1024, '\0');
    for (size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<char>('A' + i % 26);
    constexpr int kChunks = 320;  // 20 MiB
    for (const bool detached : {false, true}) {
        Counting sink;
        const crypto::KeyMaterial key = signer(false).material();
        crypto::SignedDataWriter w(key, {.detached = detached}, sink);
        for (int i = 0; i < kChunks; ++i) w.write(chunk.data(), chunk.size());
        const unsigned long long before_finish = sink.bytes;
        w.finish();
        if (detached) {
            EXPECT_LT(sink.bytes, 16u * 1024) << "a detached signature does not carry the content";
        } else {
            EXPECT_GE(before_finish, 20u * 1024 * 1024 - 64 * 1024) << "opaque content went out while it was written";
            EXPECT_GT(sink.bytes, 20u * 1024 * 1024);
        }
    }
    // And a detached one verifies over the 20 MiB.
    std::string big;
    big.reserve(static_cast<size_t>(kChunks) * chunk.size());
    for (int i = 0; i < kChunks; ++i) big += chunk;
    const std::string der = sign(signer(true), {.digest = crypto::Digest::Sha512}, big, 1 << 20);
    EXPECT_TRUE(crypto::SignedData::parse(der, nullptr)->verify_detached(big));
}

TEST(SignedData, NotSignedDataIsAValue) {
    std::string error;
    EXPECT_FALSE(crypto::SignedData::parse("not der at all", &error));
    EXPECT_NE(error.find("not CMS"), std::string::npos);
    EXPECT_EQ(crypto::cms_type("junk").kind, crypto::CmsKind::NotCms);
    EXPECT_EQ(crypto::capability_name("2.16.840.1.101.3.4.1.46"), "aes256-gcm");
    EXPECT_EQ(crypto::capability_name("1.2.3"), "1.2.3");
}
