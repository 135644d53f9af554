// pg/publish.cpp — the shared publish queue (see publish.hpp).
#include "pg/publish.hpp"

#include <algorithm>

namespace sealmilter::pg {

PgPublishQueue::PgPublishQueue(std::shared_ptr<Pool> pool, PgPublishOptions options)
    : pool_(std::move(pool)), options_(std::move(options)) {}

std::string PgPublishQueue::add(const std::string& email, const std::string& pem) {
    return pool_->run([&](Conn& c) {
        c.exec("INSERT INTO sealmilter_publish (email, pem, digest, queued_by) VALUES ($1, $2, sha256($2), $3)"
               " ON CONFLICT (email, digest) DO NOTHING",
               {Param::text(email), Param::bytes(pem), Param::text(options_.node)});
    });
}

std::string PgPublishQueue::claim(Entry& out, bool& claimed) {
    claimed = false;
    return pool_->run([&](Conn& c) {
        // One statement: the row is locked by the subquery (rows other nodes hold are
        // skipped, not waited for) and leased by the UPDATE, committed at once.
        Rows r = c.exec("UPDATE sealmilter_publish SET next_at = now() + $1 * interval '1 millisecond',"
                        " attempts = attempts + 1, claimed_by = $2"
                        " WHERE id = (SELECT id FROM sealmilter_publish WHERE next_at <= now()"
                        "             ORDER BY next_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)"
                        " RETURNING id, email, pem",
                        {Param::integer(options_.lease_ms), Param::text(options_.node)});
        if (r.size() != 1) return;
        out.id = r.integer(0, 0);
        out.email = r.text(0, 1);
        out.pem = r.bytes(0, 2);
        claimed = true;
    });
}

std::string PgPublishQueue::done(long long id) {
    return pool_->run([&](Conn& c) { c.exec("DELETE FROM sealmilter_publish WHERE id = $1", {Param::integer(id)}); });
}

std::string PgPublishQueue::failed(long long id, const std::string& why, long& backoff_ms) {
    backoff_ms = 0;
    return pool_->run([&](Conn& c) {
        // The right-hand sides see the row before the update: both use the same new back-off.
        Rows r = c.exec("UPDATE sealmilter_publish SET"
                        " backoff_ms = LEAST(GREATEST(backoff_ms * 2, $2), $3),"
                        " next_at = now() + LEAST(GREATEST(backoff_ms * 2, $2), $3) * interval '1 millisecond',"
                        " last_error = $4, claimed_by = NULL"
                        " WHERE id = $1 RETURNING backoff_ms",
                        {Param::integer(id), Param::integer(options_.initial_backoff_ms),
                         Param::integer(options_.max_backoff_ms), Param::text(why)});
        if (r.size() == 1) backoff_ms = static_cast<long>(r.integer(0, 0));
    });
}

std::string PgPublishQueue::due_in(long long& ms) {
    ms = -1;
    return pool_->run([&](Conn& c) {
        // min() of no rows is NULL: the queue is empty.
        Rows r = c.exec("SELECT ceil(extract(epoch FROM min(next_at) - now()) * 1000)::bigint FROM sealmilter_publish");
        if (r.size() == 1 && !r.null(0, 0)) ms = std::max(0LL, r.integer(0, 0));
    });
}

}  // namespace sealmilter::pg
