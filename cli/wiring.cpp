// cli/wiring.cpp — Config -> lookup stack (see wiring.hpp).
#include "cli/wiring.hpp"

#include "cli/common.hpp"
#include "lookup/registry.hpp"
#include "pg/cache.hpp"
#include "pg/harvest.hpp"
#include "pg/journal.hpp"
#include "pg/publish.hpp"

#include "base/ascii.hpp"
#include "core/policy.hpp"

#include <sstream>
#include <unistd.h>

namespace sealmilter::cli {
namespace {

lookup::CacheOpener cache_opener(const SharedState& shared) {
    if (!shared.which.cache) return {};
    std::shared_ptr<pg::Pool> pool = shared.pool;
    return [pool](const lookup::Settings& s, const lookup::ErrorHook& on_error) -> std::unique_ptr<lookup::CertificateCache> {
        pg::PgCacheOptions o;
        o.rules = {s.get_int("cache.min_ttl"), s.get_int("cache.max_ttl"), s.get_int("cache.negative_ttl"),
                   s.get_int("cache.max_stale")};
        o.on_error = on_error;
        return std::make_unique<pg::PgCache>(pool, std::move(o));
    };
}

std::string host_name() {
    char name[256] = {};
    if (gethostname(name, sizeof name - 1) != 0) return "unknown";
    return name;
}

}  // namespace

SharedState shared_state(const conf::Config& c) {
    SharedState s;
    try {
        s.which = pg::parse_selection(c.get_list("database.shared"));
        if (!s.which.any()) return s;
        pg::SharedOptions o;
        o.dsn_file = c.get("database.dsn_file");
        o.max_connections = static_cast<size_t>(c.get_int("database.max_connections"));
        o.timeout_ms = static_cast<long>(c.get_int("directory.timeout_ms"));
        s.pool = pg::make_pool(o);
    } catch (const pg::SharedStateError& e) {
        throw CliError(kConfig, c.origin("database.shared") + ": " + e.what());
    }
    return s;
}

std::unique_ptr<lookup::CertificateCache> open_cache(const conf::Config& c,
                                                     const std::function<void(const std::string&)>& on_error) {
    const SharedState shared = shared_state(c);
    if (const lookup::CacheOpener open = cache_opener(shared)) return open(ConfigSettings(c), on_error);
    return lookup::open_cache(ConfigSettings(c), on_error);
}

std::shared_ptr<const lookup::HarvestStorage> harvest_storage(const conf::Config& c, const SharedState& shared) {
    if (shared.which.harvest) return std::make_shared<pg::PgHarvestStore>(shared.pool);
    return std::make_shared<lookup::HarvestStore>(c.get("harvest.dir"));
}

std::shared_ptr<const milter::Journal> make_journal(const conf::Config& c, const SharedState& shared) {
    if (shared.which.journal) return std::make_shared<pg::PgJournal>(shared.pool, host_name());
    return std::make_shared<milter::FileJournal>(c.get("milter.spool_dir") + "/reinjected");
}

std::shared_ptr<lookup::Publisher> make_publisher(const conf::Config& c, bool background,
                                                  const std::function<void(const std::string&)>& log,
                                                  std::function<void()> on_published, const SharedState* shared) {
    if (c.get("directory.publish_url").empty()) return nullptr;
    try {
        lookup::PublishOptions o = lookup::publish_options(ConfigSettings(c));
        o.on_published = std::move(on_published);
        const SharedState own = shared != nullptr ? SharedState{} : shared_state(c);
        const SharedState& state = shared != nullptr ? *shared : own;
        if (state.which.publish) {
            pg::PgPublishOptions p;
            p.node = host_name();
            p.initial_backoff_ms = o.initial_backoff_ms;
            p.max_backoff_ms = o.max_backoff_ms;
            // Longer than one attempt (a POST within directory.timeout_ms), with room to spare.
            p.lease_ms = 2 * c.get_int("directory.timeout_ms") + 10000;
            o.shared = std::make_shared<pg::PgPublishQueue>(state.pool, p);
        }
        if (background) return std::make_shared<lookup::Publisher>(o, log);
        return std::shared_ptr<lookup::Publisher>(lookup::Publisher::without_thread(o, log));
    } catch (const lookup::SettingsError& e) {
        throw CliError(kConfig, e.what());
    } catch (const std::runtime_error& e) {
        throw CliError(kConfig, std::string("directory.publish_url: ") + e.what());
    }
}

std::unique_ptr<LookupStack> build_lookup(const conf::Config& c,
                                          const std::function<void(const std::string&)>& on_error,
                                          const SharedState* shared,
                                          const std::shared_ptr<lookup::IssuedCertificates>& issued) {
    const SharedState own = shared != nullptr ? SharedState{} : shared_state(c);
    const SharedState& state = shared != nullptr ? *shared : own;
    try {
        lookup::SourceRegistry registry = lookup::builtin_sources();
        if (issued) lookup::add_issued_source(registry, issued);
        if (state.which.harvest) {
            std::shared_ptr<const lookup::HarvestStorage> store = harvest_storage(c, state);
            registry.add("harvest", [store](const lookup::Settings&) {
                lookup::BuiltSource b;
                b.source = std::make_unique<lookup::HarvestSource>(store);
                return b;
            });
        }
        return lookup::build_lookup_stack(ConfigSettings(c), registry, on_error, cache_opener(state));
    } catch (const lookup::SettingsError& e) {
        throw CliError(kConfig, e.what());
    }
}

core::TransformOptions transform_options(const conf::Config& cfg, const std::string& eol) {
    core::TransformOptions o;
    const std::string& cipher = cfg.get("crypto.cipher");
    o.envelope.cipher = cipher == "aes-128-cbc"   ? crypto::Cipher::Aes128Cbc
                        : cipher == "aes-256-gcm" ? crypto::Cipher::Aes256Gcm
                                                  : crypto::Cipher::Aes256Cbc;
    o.envelope.rsa_padding = cfg.get("crypto.rsa_padding") == "oaep" ? crypto::RsaPadding::Oaep : crypto::RsaPadding::Pkcs1;
    o.protect_headers = cfg.get_bool("crypto.protect_headers");
    o.protected_subject = cfg.get("crypto.protected_subject");
    o.eol = eol;
    return o;
}

core::SignSettings sign_settings(const conf::Config& cfg) {
    core::SignSettings s;
    s.always = cfg.get("crypto.sign") == "always";
    s.format = cfg.get("crypto.sign_format") == "opaque" ? core::SignFormat::Opaque : core::SignFormat::Detached;
    const std::string& digest = cfg.get("crypto.sign_digest");
    s.digest = digest == "sha384" ? crypto::Digest::Sha384 : digest == "sha512" ? crypto::Digest::Sha512 : crypto::Digest::Sha256;
    s.sign_key = base::to_lower(base::trim(cfg.get("crypto.sign_key")));
    if (const size_t at = s.sign_key.find('@');
        !s.sign_key.empty() && (at == std::string::npos || at == 0 || at + 1 == s.sign_key.size() ||
                                s.sign_key.find_first_of(" \t,") != std::string::npos))
        throw CliError(kConfig, "crypto.sign_key: '" + s.sign_key + "' is not an address (e.g. noreply@bank.example)");
    std::vector<std::string> entries;
    std::string entry;
    std::istringstream list(cfg.get("crypto.sign_key_domains"));
    while (std::getline(list, entry, ','))
        if (!base::trim(entry).empty()) entries.emplace_back(base::trim(entry));
    try {
        s.domain_keys = core::parse_domain_keys(entries);
    } catch (const std::invalid_argument& e) {
        throw CliError(kConfig, std::string("crypto.sign_key_domains: ") + e.what());
    }
    s.sign_domains = cfg.get_list("crypto.sign_sender_domains");
    s.nosign_domains = cfg.get_list("crypto.nosign_sender_domains");
    for (const std::string& d : s.sign_domains)
        if (core::in_domains("x@" + d, s.nosign_domains))
            throw CliError(kConfig, "crypto.sign_sender_domains and crypto.nosign_sender_domains both name '" + d + "'");
    s.missing_tempfail = cfg.get("crypto.sign_missing") == "tempfail";
    return s;
}

}  // namespace sealmilter::cli
