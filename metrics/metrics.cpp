// metrics/metrics.cpp — Prometheus series from the observer calls (see metrics.hpp).
#include "metrics/metrics.hpp"

#include <algorithm>
#include <chrono>

namespace sealmilter::metrics {
namespace {

constexpr std::time_t kUsedWindow = std::time_t{24} * 3600;  // "certificates used in the last 24 h"

const prometheus::Histogram::BucketBoundaries& latency_buckets() {
    static const prometheus::Histogram::BucketBoundaries b = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                              0.25,  0.5,    1,     2.5,  5,     10,  30};
    return b;
}

double seconds(std::chrono::microseconds us) { return static_cast<double>(us.count()) / 1e6; }

// What the cache step of a lookup says (lookup/chain.cpp cache_step): a miss is recorded
// without a reason, a fresh positive entry is Found, the others say what they were.
const char* cache_result(const lookup::StepTrace& t) {
    if (t.outcome == lookup::Outcome::Found) return "hit";
    if (t.reason.empty()) return "miss";
    if (t.reason.rfind("negative entry", 0) == 0) return "negative_hit";
    if (t.reason.rfind("stale entry", 0) == 0) return "expired";
    return "unusable";  // an entry whose certificates no longer validate
}

}  // namespace

const char* size_class(unsigned long long bytes) noexcept {
    if (bytes < 100ULL * 1024) return "<100k";
    if (bytes < 1024ULL * 1024) return "<1m";
    if (bytes < 10ULL * 1024 * 1024) return "<10m";
    return ">=10m";
}

Metrics::Metrics(const base::Clock* clock) : clock_(clock), registry_(std::make_shared<prometheus::Registry>()) {
    auto& r = *registry_;
    messages_ = &prometheus::BuildCounter()
                     .Name("sealmilter_messages_total")
                     .Help("Messages decided at end of data, by outcome (encrypted, plain, passed, tempfailed, "
                           "refused, dry-run)")
                     .Register(r);
    recipients_ = &prometheus::BuildCounter()
                       .Name("sealmilter_recipients_total")
                       .Help("Envelope recipients by policy mode and outcome (encrypted, plain, refused, tempfailed); "
                             "not in dry run")
                       .Register(r);
    dry_run_recipients_ = &prometheus::BuildCounter()
                               .Name("sealmilter_dry_run_recipients_total")
                               .Help("Dry run: what recipients would have got, by policy mode and outcome")
                               .Register(r);
    coverage_ = &prometheus::BuildGauge()
                     .Name("sealmilter_encryption_coverage_ratio")
                     .Help("Share of external recipients delivered encrypted since start, by class (policy mode, "
                           "or all)")
                     .Register(r);
    in_flight_ = &prometheus::BuildGauge()
                      .Name("sealmilter_messages_in_flight")
                      .Help("SMTP transactions between MAIL FROM and their end")
                      .Register(r)
                      .Add({});
    not_after_ = &prometheus::BuildGauge()
                      .Name("sealmilter_certificate_not_after_earliest_timestamp_seconds")
                      .Help("Earliest notAfter (Unix time) among certificates used in the last 24 h (set=used) and "
                            "among the organisation's own (set=own)")
                      .Register(r);
    lookups_ = &prometheus::BuildCounter()
                    .Name("sealmilter_lookups_total")
                    .Help("Finished certificate lookups by the step that answered (none: no step did) and result")
                    .Register(r);
    cache_ = &prometheus::BuildCounter()
                  .Name("sealmilter_cache_lookups_total")
                  .Help("Cache steps by result: hit, miss, negative_hit, expired, unusable, stale_served")
                  .Register(r);
    lookup_seconds_ = &prometheus::BuildHistogram()
                           .Name("sealmilter_lookup_duration_seconds")
                           .Help("Time a source took for the batch a lookup was part of, by source")
                           .Register(r);
    transform_seconds_ = &prometheus::BuildHistogram()
                              .Name("sealmilter_transform_duration_seconds")
                              .Help("Time to write the encrypted message at end of data, by body size class")
                              .Register(r);
    auto& spool = prometheus::BuildCounter()
                      .Name("sealmilter_spooled_bytes_total")
                      .Help("Body bytes of messages that went past milter.memory_threshold into milter.spool_dir")
                      .Register(r);
    spooled_bytes_ = &spool.Add({});
    spooled_messages_ = &prometheus::BuildCounter()
                             .Name("sealmilter_spooled_messages_total")
                             .Help("Messages whose body was spooled to milter.spool_dir")
                             .Register(r)
                             .Add({});
    reinjections_ = &prometheus::BuildCounter()
                         .Name("sealmilter_reinjections_total")
                         .Help("Split-off copies handed to milter.reinject, by result (ok, failed)")
                         .Register(r);
    harvested_ = &prometheus::BuildCounter()
                      .Name("sealmilter_harvested_certificates_total")
                      .Help("Certificates kept from inbound signed mail")
                      .Register(r)
                      .Add({});
    issued_ = &prometheus::BuildCounter()
                   .Name("sealmilter_certificates_issued_total")
                   .Help("Certificates our CA issued for recipients who had none (issue 13)")
                   .Register(r)
                   .Add({});
    published_ = &prometheus::BuildCounter()
                      .Name("sealmilter_published_certificates_total")
                      .Help("Harvested certificates the directory accepted (directory.publish_url)")
                      .Register(r)
                      .Add({});
    expiry_warnings_ = &prometheus::BuildCounter()
                            .Name("sealmilter_certificate_expiry_warnings_total")
                            .Help("Recipients whose only certificate expires within lookup.expiry_warn_days")
                            .Register(r)
                            .Add({});
    // Series that exist from the start, so a rate() has its zero.
    for (const char* o : {"ok", "failed"}) reinjections_->Add({{"result", o}});
}

Metrics::~Metrics() = default;

void Metrics::message_started() noexcept { in_flight_->Increment(); }
void Metrics::message_ended() noexcept { in_flight_->Decrement(); }

void Metrics::recipient_refused(const std::string& /*tag*/, const core::RecipientDecision& d, bool dry_run) noexcept {
    try {
        const RecipientOutcome o =
            d.outcome == core::Outcome::Tempfail ? RecipientOutcome::Tempfailed : RecipientOutcome::Refused;
        (dry_run ? dry_run_recipients_ : recipients_)
            ->Add({{"mode", core::to_string(d.mode)}, {"outcome", to_string(o)}})
            .Increment();
    } catch (...) {  // a failed allocation drops the count, never the mail
    }
}

void Metrics::count_recipient(const core::MessageSummary& s, const core::RecipientDecision& d) noexcept {
    const RecipientOutcome o = effective_outcome(s, d);
    (s.dry_run ? dry_run_recipients_ : recipients_)
        ->Add({{"mode", core::to_string(d.mode)}, {"outcome", to_string(o)}})
        .Increment();
    if (s.dry_run || is_internal(d) || (o != RecipientOutcome::Encrypted && o != RecipientOutcome::Plain)) return;
    const bool encrypted = o == RecipientOutcome::Encrypted;
    const std::time_t now = base::now_from(clock_);
    base::MutexLock lock(mutex_);
    for (const char* cls : {"all", core::to_string(d.mode)}) {
        Coverage& c = coverage_counts_[cls];
        c.delivered += 1;
        c.encrypted += encrypted ? 1 : 0;
    }
    if (encrypted)
        for (const crypto::Certificate& c : d.certificates) used_[c.fingerprint_sha256()] = {c.not_after(), now};
}

void Metrics::message_decided(const MessageReport& r) noexcept {
    try {
        const core::MessageSummary& s = *r.summary;
        messages_->Add({{"outcome", core::to_string(s.action)}}).Increment();
        for (const core::RecipientDecision& d : s.decisions) count_recipient(s, d);
        if (r.spooled) {
            spooled_messages_->Increment();
            spooled_bytes_->Increment(static_cast<double>(r.body_bytes));
        }
        if (r.transform.count() > 0)
            transform_seconds_->Add({{"size_class", size_class(r.body_bytes)}}, latency_buckets())
                .Observe(seconds(r.transform));
    } catch (...) {
    }
}

void Metrics::reinjection(bool ok) noexcept {
    try {
        reinjections_->Add({{"result", ok ? "ok" : "failed"}}).Increment();
    } catch (...) {
    }
}

void Metrics::certificate_issued() noexcept { issued_->Increment(); }
void Metrics::harvested(size_t certificates) noexcept { harvested_->Increment(static_cast<double>(certificates)); }

void Metrics::published() noexcept { published_->Increment(); }

void Metrics::expiry_warning() noexcept { expiry_warnings_->Increment(); }

void Metrics::lookup_done(const lookup::LookupResult& r) noexcept {
    try {
        lookups_->Add({{"source", r.source.empty() ? "none" : r.source}, {"result", lookup::to_string(r.outcome)}})
            .Increment();
        for (const lookup::StepTrace& t : r.trace) {
            if (t.step == "cache") {
                cache_->Add({{"result", cache_result(t)}}).Increment();
            } else if (t.step == "cache (stale)") {
                cache_->Add({{"result", "stale_served"}}).Increment();
            } else {
                lookup_seconds_->Add({{"source", t.step}}, latency_buckets()).Observe(seconds(t.elapsed));
            }
        }
    } catch (...) {
    }
}

void Metrics::set_own_certificates(const std::vector<crypto::Certificate>& certs) noexcept {
    std::optional<std::time_t> earliest;
    for (const crypto::Certificate& c : certs)
        if (!earliest || c.not_after() < *earliest) earliest = c.not_after();
    base::MutexLock lock(mutex_);
    own_earliest_ = earliest;
}

// Derived gauges: computed from the bookkeeping at scrape time, so "the last 24 h" is true
// even when no mail came for a day. A set with no certificate has no series.
void Metrics::refresh() const {
    const std::time_t now = base::now_from(clock_);
    base::MutexLock lock(mutex_);
    auto& used = used_;
    std::optional<std::time_t> earliest;
    for (auto it = used.begin(); it != used.end();) {
        if (now - it->second.second > kUsedWindow) {
            it = used.erase(it);
            continue;
        }
        if (!earliest || it->second.first < *earliest) earliest = it->second.first;
        ++it;
    }
    const auto set_or_drop = [&](const char* set, std::optional<std::time_t> v) {
        prometheus::Gauge& g = not_after_->Add({{"set", set}});
        if (v) {
            g.Set(static_cast<double>(*v));
        } else {
            not_after_->Remove(&g);
        }
    };
    set_or_drop("used", earliest);
    set_or_drop("own", own_earliest_);
    for (const auto& [cls, c] : coverage_counts_)
        if (c.delivered > 0)
            coverage_->Add({{"class", cls}}).Set(static_cast<double>(c.encrypted) / static_cast<double>(c.delivered));
}

std::vector<prometheus::MetricFamily> Metrics::Collect() const {
    refresh();
    return registry_->Collect();
}

}  // namespace sealmilter::metrics
