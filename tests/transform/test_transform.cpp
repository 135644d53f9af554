// The whole transform on the message corpus: outer headers, inner entity, pass-through,
// 1-byte feeding, header protection, and NSS's own envelopes through our decryptor.
#include "core/decrypt.hpp"
#include "core/transform.hpp"
#include "tests/support/messages.hpp"
#include "tests/support/test_pki.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

namespace core = sealmilter::core;
namespace crypto = sealmilter::crypto;
namespace fs = std::filesystem;
using sealmilter::testing::crlf;
using sealmilter::testing::make_identity;
using sealmilter::testing::TestIdentity;

namespace {

const std::string kData = std::string(SEALMILTER_SOURCE_DIR) + "/tests/data/";

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::unique_ptr<core::Message> parse(const std::string& raw, size_t chunk = 1 << 20) {
    auto m = std::make_unique<core::Message>(64 * 1024, "/tmp");
    core::MessageSplitter s(*m);
    for (size_t off = 0; off < raw.size(); off += chunk) s.feed(raw.data() + off, std::min(chunk, raw.size() - off));
    s.finish();
    return m;
}

// Test-side oracle: raw content-header lines (with folding) and the body after the first
// empty line, computed with plain string operations on the file bytes.
std::string expected_entity(const std::string& raw) {
    const std::string canon = crlf(raw);
    size_t end = canon.find("\r\n\r\n");
    std::string head = end == std::string::npos ? canon + "\r\n" : canon.substr(0, end + 2);
    std::string body = end == std::string::npos ? "" : canon.substr(end + 4);
    if (canon.rfind("\r\n", 0) == 0) { head.clear(); body = canon.substr(2); }
    std::string out;
    bool keep = false;
    for (size_t pos = 0; pos < head.size();) {
        const size_t e = head.find("\r\n", pos) + 2;
        const std::string line = head.substr(pos, e - pos);
        if (line[0] != ' ' && line[0] != '\t') {
            std::string name = line.substr(0, line.find(':'));
            for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            keep = name == "content-type" || name == "content-transfer-encoding" || name == "content-disposition" ||
                   name == "content-id" || name == "content-description" || name == "content-language";
        }
        if (keep) out += line;
        pos = e;
    }
    return out + "\r\n" + body;
}

std::string encrypted_body(const core::Message& m, const TestIdentity& id, const core::TransformOptions& opt) {
    crypto::StringSink sink;
    core::write_encrypted_body(m, {id.cert}, opt, sink);
    return sink.out;
}

std::string decrypt_body(const std::string& base64, const TestIdentity& id) {
    crypto::BIO_ptr mem(BIO_new_mem_buf(base64.data(), static_cast<int>(base64.size())));
    crypto::BIO_ptr b64(BIO_new(BIO_f_base64()));
    BIO* chain = BIO_push(b64.release(), mem.release());
    crypto::BIO_ptr owner(chain);
    crypto::StringSink plain;
    const auto r = crypto::decrypt_envelope(chain, id.material(), plain);
    EXPECT_EQ(r.status, crypto::DecryptStatus::Ok) << r.detail;
    return plain.out;
}

std::vector<std::string> corpus(bool encrypted) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(kData + "messages")) {
        if (e.path().extension() != ".eml") continue;
        const auto m = parse(read_file(e.path()));
        if ((core::detect_encrypted(*m) != core::EncryptedForm::None) == encrypted) out.push_back(e.path());
    }
    std::sort(out.begin(), out.end());
    return out;
}

class TransformTest : public ::testing::Test {
protected:
    void SetUp() override { id_ = &identity(); }
    static const TestIdentity& identity() {
        static const TestIdentity id = make_identity({});  // one RSA key for the whole suite
        return id;
    }
    const TestIdentity* id_ = nullptr;
};

TEST_F(TransformTest, CorpusHasThirtyShapes) { EXPECT_GE(corpus(false).size() + corpus(true).size(), 30u); }

TEST_F(TransformTest, InnerEntityIsTheOriginalContentEntity) {
    for (const std::string& path : corpus(false)) {
        const std::string raw = read_file(path);
        const auto m = parse(raw);
        core::TransformOptions opt;
        EXPECT_EQ(decrypt_body(encrypted_body(*m, *id_, opt), *id_), expected_entity(raw)) << path;
    }
}

TEST_F(TransformTest, OneByteFeedingGivesTheSameEntity) {
    for (const std::string& path : corpus(false)) {
        const std::string raw = read_file(path);
        if (raw.size() > 200000) continue;  // the 2 MB attachment is covered above
        const auto m = parse(raw, 1);
        EXPECT_EQ(decrypt_body(encrypted_body(*m, *id_, {}), *id_), expected_entity(raw)) << path;
    }
}

TEST_F(TransformTest, OuterHeadersKeepOrderAndReplaceMimeFields) {
    for (const std::string& path : corpus(false)) {
        const auto m = parse(read_file(path));
        const core::Plan plan = core::plan_encryption(*m, {});
        ASSERT_EQ(plan.kind, core::PlanKind::Encrypt) << path;
        const auto out = core::apply_edits(m->headers, plan.edits);
        std::vector<std::string> before;
        std::vector<std::string> after;
        int ct = 0;
        bool had_mime_version = false;
        for (const auto& f : m->headers) {
            had_mime_version = had_mime_version || core::is_header_named(f, "MIME-Version");
            if (!core::is_content_header(f.name)) before.push_back(f.name + ":" + f.value);
        }
        for (const auto& f : out) {
            if (core::is_header_named(f, "Content-Type")) {
                ++ct;
                EXPECT_EQ(f.value, " application/pkcs7-mime; smime-type=enveloped-data; name=\"smime.p7m\"");
            } else if (core::is_header_named(f, "Content-Transfer-Encoding")) {
                EXPECT_EQ(f.value, " base64");
            } else if (core::is_header_named(f, "Content-Disposition")) {
                EXPECT_EQ(f.value, " attachment; filename=\"smime.p7m\"");
            } else if (!(had_mime_version == false && core::is_header_named(f, "MIME-Version"))) {
                ASSERT_FALSE(core::is_content_header(f.name)) << path << ": " << f.name;
                after.push_back(f.name + ":" + f.value);
            }
        }
        EXPECT_EQ(ct, 1) << path;
        EXPECT_EQ(before, after) << path;
    }
}

TEST_F(TransformTest, AlreadyEncryptedPassesThrough) {
    const auto files = corpus(true);
    EXPECT_GE(files.size(), 5u);
    for (const std::string& path : files) {
        const auto plan = core::plan_encryption(*parse(read_file(path)), {});
        EXPECT_EQ(plan.kind, core::PlanKind::PassThrough) << path;
        EXPECT_NE(plan.reason.find("already encrypted"), std::string::npos);
        EXPECT_TRUE(plan.edits.empty());
    }
}

TEST_F(TransformTest, GcmUsesAuthEnvelopedLabel) {
    core::TransformOptions opt;
    opt.envelope.cipher = crypto::Cipher::Aes256Gcm;
    const auto m = parse(read_file(kData + "messages/01-plain-ascii.eml"));
    const auto out = core::apply_edits(m->headers, core::plan_encryption(*m, opt).edits);
    const auto ct = std::find_if(out.begin(), out.end(), [](const auto& f) { return core::is_header_named(f, "Content-Type"); });
    ASSERT_NE(ct, out.end());
    EXPECT_NE(ct->value.find("smime-type=authEnveloped-data"), std::string::npos);
    EXPECT_EQ(decrypt_body(encrypted_body(*m, *id_, opt), *id_), expected_entity(read_file(kData + "messages/01-plain-ascii.eml")));
}

TEST_F(TransformTest, HeaderProtectionHidesSubjectAndDecryptRestoresIt) {
    const std::string raw = "From: a@bank.example\nTo: b@partner.example\nSubject: Salary 2026\n"
                            "Received: from x by y\nContent-Type: text/plain; charset=utf-8\n\nHello\n";
    const auto m = parse(raw);
    core::TransformOptions opt;
    opt.protect_headers = true;
    opt.eol = "\n";
    crypto::StringSink whole;
    core::write_transformed(*m, core::plan_encryption(*m, opt), {id_->cert}, opt, whole);
    EXPECT_NE(whole.out.find("Subject: [...]\n"), std::string::npos);
    EXPECT_EQ(whole.out.find("Salary"), std::string::npos);

    const std::string entity = decrypt_body(whole.out.substr(whole.out.find("\n\n") + 2), *id_);
    EXPECT_NE(entity.find("Content-Type: text/plain; charset=utf-8; hp=\"cipher\"\r\n"), std::string::npos);
    EXPECT_NE(entity.find("Subject: Salary 2026\r\n"), std::string::npos);
    EXPECT_NE(entity.find("HP-Outer: Subject: [...]\r\n"), std::string::npos);
    EXPECT_EQ(entity.find("Received:"), std::string::npos);  // trace fields stay outside

    const auto encrypted = parse(whole.out);
    crypto::StringSink plain;
    const auto r = core::decrypt_message(*encrypted, id_->material(), "\n", plain);
    ASSERT_EQ(r.status, crypto::DecryptStatus::Ok) << r.detail;
    EXPECT_NE(plain.out.find("Subject: Salary 2026\n"), std::string::npos);
    EXPECT_EQ(plain.out.find("HP-Outer"), std::string::npos);
    EXPECT_NE(plain.out.find("\n\nHello\n"), std::string::npos);
}

TEST_F(TransformTest, EncryptThenDecryptRestoresTheMessage) {
    const std::string raw = read_file(kData + "messages/02-utf8-8bit.eml");
    const auto m = parse(raw);
    core::TransformOptions opt;
    opt.eol = m->eol;
    crypto::StringSink whole;
    core::write_transformed(*m, core::plan_encryption(*m, opt), {id_->cert}, opt, whole);
    const auto encrypted = parse(whole.out);
    crypto::StringSink plain;
    ASSERT_EQ(core::decrypt_message(*encrypted, id_->material(), m->eol, plain).status, crypto::DecryptStatus::Ok);
    // Same header fields (content ones moved after the others) and the same body.
    const auto back = parse(plain.out);
    EXPECT_EQ(back->headers.size(), m->headers.size());
    std::string a;
    std::string b;
    back->body.for_each_chunk([&](std::string_view c) { a.append(c); });
    m->body.for_each_chunk([&](std::string_view c) { b.append(c); });
    EXPECT_EQ(a, b);
}

TEST(NssInterop, OurDecryptOpensNssEnvelopesWithBob) {
    auto bob = crypto::load_key_material(kData + "nss-smime/Bob.p12", "nss");
    ASSERT_TRUE(bob.material) << bob.error;
    int opened = 0;
    for (const auto& e : fs::directory_iterator(kData + "nss-smime")) {
        const std::string name = e.path().filename();
        // alice.env*.eml whose outer layer is the envelope (the *.dave.sig.* ones are signed outside)
        if (name.rfind("alice.env", 0) != 0 || name.find("dave") != std::string::npos ||
            e.path().extension() != ".eml")
            continue;
        const auto m = parse(read_file(e.path()));
        crypto::StringSink out;
        const auto r = core::decrypt_message(*m, *bob.material, "\r\n", out);
        EXPECT_EQ(r.status, crypto::DecryptStatus::Ok) << name << ": " << r.detail;
        EXPECT_NE(out.out.find("From: Alice@example.com\r\n"), std::string::npos) << name;
        ++opened;
    }
    EXPECT_GE(opened, 9);
    // Alice's key is not a recipient of a message to Bob.
    auto alice = crypto::load_key_material(kData + "nss-smime/Alice.p12", "nss");
    ASSERT_TRUE(alice.material);
    crypto::StringSink out;
    EXPECT_EQ(core::decrypt_message(*parse(read_file(kData + "nss-smime/alice.env.eml")), *alice.material, "\n", out).status,
              crypto::DecryptStatus::NoMatchingRecipient);
    EXPECT_EQ(core::decrypt_message(*parse(read_file(kData + "messages/01-plain-ascii.eml")), *bob.material, "\n", out).status,
              crypto::DecryptStatus::NotEncrypted);
}

}  // namespace
