// pg/schema.hpp — the versioned schema of the shared state.
//
// Purpose:   one list of migrations (version N takes the schema from N-1 to N), applied in
//            order inside one transaction under a transaction-level advisory lock, so two
//            nodes starting at once migrate once. The version lives in sealmilter_schema.
//            A database whose version is newer than this program's is refused (an older
//            node must not write into a layout it does not know). `sealmilter run` migrates
//            at start; `sealmilter db migrate -c FILE` does it by hand.
// Ownership: none; runs on a Pool.
// Threads:   any.
// Errors:    migrate() returns the error text ("" = done).
#pragma once

#include "pg/pq.hpp"

#include <string>

namespace sealmilter::pg {

int schema_version();  // the version this program writes

struct MigrateResult {
    std::string error;  // "" = the schema is at schema_version()
    int from = 0;       // the version found (0 = empty database)
    int to = 0;
};

MigrateResult migrate(Pool& pool, long timeout_ms);
// Reads the version only (check-config): `from` is what the database holds, error set when it
// cannot be read.
MigrateResult inspect(Pool& pool, long timeout_ms);

}  // namespace sealmilter::pg
