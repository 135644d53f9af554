// cli/wiring.hpp — builds the lookup stack (validator, cache, sources, chain) from a Config.
// Shared by the CLI commands and, later, the milter daemon: conf is read here, at the top,
// and handed down to lookup/ as plain option values (STYLE.md).
//
// Ownership: LookupStack owns every part; the Chain borrows the others.
// Threads:   a built stack is as thread-safe as its parts (all are).
// Errors:    CliError(kConfig) for a bad trust anchor / CRL / token file or an impossible
//            order; the message names the key.
#pragma once

#include "conf/config.hpp"
#include "core/transform.hpp"
#include "crypto/private_key.hpp"
#include "milter/services.hpp"
#include "lookup/cache.hpp"
#include "lookup/chain.hpp"
#include "lookup/publisher.hpp"
#include "lookup/validate.hpp"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace sealmilter::cli {

struct LookupStack {
    std::unique_ptr<lookup::Validator> validator;
    std::unique_ptr<lookup::Cache> cache;  // null when cache.path is empty
    std::vector<std::unique_ptr<lookup::CertificateSource>> sources;
    std::unique_ptr<lookup::Chain> chain;
    std::vector<std::string> notes;   // e.g. "directory: off (directory.url is empty)"
    std::vector<std::string> errors;  // a configured source that cannot work (its lookups TempError)
};

std::unique_ptr<LookupStack> build_lookup(const conf::Config& config,
                                          const std::function<void(const std::string&)>& on_error);
// The transform options of [crypto], with line ending `eol` ("\r\n" on the milter wire).
core::TransformOptions transform_options(const conf::Config& config, const std::string& eol);

// The daemon's snapshot (cli/run.cpp): lookup stack, policy table, options. Throws CliError
// (kConfig) when the daemon could not run with this config; check-config uses it too.
std::shared_ptr<const milter::Services> build_services(const conf::Config& config);

// The organisation's keys for opening enveloped inbound mail (harvest.keys, --key): PEM or
// PKCS#12 without password. Throws CliError (kNoInput unreadable, kConfig unusable).
std::vector<crypto::KeyMaterial> load_harvest_keys(const std::vector<std::string>& files);

// The publisher of harvested certificates (directory.publish_url), or null when it is off.
std::shared_ptr<lookup::Publisher> make_publisher(const conf::Config& config, bool background,
                                                  const std::function<void(const std::string&)>& log);

// Only the cache, for `cache list|purge`.
std::unique_ptr<lookup::Cache> open_cache(const conf::Config& config,
                                          const std::function<void(const std::string&)>& on_error);

}  // namespace sealmilter::cli
