// Canonicalisation, Content-Type parsing, already-encrypted detection, and the entity walker.
#include "tests/support/messages.hpp"
#include "core/mime.hpp"

#include "base/file.hpp"
#include "core/entity_walk.hpp"

#include <gtest/gtest.h>


namespace core = sealmilter::core;

namespace {

std::unique_ptr<core::Message> parse(const std::string& raw) { return sealmilter::testing::parse_message(raw); }

using sealmilter::base::read_file;

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

// ---- core/entity_walk -------------------------------------------------------------------

namespace {

struct Visit {
    std::string type;
    int depth;
    bool operator==(const Visit&) const = default;
};

std::string mixed(const std::string& boundary, const std::vector<std::string>& parts) {
    std::string out = "Content-Type: multipart/mixed; boundary=\"" + boundary + "\"\r\n\r\npreamble\r\n";
    for (const std::string& p : parts) out += "--" + boundary + "\r\n" + p + "\r\n";
    return out + "--" + boundary + "--\r\nepilogue\r\n";
}

std::vector<Visit> walk_types(const std::string& text, const core::WalkLimits& limits, core::WalkResult* result = nullptr) {
    std::vector<Visit> seen;
    const core::WalkResult r = core::walk_entities(text, limits, [&](const core::MimeEntity& e, int depth) {
        seen.push_back({e.media_type(), depth});
        if (e.media_type() == "application/x-layer") return core::Next::into(std::string(e.decoded_body()));
        if (e.media_type() == "application/x-stop") return core::Next::stop();
        return core::Next::children(e);
    });
    if (result != nullptr) *result = r;
    return seen;
}

}  // namespace

TEST(EntityWalk, VisitsDepthFirstIntoPartsAndLayers) {
    const std::string text_part = "Content-Type: text/plain\r\n\r\nhello";
    const std::string layer = "Content-Type: application/x-layer\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
                              std::string("Q29udGVudC1UeXBlOiBpbWFnZS9wbmcNCg0KeA==\r\n");  // "Content-Type: image/png\r\n\r\nx"
    const std::string msg = "From: a@b.example\r\n" + mixed("o", {text_part, mixed("i", {text_part, layer}), "\r\nno header"});
    core::WalkResult r;
    const std::vector<Visit> seen = walk_types(msg, {}, &r);
    const std::vector<Visit> want = {{"multipart/mixed", 0}, {"text/plain", 1},       {"multipart/mixed", 1},
                                     {"text/plain", 2},      {"application/x-layer", 2}, {"image/png", 3},
                                     {"", 1}};
    EXPECT_EQ(seen, want);
    EXPECT_EQ(r.visited, 7u);
    EXPECT_FALSE(r.depth_cut || r.count_cut || r.stopped);
}

TEST(EntityWalk, BoundsCutDepthAndCountAndStopEndsTheWalk) {
    std::string nested = "Content-Type: text/plain\r\n\r\nx";
    for (int i = 0; i < 50; ++i) nested = mixed("n" + std::to_string(i), {nested});
    core::WalkResult r;
    EXPECT_EQ(walk_types(nested, {.max_depth = 40, .max_entities = 10000}, &r).size(), 41u);
    EXPECT_TRUE(r.depth_cut);
    EXPECT_FALSE(r.count_cut);

    const std::string wide = mixed("w", std::vector<std::string>(20, "Content-Type: text/plain\r\n\r\nx"));
    EXPECT_EQ(walk_types(wide, {.max_depth = 40, .max_entities = 5}, &r).size(), 5u);
    EXPECT_TRUE(r.count_cut);

    const std::string stop = mixed("s", {"Content-Type: application/x-stop\r\n\r\n", "Content-Type: text/plain\r\n\r\nx"});
    EXPECT_EQ(walk_types(stop, {}, &r).size(), 2u);
    EXPECT_TRUE(r.stopped);
}

TEST(EntityWalk, SplitMultipartRows) {
    struct Row {
        const char* name;
        std::string body;
        std::vector<std::string> parts;
    };
    const std::vector<Row> rows = {
        {"preamble and epilogue", "pre\r\n--b\r\nA\r\n--b\r\nB\r\n--b--\r\nepi", {"A", "B"}},
        {"delimiter first", "--b\r\nA\r\n--b--", {"A"}},
        {"transport padding", "--b  \t\r\nA\r\n--b \r\nB\r\n--b--", {"A", "B"}},
        {"boundary-like text is body", "--b\r\nA\r\n--bx\r\nstill A\r\n--b--", {"A\r\n--bx\r\nstill A"}},
        {"no closing delimiter", "--b\r\nA\r\n--b\r\nB", {"A"}},
        {"empty part", "--b\r\n\r\n--b--", {""}},
        {"no delimiter at all", "just text", {}},
    };
    for (const Row& row : rows) {
        std::vector<std::string> got;
        for (std::string_view p : core::split_multipart(row.body, "b")) got.emplace_back(p);
        EXPECT_EQ(got, row.parts) << row.name;
    }
    EXPECT_TRUE(core::split_multipart("--\r\nA\r\n----", "").empty());
}

TEST(EntityWalk, EntityFieldsAreUnfoldedAndBase64BodiesDecoded) {
    const std::string crlf = core::to_crlf("Content-Type: application/octet-stream;\n name=x.bin\nX-Note:  a\n\tb \n"
                                           "Content-Transfer-Encoding: BASE64\nnot a field\n\naGVs\nbG8=\n");
    const core::MimeEntity e = core::MimeEntity::parse(crlf);
    EXPECT_EQ(e.media_type(), "application/octet-stream");
    EXPECT_EQ(e.content_type()->param("name"), "x.bin");
    ASSERT_NE(e.field("x-note"), nullptr);
    EXPECT_EQ(*e.field("x-note"), "a b");
    EXPECT_EQ(e.count("content-type"), 1u);
    bool clean = false;
    EXPECT_EQ(e.decoded_body(&clean), "hello");
    EXPECT_TRUE(clean);
    EXPECT_EQ(core::MimeEntity::parse("\r\nbody only").body(), "body only");
    EXPECT_EQ(core::to_crlf("a\nb\r\nc\r"), "a\r\nb\r\nc\r");
}
