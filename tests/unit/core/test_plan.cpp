// core::plan_message: the whole message plan without a milter — verdicts, trigger stripping,
// dry run, the archive certificate, the structured summary and its log line.
#include "core/decrypt.hpp"
#include "core/plan.hpp"
#include "tests/support/test_pki.hpp"

#include <gtest/gtest.h>

namespace core = sealmilter::core;
namespace crypto = sealmilter::crypto;
namespace lookup = sealmilter::lookup;
using sealmilter::testing::make_identity;

namespace {

std::unique_ptr<core::Message> parse(const std::string& raw) {
    auto m = std::make_unique<core::Message>();
    core::MessageSplitter s(*m);
    s.feed(raw.data(), raw.size());
    s.finish();
    return m;
}

lookup::LookupResult found(const std::string& email, const crypto::Certificate& cert) {
    lookup::LookupResult r;
    r.email = email;
    r.outcome = lookup::Outcome::Found;
    r.source = "directory";
    r.selected = {cert};
    return r;
}

lookup::LookupResult missing(const std::string& email) {
    lookup::LookupResult r;
    r.email = email;
    r.outcome = lookup::Outcome::NotFound;
    r.reason = "directory: HTTP 404";
    return r;
}

core::PlanSettings settings() {
    core::PlanSettings s;
    s.policy = core::PolicyTable::parse("* opportunistic\n", "policy");
    return s;
}

const std::string kTriggered =
    "To: bob@partner.example\r\nSubject: [secure] Salary\r\nX-Sealmilter-Encrypt: yes\r\n\r\nsecret\r\n";

TEST(Plan, TriggersAreStrippedFromTheEditsAndFromEveryWrittenForm) {
    const auto bob = make_identity({.email = "bob@partner.example"});
    auto m = parse(kTriggered);
    core::TransactionFacts f;
    f.recipients = {"bob@partner.example"};
    f.lookups = {found("bob@partner.example", bob.cert)};
    f.message = m.get();
    const core::MessagePlan p = core::plan_message(f, settings());
    ASSERT_EQ(p.verdict.kind, core::Verdict::Kind::Accept) << core::format_summary(p.summary);
    ASSERT_EQ(p.groups.size(), 1u);
    EXPECT_EQ(p.groups[0].kind, core::GroupKind::Encrypt);
    EXPECT_TRUE(p.summary.decisions[0].mode == core::Mode::Require);  // raised by the trigger
    const auto out = core::apply_edits(parse(kTriggered)->headers, p.header_edits);
    std::string head;
    for (const auto& h : out) head += core::serialize_field(h, "\r\n");
    EXPECT_NE(head.find("Subject: Salary\r\n"), std::string::npos) << head;
    EXPECT_EQ(head.find("X-Sealmilter-Encrypt"), std::string::npos) << head;
    // The encrypted body's inner header section and the model no longer carry them either.
    crypto::StringSink body;
    p.groups[0].write(body);
    crypto::StringSink plain;
    const auto whole = parse(head + "\r\n" + body.out);
    ASSERT_EQ(core::decrypt_message(*whole, bob.material(), "\r\n", plain).status, crypto::DecryptStatus::Ok);
    EXPECT_EQ(plain.out.find("X-Sealmilter-Encrypt"), std::string::npos);
    EXPECT_EQ(core::format_summary(p.summary),
              "encrypted (aes-256-cbc) for 1 recipient(s) (1 certificate(s)), 0 copies split off");
    EXPECT_EQ(p.summary.sources, std::vector<std::string>{"directory"});
}

TEST(Plan, DryRunDecidesAndChangesNothing) {
    auto m = parse(kTriggered);
    core::TransactionFacts f;
    f.recipients = {"bob@partner.example"};
    f.lookups = {missing("bob@partner.example")};
    f.message = m.get();
    core::PlanSettings s = settings();
    s.dry_run = true;
    const core::MessagePlan p = core::plan_message(f, s);
    EXPECT_EQ(p.verdict.kind, core::Verdict::Kind::Accept);
    EXPECT_FALSE(p.changes_message());
    EXPECT_TRUE(p.groups.empty());
    EXPECT_TRUE(p.header_edits.empty());
    EXPECT_EQ(p.summary.action, core::Action::DryRun);
    EXPECT_EQ(core::format_summary(p.summary),
              "dry-run: would refuse: <bob@partner.example>: encryption is required and no usable certificate was found");
    EXPECT_EQ(core::format_decision(p.summary.decisions[0], true).rfind("dry-run: rcpt=<bob@partner.example> mode=require outcome=reject", 0), 0u);
}

TEST(Plan, TheArchiveJoinsEveryEncryptedGroupButNotPlainOnes) {
    const auto bob = make_identity({.email = "bob@partner.example"});
    const auto hidden = make_identity({.email = "hidden@partner.example"});
    const auto archive = make_identity({.email = "archive@bank.example"});
    auto m = parse("To: bob@partner.example, carol@partner.example\r\nSubject: x\r\n\r\nhello\r\n");
    core::TransactionFacts f;
    f.recipients = {"bob@partner.example", "carol@partner.example", "hidden@partner.example"};
    f.lookups = {found(f.recipients[0], bob.cert), missing(f.recipients[1]), found(f.recipients[2], hidden.cert)};
    f.message = m.get();
    core::PlanSettings s = settings();
    s.archive = archive.cert;
    const core::MessagePlan p = core::plan_message(f, s);
    ASSERT_EQ(p.groups.size(), 3u);
    for (const core::PlannedGroup& g : p.groups) {
        const bool has_archive = std::any_of(g.certificates.begin(), g.certificates.end(), [&](const crypto::Certificate& c) {
            return c.fingerprint_sha256() == archive.cert.fingerprint_sha256();
        });
        EXPECT_EQ(has_archive, g.kind == core::GroupKind::Encrypt) << core::to_string(g.kind);
    }
    EXPECT_EQ(p.remove, (std::vector<size_t>{1, 2}));
    EXPECT_EQ(p.summary.certificates, 1u);  // the archive is not one of Bob's
    EXPECT_EQ(p.summary.copies, 2u);
}

TEST(Plan, TooBigIsRefusedBeforeAnyDecision) {
    auto m = parse("Subject: x\r\n\r\nhello\r\n");
    core::TransactionFacts f;
    f.message = m.get();
    f.too_big = true;
    core::PlanSettings s = settings();
    s.max_message_size = 1024;
    const core::MessagePlan p = core::plan_message(f, s);
    EXPECT_EQ(p.verdict.kind, core::Verdict::Kind::Reject);
    EXPECT_EQ(p.verdict.reply, "552 5.3.4 message exceeds milter.max_message_size (1024 bytes)");
    EXPECT_EQ(core::format_summary(p.summary), "refused: too big");
    EXPECT_TRUE(p.summary.decisions.empty());
}

}  // namespace
