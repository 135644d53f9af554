// The milter transaction driven without libmilter (STYLE.md): a fake MTA records header
// edits, body replacement, recipient removal; a fake re-injector records the split copies.
// Every encrypted result is decrypted and checked, never byte-compared.
#include "tests/support/fake_mta.hpp"
#include "tests/support/messages.hpp"
#include "core/decrypt.hpp"
#include "milter/transaction.hpp"
#include "tests/support/scripted_source.hpp"
#include "tests/support/test_pki.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace core = sealmilter::core;
namespace crypto = sealmilter::crypto;
namespace lookup = sealmilter::lookup;
namespace milter = sealmilter::milter;
using sealmilter::testing::FakeMta;
using sealmilter::testing::FakeReinjector;
using sealmilter::testing::make_identity;
using sealmilter::testing::ScriptedSource;
using sealmilter::testing::TestIdentity;

namespace {

std::unique_ptr<core::Message> parse(const std::string& raw) { return sealmilter::testing::parse_message(raw); }

// Plaintext of an encrypted message (whole, CRLF) with one identity's key, or "" if it
// cannot decrypt.
std::string open_with(const std::string& message, const TestIdentity& id) {
    crypto::StringSink out;
    const auto r = core::decrypt_message(*parse(message), id.material(), "\r\n", out);
    return r.status == crypto::DecryptStatus::Ok ? out.out : "";
}

class TransactionTest : public ::testing::Test {
protected:
    void SetUp() override {
        validator_ = std::make_unique<lookup::Validator>(lookup::ValidatorOptions{});
        chain_ = std::make_unique<lookup::Chain>(std::vector<std::string>{"directory"},
                                                 std::vector<lookup::CertificateSource*>{&directory_}, *validator_,
                                                 nullptr, lookup::EncryptTo::AllValid);
        rebuild({});
    }
    void rebuild(const std::function<void(milter::Services&)>& tweak) {
        auto s = std::make_shared<milter::Services>();
        s->resolver = std::make_shared<lookup::Resolver>(*chain_);
        s->plan.policy = core::PolicyTable::parse("@customers.bank.example require\n* opportunistic\n", "policy");
        s->spool_dir = "/tmp";
        s->memory_threshold = 4096;  // exercise the file spool
        s->log = sealmilter::base::Logger::to_function([this](sealmilter::base::LogLevel, const std::string& l) { logs_.push_back(l); });
        if (tweak) tweak(*s);
        services_ = s;
    }
    void give_cert(const TestIdentity& id, const std::string& email) {
        lookup::SourceAnswer a;
        a.outcome = lookup::Outcome::Found;
        a.candidates = {id.cert};
        directory_.answers[email] = a;
    }
    // Feeds a whole message through the callbacks the way libmilter would (CRLF body).
    milter::EomResult run(const std::string& headers_and_body, const std::vector<std::string>& rcpts,
                          std::vector<milter::Reply>* rcpt_replies = nullptr) {
        milter::Transaction tx(services_, "S1");
        tx.mail_from("<noreply@bank.example>");
        for (const auto& r : rcpts) {
            const milter::Reply rep = tx.recipient("<" + r + ">");
            if (rcpt_replies != nullptr) rcpt_replies->push_back(rep);
        }
        const auto m = parse(headers_and_body);
        for (const auto& f : m->headers) tx.header(f.name, f.value);
        m->body.for_each_chunk([&](std::string_view c) {
            for (size_t off = 0; off < c.size(); off += 1000) tx.body(c.data() + off, std::min<size_t>(1000, c.size() - off));
        });
        return tx.end_of_message("4ABC123", mta_, reinjector_);
    }
    // The message as the MTA holds it after the milter's edits.
    std::string delivered(const std::string& original) {
        const auto m = parse(original);
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

    ScriptedSource directory_{"directory"};
    std::unique_ptr<lookup::Validator> validator_;
    std::unique_ptr<lookup::Chain> chain_;
    std::shared_ptr<const milter::Services> services_;
    std::vector<std::string> logs_;
    FakeMta mta_;
    FakeReinjector reinjector_;
};

const std::string kMsg =
    "From: Bank <noreply@bank.example>\r\n"
    "To: bob@partner.example\r\n"
    "Subject: Statement\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "\r\n"
    "Your balance is 1.000,00 EUR.\r\n";

TEST_F(TransactionTest, OneRecipientWithCertificateIsEncryptedInPlace) {
    const auto bob = make_identity({.email = "bob@partner.example"});
    give_cert(bob, "bob@partner.example");
    const auto r = run(kMsg, {"bob@partner.example"});
    ASSERT_EQ(r.verdict, milter::EomResult::Verdict::Accept) << r.summary;
    EXPECT_TRUE(mta_.body_replaced);
    const std::string plain = open_with(delivered(kMsg), bob);
    EXPECT_NE(plain.find("Content-Type: text/plain; charset=utf-8\r\n\r\nYour balance is 1.000,00 EUR.\r\n"),
              std::string::npos)
        << plain;
    EXPECT_TRUE(reinjector_.copies.empty());
    EXPECT_TRUE(mta_.deleted.empty());
    ASSERT_FALSE(logs_.empty());
    EXPECT_EQ(logs_.back().rfind("4ABC123: rcpt=<bob@partner.example> mode=opportunistic outcome=encrypt", 0), 0u) << logs_.back();
}

TEST_F(TransactionTest, RequireWithoutCertificateIsRefusedAtRcpt) {
    std::vector<milter::Reply> replies;
    const auto bob = make_identity({.email = "bob@partner.example"});
    give_cert(bob, "bob@partner.example");
    const auto r = run(kMsg, {"jane@customers.bank.example", "bob@partner.example"}, &replies);
    ASSERT_EQ(replies.size(), 2u);
    EXPECT_FALSE(replies[0].accept);
    EXPECT_EQ(replies[0].code, "550");
    EXPECT_EQ(replies[0].xcode, "5.7.1");
    EXPECT_NE(replies[0].text.find("no usable certificate"), std::string::npos);
    EXPECT_TRUE(replies[1].accept);
    EXPECT_EQ(r.verdict, milter::EomResult::Verdict::Accept);  // the others go on
    EXPECT_FALSE(open_with(delivered(kMsg), bob).empty());
}

TEST_F(TransactionTest, RequireTempfailsWhenConfigured) {
    rebuild([](milter::Services& s) { s.plan.policy_options.no_cert_tempfail = true; });
    std::vector<milter::Reply> replies;
    run(kMsg, {"jane@customers.bank.example"}, &replies);
    EXPECT_EQ(replies[0].code, "451");
    EXPECT_EQ(replies[0].xcode, "4.7.1");
    EXPECT_TRUE(replies[0].temporary);
}

TEST_F(TransactionTest, OpportunisticWithoutCertificateIsDeliveredUnchanged) {
    const auto r = run(kMsg, {"bob@partner.example"});
    EXPECT_EQ(r.verdict, milter::EomResult::Verdict::Accept);
    EXPECT_FALSE(mta_.body_replaced);
    EXPECT_TRUE(mta_.edits.empty());
    EXPECT_EQ(delivered(kMsg), kMsg);
}

TEST_F(TransactionTest, LookupErrorTempfailsTheMessageByDefault) {
    lookup::SourceAnswer err;
    err.outcome = lookup::Outcome::TempError;
    err.reason = "HTTP 503";
    directory_.answers["bob@partner.example"] = err;
    const auto r = run(kMsg, {"bob@partner.example"});
    EXPECT_EQ(r.verdict, milter::EomResult::Verdict::Tempfail);
    EXPECT_EQ(r.reply.code, "451");
    EXPECT_EQ(r.reply.xcode, "4.7.1");
    EXPECT_FALSE(mta_.body_replaced);
}

TEST_F(TransactionTest, BccGetsItsOwnEnvelopeThroughReinjection) {
    const auto bob = make_identity({.email = "bob@partner.example"});
    const auto hidden = make_identity({.email = "hidden@partner.example"});
    give_cert(bob, "bob@partner.example");
    give_cert(hidden, "hidden@partner.example");
    const auto r = run(kMsg, {"bob@partner.example", "hidden@partner.example"});
    ASSERT_EQ(r.verdict, milter::EomResult::Verdict::Accept) << r.summary;
    ASSERT_EQ(reinjector_.copies.size(), 1u);
    EXPECT_EQ(reinjector_.copies[0].rcpts, std::vector<std::string>{"hidden@partner.example"});
    EXPECT_EQ(reinjector_.copies[0].sender, "noreply@bank.example");
    EXPECT_EQ(mta_.deleted, std::vector<std::string>{"<hidden@partner.example>"});
    // The Bcc's copy names only the Bcc's certificate; the main envelope only Bob's.
    EXPECT_FALSE(open_with(reinjector_.copies[0].message, hidden).empty());
    EXPECT_TRUE(open_with(reinjector_.copies[0].message, bob).empty());
    EXPECT_FALSE(open_with(delivered(kMsg), bob).empty());
    EXPECT_TRUE(open_with(delivered(kMsg), hidden).empty());
}

TEST_F(TransactionTest, MixedOutcomesSplitPlainCopyOff) {
    const auto bob = make_identity({.email = "bob@partner.example"});
    give_cert(bob, "bob@partner.example");
    const std::string msg = "To: bob@partner.example, carol@partner.example\r\nSubject: x\r\n\r\nhello\r\n";
    const auto r = run(msg, {"bob@partner.example", "carol@partner.example"});
    ASSERT_EQ(r.verdict, milter::EomResult::Verdict::Accept) << r.summary;
    ASSERT_EQ(reinjector_.copies.size(), 1u);
    EXPECT_EQ(reinjector_.copies[0].rcpts, std::vector<std::string>{"carol@partner.example"});
    EXPECT_EQ(reinjector_.copies[0].message, msg);  // plain copy, byte for byte
    EXPECT_FALSE(open_with(delivered(msg), bob).empty());
}

TEST_F(TransactionTest, FailedReinjectionTempfailsAndChangesNothing) {
    const auto bob = make_identity({.email = "bob@partner.example"});
    give_cert(bob, "bob@partner.example");
    reinjector_.fail = "connect refused";
    const auto r = run("To: bob@partner.example\r\n\r\nx\r\n", {"bob@partner.example", "carol@partner.example"});
    EXPECT_EQ(r.verdict, milter::EomResult::Verdict::Tempfail);
    EXPECT_EQ(r.reply.xcode, "4.7.0");
    EXPECT_TRUE(mta_.deleted.empty());
    EXPECT_FALSE(mta_.body_replaced);
    EXPECT_TRUE(mta_.edits.empty());
}

TEST_F(TransactionTest, AlreadyEncryptedPassesUntouched) {
    const auto bob = make_identity({.email = "bob@partner.example"});
    give_cert(bob, "bob@partner.example");
    const std::string msg = "To: bob@partner.example\r\nContent-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n";
    const auto r = run(msg, {"bob@partner.example"});
    EXPECT_EQ(r.verdict, milter::EomResult::Verdict::Accept);
    EXPECT_NE(r.summary.find("already encrypted"), std::string::npos);
    EXPECT_FALSE(mta_.body_replaced);
}

TEST_F(TransactionTest, DryRunChangesNothingButLogsTheDecision) {
    rebuild([](milter::Services& s) { s.plan.dry_run = true; });
    const auto bob = make_identity({.email = "bob@partner.example"});
    give_cert(bob, "bob@partner.example");
    const auto r = run(kMsg, {"bob@partner.example"});
    EXPECT_EQ(r.verdict, milter::EomResult::Verdict::Accept);
    EXPECT_FALSE(mta_.body_replaced);
    EXPECT_TRUE(mta_.edits.empty());
    ASSERT_FALSE(logs_.empty());
    EXPECT_NE(logs_.back().find("dry-run: rcpt=<bob@partner.example>"), std::string::npos) << logs_.back();
    EXPECT_NE(logs_.back().find(bob.cert.fingerprint_sha256()), std::string::npos);
}

TEST_F(TransactionTest, SubjectTagRaisesToRequireAndIsRemoved) {
    const auto bob = make_identity({.email = "bob@partner.example"});
    give_cert(bob, "bob@partner.example");
    const std::string msg = "To: bob@partner.example\r\nSubject: [secure] Salary\r\nX-Sealmilter-Encrypt: yes\r\n\r\nx\r\n";
    const auto r = run(msg, {"bob@partner.example"});
    ASSERT_EQ(r.verdict, milter::EomResult::Verdict::Accept) << r.summary;
    const std::string out = delivered(msg);
    EXPECT_NE(out.find("Subject: Salary\r\n"), std::string::npos) << out;
    EXPECT_EQ(out.find("X-Sealmilter-Encrypt"), std::string::npos) << out;
    EXPECT_FALSE(open_with(out, bob).empty());
    // Raised to require and no certificate: the message is not delivered in plaintext.
    FakeMta other;
    mta_ = other;
    const auto r2 = run("To: x@partner.example\r\nSubject: [SECURE] Salary\r\n\r\nx\r\n", {"x@partner.example"});
    // A definite miss found only at end of data cannot get better by retrying: 550 5.7.1.
    EXPECT_EQ(r2.verdict, milter::EomResult::Verdict::Reject);
    EXPECT_EQ(r2.reply.code, "550");
    EXPECT_EQ(r2.reply.xcode, "5.7.1");
    EXPECT_NE(r2.reply.text.find("x@partner.example"), std::string::npos) << r2.reply.text;
    EXPECT_FALSE(mta_.body_replaced);
    // With no_cert_action = tempfail the same message is tempfailed instead.
    rebuild([](milter::Services& s) { s.plan.policy_options.no_cert_tempfail = true; });
    FakeMta third;
    mta_ = third;
    const auto r3 = run("To: x@partner.example\r\nSubject: [secure] Salary\r\n\r\nx\r\n", {"x@partner.example"});
    EXPECT_EQ(r3.verdict, milter::EomResult::Verdict::Tempfail);
    EXPECT_EQ(r3.reply.xcode, "4.7.1");
    EXPECT_FALSE(mta_.body_replaced);
}

TEST_F(TransactionTest, TooBigIsRefusedWith552) {
    rebuild([](milter::Services& s) { s.plan.max_message_size = 10; });
    const auto r = run(kMsg, {"bob@partner.example"});
    EXPECT_EQ(r.verdict, milter::EomResult::Verdict::Reject);
    EXPECT_EQ(r.reply.code, "552");
    EXPECT_EQ(r.reply.xcode, "5.3.4");
}

TEST_F(TransactionTest, TooBigOnceEncryptedIsRefusedWith552BeforeAnythingChanges) {
    const auto bob = make_identity({.email = "bob@partner.example"});
    give_cert(bob, "bob@partner.example");
    std::string msg = kMsg;
    for (int i = 0; i < 400; ++i) msg += "Line " + std::to_string(i) + " of the statement, padded to a realistic width.\r\n";
    // The real encrypted size, without a limit.
    const auto plain_run = run(msg, {"bob@partner.example"});
    ASSERT_EQ(plain_run.verdict, milter::EomResult::Verdict::Accept) << plain_run.summary;
    const size_t actual = delivered(msg).size();
    // A limit just below it: refused with the sentence, nothing edited.
    rebuild([&](milter::Services& s) { s.plan.mta_size_limit = actual - 1; });
    give_cert(bob, "bob@partner.example");
    FakeMta fresh;
    mta_ = fresh;
    const auto r = run(msg, {"bob@partner.example"});
    EXPECT_EQ(r.verdict, milter::EomResult::Verdict::Reject);
    EXPECT_EQ(r.reply.code, "552");
    EXPECT_EQ(r.reply.xcode, "5.3.4");
    EXPECT_NE(r.reply.text.find("1.4 times larger"), std::string::npos) << r.reply.text;
    EXPECT_FALSE(mta_.body_replaced);
    EXPECT_TRUE(mta_.edits.empty());
    // The estimate is not far off: 5% above the real size passes.
    rebuild([&](milter::Services& s) { s.plan.mta_size_limit = actual + actual / 20; });
    give_cert(bob, "bob@partner.example");
    FakeMta again;
    mta_ = again;
    const auto ok = run(msg, {"bob@partner.example"});
    EXPECT_EQ(ok.verdict, milter::EomResult::Verdict::Accept) << ok.summary << " real size " << actual;
}

}  // namespace

namespace {

TEST_F(TransactionTest, CipherAutoFollowsTheRecipientsCapabilities) {
    const auto bob = make_identity({.email = "bob@partner.example"});
    for (const bool gcm : {true, false}) {
        lookup::SourceAnswer a;
        a.outcome = lookup::Outcome::Found;
        a.candidates = {bob.cert};
        a.capabilities = gcm ? std::vector<std::string>{"aes256-gcm", "aes256-cbc"} : std::vector<std::string>{"aes256-cbc"};
        directory_.answers["bob@partner.example"] = a;
        rebuild([](milter::Services& s) { s.plan.cipher_auto = true; });
        FakeMta fresh;
        mta_ = fresh;
        const auto r = run(kMsg, {"bob@partner.example"});
        ASSERT_EQ(r.verdict, milter::EomResult::Verdict::Accept) << r.summary;
        const std::string out = delivered(kMsg);
        EXPECT_EQ(out.find("smime-type=authEnveloped-data") != std::string::npos, gcm) << out.substr(0, 600);
        EXPECT_NE(r.summary.find(gcm ? "aes-256-gcm" : "aes-256-cbc"), std::string::npos) << r.summary;
        EXPECT_FALSE(open_with(out, bob).empty());
    }
}

TEST_F(TransactionTest, InboundSignedMailIsHarvestedAndPassesUnchanged) {
    char tmpl[] = "/tmp/sealmilter-harvest-tx-XXXXXX";
    const std::string dir = ::mkdtemp(tmpl);
    const std::string nss = std::string(SEALMILTER_SOURCE_DIR) + "/tests/data/nss-smime/";
    lookup::ValidatorOptions vo;
    vo.trust_anchor_files = {nss + "TestCA.pem"};
    lookup::Validator nss_validator(vo);
    rebuild([&](milter::Services& s) {
        s.harvest.enabled = true;
        s.harvest.validator = &nss_validator;
        s.harvest.store = std::make_shared<lookup::HarvestStore>(dir);
        s.harvest.domains = {"example.com"};
    });
    std::ifstream in(nss + "alice.dsig.SHA256.multipart.eml", std::ios::binary);
    std::ostringstream raw;
    raw << in.rdbuf();
    const auto r = run(raw.str(), {"bob@example.com"});
    EXPECT_EQ(r.verdict, milter::EomResult::Verdict::Accept) << r.summary;
    EXPECT_FALSE(mta_.body_replaced);
    EXPECT_TRUE(mta_.edits.empty());
    const auto recs = lookup::HarvestStore(dir).records("alice@example.com");
    ASSERT_EQ(recs.size(), 1u);
    bool logged = false;
    for (const std::string& l : logs_) logged = logged || l.find("harvest: kept <alice@example.com>") != std::string::npos;
    EXPECT_TRUE(logged);
    // Mail to a domain that is not inbound is not inspected.

    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    FakeMta fresh;
    mta_ = fresh;
    run(raw.str(), {"someone@elsewhere.example"});
    EXPECT_TRUE(lookup::HarvestStore(dir).records("alice@example.com").empty());
    std::filesystem::remove_all(dir);
}

}  // namespace

namespace {

TEST_F(TransactionTest, ARetryNeverSendsACopyTwice) {
    char tmpl[] = "/tmp/sealmilter-journal-XXXXXX";
    const std::string dir = ::mkdtemp(tmpl);
    const auto bob = make_identity({.email = "bob@partner.example"});
    const auto dave = make_identity({.email = "dave@partner.example"});
    give_cert(bob, "bob@partner.example");
    give_cert(dave, "dave@partner.example");
    rebuild([&](milter::Services& s) { s.journal = std::make_shared<milter::FileJournal>(dir); });
    const std::string msg = "From: noreply@bank.example\r\nTo: bob@partner.example, carol@partner.example\r\n"
                            "Message-ID: <once@bank.example>\r\nSubject: Statement\r\n\r\nbalance\r\n";
    const std::vector<std::string> rcpts = {"bob@partner.example", "carol@partner.example", "dave@partner.example"};
    // First attempt: the first copy goes out, the second fails: the message is tempfailed.
    reinjector_.fail_after = 1;
    const auto r1 = run(msg, rcpts);
    ASSERT_EQ(r1.verdict, milter::EomResult::Verdict::Tempfail) << r1.summary;
    ASSERT_EQ(reinjector_.copies.size(), 1u);
    const auto first_rcpts = reinjector_.copies[0].rcpts;
    // The sender retries: only the copy that did not go out is sent now.
    reinjector_.fail_after = -1;
    FakeMta fresh;
    mta_ = fresh;
    const auto r2 = run(msg, rcpts);
    ASSERT_EQ(r2.verdict, milter::EomResult::Verdict::Accept) << r2.summary;
    ASSERT_EQ(reinjector_.copies.size(), 2u);
    EXPECT_NE(reinjector_.copies[1].rcpts, first_rcpts);
    EXPECT_EQ(mta_.deleted.size(), 2u);  // both split-off groups leave this transaction
    // A different message (other content) is not mistaken for the retry.
    FakeMta third;
    mta_ = third;
    const auto r3 = run("From: noreply@bank.example\r\nTo: bob@partner.example, carol@partner.example\r\n"
                        "Message-ID: <once@bank.example>\r\nSubject: Statement\r\n\r\nanother balance\r\n", rcpts);
    ASSERT_EQ(r3.verdict, milter::EomResult::Verdict::Accept) << r3.summary;
    EXPECT_EQ(reinjector_.copies.size(), 4u);
    std::filesystem::remove_all(dir);
}

// A journal that cannot answer (the shared database is down): scripted, since the point is
// the transaction's reaction (pg/journal.hpp answers the same way against a stopped server,
// tests/unit/pg).
class ScriptedJournal final : public milter::Journal {
public:
    mutable int contains_calls = 0;
    mutable int record_calls = 0;
    bool answer = true;  // contains() can answer
    bool write = true;   // record() succeeds
    Seen contains(const std::string&, std::string* error) const override {
        ++contains_calls;
        if (answer) return Seen::No;
        *error = "PostgreSQL: connection refused";
        return Seen::Unknown;
    }
    bool record(const std::string&, std::string* error) const override {
        ++record_calls;
        if (!write) *error = "PostgreSQL: connection refused";
        return write;
    }
    size_t prune() const override { return 0; }
};

TEST_F(TransactionTest, AJournalThatCannotAnswerTempfailsBeforeAnyCopyIsSent) {
    const auto bob = make_identity({.email = "bob@partner.example"});
    give_cert(bob, "bob@partner.example");
    auto journal = std::make_shared<ScriptedJournal>();
    journal->answer = false;
    rebuild([&](milter::Services& s) { s.journal = journal; });
    const std::string msg = "To: bob@partner.example, carol@partner.example\r\nSubject: x\r\n\r\nbalance\r\n";
    const auto r = run(msg, {"bob@partner.example", "carol@partner.example"});
    EXPECT_EQ(r.verdict, milter::EomResult::Verdict::Tempfail) << r.summary;
    EXPECT_TRUE(reinjector_.copies.empty());  // nothing handed over: a retry cannot duplicate
    EXPECT_TRUE(mta_.deleted.empty());
    EXPECT_NE(r.summary.find("re-injection journal cannot be read"), std::string::npos) << r.summary;
}

TEST_F(TransactionTest, AJournalThatCannotRecordACopyTempfailsTheMessage) {
    const auto bob = make_identity({.email = "bob@partner.example"});
    const auto dave = make_identity({.email = "dave@partner.example"});
    give_cert(bob, "bob@partner.example");
    give_cert(dave, "dave@partner.example");
    auto journal = std::make_shared<ScriptedJournal>();
    journal->write = false;
    rebuild([&](milter::Services& s) { s.journal = journal; });
    // Two copies to hand over (Carol plain, Dave's Bcc envelope): the first cannot be recorded,
    // so the second is never started and the message is tempfailed.
    const std::string msg = "To: bob@partner.example, carol@partner.example\r\nSubject: x\r\n\r\nbalance\r\n";
    const auto r = run(msg, {"bob@partner.example", "carol@partner.example", "dave@partner.example"});
    EXPECT_EQ(r.verdict, milter::EomResult::Verdict::Tempfail) << r.summary;
    EXPECT_EQ(reinjector_.copies.size(), 1u);
    EXPECT_EQ(journal->record_calls, 1);
    EXPECT_TRUE(mta_.deleted.empty());
    EXPECT_NE(r.summary.find("re-injection journal cannot be written"), std::string::npos) << r.summary;
}

}  // namespace

namespace {

// crypto.archive_cert: every encrypted envelope, the one that stays and each split-off Bcc
// envelope, carries the archive's RecipientInfo; the plain copy is untouched.
TEST_F(TransactionTest, EveryEncryptedEnvelopeAlsoGoesToTheArchive) {
    const auto bob = make_identity({.email = "bob@partner.example"});
    const auto hidden = make_identity({.email = "hidden@partner.example"});
    const auto archive = make_identity({.email = "archive@bank.example"});
    give_cert(bob, "bob@partner.example");
    give_cert(hidden, "hidden@partner.example");
    rebuild([&](milter::Services& s) { s.plan.archive = archive.cert; });
    const std::string msg = "To: bob@partner.example, carol@partner.example\r\nSubject: x\r\n\r\nbalance 1\r\n";
    const auto r = run(msg, {"bob@partner.example", "carol@partner.example", "hidden@partner.example"});
    ASSERT_EQ(r.verdict, milter::EomResult::Verdict::Accept) << r.summary;
    EXPECT_NE(r.summary.find("(1 certificate(s) and the archive)"), std::string::npos) << r.summary;
    EXPECT_TRUE(r.details.archived);
    // In place: Bob and the archive each open it and get the original.
    const std::string in_place = delivered(msg);
    for (const TestIdentity* who : {&bob, &archive}) {
        const std::string plain = open_with(in_place, *who);
        EXPECT_NE(plain.find("\r\n\r\nbalance 1\r\n"), std::string::npos) << who->cert.fingerprint_sha256();
    }
    ASSERT_EQ(reinjector_.copies.size(), 2u);  // carol plain, hidden's own envelope
    bool plain_seen = false;
    bool bcc_seen = false;
    for (const auto& copy : reinjector_.copies) {
        if (copy.rcpts == std::vector<std::string>{"carol@partner.example"}) {
            plain_seen = true;
            EXPECT_EQ(copy.message, msg);
            continue;
        }
        bcc_seen = true;
        EXPECT_NE(open_with(copy.message, hidden).find("balance 1"), std::string::npos);
        EXPECT_NE(open_with(copy.message, archive).find("balance 1"), std::string::npos);
        EXPECT_TRUE(open_with(copy.message, bob).empty());  // the Bcc's envelope names no one else
    }
    EXPECT_TRUE(plain_seen && bcc_seen);
}

TEST_F(TransactionTest, WithoutAnArchiveTheArchiveKeyOpensNothing) {
    const auto bob = make_identity({.email = "bob@partner.example"});
    const auto archive = make_identity({.email = "archive@bank.example"});
    give_cert(bob, "bob@partner.example");
    const auto r = run(kMsg, {"bob@partner.example"});
    ASSERT_EQ(r.verdict, milter::EomResult::Verdict::Accept) << r.summary;
    EXPECT_TRUE(open_with(delivered(kMsg), archive).empty());
    EXPECT_EQ(r.summary.find("archive"), std::string::npos) << r.summary;
}

}  // namespace

// The administrator's path (issue 15, part 7): what the log says about a message must be
// enough to follow it through Postfix and to the next hop.
namespace {

// A re-injector that answers like Postfix's smtpd does at the end of DATA.
class AnsweringReinjector final : public milter::Reinjector {
public:
    std::string send(const std::string&, const std::vector<std::string>& rcpts,
                     const std::function<void(crypto::ByteSink&)>& write) override {
        crypto::StringSink s;
        write(s);
        sent.push_back(rcpts);
        return {};
    }
    std::string hand_over(const std::string& sender, const std::vector<std::string>& rcpts,
                          const std::function<void(crypto::ByteSink&)>& write, std::string& reply) override {
        reply = "250 2.0.0 Ok: queued as 4NEXT" + std::to_string(sent.size());
        return send(sender, rcpts, write);
    }
    std::string target() const override { return "127.0.0.1:10027"; }
    std::vector<std::vector<std::string>> sent;
};

TEST_F(TransactionTest, RcptLinesStartWithTheQueueIdPostfixGaveAtMailFrom) {
    milter::Transaction tx(services_, "S9");
    tx.mail_from("<noreply@bank.example>", "4QID77");
    const milter::Reply r = tx.recipient("<nobody@customers.bank.example>");  // require, no certificate
    EXPECT_FALSE(r.accept);
    ASSERT_GE(logs_.size(), 2u);
    EXPECT_EQ(logs_[0], "S9: queue id 4QID77");  // the one line mapping session to queue id
    for (size_t i = 1; i < logs_.size(); ++i) EXPECT_EQ(logs_[i].rfind("4QID77: ", 0), 0u) << logs_[i];
    EXPECT_NE(logs_.back().find("rcpt=<nobody@customers.bank.example>"), std::string::npos) << logs_.back();
}

TEST_F(TransactionTest, WithoutAQueueIdAtMailFromTheSessionIdTagsUntilEndOfMessage) {
    milter::Transaction tx(services_, "S9");
    tx.mail_from("<noreply@bank.example>");
    tx.recipient("<nobody@customers.bank.example>");
    ASSERT_FALSE(logs_.empty());
    EXPECT_EQ(logs_.back().rfind("S9: ", 0), 0u) << logs_.back();
}

TEST_F(TransactionTest, TheSplitLineNamesTheTargetAndTheNextHopsQueueId) {
    const auto bob = make_identity({.email = "bob@partner.example"});
    give_cert(bob, "bob@partner.example");
    AnsweringReinjector next_hop;
    milter::Transaction tx(services_, "S3");
    tx.mail_from("<noreply@bank.example>", "4QSPLIT");
    tx.recipient("<bob@partner.example>");
    tx.recipient("<carol@partner.example>");  // no certificate: a plain copy is split off
    const auto m = parse("From: noreply@bank.example\r\nTo: bob@partner.example, carol@partner.example\r\n"
                         "Subject: s\r\n\r\nhello\r\n");
    for (const auto& f : m->headers) tx.header(f.name, f.value);
    tx.body("hello\r\n", 7);
    const auto res = tx.end_of_message("4QSPLIT", mta_, next_hop);
    ASSERT_EQ(res.verdict, milter::EomResult::Verdict::Accept) << res.summary;
    ASSERT_EQ(next_hop.sent.size(), 1u);
    const auto line = std::find_if(logs_.begin(), logs_.end(),
                                   [](const std::string& l) { return l.find("handed over") != std::string::npos; });
    ASSERT_NE(line, logs_.end());
    EXPECT_EQ(*line, "4QSPLIT: copy for 1 recipient(s) <carol@partner.example> handed over to 127.0.0.1:10027, "
                     "queued there as 4NEXT0 (250 2.0.0 Ok: queued as 4NEXT0)");
}

// A copy handed over whose journal entry cannot be written tempfails the message (a retry
// would not know the copy went out: issue 16), and the log names the file and why.
TEST_F(TransactionTest, AnUnwritableJournalIsLoggedWithItsPathAndReason) {
    const auto bob = make_identity({.email = "bob@partner.example"});
    give_cert(bob, "bob@partner.example");
    const std::string dir = "/dev/null/journal";  // ENOTDIR for root as for anyone: nothing is created
    rebuild([&](milter::Services& s) { s.journal = std::make_shared<milter::FileJournal>(dir); });
    const auto r = run("From: noreply@bank.example\r\nTo: bob@partner.example, carol@partner.example\r\n"
                       "Subject: s\r\n\r\nhello\r\n",
                       {"bob@partner.example", "carol@partner.example"});
    ASSERT_EQ(r.verdict, milter::EomResult::Verdict::Tempfail) << r.summary;
    EXPECT_NE(r.summary.find("the re-injection journal cannot be written"), std::string::npos) << r.summary;
    const auto line = std::find_if(logs_.begin(), logs_.end(),
                                   [](const std::string& l) { return l.find("journal") != std::string::npos; });
    ASSERT_NE(line, logs_.end());
    EXPECT_NE(line->find("cannot create " + dir + "/"), std::string::npos) << *line;
    EXPECT_NE(line->find("Not a directory"), std::string::npos) << *line;
}

}  // namespace
