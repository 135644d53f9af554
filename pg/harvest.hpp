// pg/harvest.hpp — harvested certificates on PostgreSQL (database.shared = harvest).
//
// Purpose:   the same records as lookup::HarvestStore (one row per address and certificate
//            in sealmilter_harvest), so a certificate harvested through any node is usable by
//            every node for the next message. A save is one INSERT ... ON CONFLICT DO UPDATE
//            that keeps the earliest first_seen and the latest last_seen, so two nodes
//            harvesting the same certificate at once both succeed and agree.
// Ownership: shares the Pool.
// Threads:   thread-safe.
// Errors:    save() throws std::runtime_error when the row cannot be written (core's harvest
//            logs it; the message is never affected); records() sets *error when the table
//            cannot be read, which the harvest source answers as TempError (a failed source,
//            SPEC §7). Rows whose certificate no longer parses are skipped.
#pragma once

#include "lookup/harvest_store.hpp"
#include "pg/pq.hpp"

#include <memory>

namespace sealmilter::pg {

class PgHarvestStore final : public lookup::HarvestStorage {
public:
    explicit PgHarvestStore(std::shared_ptr<Pool> pool) : pool_(std::move(pool)) {}
    void save(lookup::HarvestRecord record) const override;

protected:
    std::vector<lookup::HarvestRecord> read_records(const std::string& email, std::string* error) const override;

private:
    std::shared_ptr<Pool> pool_;
};

}  // namespace sealmilter::pg
