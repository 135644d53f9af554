// cli/report.cpp — `sealmilter report [-c FILE] [--journal FILE] [--since 24h] [--json]`: the
// rollout report over the log.decisions journal (metrics/report.hpp): per recipient domain
// and policy mode, what was (or in dry run would have been) encrypted, sent plain, refused,
// tempfailed, with the top reasons.
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "metrics/report.hpp"

#include <ctime>
#include <fstream>
#include <iostream>

namespace po = boost::program_options;

namespace sealmilter::cli {

int cmd_report(int argc, char** argv) {
    po::options_description desc(
        "sealmilter report [-c FILE] [--journal FILE] [--since 24h] [--json]\n"
        "Summarises the decision journal (log.decisions) per recipient domain and policy mode:\n"
        "how many recipients were encrypted, sent plain, refused, tempfailed (dry-run rows: would\n"
        "have been), and the most frequent reasons for the rest. Read it before turning\n"
        "milter.dry_run off. Exit: 0 printed, 64 usage, 66 journal unreadable, 78 no journal configured");
    desc.add_options()("journal", po::value<std::string>(), "the journal to read (default: log.decisions)")(
        "since", po::value<std::string>()->default_value("24h"),
        "only decisions this recent: N with s, m, h or d; 0 = everything")(
        "json", "print JSON instead of a table")("top", po::value<unsigned>()->default_value(3),
                                                 "reasons shown per row");
    Parsed p = parse_command(argc, argv, desc);
    if (p.help) return kOk;
    const std::string path = p.vm.count("journal") != 0U ? p.vm["journal"].as<std::string>() : p.config->get("log.decisions");
    if (path.empty())
        throw CliError(kConfig, "no journal: log.decisions is empty in " + p.config->origin("log.decisions") +
                                    " (set it, or name one with --journal FILE)");
    const long long since = metrics::parse_since(p.vm["since"].as<std::string>());
    if (since < 0) throw CliError(kUsage, "--since: expected N with s, m, h or d (e.g. 24h, 7d)");
    std::ifstream in(path);
    if (!in) throw CliError(kNoInput, "cannot read the journal " + path);
    const std::time_t from = since == 0 ? 0 : std::time(nullptr) - static_cast<std::time_t>(since);
    const metrics::Report r = metrics::build_report(in, from, p.vm["top"].as<unsigned>());
    std::cout << (p.vm.count("json") != 0U ? metrics::format_json(r) : metrics::format_table(r));
    std::cout.flush();
    if (!std::cout) throw CliError(kIoErr, "cannot write the report");
    return kOk;
}

}  // namespace sealmilter::cli
