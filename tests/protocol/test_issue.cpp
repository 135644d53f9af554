// Policy mode `issue` through the milter transaction (issue 13, docs/issuing.md), driven by the
// fake MTA: an address a certificate cannot name is refused 550 5.7.1 at RCPT, an empty key
// pool tempfails 451 4.7.1 at RCPT, a new address gets a certificate at end of message and the
// message is encrypted to it (and to crypto.archive_cert), the second message to that address
// is encrypted to the same certificate through the `issued` source without a second issue
// (so no second notice), and dry run issues nothing. The issuer is a fake that makes real
// certificates (test_pki) and keeps their keys, so every result is decrypted, not compared.
#include "core/decrypt.hpp"
#include "lookup/issued_source.hpp"
#include "milter/notices.hpp"
#include "milter/transaction.hpp"
#include "tests/support/fake_mta.hpp"
#include "tests/support/messages.hpp"
#include "tests/support/scripted_source.hpp"
#include "tests/support/test_pki.hpp"

#include <gtest/gtest.h>

#include <map>
#include <mutex>

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

// Both views of the issuer: the transaction's (issue at end of message) and the lookup
// layer's (the issued source), and the registry as the notice worker reads it (a new
// certificate = a record with its notice due, as keys::Issuer::issue writes it). `pool`
// counts the key pairs ready.
class FakeIssuer final : public milter::CertificateIssuer, public lookup::IssuedCertificates, public milter::NoticeBook {
public:
    std::optional<std::string> uncertifiable_reason(std::string_view address) const override {
        if (!address.empty() && address.front() == '"')
            return "the address has a quoted local part, which a certificate cannot name";
        return std::nullopt;
    }
    bool ready() const override {
        const std::lock_guard<std::mutex> lock(mu_);
        return pool > 0;
    }
    std::optional<crypto::Certificate> issue(std::string_view address, std::string* error) override {
        const std::lock_guard<std::mutex> lock(mu_);
        const std::string a(address);
        if (const auto it = keys.find(a); it != keys.end()) return it->second.cert;
        if (pool == 0) {
            *error = "no key pair is ready";
            return std::nullopt;
        }
        --pool;
        ++issued;
        keys.emplace(a, make_identity({.email = a}));
        sealmilter::keys::IssuedRecord r;
        r.address = a;
        r.issued_at = std::time(nullptr);
        r.notice_due = true;
        records[a] = r;
        return keys.at(a).cert;
    }
    std::vector<sealmilter::keys::IssuedRecord> list_due(size_t limit, std::string* /*error*/) override {
        const std::lock_guard<std::mutex> lock(mu_);
        std::vector<sealmilter::keys::IssuedRecord> out;
        for (const auto& [a, r] : records)
            if (r.notice_due && out.size() < limit) out.push_back(r);
        return out;
    }
    bool update(std::string_view address, const Change& change, std::string* /*error*/) override {
        const std::lock_guard<std::mutex> lock(mu_);
        std::optional<sealmilter::keys::IssuedRecord> cur;
        if (const auto it = records.find(std::string(address)); it != records.end()) cur = it->second;
        if (std::optional<sealmilter::keys::IssuedRecord> next = change(cur)) records[std::string(address)] = *next;
        return true;
    }
    std::optional<crypto::Certificate> current(std::string_view address) const override {
        const std::lock_guard<std::mutex> lock(mu_);
        const auto it = keys.find(std::string(address));
        if (it == keys.end()) return std::nullopt;
        return it->second.cert;
    }
    void superseded(std::string_view /*address*/, const std::string& /*reason*/) override {}

    int pool = 8;
    int issued = 0;  // each one is a notice due
    std::map<std::string, TestIdentity> keys;
    std::map<std::string, sealmilter::keys::IssuedRecord> records;

private:
    mutable std::mutex mu_;
};

std::string open_with(const std::string& message, const TestIdentity& id) {
    crypto::StringSink out;
    const auto r = core::decrypt_message(*sealmilter::testing::parse_message(message), id.material(), "\r\n", out);
    return r.status == crypto::DecryptStatus::Ok ? out.out : "";
}

const std::string kMsg =
    "From: Bank <noreply@bank.example>\r\n"
    "To: new@customers.bank.example\r\n"
    "Subject: Statement\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "\r\n"
    "Your balance is 1.000,00 EUR.\r\n";

class IssueTransactionTest : public ::testing::Test {
protected:
    void SetUp() override {
        issuer_ = std::make_shared<FakeIssuer>();
        issued_source_ = std::make_unique<lookup::IssuedSource>(issuer_);
        validator_ = std::make_unique<lookup::Validator>(lookup::ValidatorOptions{});
        chain_ = std::make_unique<lookup::Chain>(
            std::vector<std::string>{"issued", "directory"},
            std::vector<lookup::CertificateSource*>{issued_source_.get(), &directory_}, *validator_, nullptr,
            lookup::EncryptTo::AllValid);
        rebuild({});
    }
    void rebuild(const std::function<void(milter::Services&)>& tweak) {
        auto s = std::make_shared<milter::Services>();
        s->resolver = std::make_shared<lookup::Resolver>(*chain_);
        s->plan.policy = core::PolicyTable::parse("@customers.bank.example issue\n* opportunistic\n", "policy");
        s->plan.archive = archive_.cert;
        s->spool_dir = "/tmp";
        s->issuer = issuer_;
        s->log = sealmilter::base::Logger::to_function(
            [this](sealmilter::base::LogLevel, const std::string& l) { logs_.push_back(l); });
        if (tweak) tweak(*s);
        services_ = s;
    }
    milter::EomResult run(const std::vector<std::string>& rcpts, std::vector<milter::Reply>* replies = nullptr) {
        mta_ = FakeMta{};
        milter::Transaction tx(services_, "S1");
        tx.mail_from("<noreply@bank.example>");
        for (const auto& r : rcpts) {
            const milter::Reply rep = tx.recipient("<" + r + ">");
            if (replies != nullptr) replies->push_back(rep);
        }
        const auto m = sealmilter::testing::parse_message(kMsg);
        for (const auto& f : m->headers) tx.header(f.name, f.value);
        m->body.for_each_chunk([&](std::string_view c) { tx.body(c.data(), c.size()); });
        return tx.end_of_message("4ISSUE1", mta_, reinjector_);
    }
    std::string delivered() const {
        const auto m = sealmilter::testing::parse_message(kMsg);
        std::string out;
        for (const auto& f : core::apply_edits(m->headers, mta_.edits)) out += core::serialize_field(f, "\r\n");
        return out + "\r\n" + mta_.body.out;
    }
    bool logged(const std::string& needle) const {
        return std::any_of(logs_.begin(), logs_.end(), [&](const std::string& l) { return l.find(needle) != std::string::npos; });
    }

    TestIdentity archive_ = make_identity({.email = "archive@bank.example"});
    std::shared_ptr<FakeIssuer> issuer_;
    std::unique_ptr<lookup::IssuedSource> issued_source_;
    ScriptedSource directory_{"directory"};
    std::unique_ptr<lookup::Validator> validator_;
    std::unique_ptr<lookup::Chain> chain_;
    std::shared_ptr<const milter::Services> services_;
    std::vector<std::string> logs_;
    FakeMta mta_;
    FakeReinjector reinjector_;
};

TEST_F(IssueTransactionTest, AQuotedLocalPartIsRefusedAtRcptWithTheReason) {
    std::vector<milter::Reply> replies;
    run({"\"john smith\"@customers.bank.example", "new@customers.bank.example"}, &replies);
    ASSERT_EQ(replies.size(), 2u);
    EXPECT_FALSE(replies[0].accept);
    EXPECT_EQ(replies[0].code, "550");
    EXPECT_EQ(replies[0].xcode, "5.7.1");
    EXPECT_NE(replies[0].text.find("quoted local part, which a certificate cannot name"), std::string::npos)
        << replies[0].text;
    EXPECT_TRUE(replies[1].accept);
    EXPECT_EQ(issuer_->issued, 1);  // only the certifiable one
}

TEST_F(IssueTransactionTest, AnEmptyPoolTempfailsAtRcpt) {
    issuer_->pool = 0;
    std::vector<milter::Reply> replies;
    run({"new@customers.bank.example"}, &replies);
    ASSERT_EQ(replies.size(), 1u);
    EXPECT_FALSE(replies[0].accept);
    EXPECT_TRUE(replies[0].temporary);
    EXPECT_EQ(replies[0].code, "451");
    EXPECT_EQ(replies[0].xcode, "4.7.1");
    EXPECT_EQ(issuer_->issued, 0);
}

TEST_F(IssueTransactionTest, WithoutAnIssuerAnIssueRecipientIsRefusedAsRequire) {
    rebuild([](milter::Services& s) { s.issuer = nullptr; });
    std::vector<milter::Reply> replies;
    run({"new@customers.bank.example"}, &replies);
    ASSERT_EQ(replies.size(), 1u);
    EXPECT_EQ(replies[0].code, "550");
    EXPECT_NE(replies[0].text.find("issuing certificates is not configured"), std::string::npos) << replies[0].text;
}

TEST_F(IssueTransactionTest, ANewAddressGetsACertificateAndTheMessageIsEncryptedToIt) {
    std::vector<milter::Reply> replies;
    const auto r = run({"new@customers.bank.example"}, &replies);
    ASSERT_TRUE(replies.at(0).accept);
    ASSERT_EQ(r.verdict, milter::EomResult::Verdict::Accept) << r.summary;
    ASSERT_EQ(issuer_->issued, 1);
    ASSERT_TRUE(mta_.body_replaced);
    const std::string message = delivered();
    const std::string plain = open_with(message, issuer_->keys.at("new@customers.bank.example"));
    EXPECT_NE(plain.find("Your balance is 1.000,00 EUR."), std::string::npos) << plain;
    EXPECT_NE(open_with(message, archive_).find("Your balance is"), std::string::npos);  // crypto.archive_cert too
    EXPECT_TRUE(logged("4ISSUE1: rcpt=<new@customers.bank.example> certificate issued: sha256="));
    EXPECT_TRUE(logged("outcome=encrypt"));
}

TEST_F(IssueTransactionTest, TheSecondMessageGoesToTheSameCertificateWithoutASecondIssue) {
    ASSERT_EQ(run({"new@customers.bank.example"}).verdict, milter::EomResult::Verdict::Accept);
    const std::string first = delivered();
    const auto r = run({"new@customers.bank.example"});
    ASSERT_EQ(r.verdict, milter::EomResult::Verdict::Accept) << r.summary;
    EXPECT_EQ(issuer_->issued, 1);  // no second certificate, so no second notice
    const TestIdentity& key = issuer_->keys.at("new@customers.bank.example");
    EXPECT_NE(open_with(delivered(), key).find("Your balance is"), std::string::npos);
    EXPECT_NE(open_with(first, key).find("Your balance is"), std::string::npos);
    ASSERT_FALSE(r.details.decisions.empty());
    EXPECT_EQ(r.details.decisions[0].outcome, core::Outcome::Encrypt);
    EXPECT_NE(r.details.decisions[0].reason.find("via issued"), std::string::npos) << r.details.decisions[0].reason;
}

TEST_F(IssueTransactionTest, OneNoticeForTheFirstMessageNoneForTheSecond) {
    milter::NoticeOptions o;
    o.notice.from = "notices@bank.example";
    o.notice.pickup_url = "https://secure.bank.example";
    auto sent = std::make_shared<FakeReinjector>();
    milter::NoticeWorker worker(issuer_, sent, o, {}, {}, sealmilter::base::Logger::to_function([](auto, const auto&) {}));
    ASSERT_EQ(run({"new@customers.bank.example"}).verdict, milter::EomResult::Verdict::Accept);
    EXPECT_EQ(worker.pass(), 1u);
    ASSERT_EQ(run({"new@customers.bank.example"}).verdict, milter::EomResult::Verdict::Accept);
    EXPECT_EQ(worker.pass(), 0u);
    ASSERT_EQ(sent->copies.size(), 1u);
    EXPECT_EQ(sent->copies[0].rcpts, std::vector<std::string>{"new@customers.bank.example"});
    EXPECT_EQ(sent->copies[0].message.find("BEGIN"), std::string::npos);  // no key in a notice
    // The notice itself is never encrypted: it is the composed text/plain + text/html mail.
    EXPECT_NE(sent->copies[0].message.find("multipart/alternative"), std::string::npos);
    EXPECT_EQ(sent->copies[0].message.find("pkcs7-mime"), std::string::npos);
}

TEST_F(IssueTransactionTest, DryRunIssuesNothingAndLeavesTheMessage) {
    rebuild([](milter::Services& s) { s.plan.dry_run = true; });
    std::vector<milter::Reply> replies;
    const auto r = run({"new@customers.bank.example"}, &replies);
    EXPECT_TRUE(replies.at(0).accept);
    EXPECT_EQ(r.verdict, milter::EomResult::Verdict::Accept);
    EXPECT_EQ(issuer_->issued, 0);
    EXPECT_FALSE(mta_.body_replaced);
    EXPECT_TRUE(logged("dry-run: rcpt=<new@customers.bank.example> mode=issue outcome=issue"));
}

TEST_F(IssueTransactionTest, AFailureToIssueAtEndOfMessageTempfailsTheMessage) {
    // A key pair was ready at RCPT; another message took the last one before this end of data.
    milter::Transaction tx(services_, "S1");
    tx.mail_from("<noreply@bank.example>");
    ASSERT_TRUE(tx.recipient("<new@customers.bank.example>").accept);
    issuer_->pool = 0;
    const auto m = sealmilter::testing::parse_message(kMsg);
    for (const auto& f : m->headers) tx.header(f.name, f.value);
    m->body.for_each_chunk([&](std::string_view c) { tx.body(c.data(), c.size()); });
    const auto r = tx.end_of_message("4ISSUE2", mta_, reinjector_);
    EXPECT_EQ(r.verdict, milter::EomResult::Verdict::Tempfail);
    EXPECT_EQ(r.reply.code, "451");
    EXPECT_EQ(r.reply.xcode, "4.7.1");
    EXPECT_FALSE(mta_.body_replaced);
    EXPECT_TRUE(logged("no certificate issued: no key pair is ready"));
}

TEST_F(IssueTransactionTest, RequireUnderNoCertActionIssueIssuesToo) {
    rebuild([](milter::Services& s) {
        s.plan.policy = core::PolicyTable::parse("@customers.bank.example require\n", "policy");
        s.plan.policy_options.no_cert_issue = true;
    });
    const auto r = run({"new@customers.bank.example"});
    ASSERT_EQ(r.verdict, milter::EomResult::Verdict::Accept) << r.summary;
    EXPECT_EQ(issuer_->issued, 1);
    EXPECT_NE(open_with(delivered(), issuer_->keys.at("new@customers.bank.example")).find("Your balance"),
              std::string::npos);
}

}  // namespace
