// bench/bench_metrics.cpp — what the observers cost per message, against the log lines the
// daemon formats for every message anyway (the baseline, same run). bench/metrics.sh runs it.
#include "core/summary.hpp"
#include "metrics/decision_log.hpp"
#include "metrics/metrics.hpp"
#include "tests/support/test_pki.hpp"

#include <benchmark/benchmark.h>
#include <prometheus/text_serializer.h>

#include <cstdio>
#include <unistd.h>

namespace {

using namespace sealmilter;

// A message as the e2e traffic has them: two encrypted recipients and a plain one.
const core::MessageSummary& sample() {
    static const core::MessageSummary s = [] {
        core::MessageSummary m;
        m.action = core::Action::Encrypted;
        m.cipher = "aes-256-cbc";
        m.recipients = 2;
        m.certificates = 2;
        for (const char* who : {"bob@partner.example", "carol@partner.example"}) {
            core::RecipientDecision d;
            d.address = who;
            d.outcome = core::Outcome::Encrypt;
            d.reason = "certificate via directory";
            d.certificates = {testing::make_identity({.email = who}).cert};
            m.decisions.push_back(d);
        }
        core::RecipientDecision p;
        p.address = "plain@other.example";
        p.reason = "directory: HTTP 404; harvest: nothing harvested";
        m.decisions.push_back(p);
        return m;
    }();
    return s;
}

void BM_LogLines(benchmark::State& state) {  // the baseline
    const core::MessageSummary& s = sample();
    for (auto _ : state) {
        std::string line = core::format_summary(s);
        for (const core::RecipientDecision& d : s.decisions) line += core::format_decision(d, false);
        benchmark::DoNotOptimize(line);
    }
}
BENCHMARK(BM_LogLines);

void BM_Metrics(benchmark::State& state) {
    const core::MessageSummary& s = sample();
    metrics::Metrics m;
    lookup::LookupResult r;
    r.outcome = lookup::Outcome::Found;
    r.source = "cache";
    r.trace = {{"cache", lookup::Outcome::Found, "", {}, {}}};
    for (auto _ : state) {
        m.message_started();
        for (size_t i = 0; i < s.decisions.size(); ++i) m.lookup_done(r);
        m.message_decided({"ABC123", &s, 10240, false, std::chrono::microseconds(50)});
        m.message_ended();
    }
}
BENCHMARK(BM_Metrics);

void BM_Journal(benchmark::State& state) {
    const core::MessageSummary& s = sample();
    char path[] = "/tmp/sealmilter-bench-journal-XXXXXX";
    const int fd = mkstemp(path);
    if (fd < 0) {
        state.SkipWithError("mkstemp");
        return;
    }
    close(fd);
    std::string error;
    auto log = metrics::DecisionLog::open(path, {}, error);
    for (auto _ : state) log->message_decided({"ABC123", &s, 10240, false, {}});
    std::remove(path);
}
BENCHMARK(BM_Journal);

void BM_Scrape(benchmark::State& state) {
    const core::MessageSummary& s = sample();
    metrics::Metrics m;
    m.message_decided({"ABC123", &s, 10240, false, std::chrono::microseconds(50)});
    for (auto _ : state) benchmark::DoNotOptimize(prometheus::TextSerializer().Serialize(m.Collect()));
}
BENCHMARK(BM_Scrape);

}  // namespace

BENCHMARK_MAIN();
