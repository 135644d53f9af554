// The pickup notice (issue 13, docs/issuing.md "Notices"): headers, the two alternatives, the
// link, the expiry, HTML escaping of the organisation name and the address, the inline logo,
// CRLF throughout, no key and no code; signed when a signer exists (the signature verifies).
#include "core/entity_walk.hpp"
#include "core/notice.hpp"
#include "crypto/signed_data.hpp"
#include "keys/key_ring.hpp"
#include "tests/support/test_pki.hpp"

#include <gtest/gtest.h>

namespace core = sealmilter::core;
namespace crypto = sealmilter::crypto;
namespace keys = sealmilter::keys;
using sealmilter::testing::make_identity;

namespace {

const std::string kToken = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";  // 43 base64url characters

core::NoticeSettings settings() {
    core::NoticeSettings s;
    s.org_name = "Example Bank";
    s.from = "notices@bank.example";
    s.pickup_url = "https://secure.bank.example/";
    return s;
}

core::NoticeFacts facts() {
    core::NoticeFacts f;
    f.to = "new@customer.example";
    f.token = kToken;
    f.now = 1767225600;               // 2026-01-01 00:00 UTC
    f.expires = f.now + 1209600;      // 15 January 2026
    return f;
}

// The leaf parts of a multipart tree, as (media type, decoded body).
void leaves(const core::MimeEntity& e, std::vector<std::pair<std::string, std::string>>& out, int depth = 0) {
    ASSERT_LT(depth, 5);
    if (e.media_type().rfind("multipart/", 0) == 0) {
        for (std::string_view p : core::split_multipart(e.body(), e.content_type()->param("boundary")))
            leaves(core::MimeEntity::parse(p), out, depth + 1);
        return;
    }
    std::string body = e.decoded_body();
    if (e.field("content-transfer-encoding") != nullptr && *e.field("content-transfer-encoding") == "quoted-printable") {
        std::string plain;  // soft breaks and =XX, enough for these texts
        for (size_t i = 0; i < body.size(); ++i) {
            if (body[i] == '=' && i + 2 < body.size() && body[i + 1] == '\r' && body[i + 2] == '\n') {
                i += 2;
            } else if (body[i] == '=' && i + 2 < body.size()) {
                plain += static_cast<char>(std::stoi(body.substr(i + 1, 2), nullptr, 16));
                i += 2;
            } else {
                plain += body[i];
            }
        }
        body = plain;
    }
    out.emplace_back(e.media_type(), body);
}

TEST(Notice, HeadersAlternativesLinkAndExpiry) {
    const std::string n = core::compose_notice(settings(), facts());
    for (size_t i = 0; i < n.size(); ++i) {
        if (n[i] == '\n') {
            ASSERT_TRUE(i > 0 && n[i - 1] == '\r') << "bare LF at " << i;
        }
    }
    const core::MimeEntity top = core::MimeEntity::parse(n);
    ASSERT_NE(top.field("from"), nullptr);
    EXPECT_NE(top.field("from")->find("<notices@bank.example>"), std::string::npos) << *top.field("from");
    ASSERT_NE(top.field("to"), nullptr);
    EXPECT_NE(top.field("to")->find("new@customer.example"), std::string::npos);
    ASSERT_NE(top.field("subject"), nullptr);
    EXPECT_EQ(*top.field("subject"), "Example Bank: a secure message for you");
    ASSERT_NE(top.field("auto-submitted"), nullptr);
    EXPECT_EQ(*top.field("auto-submitted"), "auto-generated");
    ASSERT_NE(top.field("date"), nullptr);
    EXPECT_NE(top.field("date")->find("2026"), std::string::npos);
    ASSERT_NE(top.field("message-id"), nullptr);
    EXPECT_NE(top.field("message-id")->find("@bank.example>"), std::string::npos);
    EXPECT_EQ(top.media_type(), "multipart/alternative");
    std::vector<std::pair<std::string, std::string>> parts;
    leaves(top, parts);
    ASSERT_EQ(parts.size(), 2u);
    EXPECT_EQ(parts[0].first, "text/plain");
    EXPECT_EQ(parts[1].first, "text/html");
    const std::string link = "https://secure.bank.example/p/" + kToken;
    for (const auto& [type, body] : parts) {
        EXPECT_NE(body.find(link), std::string::npos) << type << ":\n" << body;
        EXPECT_NE(body.find("15 January 2026"), std::string::npos) << type;
        for (const char* word : {"code", "password", "Outlook", "Thunderbird", "Apple Mail"})
            EXPECT_NE(body.find(word), std::string::npos) << type << " lacks " << word;
        EXPECT_EQ(body.find("BEGIN"), std::string::npos);  // no key material of any kind
    }
    EXPECT_NE(parts[1].second.find("href=\"" + link + "\""), std::string::npos);
}

TEST(Notice, OrganisationNameAndAddressAreEscapedInHtml) {
    core::NoticeSettings s = settings();
    s.org_name = "Evil & <script>alert(1)</script> \"Bank\"";
    const std::string n = core::compose_notice(s, facts());
    std::vector<std::pair<std::string, std::string>> parts;
    leaves(core::MimeEntity::parse(n), parts);
    ASSERT_EQ(parts.size(), 2u);
    const std::string& html = parts[1].second;
    EXPECT_EQ(html.find("<script>"), std::string::npos) << html;
    EXPECT_NE(html.find("Evil &amp; &lt;script&gt;alert(1)&lt;/script&gt; &quot;Bank&quot;"), std::string::npos) << html;
    EXPECT_EQ(core::html_escape("a<b>&'\""), "a&lt;b&gt;&amp;&#39;&quot;");
}

TEST(Notice, TheLogoIsAnInlineImageInMultipartRelated) {
    core::NoticeSettings s = settings();
    s.logo_png = std::string("\x89PNG\r\n\x1a\n", 8) + std::string(300, '\x01');
    const std::string n = core::compose_notice(s, facts());
    const core::MimeEntity top = core::MimeEntity::parse(n);
    EXPECT_EQ(top.media_type(), "multipart/related");
    EXPECT_EQ(top.content_type()->param("type"), "multipart/alternative");
    const auto children = core::split_multipart(top.body(), top.content_type()->param("boundary"));
    ASSERT_EQ(children.size(), 2u);
    EXPECT_EQ(core::MimeEntity::parse(children[0]).media_type(), "multipart/alternative");
    const core::MimeEntity logo = core::MimeEntity::parse(children[1]);
    EXPECT_EQ(logo.media_type(), "image/png");
    ASSERT_NE(logo.field("content-id"), nullptr);
    EXPECT_EQ(*logo.field("content-id"), "<logo@sealmilter>");
    ASSERT_NE(logo.field("content-disposition"), nullptr);
    EXPECT_EQ(logo.field("content-disposition")->rfind("inline", 0), 0u);
    EXPECT_EQ(logo.decoded_body(), s.logo_png);
    std::vector<std::pair<std::string, std::string>> parts;
    leaves(top, parts);
    ASSERT_EQ(parts.size(), 3u);
    EXPECT_NE(parts[1].second.find("src=\"cid:logo@sealmilter\""), std::string::npos);
}

TEST(Notice, SignedWhenASignerExistsAndTheSignatureVerifies) {
    keys::MemoryKeyRing ring;
    const auto id = make_identity({.email = "notices@bank.example"});
    ASSERT_TRUE(ring.add(id.material(), "notices"));
    std::string why;
    const auto signer = core::choose_signer(&ring, "notices@bank.example", {}, std::time(nullptr), &why);
    ASSERT_TRUE(signer) << why;
    const std::string n = core::compose_notice(settings(), facts());
    crypto::StringSink out;
    core::write_notice(n, &*signer, {}, out);
    const core::MimeEntity top = core::MimeEntity::parse(out.out);
    ASSERT_EQ(top.media_type(), "multipart/signed") << out.out.substr(0, 800);
    EXPECT_EQ(*top.field("subject"), "Example Bank: a secure message for you");
    const auto parts = core::split_multipart(top.body(), top.content_type()->param("boundary"));
    ASSERT_EQ(parts.size(), 2u);
    const auto sd = crypto::SignedData::parse(core::MimeEntity::parse(parts[1]).decoded_body(), nullptr);
    ASSERT_TRUE(sd);
    EXPECT_TRUE(sd->verify_detached(parts[0]));
    EXPECT_NE(std::string(parts[0]).find("multipart/alternative"), std::string::npos);
    // Without a signer the notice leaves as composed.
    crypto::StringSink plain;
    core::write_notice(n, nullptr, {}, plain);
    EXPECT_EQ(plain.out, n);
}

}  // namespace
