// cli/run.cpp — `sealmilter run [-c FILE]`: the milter daemon (foreground; systemd manages it).
// Builds the Services snapshot from the config; SIGHUP re-reads config, policy, trust anchors
// and sources, and keeps the old snapshot when the new one is invalid.
#include "base/socket_address.hpp"
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/issuing.hpp"
#include "cli/key_store.hpp"
#include "cli/pickup.hpp"
#include "cli/wiring.hpp"
#include "conf/kinds.hpp"
#include "metrics/decision_log.hpp"
#include "metrics/expiry.hpp"
#include "metrics/metrics.hpp"
#include "milter/adapter.hpp"
#include "pg/schema.hpp"

#include <prometheus/exposer.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

namespace po = boost::program_options;

namespace sealmilter::cli {
namespace {

// log.level and log.target; stderr (journald, the MTA's collector) by default.
base::Logger make_logger(const conf::Config& c) {
    const std::optional<base::LogLevel> level = base::parse_log_level(c.get("log.level"));
    std::optional<base::Logger> log = base::Logger::for_target(c.get("log.target"), level.value_or(base::LogLevel::Info));
    if (!log) throw CliError(kConfig, c.origin("log.target") + ": log.target must be stderr or syslog");
    return *log;
}

core::PolicyTable load_policy(const conf::Config& c, const base::Logger& log) {
    const std::string& path = c.get("policy.file");
    struct stat st {};
    if (path.empty() || (c.origin("policy.file") == "default" && stat(path.c_str(), &st) != 0)) {
        log.info("policy: no table (" + (path.empty() ? std::string("policy.file is empty") : path + " is absent") +
                 "), policy.default_mode = " + c.get("policy.default_mode") + " for every recipient");
        return core::PolicyTable::parse("", "(none)");
    }
    try {
        return core::PolicyTable::load(path);
    } catch (const core::PolicyError& e) {
        throw CliError(kConfig, e.what());
    }
}

// crypto.archive_cert: one certificate, validated for the address it names like any
// recipient's certificate (SPEC §3); anything else refuses to start (or to reload).
std::optional<crypto::Certificate> load_archive_cert(const conf::Config& c, const lookup::Validator& validator) {
    const std::string& path = c.get("crypto.archive_cert");
    if (path.empty()) return std::nullopt;
    const std::string where = c.origin("crypto.archive_cert") + ": crypto.archive_cert " + path + ": ";
    const crypto::ParsedCertificates parsed = crypto::load_certificate_file(path);
    if (parsed.certificates.empty())
        throw CliError(kConfig, where + (parsed.error.empty() ? "no certificate in the file" : parsed.error));
    if (parsed.certificates.size() != 1)
        throw CliError(kConfig, where + "holds " + std::to_string(parsed.certificates.size()) +
                                    " certificates; exactly one is expected");
    const crypto::Certificate& cert = parsed.certificates.front();
    const std::vector<std::string> emails = cert.email_addresses();
    if (emails.empty())
        throw CliError(kConfig, where + "the certificate names no email address to validate it for");
    const std::vector<lookup::Verdict> verdicts = validator.validate(emails.front(), {cert});
    if (verdicts.empty() || !verdicts.front().usable)
        throw CliError(kConfig, where + "not usable for <" + emails.front() + ">: " +
                                    (verdicts.empty() ? "not validated" : verdicts.front().reason));
    return cert;
}

core::PlanSettings plan_settings(const conf::Config& c, const LookupStack& stack, const base::Logger& log) {
    core::PlanSettings p;
    p.policy = load_policy(c, log);
    p.policy_options.default_mode = *core::parse_mode(c.get("policy.default_mode"));
    p.policy_options.no_cert_tempfail = c.get("policy.no_cert_action") == "tempfail";
    p.policy_options.no_cert_issue = c.get("policy.no_cert_action") == "issue";
    p.policy_options.lookup_error_pass = c.get("policy.on_lookup_error") == "pass";
    p.policy_options.internal_domains = c.get_list("policy.internal_domains");
    p.policy_options.subject_tag = c.get("policy.subject_tag");
    p.policy_options.trigger_header = c.get("policy.trigger_header");
    p.transform = transform_options(c, "\r\n");
    p.cipher_auto = c.get("crypto.cipher") == "auto";
    p.sign = sign_settings(c);
    p.dry_run = c.get_bool("milter.dry_run");
    p.max_message_size = static_cast<unsigned long long>(c.get_int("milter.max_message_size"));
    p.mta_size_limit = static_cast<unsigned long long>(c.get_int("milter.mta_size_limit"));
    p.archive = load_archive_cert(c, *stack.validator);
    if (p.archive) log.info("crypto.archive_cert: every encrypted envelope also to " + p.archive->fingerprint_sha256());
    return p;
}

core::InboundSettings inbound_settings(const conf::Config& c, const LookupStack& stack,
                                       const core::PlanSettings& plan, const SharedState& shared,
                                       const base::Logger& log, const std::shared_ptr<lookup::Publisher>& publisher,
                                       const std::shared_ptr<const keys::KeyRing>& store) {
    core::InboundSettings h;
    h.enabled = c.get_bool("harvest.enabled");
    if (!h.enabled) return h;
    h.validator = stack.validator.get();
    h.store = harvest_storage(c, shared);
    h.domains = c.get_list("harvest.domains");
    if (h.domains.empty()) h.domains = plan.policy_options.internal_domains;
    h.max_size = static_cast<unsigned long long>(c.get_int("harvest.max_size"));
    h.keys = harvest_ring(c, store);
    if (store && !c.get_list("harvest.keys").empty())
        log.info("harvest: enveloped layers are opened with the key store; harvest.keys is not used");
    h.publisher = publisher;
    if (h.domains.empty())
        log.info("harvest: off (neither harvest.domains nor policy.internal_domains names an inbound domain)");
    return h;
}

// The schema of the shared state: `run` creates or migrates it at start and on reload
// (SIGHUP may turn database.shared on); check-config only reads its version. The database
// must answer at start: a node that cannot reach the shared journal would tempfail every
// split message, so it refuses to start instead (systemd restarts it).
void prepare_shared_schema(const SharedState& shared, bool migrate, const base::Logger& log) {
    if (!shared.pool) return;
    constexpr long kMigrateTimeoutMs = 30000;
    const pg::MigrateResult r = migrate ? pg::migrate(*shared.pool, kMigrateTimeoutMs) : pg::inspect(*shared.pool, kMigrateTimeoutMs);
    if (!r.error.empty()) throw CliError(kTempFail, "database (database.dsn_file): " + r.error);
    if (!migrate && r.from != r.to)
        throw CliError(kConfig, "database: schema version " + std::to_string(r.from) + ", this program needs " +
                                    std::to_string(r.to) + " (sealmilter db migrate, or start sealmilter run)");
    if (migrate && r.from != r.to)
        log.info("database: schema migrated from version " + std::to_string(r.from) + " to " + std::to_string(r.to));
}

// The observers of a snapshot: the daemon's Metrics (shared by every snapshot), the decision
// journal and the expiry nudges (per snapshot: a reload reopens the journal).
// `open_journal` false (check-config): the journal is checked, not created.
std::shared_ptr<metrics::Observer> make_observer(const conf::Config& c, const milter::Services& s,
                                                 const std::shared_ptr<metrics::Metrics>& m, bool open_journal) {
    auto all = std::make_shared<metrics::Observers>();
    if (m) {
        // The organisation's own certificates: the archive's, harvest.keys', and every key of
        // the store that can still sign or decrypt new mail (retired and compromised keys have
        // expired or been withdrawn: an alert on them would never clear).
        std::vector<crypto::Certificate> own;
        if (s.plan.archive) own.push_back(*s.plan.archive);
        if (s.keys) {
            const std::time_t now = std::time(nullptr);
            // Only the earliest expiry counts: found from the index's recorded validity, so a
            // store of 100,000 keys parses one certificate here, not every active one.
            keys::KeyEntry earliest;
            s.keys->for_each([&](const keys::KeyEntry& e) {
                if (keys::effective_state(*e, now) == keys::KeyState::Active && (!earliest || e->not_after() < earliest->not_after()))
                    earliest = e;
            });
            if (earliest) own.push_back(earliest->certificate);
        }
        if (s.harvest.keys && s.harvest.keys != s.keys)  // the one-off ring of harvest.keys
            s.harvest.keys->for_each([&](const keys::KeyEntry& e) { own.push_back(e->certificate); });
        m->set_own_certificates(own);
        all->add(m);
    }
    if (const std::string& path = c.get("log.decisions"); !path.empty() && !open_journal) {
        const size_t slash = path.rfind('/');
        const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
        if (access(path.c_str(), W_OK) != 0 && access(dir.c_str(), W_OK | X_OK) != 0)
            throw CliError(kConfig, c.origin("log.decisions") + ": log.decisions: cannot append to " + path + ": " +
                                        std::strerror(errno));
    } else if (!path.empty()) {
        std::string error;
        std::shared_ptr<metrics::DecisionLog> journal = metrics::DecisionLog::open(path, s.log, error);
        if (!journal) throw CliError(kConfig, c.origin("log.decisions") + ": log.decisions: cannot append to " + error);
        all->add(journal);
    }
    if (const long long days = c.get_int("lookup.expiry_warn_days"); days > 0)
        all->add(std::make_shared<metrics::ExpiryNudge>(days, s.log, m));
    return all->empty() ? nullptr : all;
}

// keys.decrypt_inbound (core/inbound_decrypt.hpp): the local domains, the validator that
// judges a signature inside, and the spool the decrypted body goes to.
core::DecryptSettings decrypt_settings(const conf::Config& c, const LookupStack& stack, const milter::Services& s) {
    core::DecryptSettings d;
    d.enabled = c.get_bool("keys.decrypt_inbound");
    if (!d.enabled) return d;
    d.domains = c.get_list("keys.decrypt_domains");
    if (d.domains.empty()) d.domains = s.plan.policy_options.internal_domains;
    if (d.domains.empty())
        throw CliError(kConfig, c.origin("keys.decrypt_inbound") +
                                    ": keys.decrypt_inbound is on but neither keys.decrypt_domains nor "
                                    "policy.internal_domains names a local domain");
    d.validator = stack.validator.get();
    d.max_signature_size = static_cast<unsigned long long>(c.get_int("harvest.max_size"));
    d.memory_threshold = s.memory_threshold;
    d.spool_dir = s.spool_dir;
    return d;
}

// The ring inbound decryption uses without a key store: the one-off ring of harvest.keys (the
// same object harvest uses when it has one).
std::shared_ptr<const keys::KeyRing> decryption_ring(const conf::Config& c, const milter::Services& s, const base::Logger& log) {
    std::shared_ptr<const keys::KeyRing> ring = s.harvest.keys;
    if (!ring) ring = one_off_ring(c.get_list("harvest.keys"), c.origin("harvest.keys") + ": harvest key");
    log.info("inbound decryption: " + std::to_string(ring->size()) + " key(s) from harvest.keys");
    return ring;
}

}  // namespace

std::string metrics_listen(const conf::Config& c) {
    const std::string& v = c.get("metrics.listen");
    if (v.empty()) return v;
    std::string why;
    if (!conf::validate_kind(conf::Type::HostPort, v, {}, why))
        throw CliError(kConfig, c.origin("metrics.listen") + ": bad value '" + v + "' for metrics.listen: " + why);
    return v;
}

namespace {

bool loopback(const std::string& host) {
    return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

// Why HOST:PORT cannot be bound, asked of the kernel directly (civetweb only says it failed).
std::string bind_error(const std::string& host, int port) {
    const std::optional<base::SocketAddress> a = base::ip_socket_address(host, port);
    if (!a) return "the host must be an IP address";
    const base::UniqueFd fd(socket(a->family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) return std::strerror(errno);
    if (bind(fd.get(), a->get(), a->length) != 0)
        return errno == EADDRINUSE ? "the port is already in use by another process" : std::strerror(errno);
    return "the HTTP server did not start";
}

// The exposition endpoint (GET /metrics), serving `m` with two civetweb threads.
std::unique_ptr<prometheus::Exposer> start_exposer(const std::string& listen, const std::shared_ptr<metrics::Metrics>& m,
                                                   const base::Logger& log) {
    const auto [host, port] = host_port(listen);
    std::unique_ptr<prometheus::Exposer> exposer;
    try {
        exposer = std::make_unique<prometheus::Exposer>(listen, 2);
    } catch (const std::exception&) {
        throw CliError(kConfig, "metrics.listen " + listen + ": cannot listen: " + bind_error(host, port) +
                                    "; the daemon does not start");
    }
    exposer->RegisterCollectable(m);
    if (!loopback(host))
        log.warning("metrics.listen " + listen + " is not a loopback address: the metrics are reachable from the network");
    log.info("metrics on http://" + listen + "/metrics");
    return exposer;
}

}  // namespace

namespace {

std::shared_ptr<const milter::Services> build(const conf::Config& c, const std::shared_ptr<metrics::Metrics>& m,
                                              bool daemon, const std::shared_ptr<Issuing>& issuing = nullptr,
                                              const std::string& issuing_error = {}) {
    auto s = std::make_shared<milter::Services>();
    s->log = make_logger(c);
    const base::Logger& log = s->log;
    const SharedState shared = shared_state(c);
    prepare_shared_schema(shared, daemon, log);
    std::shared_ptr<LookupStack> stack =
        build_lookup(c, [log](const std::string& e) { log.warning("lookup: " + e); }, &shared,
                     issuing ? issuing->for_lookup() : nullptr);
    for (const std::string& n : stack->notes) log.info(n);
    if (!stack->errors.empty()) throw CliError(kConfig, stack->errors.front());
    s->lookups = stack;
    // The resolver reports every finished lookup to the metrics (lookups by source and
    // result, cache hits, source latency), including those of messages that never end.
    lookup::LookupObserver observe;
    if (m) observe = [m](const lookup::LookupResult& r) { m->lookup_done(r); };
    s->resolver = stack->make_resolver({}, std::move(observe));
    s->plan = plan_settings(c, *stack, log);
    std::tie(s->reinject_host, s->reinject_port) = host_port(c.get("milter.reinject"));
    s->reinject_timeout_ms = static_cast<long>(c.get_int("milter.reinject_timeout_ms"));
    s->memory_threshold = static_cast<size_t>(c.get_int("milter.memory_threshold"));
    s->spool_dir = c.get("milter.spool_dir");
    if (access(s->spool_dir.c_str(), W_OK | X_OK) != 0)
        throw CliError(kConfig, "milter.spool_dir " + s->spool_dir + " is not a writable directory");
    // A bad master key or store refuses the start (and a reload keeps the running snapshot).
    s->keys = open_configured_store(c, false, &shared);
    check_issuing(c, s->plan.policy, s->keys != nullptr);
    if (daemon && uses_issue(c, s->plan.policy) && !issuing)
        throw CliError(kConfig, "the policy issues certificates but the issuer cannot start: " + issuing_error);
    if (issuing) s->issuer = issuing->for_mail();
    log.info(s->keys ? "key store " + c.get("keys.dir") + ": " + std::to_string(s->keys->size()) + " key(s)"
                     : std::string("key store: none (keys.master_key_file is not set)"));
    // One background publisher per snapshot (directory.publish_url): harvested certificates,
    // and issued ones with issue.publish.
    std::shared_ptr<lookup::Publisher> publisher;
    if (c.get_bool("harvest.enabled") || (issuing && c.get_bool("issue.publish"))) {
        std::function<void()> on_published;
        if (m) on_published = [m] { m->published(); };
        publisher = make_publisher(c, true, log.as_function(), std::move(on_published), &shared);
    }
    if (issuing) issuing->set_publisher(c.get_bool("issue.publish") ? publisher : nullptr);
    if (c.get_bool("issue.publish") && c.get("directory.publish_url").empty())
        log.warning("issue.publish is on but directory.publish_url is empty: issued certificates are not published");
    s->harvest = inbound_settings(c, *stack, s->plan, shared, log, publisher, s->keys);
    s->plan.decrypt = decrypt_settings(c, *stack, *s);
    if (s->plan.decrypt.enabled && !s->keys) s->keys = decryption_ring(c, *s, log);
    std::shared_ptr<const milter::Journal> journal = make_journal(c, shared);
    if (const size_t pruned = journal->prune(); pruned != 0)
        log.info("re-injection journal: pruned " + std::to_string(pruned) + " old entries");
    s->journal = journal;
    s->observer = make_observer(c, *s, m, daemon);
    return s;
}

}  // namespace

std::shared_ptr<const milter::Services> build_services(const conf::Config& c) { return build(c, nullptr, false); }

std::shared_ptr<const milter::Services> build_services(const conf::Config& c, const std::shared_ptr<metrics::Metrics>& m) {
    return build(c, m, true);
}

std::shared_ptr<const milter::Services> build_services(const conf::Config& c, const std::shared_ptr<metrics::Metrics>& m,
                                                       const std::shared_ptr<Issuing>& issuing,
                                                       const std::string& issuing_error) {
    return build(c, m, true, issuing, issuing_error);
}

int cmd_run(int argc, char** argv) {
    po::options_description desc(
        "sealmilter run [-c FILE]\n"
        "Runs the milter daemon in the foreground (logs to stderr). SIGHUP reloads the\n"
        "configuration, policy, trust anchors and sources; an invalid new configuration is\n"
        "logged and the running one kept. SIGTERM stops it.");
    Parsed p = parse_command(argc, argv, desc);
    if (p.help) return kOk;
    // Before build_services(): the resolver's workers must inherit the blocked signals.
    milter::block_daemon_signals();
    // One Metrics for the daemon's life: every snapshot feeds the same counters.
    const std::string listen = metrics_listen(*p.config);
    const std::shared_ptr<metrics::Metrics> m = listen.empty() ? nullptr : std::make_shared<metrics::Metrics>();
    // The issuer (issue 13) is opened once: its pool of key pairs and the notice worker
    // outlive every reload; a reload that turns issuing on needs a restart.
    std::string issuing_error;
    const std::shared_ptr<Issuing> issuing = Issuing::open(*p.config, make_logger(*p.config), &issuing_error);
    milter::ServicesHolder holder(build_services(*p.config, m, issuing, issuing_error));
    const base::Logger log = holder.get()->log;  // the daemon's own lines; messages use their snapshot's
    if (issuing) issuing->start_notices();
    const std::unique_ptr<prometheus::Exposer> exposer = m ? start_exposer(listen, m, log) : nullptr;
    // Issue 13: the HTTPS pickup service when pickup.listen is set (cli/pickup.cpp, docs/issuing.md).
    // It shares the mail path's Issuer (one store writer, the keys it escrows seen at once); a
    // node that serves pickups but does not issue opens one without a key-pair pool.
    const std::shared_ptr<keys::Issuer> pickup_issuer =
        p.config->get("pickup.listen").empty() ? nullptr
        : issuing                                ? issuing->issuer()
                                                 : open_pickup_issuer(*p.config, log);
    const std::unique_ptr<pickup::PickupService> pickup_service =
        start_pickup(*p.config, holder, [pickup_issuer] { return std::shared_ptr<keys::Issuer>(pickup_issuer); }, log);
    const std::string socket = p.config->get("milter.socket");
    if (p.config->get_bool("milter.dry_run")) log.info("dry run: decisions are logged, no mail is changed");
    // Same file, same command-line overrides: only what the files say can change.
    const auto reload = [argc, argv, &holder, log, m, issuing, issuing_error] {
        try {
            po::options_description d;
            Parsed again = parse_command(argc, argv, d);
            holder.set(build_services(*again.config, m, issuing, issuing_error));
            log.info("reloaded the configuration");
        } catch (const std::exception& e) {
            log.error(std::string("reload failed, keeping the running configuration: ") + e.what());
        }
    };
    return milter::serve(socket, holder, reload, log);
}

}  // namespace sealmilter::cli
