// pg/publish.hpp — the publish queue on PostgreSQL (database.shared = publish).
//
// Purpose:   lookup::SharedPublishQueue for every node: one row per (address, certificate) in
//            sealmilter_publish, so a certificate harvested on two nodes is queued once. A node
//            claims the earliest due row with UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP
//            LOCKED): two nodes never claim the same row; the claim moves the row's next_at a
//            lease ahead (longer than one POST), so a node that dies mid-publication delays the
//            entry by the lease and another node then publishes it. Published = the row is
//            deleted; failed = next_at after the doubled back-off (initial..max), the error and
//            the number of attempts kept for the operator. Times are the database's (now()), so
//            the nodes' clocks do not matter.
// Ownership: shares the Pool.
// Threads:   thread-safe.
// Errors:    every call returns the error text ("" = success) within the pool's timeout
//            (directory.timeout_ms); the publisher keeps the entry in the node's own spool or
//            tries again later (lookup/publisher.hpp).
#pragma once

#include "lookup/publisher.hpp"
#include "pg/pq.hpp"

#include <memory>
#include <string>

namespace sealmilter::pg {

struct PgPublishOptions {
    std::string node;                // this node's name in the rows (host name), for the operator
    long initial_backoff_ms = 5000;  // as lookup::PublishOptions
    long max_backoff_ms = 600000;
    long lease_ms = 60000;           // a claimed row is due again after this long
};

class PgPublishQueue final : public lookup::SharedPublishQueue {
public:
    PgPublishQueue(std::shared_ptr<Pool> pool, PgPublishOptions options);
    std::string add(const std::string& email, const std::string& pem) override;
    std::string claim(Entry& out, bool& claimed) override;
    std::string done(long long id) override;
    std::string failed(long long id, const std::string& why, long& backoff_ms) override;
    std::string due_in(long long& ms) override;

private:
    std::shared_ptr<Pool> pool_;
    PgPublishOptions options_;
};

}  // namespace sealmilter::pg
