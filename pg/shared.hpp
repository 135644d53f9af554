// pg/shared.hpp — which state is shared on PostgreSQL (database.*), and the pool for it.
//
// Purpose:   database.shared names the state kept in PostgreSQL: cache, harvest, journal
//            (implemented here), keys (the key store's index and wrapped keys, pg/keys.hpp)
//            and publish (the publish queue, pg/publish.hpp; publish may be listed without
//            directory.publish_url: then nothing is published, as on one node). Empty =
//            everything local (SQLite, files) as for
//            one node. open_shared() reads database.dsn_file (the connection string stays out
//            of the configuration), builds the one bounded Pool all backends share, and
//            migrates the schema (pg/schema.hpp).
// Ownership: SharedState shares its Pool with the backends made from it.
// Threads:   build once; the Pool is thread-safe.
// Errors:    SharedStateError naming the key for a state that cannot be shared yet or an
//            unreadable dsn file; migrate errors are returned, not thrown (run refuses to
//            start on them, see cli/run.cpp).
#pragma once

#include "pg/pq.hpp"

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace sealmilter::pg {

class SharedStateError : public std::runtime_error {
public:
    explicit SharedStateError(const std::string& what) : std::runtime_error(what) {}
};

struct Selection {
    bool cache = false;
    bool harvest = false;
    bool journal = false;
    bool keys = false;
    bool publish = false;
    bool any() const { return cache || harvest || journal || keys || publish; }
};

// database.shared -> what is shared; SharedStateError for a name it does not know.
Selection parse_selection(const std::vector<std::string>& names);

struct SharedOptions {
    std::string dsn_file;        // database.dsn_file
    size_t max_connections = 4;  // database.max_connections
    long timeout_ms = 5000;      // directory.timeout_ms
};

// The pool over the connection string in dsn_file. SharedStateError when the file is empty
// or unreadable.
std::shared_ptr<Pool> make_pool(const SharedOptions& options);

}  // namespace sealmilter::pg
