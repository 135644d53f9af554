// tests/unit/metrics/test_metrics.cpp — the observer's outcomes, the Prometheus series, the
// decision journal, expiry nudges and the rollout report, without a daemon.
#include "metrics/decision_log.hpp"
#include "metrics/expiry.hpp"
#include "metrics/metrics.hpp"
#include "metrics/report.hpp"
#include "tests/support/test_pki.hpp"

#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <unistd.h>

namespace sealmilter {
namespace {

using core::Action;
using core::Mode;
using core::Outcome;
using metrics::RecipientOutcome;

class FixedClock final : public base::Clock {
public:
    explicit FixedClock(std::time_t t) : t_(t) {}
    std::time_t now() const override { return t_; }
    std::time_t t_;
};

core::RecipientDecision decision(const std::string& addr, Mode mode, Outcome o, std::string reason = "") {
    core::RecipientDecision d;
    d.address = addr;
    d.mode = mode;
    d.outcome = o;
    d.reason = std::move(reason);
    return d;
}

core::MessageSummary summary(Action a, std::string reason, std::vector<core::RecipientDecision> ds, bool dry = false) {
    core::MessageSummary s;
    s.action = a;
    s.reason = std::move(reason);
    s.decisions = std::move(ds);
    s.dry_run = dry;
    return s;
}

struct OutcomeRow {
    const char* name;
    Action action;
    const char* reason;
    Outcome own;
    RecipientOutcome want;
};

class EffectiveOutcome : public ::testing::TestWithParam<OutcomeRow> {};

TEST_P(EffectiveOutcome, FollowsTheMessageVerdict) {
    const OutcomeRow& r = GetParam();
    const core::MessageSummary s = summary(r.action, r.reason, {}, r.action == Action::DryRun);
    EXPECT_EQ(metrics::effective_outcome(s, decision("a@b.example", Mode::Opportunistic, r.own)), r.want);
}

INSTANTIATE_TEST_SUITE_P(
    Rows, EffectiveOutcome,
    ::testing::Values(OutcomeRow{"encrypted", Action::Encrypted, "", Outcome::Encrypt, RecipientOutcome::Encrypted},
                      OutcomeRow{"plain_copy", Action::Encrypted, "", Outcome::Plain, RecipientOutcome::Plain},
                      OutcomeRow{"tempfail_all", Action::Tempfailed, "x", Outcome::Encrypt, RecipientOutcome::Tempfailed},
                      OutcomeRow{"refuse_all", Action::Refused, "x", Outcome::Plain, RecipientOutcome::Refused},
                      OutcomeRow{"dry_would_refuse", Action::DryRun, "would refuse: x", Outcome::Encrypt,
                                 RecipientOutcome::Refused},
                      OutcomeRow{"dry_would_tempfail", Action::DryRun, "would tempfail: x", Outcome::Plain,
                                 RecipientOutcome::Tempfailed},
                      OutcomeRow{"dry_unchanged", Action::DryRun, "message left unchanged", Outcome::Encrypt,
                                 RecipientOutcome::Encrypted}),
    [](const auto& row) { return std::string(row.param.name); });

std::string exposition(const metrics::Metrics& m) {
    return prometheus::TextSerializer().Serialize(m.Collect());
}

bool has_line(const std::string& text, const std::string& line) {
    return text.find("\n" + line + "\n") != std::string::npos || text.rfind(line + "\n", 0) == 0;
}

TEST(Metrics, CountsMessagesRecipientsCoverageAndCertificates) {
    FixedClock clock(1800000000);
    metrics::Metrics m(&clock);
    const testing::TestIdentity bob = testing::make_identity({.email = "bob@partner.example", .days_valid = 30});
    core::RecipientDecision enc = decision("bob@partner.example", Mode::Opportunistic, Outcome::Encrypt);
    enc.certificates = {bob.cert};
    const core::MessageSummary s1 =
        summary(Action::Encrypted, "",
                {enc, decision("x@partner.example", Mode::Opportunistic, Outcome::Plain),
                 decision("c@bank.example", Mode::Never, Outcome::Plain, "internal domain")});
    m.message_started();
    m.message_decided({"Q1", &s1, 2000000, true, std::chrono::microseconds(1500)});
    const core::MessageSummary s2 = summary(Action::DryRun, "would refuse: x",
                                            {decision("n@secure.example", Mode::Require, Outcome::Reject)}, true);
    m.message_decided({"Q2", &s2, 10, false, {}});
    m.recipient_refused("S3", decision("n@secure.example", Mode::Require, Outcome::Reject), false);
    m.reinjection(false);
    m.harvested(2);
    m.published();
    m.certificate_issued();
    const std::string t = exposition(m);
    EXPECT_TRUE(has_line(t, "sealmilter_certificates_issued_total 1")) << t;
    EXPECT_TRUE(has_line(t, "sealmilter_harvested_certificates_total 2")) << t;
    EXPECT_TRUE(has_line(t, "sealmilter_published_certificates_total 1")) << t;
    EXPECT_TRUE(has_line(t, "sealmilter_messages_total{outcome=\"encrypted\"} 1")) << t;
    EXPECT_TRUE(has_line(t, "sealmilter_messages_total{outcome=\"dry-run\"} 1")) << t;
    EXPECT_TRUE(has_line(t, "sealmilter_recipients_total{mode=\"opportunistic\",outcome=\"encrypted\"} 1")) << t;
    EXPECT_TRUE(has_line(t, "sealmilter_recipients_total{mode=\"never\",outcome=\"plain\"} 1")) << t;
    EXPECT_TRUE(has_line(t, "sealmilter_recipients_total{mode=\"require\",outcome=\"refused\"} 1")) << t;
    EXPECT_TRUE(has_line(t, "sealmilter_dry_run_recipients_total{mode=\"require\",outcome=\"refused\"} 1")) << t;
    // Internal recipients are outside the coverage: 1 of 2 external ones encrypted.
    EXPECT_TRUE(has_line(t, "sealmilter_encryption_coverage_ratio{class=\"all\"} 0.5")) << t;
    EXPECT_TRUE(has_line(t, "sealmilter_messages_in_flight 1")) << t;
    EXPECT_TRUE(has_line(t, "sealmilter_spooled_messages_total 1")) << t;
    EXPECT_TRUE(has_line(t, "sealmilter_spooled_bytes_total 2000000")) << t;
    EXPECT_TRUE(has_line(t, "sealmilter_transform_duration_seconds_count{size_class=\"<10m\"} 1")) << t;
    EXPECT_TRUE(has_line(t, "sealmilter_reinjections_total{result=\"failed\"} 1")) << t;
    EXPECT_TRUE(has_line(t, "sealmilter_certificate_not_after_earliest_timestamp_seconds{set=\"used\"} " +
                                std::to_string(bob.cert.not_after())))
        << t;
    EXPECT_EQ(t.find("set=\"own\""), std::string::npos) << "no own certificate configured: no series";
    // A day later without mail, the certificate is no longer "used in the last 24 h".
    clock.t_ += 24 * 3600 + 1;
    EXPECT_EQ(exposition(m).find("set=\"used\""), std::string::npos);
    m.message_ended();
    EXPECT_TRUE(has_line(exposition(m), "sealmilter_messages_in_flight 0"));
}

TEST(Metrics, LookupsByStepAndCacheResult) {
    metrics::Metrics m;
    lookup::LookupResult hit;
    hit.outcome = lookup::Outcome::Found;
    hit.source = "cache";
    hit.trace = {{"cache", lookup::Outcome::Found, "", {}, {}}};
    lookup::LookupResult miss;
    miss.outcome = lookup::Outcome::NotFound;
    miss.trace = {{"cache", lookup::Outcome::NotFound, "", {}, {}},
                  {"directory", lookup::Outcome::NotFound, "HTTP 404", {}, std::chrono::microseconds(20000)}};
    lookup::LookupResult stale;
    stale.outcome = lookup::Outcome::Found;
    stale.source = "cache (stale)";
    stale.trace = {{"cache", lookup::Outcome::NotFound, "stale entry from directory (revalidating)", {}, {}},
                   {"directory", lookup::Outcome::TempError, "timeout", {}, std::chrono::microseconds(3000000)},
                   {"cache (stale)", lookup::Outcome::Found, "served stale because a source failed", {}, {}}};
    for (const auto* r : {&hit, &miss, &stale}) m.lookup_done(*r);
    const std::string t = exposition(m);
    EXPECT_TRUE(has_line(t, "sealmilter_lookups_total{result=\"found\",source=\"cache\"} 1")) << t;
    EXPECT_TRUE(has_line(t, "sealmilter_lookups_total{result=\"not-found\",source=\"none\"} 1")) << t;
    EXPECT_TRUE(has_line(t, "sealmilter_lookups_total{result=\"found\",source=\"cache (stale)\"} 1")) << t;
    EXPECT_TRUE(has_line(t, "sealmilter_cache_lookups_total{result=\"hit\"} 1")) << t;
    EXPECT_TRUE(has_line(t, "sealmilter_cache_lookups_total{result=\"miss\"} 1")) << t;
    EXPECT_TRUE(has_line(t, "sealmilter_cache_lookups_total{result=\"expired\"} 1")) << t;
    EXPECT_TRUE(has_line(t, "sealmilter_cache_lookups_total{result=\"stale_served\"} 1")) << t;
    EXPECT_TRUE(has_line(t, "sealmilter_lookup_duration_seconds_count{source=\"directory\"} 2")) << t;
    EXPECT_TRUE(has_line(t, "sealmilter_lookup_duration_seconds_bucket{source=\"directory\",le=\"0.025\"} 1")) << t;
}

TEST(ExpiryNudge, OneLinePerCertificatePerDayOnlyForTheOnlyCertificate) {
    FixedClock clock(std::time(nullptr));
    auto m = std::make_shared<metrics::Metrics>(&clock);
    std::vector<std::string> lines;
    metrics::ExpiryNudge nudge(10, base::Logger::to_function([&](base::LogLevel, const std::string& l) { lines.push_back(l); }),
                               m, &clock);
    const testing::TestIdentity soon = testing::make_identity({.email = "a@p.example", .days_valid = 5});
    const testing::TestIdentity later = testing::make_identity({.email = "b@p.example", .days_valid = 300});
    const testing::TestIdentity soon2 = testing::make_identity({.email = "c@p.example", .days_valid = 5, .serial = 77});
    core::RecipientDecision a = decision("a@p.example", Mode::Opportunistic, Outcome::Encrypt);
    a.certificates = {soon.cert};
    core::RecipientDecision b = decision("b@p.example", Mode::Opportunistic, Outcome::Encrypt);
    b.certificates = {later.cert};
    core::RecipientDecision c = decision("c@p.example", Mode::Opportunistic, Outcome::Encrypt);
    c.certificates = {soon2.cert, later.cert};  // not the only one
    const core::MessageSummary s = summary(Action::Encrypted, "", {a, b, c});
    nudge.message_decided({"Q1", &s, 1, false, {}});
    nudge.message_decided({"Q2", &s, 1, false, {}});
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0].rfind("Q1: rcpt=<a@p.example> certificate expires soon: cert=" + soon.cert.fingerprint_sha256(), 0),
              0u)
        << lines[0];
    EXPECT_NE(lines[0].find("days_left=" + std::to_string((soon.cert.not_after() - clock.t_) / 86400) + " "),
              std::string::npos)
        << lines[0];
    EXPECT_TRUE(has_line(exposition(*m), "sealmilter_certificate_expiry_warnings_total 1"));
    clock.t_ += 86401;
    nudge.message_decided({"Q3", &s, 1, false, {}});
    EXPECT_EQ(lines.size(), 2u);
}

TEST(DecisionLog, OneJsonLinePerRecipientAndTheReportReadsIt) {
    char path[] = "/tmp/sealmilter-decisions-XXXXXX";
    const int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    close(fd);
    FixedClock clock(1800000000);
    std::string error;
    auto log = metrics::DecisionLog::open(path, {}, error, &clock);
    ASSERT_TRUE(log) << error;
    core::RecipientDecision bad = decision("n@Secure.Example", Mode::Require, Outcome::Reject, "directory: HTTP 404");
    const core::MessageSummary refused =
        summary(Action::DryRun, "would refuse: n", {bad, decision("b@p.example", Mode::Opportunistic, Outcome::Encrypt)},
                true);
    log->message_decided({"Q1", &refused, 1, false, {}});
    log->recipient_refused("S2", bad, false);
    const core::MessageSummary plain =
        summary(Action::DeliveredPlain, "", {decision("x@p.example", Mode::Opportunistic, Outcome::Plain, "HTTP 404")});
    log->message_decided({"Q3", &plain, 1, false, {}});
    std::ifstream in(path);
    std::stringstream all;
    all << in.rdbuf();
    EXPECT_NE(all.str().find("\"domain\":\"secure.example\""), std::string::npos) << all.str();
    EXPECT_NE(all.str().find("\"reason\":\"message dry-run: would refuse: n\""), std::string::npos) << all.str();
    std::istringstream again(all.str() + "not json\n{\"unix\":5}\n");
    const metrics::Report r = metrics::build_report(again, 0);
    EXPECT_EQ(r.decisions, 4u);
    EXPECT_EQ(r.skipped_lines, 2u);
    ASSERT_EQ(r.rows.size(), 4u);  // live and dry run, p.example and secure.example each
    const std::string table = metrics::format_table(r);
    EXPECT_NE(table.find("secure.example  require        dry-run           0           0           1           0"),
              std::string::npos)
        << table;
    EXPECT_NE(table.find("1x directory: HTTP 404"), std::string::npos) << table;
    std::istringstream none(all.str());
    EXPECT_TRUE(metrics::build_report(none, 1800000001).rows.empty());
    std::remove(path);
}

TEST(Report, ParsesSince) {
    EXPECT_EQ(metrics::parse_since("24h"), 86400);
    EXPECT_EQ(metrics::parse_since("7d"), 7 * 86400);
    EXPECT_EQ(metrics::parse_since("30m"), 1800);
    EXPECT_EQ(metrics::parse_since("90"), 90);
    EXPECT_EQ(metrics::parse_since("0"), 0);
    EXPECT_EQ(metrics::parse_since("1w"), -1);
    EXPECT_EQ(metrics::parse_since("-5h"), -1);
    EXPECT_EQ(metrics::parse_since(""), -1);
}

}  // namespace
}  // namespace sealmilter
