// pg/cache.cpp — the PostgreSQL certificate cache (see cache.hpp).
#include "pg/cache.hpp"

#include "lookup/certificate_memo.hpp"
#include "lookup/source.hpp"

#include <atomic>

namespace sealmilter::pg {
namespace {

constexpr const char* kColumns = "email, negative, certs, source, reason, etag, stored_at, expires_at, stale_until";
enum Col { kEmail, kNegative, kCerts, kSource, kReason, kEtag, kStoredAt, kExpiresAt, kStaleUntil };

}  // namespace

struct PgCache::Impl {
    std::shared_ptr<Pool> pool;
    PgCacheOptions options;
    base::SystemClock system_clock;
    const base::Clock* clock;
    mutable lookup::CertificateMemo memo;
    mutable std::atomic<bool> healthy{true};

    Impl(std::shared_ptr<Pool> p, PgCacheOptions o)
        : pool(std::move(p)),
          options(std::move(o)),
          clock(options.clock != nullptr ? options.clock : &system_clock),
          memo(options.memo_certificates) {}

    void report(const std::string& line) const {
        if (!options.on_error) return;
        try {
            options.on_error(line);
        } catch (...) {  // a logging hook must not turn a miss into an exception
        }
    }

    // Runs fn on the pool; on failure the first error of an outage is logged and false
    // returned, the first success after one logs the recovery.
    bool run(const std::string& what, const std::function<void(Conn&)>& fn) const {
        const std::string error = pool->run(fn);
        if (!error.empty()) {
            if (healthy.exchange(false)) report("certificate cache (PostgreSQL): " + what + ": " + error +
                                                "; lookups go to the other sources until it answers again");
            return false;
        }
        if (!healthy.exchange(true)) report("certificate cache (PostgreSQL): answering again");
        return true;
    }

    std::optional<lookup::CacheEntry> read_row(const Rows& r, int row) const {
        lookup::CacheEntry e;
        e.email = r.text(row, kEmail);
        e.negative = r.text(row, kNegative) == "t";
        e.source = r.text(row, kSource);
        e.reason = r.text(row, kReason);
        e.etag = r.text(row, kEtag);
        e.stored_at = static_cast<std::time_t>(r.integer(row, kStoredAt));
        e.expires_at = static_cast<std::time_t>(r.integer(row, kExpiresAt));
        e.stale_until = static_cast<std::time_t>(r.integer(row, kStaleUntil));
        if (e.negative) return e;
        if (!r.null(row, kCerts)) e.certificates = lookup::decode_certificates(r.bytes(row, kCerts), memo);
        if (e.certificates.empty()) {
            report("certificate cache (PostgreSQL): entry for " + e.email + " holds unreadable certificates; treated as a miss");
            return std::nullopt;
        }
        return e;
    }

    void put(const std::string& email, bool negative, const std::string& certs, const std::string& source,
             const std::string& reason, const std::string& etag, std::time_t stored_at, const lookup::Lifetime& life,
             std::optional<std::time_t> not_after) {
        const std::vector<Param> params = {
            Param::text(email),
            Param::text(negative ? "true" : "false"),
            negative ? Param::none() : Param::bytes(certs),
            Param::text(source),
            Param::text(reason),
            Param::text(etag),
            Param::integer(stored_at),
            Param::integer(life.expires_at),
            Param::integer(life.stale_until),
            not_after ? Param::integer(*not_after) : Param::none(),
            Param::integer(life.stale_window)};
        run("store " + email, [&](Conn& c) {
            c.exec(std::string("INSERT INTO sealmilter_cache (") + kColumns +
                       ", not_after, stale_window) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                       " ON CONFLICT (email) DO UPDATE SET negative = EXCLUDED.negative, certs = EXCLUDED.certs,"
                       " source = EXCLUDED.source, reason = EXCLUDED.reason, etag = EXCLUDED.etag,"
                       " stored_at = EXCLUDED.stored_at, expires_at = EXCLUDED.expires_at,"
                       " stale_until = EXCLUDED.stale_until, not_after = EXCLUDED.not_after,"
                       " stale_window = EXCLUDED.stale_window",
                   params);
        });
    }
};

PgCache::PgCache(std::shared_ptr<Pool> pool, PgCacheOptions options)
    : impl_(std::make_unique<Impl>(std::move(pool), std::move(options))) {}

PgCache::~PgCache() = default;

std::optional<lookup::CacheEntry> PgCache::get(const std::string& email) const {
    try {
        const std::string key = lookup::normalize_address(email);
        std::optional<lookup::CacheEntry> out;
        impl_->run("get " + key, [&](Conn& c) {
            const Rows r = c.exec(std::string("SELECT ") + kColumns + " FROM sealmilter_cache WHERE email = $1",
                                  {Param::text(key)});
            if (r.size() == 1) out = impl_->read_row(r, 0);
        });
        return out;
    } catch (...) {  // allocation while building the key: a miss
        return std::nullopt;
    }
}

void PgCache::put_positive(const std::string& email, const std::vector<crypto::Certificate>& validated,
                           const std::string& source, std::optional<long long> max_age,
                           std::optional<long long> stale_if_error, const std::string& etag) {
    try {
        const std::string key = lookup::normalize_address(email);
        if (validated.empty()) return impl_->report("certificate cache (PostgreSQL): ignored a positive entry without certificates for " + key);
        const std::time_t not_after = lookup::earliest_not_after(validated);
        const std::time_t now = impl_->clock->now();
        const lookup::Lifetime life = lookup::positive_lifetime(impl_->options.rules, now, max_age, stale_if_error, not_after);
        impl_->put(key, false, lookup::encode_certificates(validated), source, "", etag, now, life, not_after);
    } catch (...) {  // OpenSSL re-encoding, allocation: a no-op
        impl_->healthy = false;
    }
}

void PgCache::put_negative(const std::string& email, const std::string& source, const std::string& reason) {
    try {
        const std::time_t now = impl_->clock->now();
        impl_->put(lookup::normalize_address(email), true, "", source, reason, "", now,
                   lookup::negative_lifetime(impl_->options.rules, now), std::nullopt);
    } catch (...) {
        impl_->healthy = false;
    }
}

void PgCache::revalidated(const std::string& email, std::optional<long long> max_age) {
    try {
        const std::string key = lookup::normalize_address(email);
        const long long until = static_cast<long long>(impl_->clock->now()) + lookup::clamp_ttl(impl_->options.rules, max_age);
        // One statement computing from the row, like the SQLite cache: a concurrent put on
        // another node cannot be half-overwritten (revalidated_lifetime's arithmetic).
        impl_->run("revalidate " + key, [&](Conn& c) {
            c.exec("UPDATE sealmilter_cache SET expires_at = LEAST($2, not_after),"
                   " stale_until = LEAST(LEAST($2, not_after) + stale_window, not_after)"
                   " WHERE email = $1 AND NOT negative AND not_after IS NOT NULL",
                   {Param::text(key), Param::integer(until)});
        });
    } catch (...) {
        impl_->healthy = false;
    }
}

std::vector<lookup::CacheEntry> PgCache::list() const {
    try {
        std::vector<lookup::CacheEntry> out;
        const bool ok = impl_->run("list", [&](Conn& c) {
            const Rows r = c.exec(std::string("SELECT ") + kColumns + " FROM sealmilter_cache ORDER BY email");
            for (int i = 0; i < r.size(); ++i)
                if (std::optional<lookup::CacheEntry> e = impl_->read_row(r, i)) out.push_back(std::move(*e));
        });
        if (!ok) return {};  // never a partial list that looks complete
        return out;
    } catch (...) {
        return {};
    }
}

int PgCache::purge(const std::string& email) {
    try {
        const std::string key = lookup::normalize_address(email);
        long long n = 0;
        impl_->run("purge " + key, [&](Conn& c) {
            n = c.exec("DELETE FROM sealmilter_cache WHERE email = $1", {Param::text(key)}).affected();
        });
        return static_cast<int>(n);
    } catch (...) {
        return 0;
    }
}

int PgCache::purge_all() {
    try {
        long long n = 0;
        impl_->run("purge all", [&](Conn& c) { n = c.exec("DELETE FROM sealmilter_cache").affected(); });
        return static_cast<int>(n);
    } catch (...) {
        return 0;
    }
}

bool PgCache::healthy() const { return impl_->healthy.load(); }

}  // namespace sealmilter::pg
