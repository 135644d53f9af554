// cli/wiring.cpp — Config -> lookup stack (see wiring.hpp).
#include "cli/wiring.hpp"

#include "cli/common.hpp"
#include "lookup/registry.hpp"
#include "pg/cache.hpp"
#include "pg/harvest.hpp"
#include "pg/journal.hpp"

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
                                                  std::function<void()> on_published) {
    if (c.get("directory.publish_url").empty()) return nullptr;
    try {
        lookup::PublishOptions o = lookup::publish_options(ConfigSettings(c));
        o.on_published = std::move(on_published);
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
                                          const SharedState* shared) {
    const SharedState own = shared != nullptr ? SharedState{} : shared_state(c);
    const SharedState& state = shared != nullptr ? *shared : own;
    try {
        lookup::SourceRegistry registry = lookup::builtin_sources();
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

}  // namespace sealmilter::cli
