// cli/run.cpp — `sealmilter run [-c FILE]`: the milter daemon (foreground; systemd manages it).
// Builds the Services snapshot from the config; SIGHUP re-reads config, policy, trust anchors
// and sources, and keeps the old snapshot when the new one is invalid.
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/key_store.hpp"
#include "cli/wiring.hpp"
#include "milter/adapter.hpp"

#include <sys/stat.h>
#include <unistd.h>

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

// milter.reinject was validated as HOST:PORT or [IPv6]:PORT when the configuration was read
// (conf/kinds.hpp); here it is only taken apart.
std::pair<std::string, int> host_port(const std::string& v) {
    const size_t colon = v.rfind(':');
    std::string host = v.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    return {host, std::atoi(v.c_str() + colon + 1)};
}

core::PlanSettings plan_settings(const conf::Config& c, const LookupStack& stack, const base::Logger& log) {
    core::PlanSettings p;
    p.policy = load_policy(c, log);
    p.policy_options.default_mode = *core::parse_mode(c.get("policy.default_mode"));
    p.policy_options.no_cert_tempfail = c.get("policy.no_cert_action") == "tempfail";
    p.policy_options.lookup_error_pass = c.get("policy.on_lookup_error") == "pass";
    p.policy_options.internal_domains = c.get_list("policy.internal_domains");
    p.policy_options.subject_tag = c.get("policy.subject_tag");
    p.policy_options.trigger_header = c.get("policy.trigger_header");
    p.transform = transform_options(c, "\r\n");
    p.cipher_auto = c.get("crypto.cipher") == "auto";
    p.dry_run = c.get_bool("milter.dry_run");
    p.max_message_size = static_cast<unsigned long long>(c.get_int("milter.max_message_size"));
    p.mta_size_limit = static_cast<unsigned long long>(c.get_int("milter.mta_size_limit"));
    p.archive = load_archive_cert(c, *stack.validator);
    if (p.archive) log.info("crypto.archive_cert: every encrypted envelope also to " + p.archive->fingerprint_sha256());
    return p;
}

core::InboundSettings inbound_settings(const conf::Config& c, const LookupStack& stack,
                                       const core::PlanSettings& plan, const base::Logger& log) {
    core::InboundSettings h;
    h.enabled = c.get_bool("harvest.enabled");
    if (!h.enabled) return h;
    h.validator = stack.validator.get();
    h.store = std::make_shared<lookup::HarvestStore>(c.get("harvest.dir"));
    h.domains = c.get_list("harvest.domains");
    if (h.domains.empty()) h.domains = plan.policy_options.internal_domains;
    h.max_size = static_cast<unsigned long long>(c.get_int("harvest.max_size"));
    h.keys = load_harvest_keys(c.get_list("harvest.keys"));
    h.publisher = make_publisher(c, true, log.as_function());
    if (h.domains.empty())
        log.info("harvest: off (neither harvest.domains nor policy.internal_domains names an inbound domain)");
    return h;
}

}  // namespace

std::shared_ptr<const milter::Services> build_services(const conf::Config& c) {
    auto s = std::make_shared<milter::Services>();
    s->log = make_logger(c);
    const base::Logger& log = s->log;
    std::shared_ptr<LookupStack> stack = build_lookup(c, [log](const std::string& e) { log.warning("lookup: " + e); });
    for (const std::string& n : stack->notes) log.info(n);
    if (!stack->errors.empty()) throw CliError(kConfig, stack->errors.front());
    s->lookups = stack;
    s->resolver = stack->make_resolver();
    s->plan = plan_settings(c, *stack, log);
    std::tie(s->reinject_host, s->reinject_port) = host_port(c.get("milter.reinject"));
    s->reinject_timeout_ms = static_cast<long>(c.get_int("milter.reinject_timeout_ms"));
    s->memory_threshold = static_cast<size_t>(c.get_int("milter.memory_threshold"));
    s->spool_dir = c.get("milter.spool_dir");
    if (access(s->spool_dir.c_str(), W_OK | X_OK) != 0)
        throw CliError(kConfig, "milter.spool_dir " + s->spool_dir + " is not a writable directory");
    s->harvest = inbound_settings(c, *stack, s->plan, log);
    // A bad master key or store refuses the start (and a reload keeps the running snapshot).
    s->keys = open_configured_store(c, false);
    log.info(s->keys ? "key store " + c.get("keys.dir") + ": " + std::to_string(s->keys->size()) + " key(s)"
                     : std::string("key store: none (keys.master_key_file is not set)"));
    auto journal = std::make_shared<milter::Journal>(s->spool_dir + "/reinjected");
    if (const size_t pruned = journal->prune(); pruned != 0)
        log.info("re-injection journal: pruned " + std::to_string(pruned) + " old entries");
    s->journal = journal;
    return s;
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
    milter::ServicesHolder holder(build_services(*p.config));
    const base::Logger log = holder.get()->log;  // the daemon's own lines; messages use their snapshot's
    const std::string socket = p.config->get("milter.socket");
    if (p.config->get_bool("milter.dry_run")) log.info("dry run: decisions are logged, no mail is changed");
    // Same file, same command-line overrides: only what the files say can change.
    const auto reload = [argc, argv, &holder, log] {
        try {
            po::options_description d;
            Parsed again = parse_command(argc, argv, d);
            holder.set(build_services(*again.config));
            log.info("reloaded the configuration");
        } catch (const std::exception& e) {
            log.error(std::string("reload failed, keeping the running configuration: ") + e.what());
        }
    };
    return milter::serve(socket, holder, reload, log);
}

}  // namespace sealmilter::cli
