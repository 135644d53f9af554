// lookup/certificate_cache.hpp — what any certificate cache backend promises (SPEC §6.2).
//
// Purpose:   the interface the Chain and `sealmilter cache` use: validated certificates
//            (positive) and authoritative "no certificate" answers (negative) per normalised
//            address, with SPEC §6's freshness rules. The rules themselves are pure functions
//            here, so every backend (SQLite today, PostgreSQL later) computes the same
//            lifetimes:
//            positive TTL = the source's max-age clamped to [min_ttl, max_ttl] (min_ttl when
//            the source gave none), never past the earliest notAfter of the stored
//            certificates; negative TTL = negative_ttl; an expired entry stays servable as
//            "stale" for max_stale seconds (or the source's stale-if-error, if smaller) while
//            sources fail, and never past notAfter. Only validated certificates may be put
//            (the Chain guarantees it).
// Ownership: entries are values.
// Threads:   every method of an implementation is thread-safe.
// Errors:    never throws out of any method; a failure behaves as a miss (get), a no-op
//            (put, revalidated), an empty list or 0 removed, and clears healthy().
#pragma once

#include "crypto/certificate.hpp"

#include <ctime>
#include <optional>
#include <string>
#include <vector>

namespace sealmilter::lookup {

struct CacheEntry {
    std::string email;  // normalised (lookup::normalize_address)
    bool negative = false;
    std::vector<crypto::Certificate> certificates;  // positive entries
    std::string source;  // which source answered ("directory", ...)
    std::string reason;  // negative entries: "HTTP 404", "HTTP 410 (opted out)"
    std::string etag;
    std::time_t stored_at = 0;
    std::time_t expires_at = 0;   // fresh until
    std::time_t stale_until = 0;  // servable on source error until

    bool fresh(std::time_t now) const { return now < expires_at; }
    bool servable_stale(std::time_t now) const { return now < stale_until; }
};

// cache.min_ttl, cache.max_ttl, cache.negative_ttl, cache.max_stale (seconds).
struct FreshnessRules {
    long long min_ttl = 3600;
    long long max_ttl = 86400;
    long long negative_ttl = 3600;
    long long max_stale = 604800;
};

struct Lifetime {
    std::time_t expires_at = 0;   // fresh until
    std::time_t stale_until = 0;  // servable on source error until
    long long stale_window = 0;   // kept with the entry so a revalidation keeps it
};

// max-age clamped to [min_ttl, max_ttl]; min_ttl without max-age; never negative, even when
// a misconfiguration has min_ttl > max_ttl.
long long clamp_ttl(const FreshnessRules& rules, std::optional<long long> max_age);

// A positive entry stored at `now` whose certificates' earliest notAfter is `not_after`.
Lifetime positive_lifetime(const FreshnessRules& rules, std::time_t now, std::optional<long long> max_age,
                           std::optional<long long> stale_if_error, std::time_t not_after);

// A negative entry stored at `now`.
Lifetime negative_lifetime(const FreshnessRules& rules, std::time_t now);

// A positive entry revalidated (304 Not Modified) at `now`, keeping its stale window.
Lifetime revalidated_lifetime(const FreshnessRules& rules, std::time_t now, std::optional<long long> max_age,
                              std::time_t not_after, long long stale_window);

// The earliest notAfter of a non-empty set.
std::time_t earliest_not_after(const std::vector<crypto::Certificate>& certificates);

class CertificateCache {
public:
    virtual ~CertificateCache() = default;

    virtual std::optional<CacheEntry> get(const std::string& email) const = 0;  // fresh or stale alike
    virtual void put_positive(const std::string& email, const std::vector<crypto::Certificate>& validated,
                              const std::string& source, std::optional<long long> max_age,
                              std::optional<long long> stale_if_error, const std::string& etag) = 0;
    virtual void put_negative(const std::string& email, const std::string& source, const std::string& reason) = 0;
    // A 304 Not Modified: the entry is fresh again for max_age (clamped as above).
    virtual void revalidated(const std::string& email, std::optional<long long> max_age) = 0;
    virtual std::vector<CacheEntry> list() const = 0;
    virtual int purge(const std::string& email) = 0;  // returns entries removed
    virtual int purge_all() = 0;
    virtual bool healthy() const = 0;  // false after an error made the cache fall back to misses
};

}  // namespace sealmilter::lookup
