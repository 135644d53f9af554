// pg/schema.cpp — the migrations (see schema.hpp).
#include "pg/schema.hpp"

#include <vector>

namespace sealmilter::pg {
namespace {

// Never edit a released step: add a new one.
// Never edit a released step: add a new one. One statement per string (the extended query
// protocol runs one at a time).
const std::vector<std::vector<const char*>>& migrations() {
    static const std::vector<std::vector<const char*>> steps = {
        // 1: certificate cache (lookup/certificate_cache.hpp), harvest store, re-injection journal.
        {"CREATE TABLE sealmilter_cache ("
         " email text PRIMARY KEY,"
         " negative boolean NOT NULL,"
         " certs bytea,"  // positive: length-prefixed DER, as in the SQLite cache
         " source text NOT NULL,"
         " reason text NOT NULL,"
         " etag text NOT NULL,"
         " stored_at bigint NOT NULL,"
         " expires_at bigint NOT NULL,"
         " stale_until bigint NOT NULL,"
         " not_after bigint,"
         " stale_window bigint NOT NULL)",
         "CREATE TABLE sealmilter_harvest ("
         " email text NOT NULL,"
         " fingerprint text NOT NULL,"  // SHA-256 of the DER, hex
         " der bytea NOT NULL,"
         " first_seen bigint NOT NULL,"
         " last_seen bigint NOT NULL,"
         " capabilities text NOT NULL,"  // SMIMECapabilities names, comma-separated
         " signer_fingerprint text NOT NULL,"
         " from_key_preference boolean NOT NULL,"
         " PRIMARY KEY (email, fingerprint))",
         "CREATE TABLE sealmilter_journal ("
         " key text PRIMARY KEY,"  // milter::Journal::key
         " node text NOT NULL,"
         " recorded_at bigint NOT NULL)",
         "CREATE INDEX sealmilter_journal_recorded_at ON sealmilter_journal (recorded_at)"},
        // 2: publish queue (pg/publish.hpp): one row per (address, certificate) for all nodes.
        {"CREATE TABLE sealmilter_publish ("
         " id bigserial PRIMARY KEY,"
         " email text NOT NULL,"
         " pem bytea NOT NULL,"
         " digest bytea NOT NULL,"  // SHA-256 of pem: the same certificate is queued once
         " queued_by text NOT NULL,"
         " queued_at timestamptz NOT NULL DEFAULT now(),"
         " next_at timestamptz NOT NULL DEFAULT now(),"  // due; a claim leases it ahead
         " backoff_ms bigint NOT NULL DEFAULT 0,"
         " attempts integer NOT NULL DEFAULT 0,"
         " claimed_by text,"
         " last_error text,"
         " UNIQUE (email, digest))",
         "CREATE INDEX sealmilter_publish_next_at ON sealmilter_publish (next_at)"},
        // 3: the key store (pg/keys.hpp; database.shared = keys): the index (one row) and the key
        // texts — private keys only wrapped under the master key, or token URIs.
        {"CREATE TABLE sealmilter_key_index ("
         " singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),"
         " body bytea NOT NULL)",
         "CREATE TABLE sealmilter_key_texts ("
         " name text PRIMARY KEY,"  // <id>.g<generation>.key
         " body bytea NOT NULL)"},
    };
    return steps;
}

}  // namespace

int schema_version() { return static_cast<int>(migrations().size()); }

MigrateResult migrate(Pool& pool, long timeout_ms) {
    MigrateResult out;
    out.to = schema_version();
    out.error = pool.run(
        [&](Conn& c) {
            c.exec("BEGIN");
            // Any constant shared by every sealmilter: 'seal' in ASCII.
            c.exec("SELECT pg_advisory_xact_lock(1936024940)");
            c.exec("CREATE TABLE IF NOT EXISTS sealmilter_schema (version integer NOT NULL)");
            Rows v = c.exec("SELECT max(version) FROM sealmilter_schema");
            out.from = v.size() == 1 && !v.null(0, 0) ? static_cast<int>(v.integer(0, 0)) : 0;
            if (out.from > schema_version()) {
                c.exec("ROLLBACK");
                throw PgError("the database schema is version " + std::to_string(out.from) +
                              ", newer than this program's (" + std::to_string(schema_version()) + ")");
            }
            for (int n = out.from; n < schema_version(); ++n)
                for (const char* statement : migrations()[static_cast<size_t>(n)]) c.exec(statement);
            if (out.from < schema_version()) {
                c.exec("DELETE FROM sealmilter_schema");
                c.exec("INSERT INTO sealmilter_schema (version) VALUES ($1)", {Param::integer(schema_version())});
            }
            c.exec("COMMIT");
        },
        timeout_ms);
    return out;
}

MigrateResult inspect(Pool& pool, long timeout_ms) {
    MigrateResult out;
    out.to = schema_version();
    out.error = pool.run(
        [&](Conn& c) {
            Rows t = c.exec("SELECT to_regclass('sealmilter_schema') IS NOT NULL");
            if (t.size() != 1 || t.text(0, 0) != "t") return;
            Rows v = c.exec("SELECT max(version) FROM sealmilter_schema");
            out.from = v.size() == 1 && !v.null(0, 0) ? static_cast<int>(v.integer(0, 0)) : 0;
        },
        timeout_ms);
    return out;
}

}  // namespace sealmilter::pg
