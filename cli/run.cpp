// cli/run.cpp — `sealmilter run [-c FILE]`: the milter daemon (foreground; systemd manages it).
// Builds the Services snapshot from the config; SIGHUP re-reads config, policy, trust anchors
// and sources, and keeps the old snapshot when the new one is invalid.
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/wiring.hpp"
#include "milter/adapter.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <iostream>
#include <mutex>

namespace po = boost::program_options;

namespace sealmilter::cli {
namespace {

std::mutex g_log_mutex;

void log_line(const std::string& line) {
    const std::lock_guard<std::mutex> lock(g_log_mutex);
    std::cerr << line << std::endl;  // journald / the MTA's log collector takes stderr
}

core::PolicyTable load_policy(const conf::Config& c) {
    const std::string& path = c.get("policy.file");
    struct stat st {};
    if (path.empty() || (c.origin("policy.file") == "default" && stat(path.c_str(), &st) != 0)) {
        log_line("policy: no table (" + (path.empty() ? std::string("policy.file is empty") : path + " is absent") +
                 "), policy.default_mode = " + c.get("policy.default_mode") + " for every recipient");
        return core::PolicyTable::parse("", "(none)");
    }
    try {
        return core::PolicyTable::load(path);
    } catch (const core::PolicyError& e) {
        throw CliError(kConfig, e.what());
    }
}

std::pair<std::string, int> host_port(const std::string& v) {
    const size_t colon = v.rfind(':');
    if (colon == std::string::npos || colon == 0) throw CliError(kConfig, "milter.reinject must be HOST:PORT, got " + v);
    const int port = std::atoi(v.c_str() + colon + 1);
    if (port <= 0 || port > 65535) throw CliError(kConfig, "milter.reinject: bad port in " + v);
    return {v.substr(0, colon), port};
}

}  // namespace

std::shared_ptr<const milter::Services> build_services(const conf::Config& c) {
    auto s = std::make_shared<milter::Services>();
    std::shared_ptr<LookupStack> stack = build_lookup(c, [](const std::string& e) { log_line("lookup: " + e); });
    for (const std::string& n : stack->notes) log_line(n);
    if (!stack->errors.empty()) throw CliError(kConfig, stack->errors.front());
    s->chain = stack->chain.get();
    s->keepalive = stack;
    s->resolver = std::make_shared<lookup::Resolver>(*stack->chain);
    s->policy = load_policy(c);
    s->policy_options.default_mode = *core::parse_mode(c.get("policy.default_mode"));
    s->policy_options.no_cert_tempfail = c.get("policy.no_cert_action") == "tempfail";
    s->policy_options.lookup_error_pass = c.get("policy.on_lookup_error") == "pass";
    s->policy_options.internal_domains = c.get_list("policy.internal_domains");
    s->policy_options.subject_tag = c.get("policy.subject_tag");
    s->policy_options.trigger_header = c.get("policy.trigger_header");
    s->transform = transform_options(c, "\r\n");
    std::tie(s->reinject_host, s->reinject_port) = host_port(c.get("milter.reinject"));
    s->reinject_timeout_ms = static_cast<long>(c.get_int("milter.reinject_timeout_ms"));
    s->dry_run = c.get_bool("milter.dry_run");
    s->max_message_size = static_cast<unsigned long long>(c.get_int("milter.max_message_size"));
    s->mta_size_limit = static_cast<unsigned long long>(c.get_int("milter.mta_size_limit"));
    s->memory_threshold = static_cast<size_t>(c.get_int("milter.memory_threshold"));
    s->spool_dir = c.get("milter.spool_dir");
    if (access(s->spool_dir.c_str(), W_OK | X_OK) != 0)
        throw CliError(kConfig, "milter.spool_dir " + s->spool_dir + " is not a writable directory");
    s->cipher_auto = c.get("crypto.cipher") == "auto";
    s->harvest_enabled = c.get_bool("harvest.enabled");
    if (s->harvest_enabled) {
        s->harvest_validator = stack->validator.get();
        s->harvest_store = std::make_shared<lookup::HarvestStore>(c.get("harvest.dir"));
        s->harvest_domains = c.get_list("harvest.domains");
        if (s->harvest_domains.empty()) s->harvest_domains = s->policy_options.internal_domains;
        s->harvest_max_size = static_cast<unsigned long long>(c.get_int("harvest.max_size"));
        s->harvest_keys = load_harvest_keys(c.get_list("harvest.keys"));
        s->publisher = make_publisher(c, true, log_line);
        if (s->harvest_domains.empty())
            log_line("harvest: off (neither harvest.domains nor policy.internal_domains names an inbound domain)");
    }
    {
        auto journal = std::make_shared<milter::Journal>(s->spool_dir + "/reinjected");
        if (const size_t pruned = journal->prune(); pruned != 0) log_line("re-injection journal: pruned " + std::to_string(pruned) + " old entries");
        s->journal = journal;
    }
    s->log = log_line;
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
    milter::ServicesHolder holder(build_services(*p.config));
    const std::string socket = p.config->get("milter.socket");
    if (p.config->get_bool("milter.dry_run")) log_line("dry run: decisions are logged, no mail is changed");
    // Same file, same command-line overrides: only what the files say can change.
    const auto reload = [argc, argv, &holder] {
        try {
            po::options_description d;
            Parsed again = parse_command(argc, argv, d);
            holder.set(build_services(*again.config));
            log_line("reloaded the configuration");
        } catch (const std::exception& e) {
            log_line(std::string("reload failed, keeping the running configuration: ") + e.what());
        }
    };
    return milter::serve(socket, holder, reload, log_line);
}

}  // namespace sealmilter::cli
