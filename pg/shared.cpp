// pg/shared.cpp — database.* -> selection and pool (see shared.hpp).
#include "pg/shared.hpp"

namespace sealmilter::pg {

Selection parse_selection(const std::vector<std::string>& names) {
    Selection s;
    for (const std::string& n : names) {
        if (n == "cache") {
            s.cache = true;
        } else if (n == "harvest") {
            s.harvest = true;
        } else if (n == "journal") {
            s.journal = true;
        } else if (n == "keys") {
            s.keys = true;
        } else if (n == "publish") {
            s.publish = true;
        } else {
            throw SharedStateError("database.shared: unknown state '" + n + "'");
        }
    }
    return s;
}

std::shared_ptr<Pool> make_pool(const SharedOptions& o) {
    if (o.dsn_file.empty()) throw SharedStateError("database.shared is set but database.dsn_file is empty");
    PoolOptions p;
    try {
        p.dsn = read_dsn_file(o.dsn_file);
    } catch (const std::runtime_error& e) {
        throw SharedStateError(e.what());
    }
    p.max_connections = o.max_connections;
    p.timeout_ms = o.timeout_ms;
    return std::make_shared<Pool>(std::move(p));
}

}  // namespace sealmilter::pg
