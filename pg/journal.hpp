// pg/journal.hpp — the re-injection journal on PostgreSQL (database.shared = journal).
//
// Purpose:   milter::Journal shared by every node: a message split on node A whose client
//            retries on node B (A killed mid-hand-over) finds the copies A handed over and
//            sends only the others. One row per copy (sealmilter_journal, keyed by
//            milter::Journal::key, with the node that sent it); record() is an INSERT ... ON
//            CONFLICT DO NOTHING, so a second writer of the same key is harmless. Entries
//            older than max_age are pruned at start (as the file journal).
// Ownership: shares the Pool.
// Threads:   thread-safe.
// Errors:    contains() answers Unknown and record() false, with *error set, when the
//            database does not answer within the pool's timeout (directory.timeout_ms); the
//            transaction then tempfails the message (milter/journal.hpp). A failed record is
//            tried once more on a fresh connection before it counts as failed.
#pragma once

#include "milter/journal.hpp"
#include "pg/pq.hpp"

#include <memory>
#include <string>

namespace sealmilter::pg {

class PgJournal final : public milter::Journal {
public:
    PgJournal(std::shared_ptr<Pool> pool, std::string node, long long max_age_s = 5LL * 86400);
    Seen contains(const std::string& key, std::string* error) const override;
    bool record(const std::string& key, std::string* error) const override;
    size_t prune() const override;

private:
    std::shared_ptr<Pool> pool_;
    std::string node_;  // this node's name in the rows (host name), for the operator
    long long max_age_s_;
};

}  // namespace sealmilter::pg
