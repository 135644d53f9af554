// pg/journal.cpp — the shared re-injection journal (see journal.hpp).
#include "pg/journal.hpp"

#include <ctime>

namespace sealmilter::pg {

PgJournal::PgJournal(std::shared_ptr<Pool> pool, std::string node, long long max_age_s)
    : pool_(std::move(pool)), node_(std::move(node)), max_age_s_(max_age_s) {}

milter::Journal::Seen PgJournal::contains(const std::string& key, std::string* error) const {
    bool found = false;
    const long long oldest = static_cast<long long>(std::time(nullptr)) - max_age_s_;
    const std::string failure = pool_->run([&](Conn& c) {
        found = c.exec("SELECT 1 FROM sealmilter_journal WHERE key = $1 AND recorded_at > $2",
                       {Param::text(key), Param::integer(oldest)})
                    .size() == 1;
    });
    if (failure.empty()) return found ? Seen::Yes : Seen::No;
    if (error != nullptr) *error = "PostgreSQL: " + failure;
    return Seen::Unknown;
}

bool PgJournal::record(const std::string& key, std::string* error) const {
    const auto write = [&](Conn& c) {
        c.exec("INSERT INTO sealmilter_journal (key, node, recorded_at) VALUES ($1, $2, $3)"
               " ON CONFLICT (key) DO UPDATE SET recorded_at = EXCLUDED.recorded_at",
               {Param::text(key), Param::text(node_), Param::integer(std::time(nullptr))});
    };
    // The copy is already at the next hop: one more try (a pooled connection the server
    // closed meanwhile fails the first) before the message is tempfailed.
    std::string failure = pool_->run(write);
    if (!failure.empty()) failure = pool_->run(write);
    if (failure.empty()) return true;
    if (error != nullptr) *error = "PostgreSQL: " + failure;
    return false;
}

size_t PgJournal::prune() const {
    long long n = 0;
    const long long oldest = static_cast<long long>(std::time(nullptr)) - max_age_s_;
    pool_->run([&](Conn& c) {
        n = c.exec("DELETE FROM sealmilter_journal WHERE recorded_at <= $1", {Param::integer(oldest)}).affected();
    });
    return static_cast<size_t>(n);
}

}  // namespace sealmilter::pg
