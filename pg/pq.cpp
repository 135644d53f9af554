// pg/pq.cpp — the pool and deadline-bounded statements (see pq.hpp).
#include "pg/pq.hpp"

#include "base/ascii.hpp"
#include "base/file.hpp"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <sstream>

namespace sealmilter::pg {
namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Deadline d) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(d - Clock::now()).count();
    return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, 1 << 30));
}

// Waits until the socket is readable (or writable) or the deadline passes; false = deadline.
bool wait_socket(int fd, bool for_write, Deadline d) {
    for (;;) {
        const int ms = remaining_ms(d);
        if (ms == 0) return false;
        pollfd p{fd, static_cast<short>(for_write ? POLLOUT : POLLIN), 0};
        const int rc = poll(&p, 1, ms);
        if (rc > 0) return true;
        if (rc == 0) return false;
        if (errno != EINTR) return true;  // let libpq find out what is wrong with the socket
    }
}

std::string conn_error(const PGconn* c) {
    std::string e = c != nullptr ? PQerrorMessage(c) : "out of memory";
    while (!e.empty() && (e.back() == '\n' || e.back() == ' ')) e.pop_back();
    std::replace(e.begin(), e.end(), '\n', ' ');  // libpq's multi-line messages on one log line
    return e.empty() ? "unknown error" : e;
}

}  // namespace

std::string Rows::text(int row, int col) const {
    const char* v = PQgetvalue(r_.get(), row, col);
    return v == nullptr ? std::string() : std::string(v, static_cast<size_t>(PQgetlength(r_.get(), row, col)));
}

long long Rows::integer(int row, int col) const {
    const std::string t = text(row, col);
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(t.c_str(), &end, 10);
    if (t.empty() || errno != 0 || *end != '\0') throw PgError("not an integer: '" + t + "'");
    return v;
}

std::string Rows::bytes(int row, int col) const {
    size_t n = 0;
    unsigned char* raw = PQunescapeBytea(reinterpret_cast<const unsigned char*>(PQgetvalue(r_.get(), row, col)), &n);
    if (raw == nullptr) throw PgError("unreadable bytea");
    const std::unique_ptr<unsigned char, base::Deleter<PQfreemem>> owned(raw);
    return std::string(reinterpret_cast<const char*>(raw), n);
}

long long Rows::affected() const {
    const char* n = r_ ? PQcmdTuples(r_.get()) : "";
    return n[0] == '\0' ? 0 : std::atoll(n);
}

void Conn::wait(bool for_write) {
    if (!wait_socket(PQsocket(c_), for_write, deadline_)) {
        broken_ = true;  // a statement may still be running: this connection is not reused
        throw PgError("timed out (directory.timeout_ms)");
    }
}

Rows Conn::exec(const std::string& sql, const std::vector<Param>& params) {
    std::vector<const char*> values;
    std::vector<int> lengths;
    std::vector<int> formats;
    for (const Param& p : params) {
        values.push_back(p.null ? nullptr : p.value.data());
        lengths.push_back(static_cast<int>(p.value.size()));
        formats.push_back(p.binary ? 1 : 0);
    }
    if (PQsendQueryParams(c_, sql.c_str(), static_cast<int>(params.size()), nullptr, values.data(), lengths.data(),
                          formats.data(), 0) != 1) {
        broken_ = true;
        throw PgError(conn_error(c_));
    }
    for (int rc = PQflush(c_); rc != 0; rc = PQflush(c_)) {
        if (rc < 0) {
            broken_ = true;
            throw PgError(conn_error(c_));
        }
        wait(true);
    }
    PGresult_ptr last;
    std::string failure;
    for (;;) {
        while (PQisBusy(c_) != 0) {
            wait(false);
            if (PQconsumeInput(c_) != 1) {
                broken_ = true;
                throw PgError(conn_error(c_));
            }
        }
        PGresult_ptr r(PQgetResult(c_));
        if (!r) break;
        const ExecStatusType st = PQresultStatus(r.get());
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && failure.empty()) {
            const char* m = PQresultErrorMessage(r.get());
            failure = m != nullptr && m[0] != '\0' ? m : PQresStatus(st);
            while (!failure.empty() && failure.back() == '\n') failure.pop_back();
        }
        last = std::move(r);
    }
    if (PQstatus(c_) != CONNECTION_OK) broken_ = true;
    if (!failure.empty()) throw PgError(failure);
    return Rows(std::move(last));
}

Pool::Pool(PoolOptions options) : options_(std::move(options)) {
    options_.max_connections = std::max<size_t>(1, options_.max_connections);
}

Pool::~Pool() = default;

PGconn_ptr Pool::connect(Deadline deadline, std::string& error) const {
    PGconn_ptr c(PQconnectStart(options_.dsn.c_str()));
    if (!c || PQstatus(c.get()) == CONNECTION_BAD) {
        error = "connect: " + conn_error(c.get());
        return nullptr;
    }
    for (PostgresPollingStatusType st = PGRES_POLLING_WRITING;;) {
        if (st == PGRES_POLLING_OK) break;
        if (st == PGRES_POLLING_FAILED) {
            error = "connect: " + conn_error(c.get());
            return nullptr;
        }
        if (!wait_socket(PQsocket(c.get()), st == PGRES_POLLING_WRITING, deadline)) {
            error = "connect: timed out (directory.timeout_ms)";
            return nullptr;
        }
        st = PQconnectPoll(c.get());
    }
    // The server gives up on a statement we stopped waiting for; names us in pg_stat_activity.
    Conn conn(c.get(), deadline);
    try {
        conn.exec("SELECT set_config('statement_timeout', $1, false), set_config('application_name', $2, false),"
                  " set_config('client_min_messages', 'warning', false)",
                  {Param::text(std::to_string(options_.timeout_ms)), Param::text(options_.application_name)});
    } catch (const PgError& e) {
        error = std::string("connect: ") + e.what();
        return nullptr;
    }
    return c;
}

PGconn_ptr Pool::take(Deadline deadline, std::string& error, bool& fresh) {
    fresh = false;
    {
        base::UniqueMutexLock lock(mutex_);
        for (;;) {
            if (!idle_.empty()) {
                PGconn_ptr c = std::move(idle_.back());
                idle_.pop_back();
                return c;
            }
            if (Clock::now() < down_until_) {
                error = "database unavailable (" + last_connect_error_ + ")";
                return nullptr;
            }
            if (open_ < options_.max_connections) break;
            if (freed_.wait_until(lock, deadline) == std::cv_status::timeout && idle_.empty() &&
                open_ >= options_.max_connections) {
                error = "no free database connection within directory.timeout_ms (database.max_connections = " +
                        std::to_string(options_.max_connections) + ")";
                return nullptr;
            }
        }
        ++open_;
    }
    fresh = true;
    PGconn_ptr c = connect(deadline, error);
    if (!c) {
        const base::MutexLock lock(mutex_);
        --open_;
        down_until_ = Clock::now() + std::chrono::milliseconds(options_.retry_after_ms);
        last_connect_error_ = error;
        freed_.notify_one();
    }
    return c;
}

void Pool::give_back(PGconn_ptr c, bool broken) {
    if (broken || PQstatus(c.get()) != CONNECTION_OK || PQtransactionStatus(c.get()) != PQTRANS_IDLE) c.reset();
    const base::MutexLock lock(mutex_);
    if (c) {
        idle_.push_back(std::move(c));
    } else {
        --open_;
    }
    freed_.notify_one();
}

std::string Pool::run(const std::function<void(Conn&)>& fn) noexcept { return run(fn, options_.timeout_ms); }

std::string Pool::run(const std::function<void(Conn&)>& fn, long timeout_ms) noexcept {
    try {
        const Deadline deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
        // A pooled connection the server closed meanwhile (a database restart) fails its first
        // statement: the call is tried once more on a fresh connection, within the same
        // deadline. Every statement of the backends is idempotent (SELECT, upserts, DELETE).
        for (int attempt = 0;; ++attempt) {
            std::string error;
            bool fresh = false;
            PGconn_ptr c = take(deadline, error, fresh);
            if (!c) return error;
            Conn conn(c.get(), deadline);
            try {
                fn(conn);
            } catch (const std::exception& e) {
                error = e.what();
                // A failed statement inside BEGIN leaves the transaction aborted: roll it back
                // (or drop the connection when even that fails).
                if (!conn.broken() && PQtransactionStatus(c.get()) != PQTRANS_IDLE) {
                    try {
                        conn.exec("ROLLBACK");
                    } catch (const std::exception&) {
                    }
                }
            }
            const bool lost = !error.empty() && !fresh && PQstatus(c.get()) == CONNECTION_BAD;
            give_back(std::move(c), conn.broken());
            if (!lost || attempt > 0 || Clock::now() >= deadline) return error;
        }
    } catch (const std::exception& e) {  // allocation, std::system_error from the mutex
        return std::string("internal error: ") + e.what();
    } catch (...) {
        return "internal error";
    }
}

std::string read_dsn_file(const std::string& path) {
    std::string text;
    try {
        text = base::read_file(path);
    } catch (const std::exception& e) {
        throw std::runtime_error("database.dsn_file " + path + ": " + e.what());
    }
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        std::string t(base::trim(line));
        if (!t.empty() && t[0] != '#') return t;
    }
    throw std::runtime_error("database.dsn_file " + path + ": holds no connection string");
}

}  // namespace sealmilter::pg
