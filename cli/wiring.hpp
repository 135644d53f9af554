// cli/wiring.hpp — turns a Config into what the commands and the daemon run on.
// conf is read here, at the top, and handed down to lookup/ as plain settings (STYLE.md):
// ConfigSettings is lookup::Settings over a conf::Config; the lookup stack itself is
// lookup/stack.hpp.
//
// Ownership: LookupStack owns every part; the Chain borrows the others.
// Threads:   a built stack is as thread-safe as its parts (all are).
// Errors:    CliError(kConfig) for a bad trust anchor / CRL / token file or an impossible
//            order; the message names the key.
#pragma once

#include "conf/config.hpp"
#include "core/sign.hpp"
#include "core/transform.hpp"
#include "crypto/private_key.hpp"
#include "metrics/metrics.hpp"
#include "milter/services.hpp"
#include "lookup/certificate_cache.hpp"
#include "lookup/issued_source.hpp"
#include "lookup/publisher.hpp"
#include "lookup/settings.hpp"
#include "lookup/stack.hpp"
#include "pg/pq.hpp"
#include "pg/shared.hpp"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace sealmilter::cli {

using LookupStack = lookup::LookupStack;

// lookup::Settings over a Config (which must outlive it).
class ConfigSettings final : public lookup::Settings {
public:
    explicit ConfigSettings(const conf::Config& config) : config_(config) {}
    std::string get(std::string_view key) const override { return config_.get(key); }

private:
    const conf::Config& config_;
};

// database.*: what is shared on PostgreSQL and the one pool for it (null when database.shared
// is empty). Throws CliError(kConfig) for `keys` or an unreadable dsn file.
struct SharedState {
    pg::Selection which;
    std::shared_ptr<pg::Pool> pool;
};
SharedState shared_state(const conf::Config& config);

// The lookup stack; the cache and the harvest source on PostgreSQL when `shared` says so
// (null = shared_state(config)); the `issued` step over `issued` (null: that step is off).
std::unique_ptr<LookupStack> build_lookup(const conf::Config& config,
                                          const std::function<void(const std::string&)>& on_error,
                                          const SharedState* shared = nullptr,
                                          const std::shared_ptr<lookup::IssuedCertificates>& issued = nullptr);
// Where harvested certificates are kept: harvest.dir, or PostgreSQL (database.shared).
std::shared_ptr<const lookup::HarvestStorage> harvest_storage(const conf::Config& config, const SharedState& shared);
// The re-injection journal: milter.spool_dir/reinjected, or PostgreSQL (database.shared).
std::shared_ptr<const milter::Journal> make_journal(const conf::Config& config, const SharedState& shared);
// The transform options of [crypto], with line ending `eol` ("\r\n" on the milter wire).
core::TransformOptions transform_options(const conf::Config& config, const std::string& eol);

// The crypto.sign* options; CliError(kConfig) for a malformed crypto.sign_key(_domains).
core::SignSettings sign_settings(const conf::Config& config);

// The daemon's snapshot (cli/run.cpp): lookup stack, policy table, options. Throws CliError
// (kConfig) when the daemon could not run with this config; check-config uses it too.
// check-config: every part built and checked, the shared schema's version only read, the decision
// journal checked, not created.
std::shared_ptr<const milter::Services> build_services(const conf::Config& config);
// The daemon's (run, SIGHUP): creates or migrates the shared schema, feeds the daemon's metrics
// (null = metrics off); cli/run.cpp.
std::shared_ptr<const milter::Services> build_services(const conf::Config& config,
                                                       const std::shared_ptr<metrics::Metrics>& m);
// The same with the daemon's issuer (cli/issuing.hpp), opened once at start and kept over
// SIGHUP; null with a policy that issues refuses (`issuing_error` says why).
class Issuing;
std::shared_ptr<const milter::Services> build_services(const conf::Config& config,
                                                       const std::shared_ptr<metrics::Metrics>& m,
                                                       const std::shared_ptr<Issuing>& issuing,
                                                       const std::string& issuing_error);
// metrics.listen, validated as HOST:PORT; "" = off. Throws CliError(kConfig).
std::string metrics_listen(const conf::Config& config);

// The publisher of harvested certificates (directory.publish_url), or null when it is off.
// on_published: called after each certificate the directory accepted (the daemon's metric).
// Its queue is the nodes' one queue on PostgreSQL when `shared` says publish (null =
// shared_state(config)); harvest.dir/.publish is then this node's spool for when the database
// does not answer.
std::shared_ptr<lookup::Publisher> make_publisher(const conf::Config& config, bool background,
                                                  const std::function<void(const std::string&)>& log,
                                                  std::function<void()> on_published = {},
                                                  const SharedState* shared = nullptr);

// Only the cache, for `cache list|purge`.
std::unique_ptr<lookup::CertificateCache> open_cache(const conf::Config& config,
                                          const std::function<void(const std::string&)>& on_error);

}  // namespace sealmilter::cli
