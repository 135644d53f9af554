// Inbound decryption in the milter transaction (keys.decrypt_inbound), driven by a fake MTA
// like tests/protocol/test_transaction.cpp: mail to local users that a key of the ring opens
// arrives decrypted with the trace header first; mail no key opens arrives unchanged with the
// header saying why; forged trace headers are removed; a message to local and external
// recipients is split, the external copy byte-equal to what was sent. Keys are minted here
// (RSA PKCS#1 v1.5, RSA-OAEP, ECDH, AES-GCM) and taken from the NSS corpus (Bob.p12).
#include "base/file.hpp"
#include "core/inbound_decrypt.hpp"
#include "core/transform.hpp"
#include "crypto/signed_data.hpp"
#include "lookup/harvest_store.hpp"
#include "milter/transaction.hpp"
#include "tests/support/fake_mta.hpp"
#include "tests/support/messages.hpp"
#include "tests/support/test_pki.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <ostream>

#include <unistd.h>

namespace core = sealmilter::core;
namespace crypto = sealmilter::crypto;
namespace keys = sealmilter::keys;
namespace lookup = sealmilter::lookup;
namespace milter = sealmilter::milter;
using sealmilter::testing::FakeMta;
using sealmilter::testing::FakeReinjector;
using sealmilter::testing::crlf;
using sealmilter::testing::make_identity;
using sealmilter::testing::TestIdentity;

namespace {

const std::string kNss = std::string(SEALMILTER_SOURCE_DIR) + "/tests/data/nss-smime/";

// The trace header names the key by its certificate's SHA-256 in lower-case hex, no colons.
std::string hex_sha256(const crypto::Certificate& c) {
    std::string out;
    for (char ch : c.fingerprint_sha256())
        if (ch != ':') out += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return out;
}

const std::string kPlain =
    "From: Partner <carol@partner.example>\r\n"
    "To: alice@bank.example\r\n"
    "Subject: Contract\r\n"
    "Message-ID: <c1@partner.example>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "The signed contract is attached.\r\n";

// The message encrypted (as the milter's own transform writes it) to `to`.
std::string encrypt(const std::string& plain, const std::vector<crypto::Certificate>& to,
                    crypto::Cipher cipher = crypto::Cipher::Aes256Cbc, crypto::RsaPadding pad = crypto::RsaPadding::Pkcs1) {
    const auto m = sealmilter::testing::parse_message(plain);
    core::TransformOptions o;
    o.envelope.cipher = cipher;
    o.envelope.rsa_padding = pad;
    crypto::StringSink out;
    core::write_transformed(*m, core::plan_encryption(*m, o), to, o, out);
    return out.out;
}

class InboundDecryptTest : public ::testing::Test {
protected:
    void SetUp() override { rebuild({}); }
    void rebuild(const std::function<void(milter::Services&)>& tweak) {
        auto s = std::make_shared<milter::Services>();
        s->plan.policy = core::PolicyTable::parse("* opportunistic\n", "policy");
        s->plan.policy_options.internal_domains = {"bank.example"};
        s->plan.decrypt.enabled = true;
        s->plan.decrypt.domains = {"bank.example"};
        s->plan.decrypt.memory_threshold = 4096;  // the decrypted body spools too
        s->spool_dir = "/tmp";
        s->memory_threshold = 4096;
        s->keys = ring_;
        s->log = sealmilter::base::Logger::to_function(
            [this](sealmilter::base::LogLevel, const std::string& l) { logs_.push_back(l); });
        if (tweak) tweak(*s);
        services_ = s;
    }
    milter::EomResult run(const std::string& message, const std::vector<std::string>& rcpts) {
        mta_ = FakeMta{};
        reinjector_ = FakeReinjector{};
        milter::Transaction tx(services_, "S1");
        tx.mail_from("<carol@partner.example>");
        for (const auto& r : rcpts) tx.recipient("<" + r + ">");
        const auto m = sealmilter::testing::parse_message(message);
        for (const auto& f : m->headers) tx.header(f.name, f.value);
        m->body.for_each_chunk([&](std::string_view c) {
            for (size_t off = 0; off < c.size(); off += 1000) tx.body(c.data() + off, std::min<size_t>(1000, c.size() - off));
        });
        return tx.end_of_message("4DEC123", mta_, reinjector_);
    }
    // The message as the MTA holds it after the milter's edits.
    std::string delivered(const std::string& original) {
        const auto m = sealmilter::testing::parse_message(original);
        std::string out;
        for (const auto& f : core::apply_edits(m->headers, mta_.edits)) out += core::serialize_field(f, "\r\n");
        out += "\r\n";
        if (mta_.body_replaced) {
            out += mta_.body.out;
        } else {
            m->body.for_each_chunk([&](std::string_view c) { out.append(c); });
        }
        return out;
    }
    static std::string first_header(const std::string& message) { return message.substr(0, message.find("\r\n")); }
    bool logged(const std::string& text) const {
        return std::any_of(logs_.begin(), logs_.end(), [&](const std::string& l) { return l.find(text) != std::string::npos; });
    }
    void add_key(const TestIdentity& id) { ASSERT_TRUE(ring_->add(id.material(), "test")); }

    std::shared_ptr<keys::MemoryKeyRing> ring_ = std::make_shared<keys::MemoryKeyRing>();
    std::shared_ptr<const milter::Services> services_;
    std::vector<std::string> logs_;
    FakeMta mta_;
    FakeReinjector reinjector_;
};

struct KeyRow {
    const char* name;
    const char* key;
    crypto::Cipher cipher;
    crypto::RsaPadding padding;
};

// Stable test names in ctest (not the row's bytes).
void PrintTo(const KeyRow& row, std::ostream* os) { *os << row.name; }

class DecryptsEveryKeyKind : public InboundDecryptTest, public ::testing::WithParamInterface<KeyRow> {};

TEST_P(DecryptsEveryKeyKind, LocalUserGetsTheDecryptedMessageWithTheTraceHeaderFirst) {
    const auto alice = make_identity({.email = "alice@bank.example", .key = GetParam().key});
    add_key(alice);
    rebuild({});
    const std::string sent = encrypt(kPlain, {alice.cert}, GetParam().cipher, GetParam().padding);
    const auto r = run(sent, {"alice@bank.example"});
    ASSERT_EQ(r.verdict, milter::EomResult::Verdict::Accept) << r.summary;
    ASSERT_TRUE(mta_.body_replaced) << r.summary;
    const std::string got = delivered(sent);
    EXPECT_EQ(first_header(got), "X-Sealmilter-Decryption: result=decrypted; key=" + hex_sha256(alice.cert));
    // The outer headers stay, the content headers are the inner entity's, the body is the original's.
    const std::string rest = got.substr(got.find("\r\n") + 2);
    EXPECT_EQ(rest,
              "From: Partner <carol@partner.example>\r\nTo: alice@bank.example\r\nSubject: Contract\r\n"
              "Message-ID: <c1@partner.example>\r\nMIME-Version: 1.0\r\n"
              "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
              "The signed contract is attached.\r\n");
    EXPECT_EQ(r.details.action, core::Action::Decrypted);
    EXPECT_NE(r.summary.find("decrypted for 1 local recipient(s)"), std::string::npos) << r.summary;
    EXPECT_TRUE(reinjector_.copies.empty());
}

INSTANTIATE_TEST_SUITE_P(Keys, DecryptsEveryKeyKind,
                         ::testing::Values(KeyRow{"rsa_pkcs1", "rsa2048", crypto::Cipher::Aes256Cbc, crypto::RsaPadding::Pkcs1},
                                           KeyRow{"rsa_oaep", "rsa2048", crypto::Cipher::Aes256Cbc, crypto::RsaPadding::Oaep},
                                           KeyRow{"ecdh_p256", "ec-p256", crypto::Cipher::Aes256Cbc, crypto::RsaPadding::Pkcs1},
                                           KeyRow{"rsa_gcm", "rsa2048", crypto::Cipher::Aes256Gcm, crypto::RsaPadding::Pkcs1},
                                           KeyRow{"ecdh_p384_gcm", "ec-p384", crypto::Cipher::Aes256Gcm, crypto::RsaPadding::Pkcs1}),
                         [](const auto& row) { return std::string(row.param.name); });

TEST_F(InboundDecryptTest, ExpiredKeyStillOpensOldMail) {
    // An expired certificate makes its key retired (keys::effective_state): it still decrypts.
    const auto old = make_identity({.email = "alice@bank.example", .days_valid = -1, .serial = 7001});
    const auto current = make_identity({.email = "alice@bank.example", .serial = 7002});
    add_key(old);
    add_key(current);
    rebuild({});
    ASSERT_EQ(keys::effective_state(*ring_->for_address("alice@bank.example").back(), std::time(nullptr)),
              keys::KeyState::Retired);
    const std::string sent = encrypt(kPlain, {old.cert});
    run(sent, {"alice@bank.example"});
    EXPECT_EQ(first_header(delivered(sent)), "X-Sealmilter-Decryption: result=decrypted; key=" + hex_sha256(old.cert));
}

TEST_F(InboundDecryptTest, UnknownKeyIsDeliveredUnchangedWithTheReason) {
    add_key(make_identity({.email = "alice@bank.example"}));
    rebuild({});
    const auto stranger = make_identity({.email = "alice@bank.example", .serial = 9999});
    const std::string sent = encrypt(kPlain, {stranger.cert});
    const auto r = run(sent, {"alice@bank.example"});
    ASSERT_EQ(r.verdict, milter::EomResult::Verdict::Accept) << r.summary;
    EXPECT_FALSE(mta_.body_replaced);
    const std::string got = delivered(sent);
    EXPECT_EQ(first_header(got), "X-Sealmilter-Decryption: result=failed; reason=no-key");
    EXPECT_EQ(got.substr(got.find("\r\n") + 2), sent);  // otherwise byte-equal
    EXPECT_EQ(r.details.action, core::Action::DecryptFailed);
    EXPECT_TRUE(logged("4DEC123: not decrypted (no-key): no key in the store matches: issuer=")) << logs_.back();
}

TEST_F(InboundDecryptTest, DamagedEnvelopeIsDeliveredUnchangedAsDamaged) {
    add_key(make_identity({.email = "alice@bank.example"}));
    rebuild({});
    const std::string sent =
        "From: carol@partner.example\r\nTo: alice@bank.example\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
        "Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\nMIAGCSqGSIb3DQEHA6CAMIACAQAxggGL\r\n";
    const auto r = run(sent, {"alice@bank.example"});
    ASSERT_EQ(r.verdict, milter::EomResult::Verdict::Accept) << r.summary;
    EXPECT_FALSE(mta_.body_replaced);
    EXPECT_EQ(first_header(delivered(sent)), "X-Sealmilter-Decryption: result=failed; reason=damaged");
    EXPECT_TRUE(logged("not decrypted (damaged)"));
}

TEST_F(InboundDecryptTest, WithoutAKeyStoreEncryptedMailIsMarkedUnavailable) {
    rebuild([](milter::Services& s) { s.keys = nullptr; });
    const auto alice = make_identity({.email = "alice@bank.example"});
    const std::string sent = encrypt(kPlain, {alice.cert});
    run(sent, {"alice@bank.example"});
    EXPECT_FALSE(mta_.body_replaced);
    EXPECT_EQ(first_header(delivered(sent)), "X-Sealmilter-Decryption: result=failed; reason=unavailable");
}

TEST_F(InboundDecryptTest, ForgedTraceHeadersAreRemovedFromEveryMessage) {
    const auto alice = make_identity({.email = "alice@bank.example"});
    add_key(alice);
    rebuild({});
    const std::string forged_head =
        "X-Sealmilter-Decryption: result=decrypted; key=00; signature=valid; signer=ceo@bank.example\r\n"
        "x-sealmilter-decryption:  result=decrypted\r\n";
    // Plain mail: only the forged fields go.
    const std::string plain = forged_head + kPlain;
    auto r = run(plain, {"alice@bank.example"});
    ASSERT_EQ(r.verdict, milter::EomResult::Verdict::Accept) << r.summary;
    EXPECT_EQ(delivered(plain), kPlain);
    // Encrypted mail: exactly one trace header, ours.
    const std::string sent = forged_head + encrypt(kPlain, {alice.cert});
    run(sent, {"alice@bank.example"});
    const std::string got = delivered(sent);
    EXPECT_EQ(first_header(got), "X-Sealmilter-Decryption: result=decrypted; key=" + hex_sha256(alice.cert));
    EXPECT_EQ(got.find("result=decrypted", got.find("\r\n")), std::string::npos) << got.substr(0, 600);
    // Mail to an external recipient too (the gateway owns the name).
    run(plain, {"bob@partner.example"});
    EXPECT_EQ(delivered(plain), kPlain);
}

TEST_F(InboundDecryptTest, WhenOffNothingIsDecryptedNorStripped) {
    const auto alice = make_identity({.email = "alice@bank.example"});
    add_key(alice);
    rebuild([](milter::Services& s) { s.plan.decrypt.enabled = false; });
    const std::string sent = "X-Sealmilter-Decryption: result=decrypted; key=00\r\n" + encrypt(kPlain, {alice.cert});
    const auto r = run(sent, {"alice@bank.example"});
    EXPECT_EQ(r.details.action, core::Action::PassedUnchanged) << r.summary;
    EXPECT_FALSE(mta_.body_replaced);
    EXPECT_EQ(delivered(sent), sent);
}

TEST_F(InboundDecryptTest, LocalAndExternalRecipientsAreSplitExternalCopyAsSent) {
    const auto alice = make_identity({.email = "alice@bank.example"});
    const auto bob = make_identity({.email = "bob@partner.example"});
    add_key(alice);
    rebuild({});
    const std::string sent = encrypt(kPlain, {alice.cert, bob.cert});
    const auto r = run(sent, {"bob@partner.example", "alice@bank.example", "ops@sub.bank.example"});
    ASSERT_EQ(r.verdict, milter::EomResult::Verdict::Accept) << r.summary;
    // The local copies stay in the transaction, decrypted; the external one is re-injected as sent.
    EXPECT_EQ(mta_.deleted, std::vector<std::string>{"<bob@partner.example>"});
    ASSERT_EQ(reinjector_.copies.size(), 1u);
    EXPECT_EQ(reinjector_.copies[0].rcpts, std::vector<std::string>{"bob@partner.example"});
    EXPECT_EQ(reinjector_.copies[0].message, sent);
    const std::string got = delivered(sent);
    EXPECT_EQ(first_header(got), "X-Sealmilter-Decryption: result=decrypted; key=" + hex_sha256(alice.cert));
    EXPECT_NE(got.find("\r\n\r\nThe signed contract is attached.\r\n"), std::string::npos);
    EXPECT_NE(r.summary.find("decrypted for 2 local recipient(s)"), std::string::npos) << r.summary;
    EXPECT_NE(r.summary.find("1 copies split off"), std::string::npos) << r.summary;
}

TEST_F(InboundDecryptTest, DryRunChangesNothing) {
    const auto alice = make_identity({.email = "alice@bank.example"});
    add_key(alice);
    rebuild([](milter::Services& s) { s.plan.dry_run = true; });
    const std::string sent = encrypt(kPlain, {alice.cert});
    const auto r = run(sent, {"alice@bank.example"});
    EXPECT_EQ(r.details.action, core::Action::DryRun);
    EXPECT_NE(r.summary.find("would decrypt for 1 local recipient(s)"), std::string::npos) << r.summary;
    EXPECT_TRUE(mta_.edits.empty());
    EXPECT_FALSE(mta_.body_replaced);
}

TEST_F(InboundDecryptTest, SignatureInsideIsVerifiedOverTheDecryptedBytes) {
    const auto alice = make_identity({.email = "alice@bank.example"});
    const auto carol = make_identity({.email = "carol@partner.example"});
    add_key(alice);
    // The signer's certificate validates when it is its own trust anchor (test identities are
    // self-signed); without it the signature is untrusted.
    const std::string anchor = "/tmp/sealmilter-inbound-anchor-" + std::to_string(getpid()) + ".pem";
    sealmilter::base::write_atomically(anchor, lookup::HarvestStore::pem(carol.cert));
    lookup::ValidatorOptions vo;
    vo.trust_anchor_files = {anchor};
    const lookup::Validator trusting(vo);
    const lookup::Validator empty(lookup::ValidatorOptions{});
    std::filesystem::remove(anchor);
    // carol signs (opaque signed-data), then encrypts to alice.
    crypto::StringSink der;
    {
        crypto::SignOptions so;
        so.detached = false;
        const crypto::KeyMaterial signer = carol.material();
        crypto::SignedDataWriter w(signer, so, der);
        const std::string inner = "Content-Type: text/plain\r\n\r\nSigned by carol.\r\n";
        w.write(inner.data(), inner.size());
        w.finish();
    }
    std::string signed_msg =
        "From: carol@partner.example\r\nTo: alice@bank.example\r\nSubject: signed\r\nMIME-Version: 1.0\r\n"
        "Content-Type: application/pkcs7-mime; smime-type=signed-data; name=smime.p7m\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n";
    {
        crypto::StringSink b64;
        crypto::Base64LineWriter w(b64, "\r\n");
        w.write(der.out.data(), der.out.size());
        w.finish();
        signed_msg += b64.out;
    }
    const std::string sent = encrypt(signed_msg, {alice.cert});
    for (const auto& [validator, want] : {std::pair{&trusting, "valid"}, std::pair{&empty, "untrusted"}}) {
        rebuild([v = validator](milter::Services& s) { s.plan.decrypt.validator = v; });
        run(sent, {"alice@bank.example"});
        EXPECT_EQ(first_header(delivered(sent)), "X-Sealmilter-Decryption: result=decrypted; key=" +
                                                     hex_sha256(alice.cert) + "; signature=" + want +
                                                     "; signer=carol@partner.example");
    }
    // A signature whose bytes were changed inside the envelope is invalid.
    std::string tampered = signed_msg;
    const size_t at = tampered.find("\r\n\r\n") + 4 + 120;
    tampered[at] = tampered[at] == 'A' ? 'B' : 'A';
    const std::string sent_bad = encrypt(tampered, {alice.cert});
    rebuild([&](milter::Services& s) { s.plan.decrypt.validator = &trusting; });
    run(sent_bad, {"alice@bank.example"});
    EXPECT_NE(first_header(delivered(sent_bad)).find("; signature=invalid"), std::string::npos) << first_header(delivered(sent_bad));
}

// The NSS corpus: Bob's key (Bob.p12) opens alice.env.eml and every alice.*.env.eml; the
// decrypted body is alice.mime's (or the signed inner message, whose signature is checked).
TEST_F(InboundDecryptTest, NssCorpusDecryptsThroughTheRing) {
    crypto::KeyLoad bob = crypto::load_key_material(kNss + "Bob.p12", "nss");
    ASSERT_TRUE(bob.material) << bob.error;
    ASSERT_TRUE(ring_->add(std::move(*bob.material), kNss + "Bob.p12"));
    rebuild([](milter::Services& s) { s.plan.decrypt.domains = {"example.com"}; });
    const std::string mime = crlf(sealmilter::base::read_file(kNss + "alice.mime"));
    int files = 0;
    for (const auto& entry : std::filesystem::directory_iterator(kNss)) {
        const std::string name = entry.path().filename().string();
        if (name.rfind("alice.", 0) != 0 || name.size() < 8 || name.substr(name.size() - 8) != ".env.eml") continue;
        ++files;
        const std::string sent = crlf(sealmilter::base::read_file(entry.path().string()));
        const auto r = run(sent, {"bob@example.com"});
        ASSERT_EQ(r.verdict, milter::EomResult::Verdict::Accept) << name << ": " << r.summary;
        const std::string got = delivered(sent);
        EXPECT_EQ(first_header(got).rfind("X-Sealmilter-Decryption: result=decrypted; key=", 0), 0u) << name << ": " << got.substr(0, 300);
        if (name == "alice.env.eml") {
            // The inner entity (content headers + body) is alice.mime.
            const std::string entity_head = mime.substr(0, mime.find("\r\n\r\n"));
            EXPECT_NE(got.find(entity_head), std::string::npos) << got.substr(0, 600);
            EXPECT_EQ(got.substr(got.find("\r\n\r\n") + 4), mime.substr(mime.find("\r\n\r\n") + 4));
        } else {
            // Signed inside: the signature is verified over the decrypted bytes.
            EXPECT_NE(first_header(got).find("; signature="), std::string::npos) << name << ": " << first_header(got);
            EXPECT_EQ(first_header(got).find("signature=invalid"), std::string::npos) << name << ": " << first_header(got);
        }
    }
    EXPECT_GE(files, 9);
}

}  // namespace
