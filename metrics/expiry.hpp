// metrics/expiry.hpp — lookup.expiry_warn_days: nudges before a recipient's only certificate expires.
//
// Purpose:   when a message is encrypted to a recipient whose one usable certificate expires
//            within N days, the daemon logs one warning line (queue id first, the recipient,
//            the certificate's fingerprint and notAfter) and bumps
//            sealmilter_certificate_expiry_warnings_total, so the administrator can ask the
//            partner for a new certificate before mail to them falls back to plain (or is
//            refused, for `require`). At most one line per certificate per 24 h. No mail is
//            sent to anyone.
// Ownership: shares the Metrics (may be null: the log line alone).
// Threads:   thread-safe (the remembered certificates are under a mutex).
// Errors:    never throws.
#pragma once

#include "base/clock.hpp"
#include "base/logger.hpp"
#include "base/mutex.hpp"
#include "metrics/metrics.hpp"
#include "metrics/observer.hpp"

#include <ctime>
#include <map>
#include <memory>
#include <string>

namespace sealmilter::metrics {

class ExpiryNudge final : public Observer {
public:
    ExpiryNudge(long long days, base::Logger log, std::shared_ptr<Metrics> metrics, const base::Clock* clock = nullptr)
        : window_(days * 86400), log_(std::move(log)), metrics_(std::move(metrics)), clock_(clock) {}

    void message_decided(const MessageReport& r) noexcept override;

private:
    std::time_t window_;
    base::Logger log_;
    std::shared_ptr<Metrics> metrics_;
    const base::Clock* clock_;
    base::Mutex mutex_;
    std::map<std::string, std::time_t> warned_ SEALMILTER_GUARDED_BY(mutex_);  // fingerprint -> when
};

}  // namespace sealmilter::metrics
