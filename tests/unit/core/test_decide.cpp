// Per-recipient verdicts and envelope grouping (SPEC §4): policy x lookup outcome, Bcc
// privacy, RSA/EC separation, triggers.
#include "tests/support/messages.hpp"
#include "core/decide.hpp"
#include "core/decrypt.hpp"
#include "core/plan.hpp"
#include "tests/support/test_pki.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace core = sealmilter::core;
namespace crypto = sealmilter::crypto;
namespace lookup = sealmilter::lookup;
using sealmilter::testing::make_identity;

namespace {

std::unique_ptr<core::Message> parse(const std::string& raw) { return sealmilter::testing::parse_message(raw); }

lookup::LookupResult found(const std::string& email, const std::string& key = "rsa2048") {
    lookup::LookupResult r;
    r.email = email;
    r.outcome = lookup::Outcome::Found;
    r.source = "directory";
    r.selected = {make_identity({.email = email, .key = key}).cert};
    return r;
}

lookup::LookupResult none(const std::string& email, lookup::Outcome o = lookup::Outcome::NotFound) {
    lookup::LookupResult r;
    r.email = email;
    r.outcome = o;
    r.reason = o == lookup::Outcome::NotFound ? "directory: HTTP 404" : "directory: timeout";
    return r;
}

const core::PolicyTable& policy() {
    static const core::PolicyTable t = core::PolicyTable::parse(
        "@customers.bank.example require\n"
        "nosecret@partner.example never\n"
        "* opportunistic\n",
        "policy");
    return t;
}

const std::string kHeaders =
    "From: Bank <noreply@bank.example>\n"
    "To: \"Doe, Jane\" <jane@customers.bank.example>, bob@partner.example\n"
    "Cc: Team: carol@partner.example, =?UTF-8?B?SsO2cmc=?= <joerg@partner.example>;\n"
    "Subject: Statement\n\nbody\n";

TEST(Decide, VisibleRecipientsParseDisplayNamesGroupsAndEncodedWords) {
    const auto v = core::visible_recipients(*parse(kHeaders));
    EXPECT_EQ(v, (std::vector<std::string>{"jane@customers.bank.example", "bob@partner.example",
                                           "carol@partner.example", "joerg@partner.example"}));
}

TEST(Decide, ToAndCcShareOneEnvelopeBccGetsItsOwn) {
    const auto m = parse(kHeaders);
    const std::vector<std::string> rcpts{"jane@customers.bank.example", "bob@partner.example", "hidden@partner.example"};
    const auto d = core::decide(*m, rcpts, policy(), {}, {found(rcpts[0]), found(rcpts[1]), found(rcpts[2])});
    ASSERT_EQ(d.groups.size(), 2u);
    EXPECT_TRUE(d.groups[0].encrypted);
    EXPECT_EQ(d.groups[0].recipients, (std::vector<size_t>{0, 1}));
    EXPECT_EQ(d.groups[0].certificates.size(), 2u);
    EXPECT_TRUE(d.recipients[2].bcc);
    EXPECT_EQ(d.groups[1].recipients, (std::vector<size_t>{2}));
    ASSERT_EQ(d.groups[1].certificates.size(), 1u);
    EXPECT_EQ(d.groups[1].certificates[0].fingerprint_sha256(), d.recipients[2].certificates[0].fingerprint_sha256());
}

TEST(Decide, RsaAndEcRecipientsNeverShareAnEnvelope) {
    const auto m = parse(kHeaders);
    const std::vector<std::string> rcpts{"bob@partner.example", "carol@partner.example"};
    const auto d = core::decide(*m, rcpts, policy(), {}, {found(rcpts[0]), found(rcpts[1], "ec-p256")});
    ASSERT_EQ(d.groups.size(), 2u);
    EXPECT_EQ(d.groups[0].recipients, (std::vector<size_t>{0}));
    EXPECT_EQ(d.groups[1].recipients, (std::vector<size_t>{1}));
    EXPECT_EQ(d.groups[1].certificates[0].key_kind(), sealmilter::crypto::KeyKind::Ec);
}

struct OutcomeRow {
    const char* name;
    std::string rcpt;
    lookup::Outcome lookup;
    bool no_cert_tempfail;
    bool lookup_error_pass;
    core::Outcome expect;
    const char* reply_prefix;
};

class OutcomeTable : public ::testing::TestWithParam<OutcomeRow> {};

TEST_P(OutcomeTable, Row) {
    const auto& row = GetParam();
    core::PolicyOptions o;
    o.no_cert_tempfail = row.no_cert_tempfail;
    o.lookup_error_pass = row.lookup_error_pass;
    o.internal_domains = {"branch.bank.example"};
    const auto lr = row.lookup == lookup::Outcome::Found ? found(row.rcpt) : none(row.rcpt, row.lookup);
    const auto d = core::decide(*parse(kHeaders), {row.rcpt}, policy(), o, {lr});
    ASSERT_EQ(d.recipients.size(), 1u);
    EXPECT_EQ(d.recipients[0].outcome, row.expect) << row.name << ": " << d.recipients[0].reason;
    EXPECT_EQ(d.recipients[0].reply.rfind(row.reply_prefix, 0), 0u) << row.name << ": " << d.recipients[0].reply;
}

INSTANTIATE_TEST_SUITE_P(
    Table, OutcomeTable,
    ::testing::Values(
        OutcomeRow{"require_found", "jane@customers.bank.example", lookup::Outcome::Found, false, false, core::Outcome::Encrypt, ""},
        OutcomeRow{"require_none_reject", "jane@customers.bank.example", lookup::Outcome::NotFound, false, false, core::Outcome::Reject, "550 5.7.1 "},
        OutcomeRow{"require_none_tempfail", "jane@customers.bank.example", lookup::Outcome::NotFound, true, false, core::Outcome::Tempfail, "451 4.7.1 "},
        OutcomeRow{"require_error_tempfail", "jane@customers.bank.example", lookup::Outcome::TempError, false, true, core::Outcome::Tempfail, "451 4.7.1 "},
        OutcomeRow{"opportunistic_found", "bob@partner.example", lookup::Outcome::Found, false, false, core::Outcome::Encrypt, ""},
        OutcomeRow{"opportunistic_none_plain", "bob@partner.example", lookup::Outcome::NotFound, false, false, core::Outcome::Plain, ""},
        OutcomeRow{"opportunistic_error_tempfail", "bob@partner.example", lookup::Outcome::TempError, false, false, core::Outcome::Tempfail, "451 4.7.1 "},
        OutcomeRow{"opportunistic_error_pass", "bob@partner.example", lookup::Outcome::TempError, false, true, core::Outcome::Plain, ""},
        OutcomeRow{"never_even_with_cert", "nosecret@partner.example", lookup::Outcome::Found, false, false, core::Outcome::Plain, ""},
        OutcomeRow{"internal_domain", "colleague@branch.bank.example", lookup::Outcome::Found, false, false, core::Outcome::Plain, ""}),
    [](const auto& row_info) { return std::string(row_info.param.name); });

TEST(Decide, SubjectTagOrHeaderRaisesOpportunisticToRequire) {
    const std::string rcpt = "bob@partner.example";
    for (const std::string& raw : {std::string("To: bob@partner.example\nSubject: [SECURE] salary\n\nx\n"),
                                  std::string("To: bob@partner.example\nX-Sealmilter-Encrypt: yes\n\nx\n")}) {
        const auto d = core::decide(*parse(raw), {rcpt}, policy(), {}, {none(rcpt)});
        EXPECT_TRUE(d.raised_to_require);
        EXPECT_EQ(d.recipients[0].mode, core::Mode::Require);
        EXPECT_EQ(d.recipients[0].outcome, core::Outcome::Reject);
    }
    // never stays never
    const auto d = core::decide(*parse("To: x\nSubject: [secure]\n\n"), {"nosecret@partner.example"}, policy(), {},
                                {found("nosecret@partner.example")});
    EXPECT_EQ(d.recipients[0].outcome, core::Outcome::Plain);
    // no trigger: stays opportunistic
    EXPECT_FALSE(core::has_trigger(*parse("Subject: secure stuff\nX-Sealmilter-Encrypt: no\n\n"), {}));
}

TEST(Decide, PlainAndEncryptedRecipientsSplit) {
    const auto m = parse(kHeaders);
    const std::vector<std::string> rcpts{"bob@partner.example", "carol@partner.example"};
    const auto d = core::decide(*m, rcpts, policy(), {}, {found(rcpts[0]), none(rcpts[1])});
    ASSERT_EQ(d.groups.size(), 2u);
    EXPECT_TRUE(d.groups[0].encrypted);
    EXPECT_FALSE(d.groups[1].encrypted);
    EXPECT_EQ(d.groups[1].recipients, (std::vector<size_t>{1}));
}

}  // namespace

namespace {

// One decision and one reply text serve RCPT time and end of data (they used to be two copies
// that disagreed: "... no usable certificate was found yet; ..." at end of data).
struct ReplyRow {
    const char* name;
    lookup::Outcome lookup;
    bool no_cert_tempfail;
    const char* rcpt_reply;  // "" = accepted at RCPT
};

class RcptReplyTable : public ::testing::TestWithParam<ReplyRow> {};

TEST_P(RcptReplyTable, Row) {
    const ReplyRow& row = GetParam();
    const std::string rcpt = row.lookup == lookup::Outcome::Found ? "bob@partner.example" : "jane@customers.bank.example";
    core::PolicyOptions o;
    o.no_cert_tempfail = row.no_cert_tempfail;
    const lookup::LookupResult lr = row.lookup == lookup::Outcome::Found ? found(rcpt) : none(rcpt, row.lookup);
    const core::RecipientDecision at_rcpt = core::decide_recipient(rcpt, policy(), o, false, &lr);
    EXPECT_EQ(core::rcpt_reply(at_rcpt).value_or(""), row.rcpt_reply);
    const auto at_eom = core::decide(*parse(kHeaders), {rcpt}, policy(), o, {lr});
    ASSERT_EQ(at_eom.recipients.size(), 1u);
    if (*row.rcpt_reply != '\0') {
        EXPECT_EQ(at_eom.recipients[0].reply, row.rcpt_reply);
    }
}

INSTANTIATE_TEST_SUITE_P(
    OneText, RcptReplyTable,
    ::testing::Values(
        ReplyRow{"RequireMissRejects", lookup::Outcome::NotFound, false,
                 "550 5.7.1 <jane@customers.bank.example>: encryption is required and no usable certificate was found"},
        ReplyRow{"RequireMissTempfailsWhenConfigured", lookup::Outcome::NotFound, true,
                 "451 4.7.1 <jane@customers.bank.example>: encryption is required but no usable certificate was "
                 "found; try again later"},
        ReplyRow{"RequireLookupErrorTempfails", lookup::Outcome::TempError, false,
                 "451 4.7.1 <jane@customers.bank.example>: encryption is required but the certificate lookup "
                 "failed; try again later"},
        ReplyRow{"FoundIsAccepted", lookup::Outcome::Found, false, ""}),
    [](const ::testing::TestParamInfo<ReplyRow>& row) { return std::string(row.param.name); });

TEST(Decide, OpportunisticLookupErrorIsNotAnsweredAtRcpt) {
    const lookup::LookupResult lr = none("bob@partner.example", lookup::Outcome::TempError);
    const auto d = core::decide_recipient("bob@partner.example", policy(), {}, false, &lr);
    EXPECT_EQ(d.outcome, core::Outcome::Tempfail);  // the message is tempfailed at end of data
    EXPECT_FALSE(core::rcpt_reply(d).has_value());
}

}  // namespace

// core::plan_message: the whole message plan without a milter — verdicts, trigger stripping,
// dry run, the archive certificate, the structured summary and its log line.
namespace {

lookup::LookupResult found_cert(const std::string& email, const crypto::Certificate& cert) {
    lookup::LookupResult r;
    r.email = email;
    r.outcome = lookup::Outcome::Found;
    r.source = "directory";
    r.selected = {cert};
    return r;
}

lookup::LookupResult missing_cert(const std::string& email) {
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
    f.lookups = {found_cert("bob@partner.example", bob.cert)};
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
    f.lookups = {missing_cert("bob@partner.example")};
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
    f.lookups = {found_cert(f.recipients[0], bob.cert), missing_cert(f.recipients[1]), found_cert(f.recipients[2], hidden.cert)};
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
