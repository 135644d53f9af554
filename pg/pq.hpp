// pg/pq.hpp — libpq handles, a bounded connection pool, and statements with a deadline.
//
// Purpose:   every PostgreSQL backend (pg/cache, pg/harvest, pg/journal) runs its statements
//            through one Pool: at most max_connections connections (opened lazily, reused,
//            dropped when broken), and every call bounded by timeout_ms in total — waiting
//            for a free connection, connecting (libpq's non-blocking connect polled against
//            the deadline) and the statement itself (sent asynchronously, its socket polled
//            against the deadline; the server's statement_timeout is set to the same value so
//            an abandoned statement does not run on). A slow or unreachable database therefore
//            never holds a milter transaction longer than directory.timeout_ms. A pooled
//            connection the server closed (a restart) is replaced once within the same call.
//            After a failed connect, calls fail at once for retry_after_ms instead of each waiting out the
//            timeout; the first call after that tries again (recovery without a restart).
// Ownership: the Pool owns its PGconn handles (PGconn_ptr / PGresult_ptr, one alias each,
//            the crypto/ossl.hpp pattern); Rows are values.
// Threads:   Pool::run from any thread; a Conn is used by one call at a time.
// Errors:    Pool::run never throws: it returns the error text ("" = success). Inside the
//            function given to run(), Conn::exec throws PgError, which run() catches.
#pragma once

#include "base/handle.hpp"
#include "base/mutex.hpp"

#include <libpq-fe.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace sealmilter::pg {

using PGconn_ptr = std::unique_ptr<PGconn, base::Deleter<PQfinish>>;
using PGresult_ptr = std::unique_ptr<PGresult, base::Deleter<PQclear>>;

class PgError : public std::runtime_error {
public:
    explicit PgError(const std::string& what) : std::runtime_error(what) {}
};

// One statement parameter: text, bytea (binary) or NULL.
struct Param {
    std::string value;
    bool binary = false;
    bool null = false;

    static Param text(std::string v) { return {std::move(v), false, false}; }
    static Param bytes(std::string v) { return {std::move(v), true, false}; }
    static Param integer(long long v) { return {std::to_string(v), false, false}; }
    static Param none() { return {{}, false, true}; }
};

// A result in text format; bytea columns are decoded by bytes().
class Rows {
public:
    explicit Rows(PGresult_ptr r) : r_(std::move(r)) {}
    int size() const { return r_ ? PQntuples(r_.get()) : 0; }
    bool null(int row, int col) const { return PQgetisnull(r_.get(), row, col) != 0; }
    std::string text(int row, int col) const;
    long long integer(int row, int col) const;  // PgError when not an integer
    std::string bytes(int row, int col) const;  // a bytea column
    long long affected() const;                 // rows an INSERT/UPDATE/DELETE touched

private:
    PGresult_ptr r_;
};

using Deadline = std::chrono::steady_clock::time_point;

// A connection lent by the Pool for one call.
class Conn {
public:
    Conn(PGconn* c, Deadline d) : c_(c), deadline_(d) {}
    // Runs one statement ($1, $2, ... placeholders) before the deadline; throws PgError.
    Rows exec(const std::string& sql, const std::vector<Param>& params = {});
    bool broken() const { return broken_; }

private:
    void wait(bool for_write);
    PGconn* c_;
    Deadline deadline_;
    bool broken_ = false;
};

struct PoolOptions {
    std::string dsn;              // libpq connection string (key=value or URI), from database.dsn_file
    size_t max_connections = 4;   // database.max_connections
    long timeout_ms = 5000;       // directory.timeout_ms: the whole call, waiting included
    long retry_after_ms = 1000;   // after a failed connect, fail fast this long
    std::string application_name = "sealmilter";
};

class Pool {
public:
    explicit Pool(PoolOptions options);
    ~Pool();
    Pool(const Pool&) = delete;
    Pool& operator=(const Pool&) = delete;

    // Runs fn on a pooled connection within timeout_ms; "" on success, else why not.
    std::string run(const std::function<void(Conn&)>& fn) noexcept;
    // The same with its own timeout (schema migration at start may take longer).
    std::string run(const std::function<void(Conn&)>& fn, long timeout_ms) noexcept;
    const PoolOptions& options() const { return options_; }

private:
    // A pooled connection, or a new one (fresh = true).
    PGconn_ptr take(Deadline deadline, std::string& error, bool& fresh) SEALMILTER_EXCLUDES(mutex_);
    void give_back(PGconn_ptr c, bool broken) SEALMILTER_EXCLUDES(mutex_);
    PGconn_ptr connect(Deadline deadline, std::string& error) const;

    PoolOptions options_;
    base::Mutex mutex_;
    std::condition_variable_any freed_;
    std::vector<PGconn_ptr> idle_ SEALMILTER_GUARDED_BY(mutex_);
    size_t open_ SEALMILTER_GUARDED_BY(mutex_) = 0;  // idle + lent + connecting
    std::chrono::steady_clock::time_point down_until_ SEALMILTER_GUARDED_BY(mutex_){};
    std::string last_connect_error_ SEALMILTER_GUARDED_BY(mutex_);
};

// The first non-empty line of the file named by database.dsn_file (comments with '#').
// Throws std::runtime_error naming the file when it cannot be read or holds no line.
std::string read_dsn_file(const std::string& path);

}  // namespace sealmilter::pg
