// Canonicalisation, Content-Type parsing and already-encrypted detection.
#include "core/mime.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

namespace core = sealmilter::core;

namespace {

std::unique_ptr<core::Message> parse(const std::string& raw) {
    auto m = std::make_unique<core::Message>();
    core::MessageSplitter s(*m);
    s.feed(raw.data(), raw.size());
    s.finish();
    return m;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

struct CanonRow {
    const char* name;
    std::string in;
    std::string out;
};

class Canon : public ::testing::TestWithParam<CanonRow> {};

TEST_P(Canon, EveryChunking) {
    const auto& row = GetParam();
    for (size_t chunk : {1u, 2u, 3u, 1000u}) {
        core::CrlfCanonicalizer c;
        std::string out;
        std::string scratch;
        for (size_t off = 0; off < row.in.size(); off += chunk) out.append(c.feed(std::string_view(row.in).substr(off, chunk), scratch));
        EXPECT_EQ(out, row.out) << row.name << " chunk " << chunk;
    }
}

INSTANTIATE_TEST_SUITE_P(Table, Canon,
                         ::testing::Values(CanonRow{"lf", "a\nb\n", "a\r\nb\r\n"},
                                           CanonRow{"crlf_kept", "a\r\nb\r\n", "a\r\nb\r\n"},
                                           CanonRow{"mixed", "a\nb\r\nc\n", "a\r\nb\r\nc\r\n"},
                                           CanonRow{"lone_cr_kept", "a\rb\n", "a\rb\r\n"},
                                           CanonRow{"cr_cr_lf", "a\r\r\n", "a\r\r\n"},
                                           CanonRow{"leading_lf", "\n\nx", "\r\n\r\nx"},
                                           CanonRow{"no_final_newline", "abc", "abc"},
                                           CanonRow{"empty", "", ""},
                                           CanonRow{"cr_then_lf_across_chunks", "ab\r\ncd\r\n", "ab\r\ncd\r\n"},
                                           CanonRow{"lf_first_after_cr_chunk", "a\r\n\nb", "a\r\n\r\nb"}),
                         [](const auto& row_info) { return std::string(row_info.param.name); });

TEST(ContentType, ParsesParametersIncludingRfc2231) {
    auto ct = core::parse_content_type(" Multipart/Mixed;\n\tboundary=\"b 1\"; Name*=UTF-8''%E4%B8%AD.pdf");
    ASSERT_TRUE(ct);
    EXPECT_EQ(ct->type, "multipart");
    EXPECT_EQ(ct->subtype, "mixed");
    EXPECT_EQ(ct->param("boundary"), "b 1");
    EXPECT_EQ(ct->param("name"), "\xE4\xB8\xAD.pdf");
}

TEST(ContentType, DefaultsToTextPlainWhenAbsent) {
    auto m = parse("Subject: x\n\nhello\n");
    const auto ct = core::top_level_content_type(*m);
    EXPECT_EQ(ct.type, "text");
    EXPECT_EQ(ct.subtype, "plain");
}

struct DetectRow {
    const char* file;  // under tests/data/
    core::EncryptedForm expected;
};

class Detect : public ::testing::TestWithParam<DetectRow> {};

TEST_P(Detect, CorpusFile) {
    const auto m = parse(read_file(std::string(SEALMILTER_SOURCE_DIR) + "/tests/data/" + GetParam().file));
    EXPECT_EQ(core::detect_encrypted(*m), GetParam().expected) << GetParam().file;
}

INSTANTIATE_TEST_SUITE_P(
    Table, Detect,
    ::testing::Values(DetectRow{"messages/01-plain-ascii.eml", core::EncryptedForm::None},
                      DetectRow{"messages/06-mixed-related-inline-images.eml", core::EncryptedForm::None},
                      DetectRow{"messages/24-smime-enveloped.eml", core::EncryptedForm::SmimeEnveloped},
                      DetectRow{"messages/25-smime-authenveloped.eml", core::EncryptedForm::SmimeAuthEnveloped},
                      DetectRow{"messages/26-x-pkcs7-mime-legacy.eml", core::EncryptedForm::SmimeEnveloped},
                      DetectRow{"messages/27-pgp-mime-encrypted.eml", core::EncryptedForm::PgpMime},
                      DetectRow{"messages/28-pgp-inline.eml", core::EncryptedForm::PgpInline},
                      DetectRow{"nss-smime/alice.env.eml", core::EncryptedForm::SmimeEnveloped},
                      // opaque-signed uses application/pkcs7-mime too: it is NOT encrypted
                      DetectRow{"nss-smime/alice.sig.SHA256.opaque.eml", core::EncryptedForm::None},
                      DetectRow{"nss-smime/alice.dsig.SHA256.multipart.eml", core::EncryptedForm::None}),
    [](const auto& row_info) {
        std::string n = row_info.param.file;
        for (auto& c : n)
            if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
        return n;
    });

TEST(Detect, InlinePgpOnlyWhenTheWholeBodyIsOneArmoredMessage) {
    EXPECT_EQ(core::detect_encrypted(*parse("Subject: x\n\nquote: -----BEGIN PGP MESSAGE-----\n")),
              core::EncryptedForm::None);
    EXPECT_EQ(core::detect_encrypted(*parse(
                  "Subject: x\n\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\nhQEMA\r\n-----END PGP MESSAGE-----\r\n\r\n")),
              core::EncryptedForm::PgpInline);
    // Plaintext around (or after) an armored block is plaintext: it is encrypted.
    EXPECT_EQ(core::detect_encrypted(*parse(
                  "Subject: x\n\nhi, the account number is 4711\r\n-----BEGIN PGP MESSAGE-----\r\nhQEMA\r\n"
                  "-----END PGP MESSAGE-----\r\n")),
              core::EncryptedForm::None);
    EXPECT_EQ(core::detect_encrypted(*parse(
                  "Subject: x\n\n-----BEGIN PGP MESSAGE-----\nhQEMA\n-----END PGP MESSAGE-----\nPS: secret\n")),
              core::EncryptedForm::None);
    EXPECT_EQ(core::detect_encrypted(*parse("Subject: x\n\n-----BEGIN PGP MESSAGE-----\nhQEMA\n")),
              core::EncryptedForm::None);  // never closed
    // multipart/encrypted must say it is PGP/MIME.
    EXPECT_EQ(core::detect_encrypted(*parse("Content-Type: multipart/encrypted; boundary=b\n\n--b\n\nplain\n--b--\n")),
              core::EncryptedForm::None);
    // Only text bodies are scanned: an attachment mentioning armor is not inline PGP.
    EXPECT_EQ(core::detect_encrypted(*parse("Content-Type: application/octet-stream\n\n-----BEGIN PGP MESSAGE-----\n")),
              core::EncryptedForm::None);
}

TEST(Detect, SmimeLabelWithoutEnvelopedCmsIsNotTrusted) {
    EXPECT_EQ(core::detect_encrypted(*parse(
                  "Content-Type: application/pkcs7-mime; smime-type=enveloped-data\n\n!!!!\n")),
              core::EncryptedForm::None);
    EXPECT_EQ(core::detect_encrypted(*parse(
                  "Content-Type: application/pkcs7-mime; smime-type=enveloped-data\n\nThe balance is 4711 EUR.\n")),
              core::EncryptedForm::None);
}

}  // namespace
