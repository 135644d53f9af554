// lookup/cache.cpp — the SQLite certificate cache (see cache.hpp, SPEC §6.2).
//
// One connection per SqliteCache (the Connection below), guarded by one base::Mutex; SQLite's file locks plus busy_timeout (and a
// bounded retry on SQLITE_BUSY) make concurrent daemon threads and CLI processes safe. Every
// write is one statement (INSERT OR REPLACE / UPDATE / DELETE), so there is nothing to roll
// back by hand. A file that is not a database, is corrupt, or whose schema is newer than ours
// disables the cache for good (every get() is a miss, every put a no-op): serving a wrong
// certificate is worse than asking the sources again. Transient failures (busy, read-only,
// disk full) fail that one call and clear healthy() until the next call succeeds.
#include "lookup/cache.hpp"

#include "base/handle.hpp"
#include "base/mutex.hpp"
#include "lookup/certificate_memo.hpp"
#include "lookup/source.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <thread>
#include <utility>

namespace sealmilter::lookup {
namespace {

// close_v2: safe even if a statement were still alive (the handle becomes a zombie).
using Db_ptr = std::unique_ptr<sqlite3, base::Deleter<sqlite3_close_v2>>;
using Stmt_ptr = std::unique_ptr<sqlite3_stmt, base::Deleter<sqlite3_finalize>>;

constexpr int kSchemaVersion = 1;
constexpr int kBusyTimeoutMs = 5000;
constexpr int kBusyRetries = 5;  // on top of busy_timeout, for BUSY the handler does not cover

constexpr const char* kCreateTable =
    "CREATE TABLE IF NOT EXISTS entries ("
    " email TEXT PRIMARY KEY NOT NULL,"
    " negative INTEGER NOT NULL,"
    " certs BLOB,"  // positive: length-prefixed DER certificates
    " source TEXT NOT NULL,"
    " reason TEXT NOT NULL,"
    " etag TEXT NOT NULL,"
    " stored_at INTEGER NOT NULL,"
    " expires_at INTEGER NOT NULL,"
    " stale_until INTEGER NOT NULL,"
    " not_after INTEGER,"               // positive: earliest notAfter, the cap on any freshness
    " stale_window INTEGER NOT NULL)";  // kept so a revalidation keeps stale-if-error

constexpr const char* kColumns = "email, negative, certs, source, reason, etag, stored_at, expires_at, stale_until";
enum Col { kEmail, kNegative, kCerts, kSource, kReason, kEtag, kStoredAt, kExpiresAt, kStaleUntil };

bool is_fatal(int rc) {
    switch (rc & 0xff) {
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
        case SQLITE_CANTOPEN:
        case SQLITE_FORMAT:
        case SQLITE_SCHEMA:
        case SQLITE_NOLFS:
            return true;
        default:
            return false;
    }
}

// Codes whose cause is an OS error worth naming ("No such file or directory"); for others
// sqlite3_system_errno may be left over from an earlier, unrelated call.
bool is_system(int rc) {
    const int c = rc & 0xff;
    return c == SQLITE_CANTOPEN || c == SQLITE_IOERR || c == SQLITE_FULL || c == SQLITE_PERM;
}

bool is_busy(int rc) {
    return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED;
}

void backoff(int attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10 * (attempt + 1)));
}

// SQLITE_STATIC: the caller's string outlives the statement use (StmtUse clears bindings).
void bind_text(sqlite3_stmt* s, int index, const std::string& text) {
    sqlite3_bind_text64(s, index, text.data(), text.size(), SQLITE_STATIC, SQLITE_UTF8);
}

std::string column_text(sqlite3_stmt* s, int col) {
    const unsigned char* p = sqlite3_column_text(s, col);
    return p == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(p));
}

// Resets a cached statement and drops its bindings (they borrow caller strings) on scope exit.
class StmtUse {
public:
    explicit StmtUse(sqlite3_stmt* s) : s_(s) {}
    ~StmtUse() {
        sqlite3_reset(s_);
        sqlite3_clear_bindings(s_);
    }
    StmtUse(const StmtUse&) = delete;
    StmtUse& operator=(const StmtUse&) = delete;
    sqlite3_stmt* get() const { return s_; }

private:
    sqlite3_stmt* s_;
};

// The first step of a statement, retried a bounded number of times on SQLITE_BUSY. Bindings
// survive sqlite3_reset, so a retry re-runs the same statement.
int first_step(sqlite3_stmt* s) {
    for (int attempt = 0;; ++attempt) {
        const int rc = sqlite3_step(s);
        if (!is_busy(rc) || attempt >= kBusyRetries) return rc;
        sqlite3_reset(s);
        backoff(attempt);
    }
}

// The connection and its state. Not thread-safe by itself: SqliteCache::Impl holds it under
// its mutex.
struct Connection {
    const CacheOptions& options;
    const base::Clock* clock;
    CertificateMemo& memo;

    static inline const std::string kEmpty;

    Connection(const CacheOptions& o, const base::Clock* c, CertificateMemo& m) : options(o), clock(c), memo(m) {}

    Db_ptr db;         // null once disabled
    Stmt_ptr get_stmt, put_stmt, revalidate_stmt, list_stmt, purge_stmt, purge_all_stmt;
    bool healthy = true;
    bool disabled = false;             // for good: corrupt, not a database, foreign schema
    std::vector<std::string> pending;  // error lines, reported after the mutex is released

    // --- error handling --------------------------------------------------------------------
    void note(const std::string& what) { pending.push_back("certificate cache " + options.path + ": " + what); }

    void fail(const std::string& op, int rc) {
        std::string msg = db ? sqlite3_errmsg(db.get()) : sqlite3_errstr(rc);
        const int sys = db && is_system(rc) ? sqlite3_system_errno(db.get()) : 0;
        if (sys != 0) msg += std::string(" (") + std::strerror(sys) + ")";
        healthy = false;
        if (is_fatal(rc)) {
            note(op + ": " + msg + "; cache disabled, every lookup is a miss");
            disable();
        } else {
            note(op + ": " + msg);
        }
    }

    // Marks the cache unusable; the handles are closed by close_if_disabled() once the
    // current call has released its statements.
    void disable() {
        healthy = false;
        disabled = true;
    }

    void close_if_disabled() {
        if (!disabled || !db) return;
        get_stmt.reset();
        put_stmt.reset();
        revalidate_stmt.reset();
        list_stmt.reset();
        purge_stmt.reset();
        purge_all_stmt.reset();
        db.reset();
    }

    bool usable() const { return db && !disabled; }

    void succeeded() {
        if (usable()) healthy = true;
    }

    // --- opening ---------------------------------------------------------------------------
    int exec(const char* sql) {
        for (int attempt = 0;; ++attempt) {
            const int rc = sqlite3_exec(db.get(), sql, nullptr, nullptr, nullptr);
            if (!is_busy(rc) || attempt >= kBusyRetries) return rc;
            backoff(attempt);
        }
    }

    // Runs a PRAGMA; returns the sqlite result code, the first column of up to max_rows rows
    // (joined by "; ") in *out.
    int pragma_rows(const char* sql, std::string* out, int max_rows = 1) {
        sqlite3_stmt* raw = nullptr;
        int rc = sqlite3_prepare_v2(db.get(), sql, -1, &raw, nullptr);
        const Stmt_ptr s(raw);
        if (rc != SQLITE_OK) return rc;
        out->clear();
        rc = first_step(s.get());
        for (int n = 0; rc == SQLITE_ROW && n < max_rows; ++n, rc = sqlite3_step(s.get()))
            *out += (n ? "; " : "") + column_text(s.get(), 0);
        return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
    }

    bool prepare(const std::string& sql, Stmt_ptr* into) {
        sqlite3_stmt* raw = nullptr;
        const int rc = sqlite3_prepare_v2(db.get(), sql.c_str(), -1, &raw, nullptr);
        into->reset(raw);
        if (rc == SQLITE_OK) return true;
        // A table that is not ours: never guess at its contents.
        note(std::string("unexpected schema (") + sqlite3_errmsg(db.get()) +
             "); cache disabled, every lookup is a miss");
        disable();
        return false;
    }

    bool ensure_schema() {
        std::string version;
        int rc = pragma_rows("PRAGMA user_version", &version);
        if (rc != SQLITE_OK) {
            fail("read schema version", rc);
            return false;
        }
        if (std::atoi(version.c_str()) > kSchemaVersion) {
            note("schema version " + version + " is newer than this program's (" + std::to_string(kSchemaVersion) +
                 "); cache disabled, every lookup is a miss");
            disable();
            return false;
        }
        if (std::atoi(version.c_str()) == kSchemaVersion) return true;
        // IMMEDIATE: two processes creating the file at once serialise here.
        const std::string create = std::string("BEGIN IMMEDIATE; ") + kCreateTable +
                                   "; PRAGMA user_version = " + std::to_string(kSchemaVersion) + "; COMMIT;";
        rc = exec(create.c_str());
        if (rc != SQLITE_OK) {
            fail("create schema", rc);
            if (!disabled) exec("ROLLBACK");
            return false;
        }
        return true;
    }

    void open() {
        if (options.path.empty()) {
            healthy = false;
            note("no cache path configured; cache disabled");
            return;
        }
        sqlite3* raw = nullptr;
        const int rc = sqlite3_open_v2(options.path.c_str(), &raw,
                                       SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
        db.reset(raw);  // owned even when the open failed
        if (rc != SQLITE_OK) {
            fail("open", rc);
            return disable();
        }
        sqlite3_extended_result_codes(db.get(), 1);
        sqlite3_busy_timeout(db.get(), kBusyTimeoutMs);
        std::string mode;
        int prc = pragma_rows("PRAGMA journal_mode = WAL", &mode);
        if (prc != SQLITE_OK) return fail("enable WAL", prc);
        if (mode != "wal") note("journal_mode is " + mode + ", not wal");
        if ((prc = exec("PRAGMA synchronous = NORMAL")) != SQLITE_OK) return fail("set synchronous", prc);
        if (!ensure_schema()) return;
        std::string check;
        if ((prc = pragma_rows("PRAGMA quick_check", &check, 3)) != SQLITE_OK) return fail("quick_check", prc);
        if (check != "ok") {
            note("quick_check: " + check + "; cache disabled, every lookup is a miss");
            return disable();
        }
        if (!prepare_statements()) return;
    }

    bool prepare_statements() {
        const std::string cols = kColumns;
        return prepare("SELECT " + cols + " FROM entries WHERE email = ?1", &get_stmt) &&
               prepare("INSERT OR REPLACE INTO entries (" + cols +
                           ", not_after, stale_window) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                       &put_stmt) &&
               // One statement, so a concurrent put between read and write cannot be lost;
               // the same arithmetic as revalidated_lifetime() (certificate_cache.hpp).
               prepare(
                   "UPDATE entries SET expires_at = MIN(?2, not_after),"
                   " stale_until = MIN(MIN(?2, not_after) + stale_window, not_after)"
                   " WHERE email = ?1 AND negative = 0 AND not_after IS NOT NULL",
                   &revalidate_stmt) &&
               prepare("SELECT " + cols + " FROM entries ORDER BY email", &list_stmt) &&
               prepare("DELETE FROM entries WHERE email = ?1", &purge_stmt) &&
               prepare("DELETE FROM entries", &purge_all_stmt);
    }

    // --- rows ------------------------------------------------------------------------------
    std::optional<CacheEntry> read_row(sqlite3_stmt* s) {
        CacheEntry e;
        e.email = column_text(s, kEmail);
        e.negative = sqlite3_column_int64(s, kNegative) != 0;
        e.source = column_text(s, kSource);
        e.reason = column_text(s, kReason);
        e.etag = column_text(s, kEtag);
        e.stored_at = static_cast<std::time_t>(sqlite3_column_int64(s, kStoredAt));
        e.expires_at = static_cast<std::time_t>(sqlite3_column_int64(s, kExpiresAt));
        e.stale_until = static_cast<std::time_t>(sqlite3_column_int64(s, kStaleUntil));
        if (e.negative) return e;
        const auto* data = static_cast<const char*>(sqlite3_column_blob(s, kCerts));
        const int size = sqlite3_column_bytes(s, kCerts);
        if (data != nullptr && size > 0) e.certificates = decode_certificates({data, static_cast<size_t>(size)}, memo);
        if (e.certificates.empty()) {
            note("entry for " + e.email + " holds unreadable certificates; treated as a miss");
            return std::nullopt;
        }
        return e;
    }

    std::optional<CacheEntry> get(const std::string& email) {
        if (!usable()) return std::nullopt;
        const std::string key = normalize_address(email);
        StmtUse use(get_stmt.get());
        bind_text(use.get(), 1, key);
        const int rc = first_step(use.get());
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
            fail("get " + key, rc);
            return std::nullopt;
        }
        succeeded();
        if (rc == SQLITE_DONE) return std::nullopt;
        return read_row(use.get());
    }

    struct Row {
        std::string email;
        bool negative = false;
        std::string certs;
        const std::string* source = nullptr;
        const std::string* reason = nullptr;
        const std::string* etag = nullptr;
        std::time_t stored_at = 0;
        Lifetime life;
        std::optional<std::time_t> not_after;
    };

    void put_positive(const std::string& email, const std::vector<crypto::Certificate>& certs,
                      const std::string& source, std::optional<long long> max_age,
                      std::optional<long long> stale_if_error, const std::string& etag) {
        Row r;
        r.email = normalize_address(email);
        r.source = &source;
        r.reason = &kEmpty;
        r.etag = &etag;
        if (certs.empty()) return note("ignored a positive entry without certificates for " + r.email);
        const std::time_t not_after = earliest_not_after(certs);
        r.certs = encode_certificates(certs);
        r.stored_at = clock->now();
        r.life = positive_lifetime(options.rules(), r.stored_at, max_age, stale_if_error, not_after);
        r.not_after = not_after;
        put(r);
    }

    void put_negative(const std::string& email, const std::string& source, const std::string& reason) {
        Row r;
        r.email = normalize_address(email);
        r.negative = true;
        r.source = &source;
        r.reason = &reason;
        r.etag = &kEmpty;
        r.stored_at = clock->now();
        r.life = negative_lifetime(options.rules(), r.stored_at);
        put(r);
    }

    void put(const Row& r) {
        if (!usable()) return;
        StmtUse use(put_stmt.get());
        sqlite3_stmt* s = use.get();
        bind_text(s, 1, r.email);
        sqlite3_bind_int(s, 2, r.negative ? 1 : 0);
        if (r.negative)
            sqlite3_bind_null(s, 3);
        else
            sqlite3_bind_blob64(s, 3, r.certs.data(), r.certs.size(), SQLITE_STATIC);
        bind_text(s, 4, *r.source);
        bind_text(s, 5, *r.reason);
        bind_text(s, 6, *r.etag);
        sqlite3_bind_int64(s, 7, static_cast<sqlite3_int64>(r.stored_at));
        sqlite3_bind_int64(s, 8, static_cast<sqlite3_int64>(r.life.expires_at));
        sqlite3_bind_int64(s, 9, static_cast<sqlite3_int64>(r.life.stale_until));
        if (r.not_after)
            sqlite3_bind_int64(s, 10, static_cast<sqlite3_int64>(*r.not_after));
        else
            sqlite3_bind_null(s, 10);
        sqlite3_bind_int64(s, 11, static_cast<sqlite3_int64>(r.life.stale_window));
        const int rc = first_step(s);
        if (rc != SQLITE_DONE) return fail("store " + r.email, rc);
        succeeded();
    }

    void revalidate(const std::string& email, std::optional<long long> max_age) {
        if (!usable()) return;
        const std::string key = normalize_address(email);
        const auto until = static_cast<sqlite3_int64>(clock->now()) + clamp_ttl(options.rules(), max_age);
        StmtUse use(revalidate_stmt.get());
        bind_text(use.get(), 1, key);
        sqlite3_bind_int64(use.get(), 2, until);
        const int rc = first_step(use.get());
        if (rc != SQLITE_DONE) return fail("revalidate " + key, rc);
        succeeded();
    }

    std::vector<CacheEntry> list() {
        std::vector<CacheEntry> out;
        if (!usable()) return out;
        StmtUse use(list_stmt.get());
        int rc = first_step(use.get());
        for (; rc == SQLITE_ROW; rc = sqlite3_step(use.get())) {
            if (std::optional<CacheEntry> e = read_row(use.get())) out.push_back(std::move(*e));
        }
        // Never a partial list that looks complete.
        if (rc != SQLITE_DONE) {
            fail("list", rc);
            return {};
        }
        succeeded();
        return out;
    }

    int remove(sqlite3_stmt* stmt, const std::string* key) {
        if (!usable()) return 0;
        StmtUse use(stmt);
        if (key != nullptr) bind_text(use.get(), 1, *key);
        const int rc = first_step(use.get());
        if (rc != SQLITE_DONE) {
            fail(key != nullptr ? "purge " + *key : std::string("purge all"), rc);
            return 0;
        }
        succeeded();
        return sqlite3_changes(db.get());
    }
};

}  // namespace

struct SqliteCache::Impl {
    CacheOptions options;
    base::SystemClock system_clock;
    CertificateMemo memo;
    mutable base::Mutex mutex;
    Connection connection SEALMILTER_GUARDED_BY(mutex);

    explicit Impl(CacheOptions o)
        : options(std::move(o)),
          memo(options.memo_certificates),
          connection(options, options.clock != nullptr ? options.clock : &system_clock, memo) {}

    // Hands the collected lines to on_error; called without the mutex so the callback may
    // log freely (or even call back into the cache).
    void flush(const std::vector<std::string>& lines) const {
        if (!options.on_error) return;
        for (const std::string& line : lines) {
            try {
                options.on_error(line);
            } catch (...) {  // a logging hook must not turn a miss into an exception
            }
        }
    }

    // Runs fn(connection) under the mutex, then reports the collected error lines; any
    // exception (allocation, OpenSSL) becomes an error line and the fallback, so nothing
    // escapes.
    template <typename Result, typename Fn>
    Result call(Result fallback, Fn&& fn) noexcept {
        std::vector<std::string> lines;
        try {
            const base::MutexLock lock(mutex);
            try {
                fallback = fn(connection);
            } catch (const std::exception& e) {
                connection.healthy = false;
                connection.note(std::string("internal error: ") + e.what());
            } catch (...) {
                connection.healthy = false;
                connection.note("internal error");
            }
            connection.close_if_disabled();
            lines.swap(connection.pending);
        } catch (...) {  // std::system_error from the mutex, bad_alloc while noting
        }
        flush(lines);
        return fallback;
    }
};

SqliteCache::SqliteCache(CacheOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
    impl_->call(0, [](Connection& impl) {
        impl.open();
        if (impl.usable() && !impl.purge_all_stmt) {  // a transient failure while opening
            impl.note("cache disabled, every lookup is a miss");
            impl.disable();
        }
        return 0;
    });
}

SqliteCache::~SqliteCache() = default;

std::optional<CacheEntry> SqliteCache::get(const std::string& email) const {
    return impl_->call(std::optional<CacheEntry>{}, [&](Connection& impl) { return impl.get(email); });
}

void SqliteCache::put_positive(const std::string& email, const std::vector<crypto::Certificate>& validated,
                         const std::string& source, std::optional<long long> max_age,
                         std::optional<long long> stale_if_error, const std::string& etag) {
    impl_->call(0, [&](Connection& impl) {
        impl.put_positive(email, validated, source, max_age, stale_if_error, etag);
        return 0;
    });
}

void SqliteCache::put_negative(const std::string& email, const std::string& source, const std::string& reason) {
    impl_->call(0, [&](Connection& impl) {
        impl.put_negative(email, source, reason);
        return 0;
    });
}

void SqliteCache::revalidated(const std::string& email, std::optional<long long> max_age) {
    impl_->call(0, [&](Connection& impl) {
        impl.revalidate(email, max_age);
        return 0;
    });
}

std::vector<CacheEntry> SqliteCache::list() const {
    return impl_->call(std::vector<CacheEntry>{}, [](Connection& impl) { return impl.list(); });
}

int SqliteCache::purge(const std::string& email) {
    return impl_->call(0, [&](Connection& impl) {
        const std::string key = normalize_address(email);
        return impl.remove(impl.purge_stmt.get(), &key);
    });
}

int SqliteCache::purge_all() {
    return impl_->call(0, [](Connection& impl) { return impl.remove(impl.purge_all_stmt.get(), nullptr); });
}

bool SqliteCache::healthy() const {
    const base::MutexLock lock(impl_->mutex);
    return impl_->connection.healthy;
}

}  // namespace sealmilter::lookup
