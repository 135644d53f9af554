// lookup/certificate_cache.cpp — the freshness rules every cache backend shares (see
// certificate_cache.hpp).
#include "lookup/certificate_cache.hpp"

#include <algorithm>

namespace sealmilter::lookup {

long long clamp_ttl(const FreshnessRules& rules, std::optional<long long> max_age) {
    // Not std::clamp: a misconfigured min_ttl > max_ttl must not be undefined behaviour.
    const long long ttl = std::max(max_age.value_or(rules.min_ttl), rules.min_ttl);
    return std::max(0LL, std::min(ttl, rules.max_ttl));
}

Lifetime positive_lifetime(const FreshnessRules& rules, std::time_t now, std::optional<long long> max_age,
                           std::optional<long long> stale_if_error, std::time_t not_after) {
    Lifetime l;
    l.expires_at = std::min<std::time_t>(now + clamp_ttl(rules, max_age), not_after);
    l.stale_window = std::min(rules.max_stale, std::max(0LL, stale_if_error.value_or(rules.max_stale)));
    // Stale or not, an expired certificate is never served (SPEC §6.2).
    l.stale_until = std::min<std::time_t>(l.expires_at + l.stale_window, not_after);
    return l;
}

Lifetime negative_lifetime(const FreshnessRules& rules, std::time_t now) {
    Lifetime l;
    l.expires_at = now + std::max(0LL, rules.negative_ttl);
    l.stale_window = std::max(0LL, rules.max_stale);
    l.stale_until = l.expires_at + l.stale_window;
    return l;
}

Lifetime revalidated_lifetime(const FreshnessRules& rules, std::time_t now, std::optional<long long> max_age,
                              std::time_t not_after, long long stale_window) {
    Lifetime l;
    l.expires_at = std::min<std::time_t>(now + clamp_ttl(rules, max_age), not_after);
    l.stale_window = stale_window;
    l.stale_until = std::min<std::time_t>(l.expires_at + stale_window, not_after);
    return l;
}

std::time_t earliest_not_after(const std::vector<crypto::Certificate>& certificates) {
    std::time_t out = certificates.empty() ? 0 : certificates.front().not_after();
    for (const crypto::Certificate& c : certificates) out = std::min(out, c.not_after());
    return out;
}

}  // namespace sealmilter::lookup
