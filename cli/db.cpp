// cli/db.cpp — `sealmilter db migrate|status [-c FILE]`: the schema of the shared state on
// PostgreSQL (database.dsn_file, database.shared; see pg/schema.hpp and docs/scaling.md).
// migrate creates or upgrades it (as `run` does at start); status prints the version.
// Exit 0 done / up to date, 75 the database did not answer, 78 not configured or the
// database's schema is newer than this program's (status: 1 when a migration is pending).
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/wiring.hpp"
#include "pg/schema.hpp"

#include <iostream>

namespace po = boost::program_options;

namespace sealmilter::cli {

int cmd_db(int argc, char** argv) {
    po::options_description desc(
        "sealmilter db migrate|status [-c FILE]\n"
        "Creates or migrates the schema of the shared state on PostgreSQL (database.dsn_file),\n"
        "or shows its version. Exit: 0 done, 1 migration pending (status), 75 database\n"
        "unreachable, 78 not configured or schema newer than this program");
    desc.add_options()("action", po::value<std::string>(), "migrate or status");
    po::positional_options_description pos;
    pos.add("action", 1);
    Parsed p = parse_command(argc, argv, desc, &pos);
    if (p.help) return kOk;
    const std::string action = p.vm.count("action") != 0U ? p.vm["action"].as<std::string>() : "";
    if (action != "migrate" && action != "status") throw CliError(kUsage, "sealmilter db: expected migrate or status");
    const SharedState shared = shared_state(*p.config);
    if (!shared.pool) throw CliError(kConfig, "database.shared is empty: nothing is kept in PostgreSQL");
    constexpr long kTimeoutMs = 60000;
    const pg::MigrateResult r =
        action == "migrate" ? pg::migrate(*shared.pool, kTimeoutMs) : pg::inspect(*shared.pool, kTimeoutMs);
    if (!r.error.empty()) {
        const bool newer = r.from > r.to;
        throw CliError(newer ? kConfig : kTempFail, "database: " + r.error);
    }
    if (action == "migrate") {
        std::cout << (r.from == r.to ? "schema version " + std::to_string(r.to) + ", up to date"
                                     : "schema migrated from version " + std::to_string(r.from) + " to " +
                                           std::to_string(r.to))
                  << "\n";
        return kOk;
    }
    std::cout << "schema version " << r.from << " (this program: " << r.to << ")\n";
    if (r.from > r.to) return kConfig;
    return r.from == r.to ? kOk : 1;
}

}  // namespace sealmilter::cli
