// core/sign (issue 12): who signs (sender, domain key, crypto.sign_key; never a retired,
// compromised or escrowed key), the policy's signing modes, the plan's Sign / SignEncrypt
// groups (To/Cc and each Bcc envelope signed on their own), sign_missing, 7-bit
// re-encoding before signing, and our own harvest learning the signer's encryption
// certificate and capabilities from a message this gateway signed.
#include "core/decrypt.hpp"
#include "core/entity_walk.hpp"
#include "core/harvest.hpp"
#include "core/plan.hpp"
#include "core/sign.hpp"
#include "tests/support/messages.hpp"
#include "tests/support/test_pki.hpp"

#include <gtest/gtest.h>

#include <openssl/pem.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <unistd.h>

namespace core = sealmilter::core;
namespace crypto = sealmilter::crypto;
namespace keys = sealmilter::keys;
namespace lookup = sealmilter::lookup;
using sealmilter::testing::make_identity;
using sealmilter::testing::TestIdentity;

namespace {

// A ring with recorded states (MemoryKeyRing makes every key active).
class StateRing final : public keys::KeyRing {
public:
    void add(const TestIdentity& id, keys::KeyState state, const std::string& name) {
        std::vector<std::string> addresses;
        for (const std::string& a : id.cert.email_addresses()) addresses.push_back(a);
        auto info = std::make_shared<keys::KeyInfo>(keys::KeyInfo{name, addresses, id.cert, {}, state, keys::KeyOrigin::File, name});
        index_.add(info);
        auto m = std::make_shared<crypto::KeyMaterial>(id.material());
        keys_[name] = m;
    }
    std::vector<keys::KeyEntry> find(const crypto::RecipientId& id) const override { return index_.find(id); }
    std::vector<keys::KeyEntry> for_address(std::string_view a) const override { return index_.for_address(a); }
    keys::PrivateKey private_key(const keys::KeyInfo& k, std::string* error) const override {
        const auto it = keys_.find(k.id);
        if (it == keys_.end()) {
            if (error != nullptr) *error = "not here";
            return nullptr;
        }
        return it->second;
    }
    void for_each(const std::function<void(const keys::KeyEntry&)>& fn) const override {
        for (const auto& e : index_.all()) fn(e);
    }
    size_t size() const override { return index_.all().size(); }

private:
    keys::KeyIndex index_;
    std::map<std::string, keys::PrivateKey> keys_;
};

const TestIdentity& id(const std::string& email, const std::string& key_usage = "default", long serial = 0) {
    static std::map<std::string, TestIdentity> made;
    const std::string k = email + "/" + key_usage + "/" + std::to_string(serial);
    auto it = made.find(k);
    if (it == made.end())
        it = made.emplace(k, make_identity({.email = email, .key_usage = key_usage, .serial = serial})).first;
    return it->second;
}

// Verifies a sign-only message or entity (CRLF): returns the signed bytes, or "" when it does not verify.
std::string verified_content(const std::string& crlf) {
    const core::MimeEntity top = core::MimeEntity::parse(crlf);
    if (top.media_type() == "multipart/signed") {
        const auto parts = core::split_multipart(top.body(), top.content_type()->param("boundary"));
        if (parts.size() != 2) return {};
        const auto sd = crypto::SignedData::parse(core::MimeEntity::parse(parts[1]).decoded_body(), nullptr);
        return sd && sd->verify_detached(parts[0]) ? std::string(parts[0]) : std::string();
    }
    const auto sd = crypto::SignedData::parse(top.decoded_body(), nullptr);
    return sd ? sd->verify_opaque().value_or("") : std::string();
}

}  // namespace

TEST(SignPolicy, SigningSuffixesParseAndNonsenseIsRefused) {
    const core::PolicyTable t = core::PolicyTable::parse(
        "a@x.example require+sign\nb@x.example opportunistic+nosign\nc@x.example sign\n@y.example never\n", "p");
    EXPECT_EQ(t.lookup("a@x.example", core::Mode::Never).sign, true);
    EXPECT_EQ(t.lookup("a@x.example", core::Mode::Never).mode, core::Mode::Require);
    EXPECT_EQ(t.lookup("b@x.example", core::Mode::Never).sign, false);
    EXPECT_EQ(t.lookup("c@x.example", core::Mode::Require).mode, core::Mode::Never);
    EXPECT_EQ(t.lookup("c@x.example", core::Mode::Require).sign, true);
    EXPECT_FALSE(t.lookup("d@y.example", core::Mode::Require).sign.has_value());
    for (const char* bad : {"a@x.example require+maybe\n", "a@x.example sign+nosign\n", "a@x.example +sign\n",
                            "a@x.example require+sign+sign\n"})
        EXPECT_THROW(core::PolicyTable::parse(bad, "p"), core::PolicyError) << bad;
    EXPECT_THROW(core::parse_domain_keys({"bank.example"}), std::invalid_argument);
    EXPECT_THROW(core::parse_domain_keys({"bank.example=nobody"}), std::invalid_argument);
    EXPECT_EQ(core::parse_domain_keys({"Bank.Example=NoReply@bank.example"}).at("bank.example"), "noreply@bank.example");
}

TEST(SignerChoice, SenderThenDomainKeyThenSignKeyNeverRetiredCompromisedOrEscrowed) {
    StateRing ring;
    ring.add(id("alice@bank.example"), keys::KeyState::Active, "alice");
    ring.add(id("bob@bank.example"), keys::KeyState::Retired, "bob");
    ring.add(id("carol@bank.example"), keys::KeyState::Compromised, "carol");
    ring.add(id("dave@bank.example"), keys::KeyState::Escrowed, "dave");
    ring.add(id("noreply@bank.example"), keys::KeyState::Active, "noreply");
    ring.add(id("sign@sub.bank.example"), keys::KeyState::Active, "sub");
    core::SignSettings s;
    s.sign_key = "noreply@bank.example";
    s.domain_keys = {{"sub.bank.example", "sign@sub.bank.example"}};
    const std::time_t now = std::time(nullptr);
    std::string why;
    auto a = core::choose_signer(&ring, "alice@bank.example", s, now, &why);
    ASSERT_TRUE(a) << why;
    EXPECT_EQ(a->entry->id, "alice");
    EXPECT_EQ(a->rule, "sender");
    ASSERT_TRUE(a->encryption);  // one key does both: the signing certificate itself
    EXPECT_EQ(a->encryption->fingerprint_sha256(), id("alice@bank.example").cert.fingerprint_sha256());
    for (const char* sender : {"bob@bank.example", "carol@bank.example", "dave@bank.example", "erin@bank.example"}) {
        auto o = core::choose_signer(&ring, sender, s, now, &why);
        ASSERT_TRUE(o) << sender;
        EXPECT_EQ(o->entry->id, "noreply") << sender;
        EXPECT_EQ(o->rule, "crypto.sign_key");
    }
    auto d = core::choose_signer(&ring, "x@sub.bank.example", s, now, &why);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->entry->id, "sub");
    s.sign_key.clear();
    EXPECT_FALSE(core::choose_signer(&ring, "carol@bank.example", s, now, &why));
    EXPECT_NE(why.find("carol@bank.example: no active key"), std::string::npos) << why;
    EXPECT_FALSE(core::choose_signer(nullptr, "alice@bank.example", s, now, &why));
}

TEST(SignerChoice, ASigningOnlyCertificateAnnouncesTheAddresssEncryptionCertificate) {
    StateRing ring;
    const TestIdentity& sig = id("ops@bank.example", "digitalSignature", 7001);
    const TestIdentity& enc = id("ops@bank.example", "keyEncipherment", 7002);
    ring.add(sig, keys::KeyState::Active, "sig");
    ring.add(enc, keys::KeyState::Active, "enc");
    keys::KeyEntry sig_entry;
    for (const auto& e : ring.for_address("ops@bank.example"))
        if (e->id == "sig") sig_entry = e;
    ASSERT_TRUE(sig_entry);
    const auto pref = core::encryption_preference(ring, *sig_entry, std::time(nullptr));
    ASSERT_TRUE(pref);
    EXPECT_EQ(pref->fingerprint_sha256(), enc.cert.fingerprint_sha256());
}

TEST(SignedEntity, EightBitIsReencodedBeforeSigningAndVerifies) {
    auto m = sealmilter::testing::parse_message(
        "From: a@bank.example\nTo: b@partner.example\nContent-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: 8bit\n\nGr\xc3\xbc\xc3\x9f" "e aus K\xc3\xb6ln\n" + std::string(1200, 'x') + "\n");
    ASSERT_TRUE(core::needs_7bit(*m));
    StateRing ring;
    ring.add(id("a@bank.example"), keys::KeyState::Active, "a");
    std::string why;
    auto signer = core::choose_signer(&ring, "a@bank.example", {}, std::time(nullptr), &why);
    ASSERT_TRUE(signer) << why;
    for (const core::SignFormat f : {core::SignFormat::Detached, core::SignFormat::Opaque}) {
        core::SignSettings s;
        s.format = f;
        crypto::StringSink out;
        core::write_signed_message(*m, *signer, core::entity_options(*signer, s), "\r\n", out);
        const std::string content = verified_content(out.out);
        ASSERT_FALSE(content.empty()) << out.out.substr(0, 2000);
        for (const char c : content) ASSERT_LT(static_cast<unsigned char>(c), 0x80u);
        const core::MimeEntity e = core::MimeEntity::parse(content);
        EXPECT_NE(e.field("content-transfer-encoding"), nullptr);
        EXPECT_NE(*e.field("content-transfer-encoding"), "8bit");
    }
}

TEST(SignPlan, ToCcAndEachBccEnvelopeGetTheirOwnSignedCopyPlainOnesASignedMessage) {
    auto m = sealmilter::testing::parse_message(
        "From: Bank <alice@bank.example>\nTo: enc@partner.example\nCc: plain@partner.example\nSubject: s\n\n"
        "Statement\n");
    StateRing ring;
    ring.add(id("alice@bank.example"), keys::KeyState::Active, "alice");
    const TestIdentity& enc = id("enc@partner.example");
    const TestIdentity& hidden = id("hidden@partner.example");
    auto found = [](const TestIdentity& i, const std::string& email) {
        lookup::LookupResult r;
        r.email = email;
        r.outcome = lookup::Outcome::Found;
        r.source = "directory";
        r.selected = {i.cert};
        return r;
    };
    lookup::LookupResult miss;
    miss.email = "plain@partner.example";
    miss.outcome = lookup::Outcome::NotFound;
    miss.reason = "directory: HTTP 404";
    core::TransactionFacts f;
    f.sender = "alice@bank.example";
    f.recipients = {"enc@partner.example", "plain@partner.example", "hidden@partner.example"};
    f.lookups = {found(enc, "enc@partner.example"), miss, found(hidden, "hidden@partner.example")};
    f.message = m.get();
    f.keys = &ring;
    core::PlanSettings s;
    s.sign.always = true;
    core::MessagePlan p = core::plan_message(f, s);
    ASSERT_EQ(p.verdict.kind, core::Verdict::Kind::Accept) << p.verdict.reply;
    ASSERT_EQ(p.groups.size(), 3u);
    EXPECT_EQ(p.groups[0].kind, core::GroupKind::SignEncrypt);
    EXPECT_NE(p.summary.signing.find("signed by <alice@bank.example> (sender"), std::string::npos) << p.summary.signing;
    EXPECT_NE(p.summary.signing.find("for 3 envelope(s)"), std::string::npos) << p.summary.signing;
    size_t sign_only = 0;
    size_t sign_encrypt = 0;
    for (size_t gi = 1; gi < p.groups.size(); ++gi) {
        const core::PlannedGroup& g = p.groups[gi];
        crypto::StringSink copy;
        g.write(copy);
        if (g.kind == core::GroupKind::Sign) {
            ++sign_only;
            EXPECT_EQ(g.addresses, std::vector<std::string>{"plain@partner.example"});
            EXPECT_FALSE(verified_content(copy.out).empty());
        } else {
            ASSERT_EQ(g.kind, core::GroupKind::SignEncrypt);
            ++sign_encrypt;
            EXPECT_EQ(g.addresses, std::vector<std::string>{"hidden@partner.example"});
            auto cm = sealmilter::testing::parse_message(copy.out);
            crypto::StringSink plain;
            ASSERT_EQ(core::decrypt_message(*cm, hidden.material(), "\r\n", plain).status, crypto::DecryptStatus::Ok);
            const std::string inner = plain.out.substr(plain.out.find("Content-Type: multipart/signed"));
            EXPECT_NE(verified_content(inner).find("Statement\r\n"), std::string::npos);
        }
    }
    EXPECT_EQ(sign_only, 1u);
    EXPECT_EQ(sign_encrypt, 1u);
    // groups[0] in place: the edits make the outer message, the writer its body.
    crypto::StringSink body;
    p.groups[0].write(body);
    std::string whole;
    for (const auto& h : core::apply_edits(m->headers, p.header_edits)) whole += core::serialize_field(h, "\r\n");
    whole += "\r\n" + body.out;
    auto em = sealmilter::testing::parse_message(whole);
    crypto::StringSink plain;
    ASSERT_EQ(core::decrypt_message(*em, enc.material(), "\r\n", plain).status, crypto::DecryptStatus::Ok);
    const std::string inner = plain.out.substr(plain.out.find("Content-Type: multipart/signed"));
    EXPECT_NE(verified_content(inner).find("Statement\r\n"), std::string::npos);
}

TEST(SignPlan, PolicyNosignAndSignOnlyAndMissingSigner) {
    const core::PolicyTable t = core::PolicyTable::parse("quiet@partner.example opportunistic+nosign\n"
                                                         "loud@partner.example sign\n",
                                                         "p");
    auto facts = [](core::Message* m, const keys::KeyRing* ring) {
        core::TransactionFacts f;
        f.sender = "alice@bank.example";
        f.recipients = {"quiet@partner.example", "loud@partner.example"};
        for (const auto& r : f.recipients) {
            lookup::LookupResult l;
            l.email = r;
            l.outcome = lookup::Outcome::NotFound;
            l.reason = "404";
            f.lookups.push_back(l);
        }
        f.message = m;
        f.keys = ring;
        return f;
    };
    StateRing ring;
    ring.add(id("alice@bank.example"), keys::KeyState::Active, "alice");
    core::PlanSettings s;
    s.policy = t;
    {
        auto m = sealmilter::testing::parse_message("From: alice@bank.example\nTo: quiet@partner.example, loud@partner.example\n\nhi\n");
        auto f = facts(m.get(), &ring);
        const core::MessagePlan p = core::plan_message(f, s);
        ASSERT_EQ(p.groups.size(), 2u);
        EXPECT_EQ(p.groups[0].kind, core::GroupKind::Sign);
        EXPECT_EQ(p.groups[0].addresses, std::vector<std::string>{"loud@partner.example"});
        EXPECT_EQ(p.groups[1].kind, core::GroupKind::Plain);
        EXPECT_EQ(p.groups[1].addresses, std::vector<std::string>{"quiet@partner.example"});
    }
    StateRing empty;
    {
        auto m = sealmilter::testing::parse_message("From: alice@bank.example\nTo: loud@partner.example\n\nhi\n");
        auto f = facts(m.get(), &empty);
        const core::MessagePlan p = core::plan_message(f, s);
        EXPECT_EQ(p.verdict.kind, core::Verdict::Kind::Accept);
        EXPECT_TRUE(p.summary.signing_failed);
        for (const auto& g : p.groups) EXPECT_EQ(g.kind, core::GroupKind::Plain);
    }
    s.sign.missing_tempfail = true;
    {
        auto m = sealmilter::testing::parse_message("From: alice@bank.example\nTo: loud@partner.example\n\nhi\n");
        auto f = facts(m.get(), &empty);
        const core::MessagePlan p = core::plan_message(f, s);
        EXPECT_EQ(p.verdict.kind, core::Verdict::Kind::Tempfail);
        EXPECT_EQ(p.verdict.reply.rfind("451 4.7.0", 0), 0u) << p.verdict.reply;
    }
}

TEST(SignHarvest, OurHarvestLearnsTheSignersEncryptionCertificateAndCapabilities) {
    const TestIdentity& sig = id("ops@bank.example", "digitalSignature", 8001);
    const TestIdentity& enc = id("ops@bank.example", "keyEncipherment", 8002);
    keys::MemoryKeyRing ring;
    ring.add(sig.material(), "sig");
    core::Signer signer;
    signer.entry = ring.for_address("ops@bank.example")[0];
    signer.key = ring.private_key(*signer.entry, nullptr);
    signer.encryption = enc.cert;  // a separate encryption certificate: SMIMEEncryptionKeyPreference names it
    signer.address = "ops@bank.example";
    auto m = sealmilter::testing::parse_message("From: Ops <ops@bank.example>\nTo: x@partner.example\nSubject: s\n\nhello\n");
    char dir[] = "/tmp/sign-harvest-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    std::vector<std::string> anchors;
    for (const auto* c : {&sig.cert, &enc.cert}) {
        const std::string path = std::string(dir) + "/" + std::to_string(anchors.size()) + ".pem";
        FILE* fp = std::fopen(path.c_str(), "w");
        PEM_write_X509(fp, c->native());
        std::fclose(fp);
        anchors.push_back(path);
    }
    lookup::ValidatorOptions vo;
    vo.trust_anchor_files = anchors;
    lookup::Validator validator(vo);
    core::HarvestOptions ho;
    ho.validator = &validator;
    for (const core::SignFormat f : {core::SignFormat::Detached, core::SignFormat::Opaque}) {
        core::SignSettings s;
        s.format = f;
        crypto::StringSink out;
        core::write_signed_message(*m, signer, core::entity_options(signer, s), "\r\n", out);
        const core::HarvestReport r = core::harvest(out.out, nullptr, ho);
        ASSERT_EQ(r.certificates.size(), 1u) << (r.notes.empty() ? r.skipped : r.notes[0]);
        EXPECT_EQ(r.certificates[0].email, "ops@bank.example");
        EXPECT_EQ(r.certificates[0].certificate.fingerprint_sha256(), enc.cert.fingerprint_sha256());
        EXPECT_TRUE(r.certificates[0].from_key_preference);
        EXPECT_EQ(r.certificates[0].signer_fingerprint, sig.cert.fingerprint_sha256());
        EXPECT_EQ(r.certificates[0].capabilities, core::gateway_capabilities());
    }
    for (const auto& a : anchors) std::remove(a.c_str());
    rmdir(dir);
}

TEST(SignDkim, ADkimMilterBeforeOursIsFoundAfterOursIsFine) {
    EXPECT_EQ(core::dkim_before_us("unix:/run/opendkim/opendkim.sock, inet:127.0.0.1:8891", "inet:8891@127.0.0.1"),
              "unix:/run/opendkim/opendkim.sock");
    EXPECT_EQ(core::dkim_before_us("{ inet:127.0.0.1:8891, default_action=tempfail } inet:localhost:12301 opendkim",
                                   "inet:8891@127.0.0.1"),
              "");
    EXPECT_EQ(core::dkim_before_us("unix:/var/run/dkim.sock unix:/run/sealmilter/milter.sock", "unix:/run/sealmilter/milter.sock"),
              "unix:/var/run/dkim.sock");
    EXPECT_EQ(core::dkim_before_us("unix:/var/run/dkim.sock", "inet:8891@127.0.0.1"), "");  // ours not listed
}
