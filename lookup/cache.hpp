// lookup/cache.hpp — the SQLite certificate cache (SPEC §6.2), one CertificateCache backend.
//
// Purpose:   keeps the entries of certificate_cache.hpp in one SQLite file, with the
//            freshness rules computed by the pure functions there. Parsed certificates are
//            kept in memory in front of the file (a CertificateMemo keyed by DER), so a warm
//            hit does not decode the stored DER again.
// Storage:   one SQLite file in WAL mode (busy_timeout, one connection guarded by a mutex),
//            safe across the daemon's threads and concurrent CLI processes.
// Ownership: SqliteCache owns its sqlite3 handle and its memo; entries are values.
// Threads:   every method is thread-safe.
// Errors:    a corrupt, unreadable or unwritable file never throws out of any method: the
//            cache logs the error (to the error callback) and behaves as a miss / a no-op.
#pragma once

#include "base/clock.hpp"
#include "lookup/certificate_cache.hpp"

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace sealmilter::lookup {

struct CacheOptions {
    std::string path;               // cache.path
    long long min_ttl = 3600;       // cache.min_ttl
    long long max_ttl = 86400;      // cache.max_ttl
    long long negative_ttl = 3600;  // cache.negative_ttl
    long long max_stale = 604800;   // cache.max_stale
    size_t memo_certificates = 4096;  // parsed certificates kept in memory (0 = none)
    const base::Clock* clock = nullptr;  // borrowed; nullptr = system clock
    std::function<void(const std::string&)> on_error;  // logging hook; may be empty

    FreshnessRules rules() const { return {min_ttl, max_ttl, negative_ttl, max_stale}; }
};

class SqliteCache final : public CertificateCache {
public:
    explicit SqliteCache(CacheOptions options);
    ~SqliteCache() override;
    SqliteCache(const SqliteCache&) = delete;
    SqliteCache& operator=(const SqliteCache&) = delete;

    std::optional<CacheEntry> get(const std::string& email) const override;
    void put_positive(const std::string& email, const std::vector<crypto::Certificate>& validated,
                      const std::string& source, std::optional<long long> max_age,
                      std::optional<long long> stale_if_error, const std::string& etag) override;
    void put_negative(const std::string& email, const std::string& source, const std::string& reason) override;
    void revalidated(const std::string& email, std::optional<long long> max_age) override;
    std::vector<CacheEntry> list() const override;
    int purge(const std::string& email) override;
    int purge_all() override;
    bool healthy() const override;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// The name the cache had before it became one backend among several.
using Cache = SqliteCache;

}  // namespace sealmilter::lookup
