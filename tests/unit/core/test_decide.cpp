// Per-recipient verdicts and envelope grouping (SPEC §4): policy x lookup outcome, Bcc
// privacy, RSA/EC separation, triggers.
#include "core/decide.hpp"
#include "tests/support/test_pki.hpp"

#include <gtest/gtest.h>

namespace core = sealmilter::core;
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
