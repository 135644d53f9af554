// metrics/expiry.cpp — expiry nudges (see expiry.hpp).
#include "metrics/expiry.hpp"

namespace sealmilter::metrics {

void ExpiryNudge::message_decided(const MessageReport& r) noexcept {
    try {
        const std::time_t now = base::now_from(clock_);
        for (const core::RecipientDecision& d : r.summary->decisions) {
            // "Only": the recipient's usable certificates (crypto.encrypt_to = all_valid gives
            // every one of them; with `newest` a second valid one is not seen here).
            if (d.outcome != core::Outcome::Encrypt || d.certificates.size() != 1) continue;
            const crypto::Certificate& c = d.certificates.front();
            const std::time_t left = c.not_after() - now;
            if (left > window_) continue;
            const std::string fp = c.fingerprint_sha256();
            {
                base::MutexLock lock(mutex_);
                for (auto it = warned_.begin(); it != warned_.end();)  // bounded by 24 h of traffic
                    it = now - it->second > 86400 ? warned_.erase(it) : std::next(it);
                if (!warned_.emplace(fp, now).second) continue;
            }
            log_.child(r.queue_id)
                .warning("rcpt=<" + d.address + "> certificate expires soon: cert=" + fp +
                         " not_after=" + crypto::format_time_utc(c.not_after()) + " days_left=" +
                         std::to_string(left < 0 ? 0 : left / 86400) + " (the recipient's only certificate)");
            if (metrics_) metrics_->expiry_warning();
        }
    } catch (...) {
    }
}

}  // namespace sealmilter::metrics
