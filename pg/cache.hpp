// pg/cache.hpp — the certificate cache on PostgreSQL, the second CertificateCache backend.
//
// Purpose:   database.shared = cache: every node reads and writes one table
//            (sealmilter_cache), so an answer one node got from the directory serves every
//            node, and the negative and stale rules (certificate_cache.hpp's pure functions,
//            absolute times in the row) hold across nodes. A write is one statement
//            (INSERT ... ON CONFLICT DO UPDATE; the revalidation one UPDATE computing from the
//            row), so concurrent writers on several nodes never leave a torn entry: the last
//            complete write wins. Parsed certificates are kept in memory in front of it (a
//            CertificateMemo keyed by DER), as in the SQLite cache.
// Ownership: shares the Pool with the other PostgreSQL backends; owns its memo.
// Threads:   every method is thread-safe (the Pool lends one connection per call).
// Errors:    never throws; a database that is down, slow (beyond the pool's timeout) or
//            refuses a statement makes get() a miss — so the lookup goes on to the other
//            sources — and put/purge a no-op, clears healthy() and is logged once per outage
//            through on_error ("recovered" is logged when a call succeeds again).
#pragma once

#include "base/clock.hpp"
#include "lookup/certificate_cache.hpp"
#include "pg/pq.hpp"

#include <functional>
#include <memory>
#include <string>

namespace sealmilter::pg {

struct PgCacheOptions {
    lookup::FreshnessRules rules;
    size_t memo_certificates = 4096;
    const base::Clock* clock = nullptr;  // borrowed; nullptr = system clock
    std::function<void(const std::string&)> on_error;
};

class PgCache final : public lookup::CertificateCache {
public:
    PgCache(std::shared_ptr<Pool> pool, PgCacheOptions options);
    ~PgCache() override;
    PgCache(const PgCache&) = delete;
    PgCache& operator=(const PgCache&) = delete;

    std::optional<lookup::CacheEntry> get(const std::string& email) const override;
    void put_positive(const std::string& email, const std::vector<crypto::Certificate>& validated,
                      const std::string& source, std::optional<long long> max_age,
                      std::optional<long long> stale_if_error, const std::string& etag) override;
    void put_negative(const std::string& email, const std::string& source, const std::string& reason) override;
    void revalidated(const std::string& email, std::optional<long long> max_age) override;
    std::vector<lookup::CacheEntry> list() const override;
    int purge(const std::string& email) override;
    int purge_all() override;
    bool healthy() const override;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace sealmilter::pg
