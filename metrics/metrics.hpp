// metrics/metrics.hpp — the daemon's Prometheus metrics (docs/metrics.md lists every name).
//
// Purpose:   counters, gauges and histograms fed by the Observer calls (observer.hpp): the
//            structured MessageSummary of each message, the RCPT-time refusals, each finished
//            lookup (its step trace), re-injections and harvests. Prometheus-cpp (Debian's
//            prometheus-cpp-dev) holds the series and writes the text exposition; this class
//            is a prometheus::Collectable, registered with the Exposer in cli/run. Values that
//            depend on time (the earliest notAfter among certificates used in the last 24 h)
//            or on several counters (the encryption coverage ratio) are computed at scrape time.
//            One Metrics lives as long as the daemon: SIGHUP builds new snapshots that keep
//            feeding the same counters.
// Ownership: owns its registry; the Exposer holds a weak_ptr to it.
// Threads:   every method is thread-safe (prometheus-cpp series are atomic; the certificate
//            and coverage bookkeeping is under one mutex).
// Errors:    never throws out of an observer call.
#pragma once

#include "base/clock.hpp"
#include "base/mutex.hpp"
#include "metrics/observer.hpp"

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <ctime>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace sealmilter::metrics {

class Metrics final : public Observer, public prometheus::Collectable {
public:
    explicit Metrics(const base::Clock* clock = nullptr);
    ~Metrics() override;
    Metrics(const Metrics&) = delete;
    Metrics& operator=(const Metrics&) = delete;

    // Observer
    void message_started() noexcept override;
    void message_ended() noexcept override;
    void recipient_refused(const std::string& tag, const core::RecipientDecision& d, bool dry_run) noexcept override;
    void message_decided(const MessageReport& r) noexcept override;
    void reinjection(bool ok) noexcept override;
    void harvested(size_t certificates) noexcept override;
    // A harvested certificate the directory accepted (lookup::Publisher's on_published).
    void published() noexcept;
    void certificate_issued() noexcept override;
    void lookup_done(const lookup::LookupResult& r) noexcept override;

    // The organisation's own certificates (crypto.archive_cert, harvest.keys today; the key
    // store when it lands): set at start and on every reload.
    void set_own_certificates(const std::vector<crypto::Certificate>& certs) noexcept;
    // A recipient's only certificate expires soon (ExpiryNudge).
    void expiry_warning() noexcept;

    // prometheus::Collectable: derived gauges are refreshed, then every family is collected.
    std::vector<prometheus::MetricFamily> Collect() const override;

private:
    struct Coverage {
        unsigned long long encrypted = 0;
        unsigned long long delivered = 0;  // encrypted + plain
    };
    void count_recipient(const core::MessageSummary& s, const core::RecipientDecision& d) noexcept;
    void refresh() const;

    const base::Clock* clock_;
    std::shared_ptr<prometheus::Registry> registry_;
    prometheus::Family<prometheus::Counter>* messages_;
    prometheus::Family<prometheus::Counter>* recipients_;
    prometheus::Family<prometheus::Counter>* dry_run_recipients_;
    prometheus::Family<prometheus::Gauge>* coverage_;
    prometheus::Gauge* in_flight_;
    prometheus::Family<prometheus::Gauge>* not_after_;
    prometheus::Family<prometheus::Counter>* lookups_;
    prometheus::Family<prometheus::Counter>* cache_;
    prometheus::Family<prometheus::Histogram>* lookup_seconds_;
    prometheus::Family<prometheus::Histogram>* transform_seconds_;
    prometheus::Counter* spooled_bytes_;
    prometheus::Counter* spooled_messages_;
    prometheus::Family<prometheus::Counter>* reinjections_;
    prometheus::Counter* harvested_;
    prometheus::Counter* published_;
    prometheus::Counter* issued_;
    prometheus::Counter* expiry_warnings_;

    mutable base::Mutex mutex_;
    // fingerprint -> (notAfter, last time an envelope was encrypted to it)
    mutable std::map<std::string, std::pair<std::time_t, std::time_t>> used_ SEALMILTER_GUARDED_BY(mutex_);
    std::optional<std::time_t> own_earliest_ SEALMILTER_GUARDED_BY(mutex_);
    std::map<std::string, Coverage> coverage_counts_ SEALMILTER_GUARDED_BY(mutex_);  // by class
};

// The size class a message body falls into (the transform histogram's label): "<100k",
// "<1m", "<10m", ">=10m".
const char* size_class(unsigned long long bytes) noexcept;

}  // namespace sealmilter::metrics
