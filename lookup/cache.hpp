// lookup/cache.hpp — the SQLite certificate cache (SPEC §6.2).
//
// Purpose:   remembers validated certificates (positive) and authoritative "no certificate"
//            answers (negative) per address, with the freshness rules of SPEC §6:
//            positive TTL = the source's max-age clamped to [min_ttl, max_ttl] (min_ttl when
//            the source gave none), never past the earliest notAfter of the stored
//            certificates; negative TTL = negative_ttl; an expired entry stays servable as
//            "stale" for max_stale seconds (or the source's stale-if-error, if smaller) while
//            sources fail. Only validated certificates may be put (the Chain guarantees it).
// Storage:   one SQLite file in WAL mode (busy_timeout, one connection per thread or a mutex),
//            safe across the daemon's threads and concurrent CLI processes.
// Ownership: Cache owns its sqlite3 handle(s); entries are values.
// Threads:   every method is thread-safe.
// Errors:    a corrupt, unreadable or unwritable file never throws out of get/put: the cache
//            logs the error (to the error callback) and behaves as a miss / a no-op.
#pragma once

#include "crypto/certificate.hpp"
#include "lookup/clock.hpp"

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace sealmilter::lookup {

struct CacheOptions {
    std::string path;             // cache.path
    long long min_ttl = 3600;     // cache.min_ttl
    long long max_ttl = 86400;    // cache.max_ttl
    long long negative_ttl = 3600;  // cache.negative_ttl
    long long max_stale = 604800;   // cache.max_stale
    const Clock* clock = nullptr;   // borrowed; nullptr = system clock
    std::function<void(const std::string&)> on_error;  // logging hook; may be empty
};

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

class Cache {
public:
    explicit Cache(CacheOptions options);
    ~Cache();
    Cache(const Cache&) = delete;
    Cache& operator=(const Cache&) = delete;

    std::optional<CacheEntry> get(const std::string& email) const;  // fresh or stale alike
    void put_positive(const std::string& email, const std::vector<crypto::Certificate>& validated,
                      const std::string& source, std::optional<long long> max_age,
                      std::optional<long long> stale_if_error, const std::string& etag);
    void put_negative(const std::string& email, const std::string& source, const std::string& reason);
    // A 304 Not Modified: the entry is fresh again for max_age (clamped as above).
    void revalidated(const std::string& email, std::optional<long long> max_age);
    std::vector<CacheEntry> list() const;
    int purge(const std::string& email);  // returns entries removed
    int purge_all();
    bool healthy() const;  // false after an error made the cache fall back to misses

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace sealmilter::lookup
