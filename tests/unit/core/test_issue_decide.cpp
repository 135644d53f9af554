// Policy mode `issue` and policy.no_cert_action = issue (issue 13, docs/issuing.md): a definite
// miss becomes Outcome::Issue (accepted at RCPT), a failed lookup tempfails as require, a found
// certificate encrypts; an Issue nobody resolved tempfails the message (never plaintext), and
// in dry run the message is left unchanged.
#include "core/decide.hpp"
#include "core/plan.hpp"
#include "tests/support/messages.hpp"
#include "tests/support/test_pki.hpp"

#include <gtest/gtest.h>

namespace core = sealmilter::core;
namespace lookup = sealmilter::lookup;
using sealmilter::testing::make_identity;

namespace {

lookup::LookupResult result(const std::string& email, lookup::Outcome o) {
    lookup::LookupResult r;
    r.email = email;
    r.outcome = o;
    r.source = "directory";
    if (o == lookup::Outcome::Found) r.selected = {make_identity({.email = email}).cert};
    r.reason = o == lookup::Outcome::NotFound ? "directory: HTTP 404" : "directory: timeout";
    return r;
}

const core::PolicyTable& policy() {
    static const core::PolicyTable t = core::PolicyTable::parse(
        "@customers.bank.example issue\n"
        "@partner.example require\n"
        "@signed.example issue+sign\n"
        "* opportunistic\n",
        "policy");
    return t;
}

TEST(IssuePolicy, ModeParsesAndPrints) {
    EXPECT_EQ(core::parse_mode("issue"), core::Mode::Issue);
    EXPECT_STREQ(core::to_string(core::Mode::Issue), "issue");
    EXPECT_STREQ(core::to_string(core::Outcome::Issue), "issue");
    const auto m = policy().lookup("x@signed.example", core::Mode::Opportunistic);
    EXPECT_EQ(m.mode, core::Mode::Issue);
    EXPECT_EQ(m.sign, true);
    EXPECT_EQ(policy().lookup("x@other.example", core::Mode::Issue).mode, core::Mode::Opportunistic);
    EXPECT_EQ(core::PolicyTable::parse("", "p").lookup("x@other.example", core::Mode::Issue).mode, core::Mode::Issue);
}

struct IssueRow {
    const char* name;
    std::string rcpt;
    lookup::Outcome lookup;
    bool no_cert_issue;
    core::Outcome expect;
    const char* rcpt_reply_prefix;  // "" = accepted at RCPT
};

class IssueTable : public ::testing::TestWithParam<IssueRow> {};

TEST_P(IssueTable, Row) {
    const IssueRow& row = GetParam();
    core::PolicyOptions o;
    o.no_cert_issue = row.no_cert_issue;
    const lookup::LookupResult lr = result(row.rcpt, row.lookup);
    const core::RecipientDecision d = core::decide_recipient(row.rcpt, policy(), o, false, &lr);
    EXPECT_EQ(d.outcome, row.expect) << row.name << ": " << d.reason;
    EXPECT_EQ(core::rcpt_reply(d).value_or("").rfind(row.rcpt_reply_prefix, 0), 0u) << row.name;
    if (*row.rcpt_reply_prefix == '\0') {
        EXPECT_FALSE(core::rcpt_reply(d).has_value()) << row.name;
    }
}

INSTANTIATE_TEST_SUITE_P(
    Table, IssueTable,
    ::testing::Values(
        IssueRow{"IssueMissIssues", "a@customers.bank.example", lookup::Outcome::NotFound, false, core::Outcome::Issue, ""},
        IssueRow{"IssueFoundEncrypts", "a@customers.bank.example", lookup::Outcome::Found, false, core::Outcome::Encrypt, ""},
        IssueRow{"IssueLookupErrorTempfailsAtRcpt", "a@customers.bank.example", lookup::Outcome::TempError, false,
                 core::Outcome::Tempfail, "451 4.7.1 "},
        IssueRow{"RequireMissRejectsByDefault", "a@partner.example", lookup::Outcome::NotFound, false, core::Outcome::Reject,
                 "550 5.7.1 "},
        IssueRow{"RequireMissIssuesWithNoCertActionIssue", "a@partner.example", lookup::Outcome::NotFound, true,
                 core::Outcome::Issue, ""},
        IssueRow{"RequireErrorStillTempfails", "a@partner.example", lookup::Outcome::TempError, true, core::Outcome::Tempfail,
                 "451 4.7.1 "},
        IssueRow{"OpportunisticMissStaysPlain", "a@other.example", lookup::Outcome::NotFound, true, core::Outcome::Plain, ""}),
    [](const ::testing::TestParamInfo<IssueRow>& row) { return std::string(row.param.name); });

TEST(IssuePolicy, ATriggerRaisesOpportunisticToRequireWhichIssuesUnderNoCertActionIssue) {
    const auto m = sealmilter::testing::parse_message("To: a@other.example\nSubject: [secure] x\n\nbody\n");
    core::PolicyOptions o;
    o.no_cert_issue = true;
    const auto d = core::decide(*m, {"a@other.example"}, policy(), o, {result("a@other.example", lookup::Outcome::NotFound)});
    EXPECT_EQ(d.recipients[0].mode, core::Mode::Require);
    EXPECT_EQ(d.recipients[0].outcome, core::Outcome::Issue);
}

core::PlanSettings settings(bool dry_run) {
    core::PlanSettings s;
    s.policy = policy();
    s.dry_run = dry_run;
    return s;
}

TEST(IssuePolicy, AnUnresolvedIssueTempfailsTheMessageNeverPlaintext) {
    auto m = sealmilter::testing::parse_message("To: a@customers.bank.example\nSubject: x\n\nbody\n");
    core::TransactionFacts f;
    f.sender = "bank@bank.example";
    f.message = m.get();
    f.recipients = {"a@customers.bank.example"};
    f.lookups = {result("a@customers.bank.example", lookup::Outcome::NotFound)};
    const core::MessagePlan p = core::plan_message(f, settings(false));
    EXPECT_EQ(p.verdict.kind, core::Verdict::Kind::Tempfail);
    EXPECT_EQ(p.verdict.reply.rfind("451 4.7.1 ", 0), 0u) << p.verdict.reply;
    EXPECT_FALSE(p.changes_message());
}

TEST(IssuePolicy, InDryRunAnIssueLeavesTheMessageUnchanged) {
    auto m = sealmilter::testing::parse_message("To: a@customers.bank.example\nSubject: x\n\nbody\n");
    core::TransactionFacts f;
    f.sender = "bank@bank.example";
    f.message = m.get();
    f.recipients = {"a@customers.bank.example"};
    f.lookups = {result("a@customers.bank.example", lookup::Outcome::NotFound)};
    const core::MessagePlan p = core::plan_message(f, settings(true));
    EXPECT_EQ(p.verdict.kind, core::Verdict::Kind::Accept);
    EXPECT_EQ(p.summary.action, core::Action::DryRun);
    ASSERT_EQ(p.summary.decisions.size(), 1u);
    EXPECT_EQ(p.summary.decisions[0].outcome, core::Outcome::Issue);
    EXPECT_FALSE(p.changes_message());
}

}  // namespace
