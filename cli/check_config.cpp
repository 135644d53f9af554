// cli/check_config.cpp — `sealmilter check-config [-c FILE]`: validates the configuration
// and everything it points at, the way the daemon will load it. Exit 0 when it would start,
// 1 with a clear message (naming file:line or the key) when it would not.
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/pickup.hpp"
#include "cli/state_paths.hpp"
#include "cli/wiring.hpp"

#include <pwd.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>

namespace po = boost::program_options;

namespace sealmilter::cli {
namespace {

constexpr const char* kServiceUser = "sealmilter";  // systemd/sealmilter.sysusers.conf, the unit's User=

// The form of every value (URL templates, paired client certificate and key, ...) was checked
// when the configuration was read (conf/kinds.hpp), exactly as `run` checks it; what is left
// here are warnings that do not stop the daemon.
std::vector<std::string> directory_problems(const conf::Config& c) {
    if (c.get("directory.url").rfind("http://", 0) == 0)
        note("warning: directory.url uses plain http; certificates are still validated");
    return {};
}

// Postfix's message_size_limit, when postconf answers (SPEC §8: encryption makes mail ~1.38x
// larger, and Postfix applies its limit to the body a milter replaced).
std::optional<unsigned long long> postfix_size_limit() {
    FILE* p = popen("postconf -h message_size_limit 2>/dev/null", "r");
    if (p == nullptr) return std::nullopt;
    char buf[64] = {};
    const bool got = std::fgets(buf, sizeof buf, p) != nullptr;
    if (pclose(p) != 0 || !got) return std::nullopt;
    char* end = nullptr;
    const unsigned long long v = std::strtoull(buf, &end, 10);
    if (end == buf || (*end != '\n' && *end != '\0')) return std::nullopt;
    return v;
}

void size_warnings(const conf::Config& c) {
    const std::optional<unsigned long long> limit = postfix_size_limit();
    if (!limit || *limit == 0) return;  // no Postfix here, or no limit
    const auto max = static_cast<unsigned long long>(c.get_int("milter.max_message_size"));
    const auto mta = static_cast<unsigned long long>(c.get_int("milter.mta_size_limit"));
    const std::string l = std::to_string(*limit);
    if (mta == 0)
        note("note: Postfix message_size_limit is " + l + "; set milter.mta_size_limit = " + l +
             " so that mail too big once encrypted is refused with a clear 552 5.3.4");
    else if (mta != *limit)
        note("warning: milter.mta_size_limit = " + std::to_string(mta) + " but Postfix message_size_limit is " + l);
    if (max / 10 * 14 > *limit)
        note("warning: milter.max_message_size = " + std::to_string(max) +
             ": plaintext near it is about 1.4 times larger once encrypted, over Postfix message_size_limit " + l +
             "; raise message_size_limit to " + std::to_string(max / 10 * 14) + " or lower milter.max_message_size");
}

// SPEC §8: sealmilter (encryption and signing change the body) before any DKIM signer.
void dkim_order_warnings(const conf::Config& c) {
    for (const char* param : {"smtpd_milters", "non_smtpd_milters"}) {
        FILE* p = popen((std::string("postconf -h ") + param + " 2>/dev/null").c_str(), "r");
        if (p == nullptr) continue;
        std::string value;
        char buf[512];
        while (std::fgets(buf, sizeof buf, p) != nullptr && value.size() < 65536) value += buf;
        if (pclose(p) != 0) continue;  // no Postfix here
        const std::string dkim = core::dkim_before_us(value, c.get("milter.socket"));
        if (!dkim.empty())
            note(std::string("warning: Postfix ") + param + " lists " + dkim + " (a DKIM signer?) before sealmilter (" +
                 c.get("milter.socket") + "): its signature breaks once sealmilter signs or encrypts; list sealmilter first");
    }
}

// Signing asked for without a key store: every message would go unsigned (or tempfail).
void signing_warnings(const conf::Config& c) {
    const bool may_sign = c.get("crypto.sign") == "always" || !c.get_list("crypto.sign_sender_domains").empty();
    if (may_sign && c.get("keys.master_key_file").empty())
        note("warning: crypto.sign asks for signatures but keys.master_key_file is empty: there is no key store to "
             "sign with, so mail goes " + std::string(c.get("crypto.sign_missing") == "tempfail" ? "tempfailed" : "unsigned"));
}

// The daemon's user: --user, else whoever runs check-config (the unit's ExecStartPre runs it
// as User=). An administrator who runs it as root is also told about the packaged service
// user, because that is who will need to write the cache and the journal.
// Whose writability is an error: --user's, else the invoking user's.
std::string user_to_check(const po::variables_map& vm) {
    return vm.count("user") != 0U ? vm["user"].as<std::string>() : std::string();
}

// Root without --user, on a machine with the package's service user: that user's problems are
// said as warnings (the packaged unit runs as it), not errors — root may be checking a
// configuration that is not the unit's, e.g. one under /tmp.
bool also_warn_for_service_user(const po::variables_map& vm) {
    return vm.count("user") == 0U && ::geteuid() == 0 && ::getpwnam(kServiceUser) != nullptr;
}

// Removes, when it goes out of scope, those of `paths` that did not exist when it was made
// (files, and directories that are still empty): checking must leave no state behind, since
// state made by root is state the service user cannot write.
class CreatedFiles {
public:
    explicit CreatedFiles(const std::vector<std::string>& paths) {
        for (const std::string& p : paths) {
            std::error_code ec;
            if (!p.empty() && !std::filesystem::exists(p, ec)) absent_.push_back(p);
        }
    }
    ~CreatedFiles() {
        for (const std::string& f : absent_) {
            std::error_code ec;
            std::filesystem::remove(f, ec);
        }
    }
    CreatedFiles(const CreatedFiles&) = delete;
    CreatedFiles& operator=(const CreatedFiles&) = delete;

private:
    std::vector<std::string> absent_;
};

}  // namespace

int cmd_check_config(int argc, char** argv) {
    po::options_description desc(
        "sealmilter check-config [-c FILE] [--user NAME]\n"
        "Validates the configuration, trust anchors, CRLs, token file, store and cache, and that\n"
        "the user who will run the daemon can write every state path (spool and re-injection\n"
        "journal, cache, harvest) and read the store.\n"
        "Exit: 0 valid, 1 invalid (the message names file:line or the key, the path and why)");
    desc.add_options()("user,u", po::value<std::string>(),
                       "check the state paths for this user (default: the current one; as root, also the unit's "
                       "user sealmilter when it exists)");
    std::vector<std::string> problems;
    try {
        Parsed p = parse_command(argc, argv, desc);
        if (p.help) return kOk;
        problems = directory_problems(*p.config);
        // Writability first, judged on the paths as the daemon will find them.
        {
            std::vector<std::string> more = state_path_problems(*p.config, user_to_check(p.vm));
            problems.insert(problems.end(), more.begin(), more.end());
        }
        if (also_warn_for_service_user(p.vm)) {
            for (const std::string& w : state_path_problems(*p.config, kServiceUser))
                note("warning: " + w + " (the packaged unit runs as " + std::string(kServiceUser) +
                     "; check-config --user " + kServiceUser + " makes this an error)");
        }
        // Opening the cache creates it, and the services make the re-injection journal's
        // directory; a check must leave neither behind (as root they would be root's, and the
        // service user could not write them).
        const std::string& db = p.config->get("cache.path");
        const CreatedFiles made_here(db.empty() ? std::vector<std::string>{p.config->get("milter.spool_dir") + "/reinjected"}
                                                : std::vector<std::string>{db, db + "-wal", db + "-shm",
                                                                           p.config->get("milter.spool_dir") + "/reinjected"});
        {
            std::unique_ptr<LookupStack> stack =
                build_lookup(*p.config, [&](const std::string& e) { problems.push_back(e); });
            for (const std::string& n : stack->notes) note(n);
            problems.insert(problems.end(), stack->errors.begin(), stack->errors.end());
            if (stack->cache && !stack->cache->healthy())
                problems.push_back("cache.path " + p.config->get("cache.path") + " is not usable");
        }
        metrics_listen(*p.config);  // HOST:PORT (whether it is free is only known when run binds it)
        check_pickup(*p.config);  // issue 13: pickup.* (url, certificate and key, proxies, logo, audit log, CA)
        if (problems.empty()) build_services(*p.config);  // policy, spool dir, re-injection, database, journal
        size_warnings(*p.config);
        dkim_order_warnings(*p.config);
        signing_warnings(*p.config);
        if (problems.empty()) {
            std::cout << "configuration OK (" << (p.vm.count("config") != 0U ? p.vm["config"].as<std::string>()
                                                                              : std::string(conf::kDefaultConfigPath))
                      << ", lookup.order = " << p.config->get("lookup.order") << ")\n";
            return 0;
        }
    } catch (const CliError& e) {
        if (e.code() == kUsage) throw;
        problems.emplace_back(e.what());
    }
    for (const std::string& pr : problems) note("error: " + pr);
    return 1;
}

}  // namespace sealmilter::cli
