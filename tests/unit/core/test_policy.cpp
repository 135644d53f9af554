// The policy table: first match in the order address, @domain, .parent.domain, *.
#include "core/policy.hpp"

#include <gtest/gtest.h>

namespace core = sealmilter::core;

namespace {

constexpr const char* kTable = R"(# recipient               mode
alice@partner.example     never
@customers.bank.example   require
.gov.example              require
@tax.gov.example          opportunistic   # a domain beats its parent
.example                  never
*                         opportunistic
)";

struct MatchRow {
    const char* address;
    core::Mode mode;
    const char* key;
};

class PolicyMatchTest : public ::testing::TestWithParam<MatchRow> {};

TEST_P(PolicyMatchTest, Row) {
    const auto table = core::PolicyTable::parse(kTable, "policy");
    const auto m = table.lookup(GetParam().address, core::Mode::Require);
    EXPECT_EQ(m.mode, GetParam().mode) << GetParam().address;
    EXPECT_EQ(m.key, GetParam().key) << GetParam().address;
}

INSTANTIATE_TEST_SUITE_P(
    Table, PolicyMatchTest,
    ::testing::Values(MatchRow{"alice@partner.example", core::Mode::Never, "alice@partner.example"},
                      MatchRow{"ALICE@Partner.Example", core::Mode::Never, "alice@partner.example"},
                      MatchRow{"bob@partner.example", core::Mode::Never, ".example"},
                      MatchRow{"x@customers.bank.example", core::Mode::Require, "@customers.bank.example"},
                      MatchRow{"x@sub.customers.bank.example", core::Mode::Never, ".example"},
                      MatchRow{"x@agency.gov.example", core::Mode::Require, ".gov.example"},
                      MatchRow{"x@a.b.gov.example", core::Mode::Require, ".gov.example"},
                      MatchRow{"x@gov.example", core::Mode::Never, ".example"},  // .gov.example = subdomains only
                      MatchRow{"x@tax.gov.example", core::Mode::Opportunistic, "@tax.gov.example"},
                      MatchRow{"x@other.org", core::Mode::Opportunistic, "*"},
                      MatchRow{"no-at-sign", core::Mode::Opportunistic, "*"}));

TEST(Policy, DefaultModeWhenNothingMatches) {
    const auto table = core::PolicyTable::parse("@a.example require\n", "p");
    const auto m = table.lookup("x@b.example", core::Mode::Opportunistic);
    EXPECT_EQ(m.mode, core::Mode::Opportunistic);
    EXPECT_EQ(m.key, "");
    EXPECT_EQ(m.line, 0);
    EXPECT_EQ(table.lookup("y@A.EXAMPLE", core::Mode::Never).line, 1);
}

struct BadRow {
    const char* text;
    const char* expect;
};

class PolicyBad : public ::testing::TestWithParam<BadRow> {};

TEST_P(PolicyBad, NamesFileAndLine) {
    try {
        core::PolicyTable::parse(GetParam().text, "/etc/sealmilter/policy");
        FAIL() << "accepted: " << GetParam().text;
    } catch (const core::PolicyError& e) {
        EXPECT_NE(std::string(e.what()).find(GetParam().expect), std::string::npos) << e.what();
    }
}

INSTANTIATE_TEST_SUITE_P(Table, PolicyBad,
                         ::testing::Values(BadRow{"\n@a.example\n", "policy:2: '@a.example' has no mode"},
                                           BadRow{"@a.example always\n", "policy:1: unknown mode 'always'"},
                                           BadRow{"@a.example require now\n", "unexpected 'now'"},
                                           BadRow{"a.example require\n", "is not an address, @domain"},
                                           BadRow{"@ require\n", "is not an address"},
                                           BadRow{"@a@b require\n", "is not an address"},
                                           BadRow{"* never\n*  require\n", "policy:2: '*' already appears on line 1"}));

TEST(Policy, LoadMissingFileIsAnError) {
    EXPECT_THROW(core::PolicyTable::load("/nonexistent/policy"), core::PolicyError);
}

TEST(Policy, InternalDomains) {
    const std::vector<std::string> internal{"bank.example", "Intra.Example"};
    EXPECT_TRUE(core::in_domains("a@bank.example", internal));
    EXPECT_TRUE(core::in_domains("a@branch.BANK.example", internal));
    EXPECT_TRUE(core::in_domains("a@intra.example", internal));
    EXPECT_FALSE(core::in_domains("a@evilbank.example", internal));
    EXPECT_FALSE(core::in_domains("a@bank.example.org", internal));
    EXPECT_FALSE(core::in_domains("no-domain", internal));
}

}  // namespace

// The shipped example parses and means what its comments say.
TEST(Policy, ShippedExampleParses) {
    const auto t = core::PolicyTable::load(std::string(SEALMILTER_SOURCE_DIR) + "/conf/policy");
    EXPECT_EQ(t.size(), 4u);
    EXPECT_EQ(t.lookup("x@agency.gov.example", core::Mode::Never).mode, core::Mode::Require);
    EXPECT_EQ(t.lookup("archive@lists.bank.example", core::Mode::Require).mode, core::Mode::Never);
    // The address of docs/postfix.md's first test is not excluded by a "never" line (issue 15).
    EXPECT_EQ(t.lookup("someone@partner.example", core::Mode::Require).mode, core::Mode::Opportunistic);
}
