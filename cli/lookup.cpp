// cli/lookup.cpp — `sealmilter lookup EMAIL... [--json]` and `sealmilter cache list|purge`.
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/wiring.hpp"

#include <nlohmann/json.hpp>

#include <iostream>

namespace po = boost::program_options;
using nlohmann::json;

namespace sealmilter::cli {
namespace {

json verdict_json(const lookup::Verdict& v) {
    return {{"subject", v.cert.subject()},
            {"issuer", v.cert.issuer()},
            {"sha256", v.cert.fingerprint_sha256()},
            {"not_before", crypto::format_time_utc(v.cert.not_before())},
            {"not_after", crypto::format_time_utc(v.cert.not_after())},
            {"key", v.cert.key_description()},
            {"usable", v.usable},
            {"reason", v.reason}};
}

json result_json(const lookup::LookupResult& r) {
    json j = {{"email", r.email}, {"outcome", lookup::to_string(r.outcome)}, {"source", r.source},
              {"reason", r.reason}};
    j["selected"] = json::array();
    for (const auto& c : r.selected) j["selected"].push_back(c.fingerprint_sha256());
    j["capabilities"] = r.capabilities;  // SMIMECapabilities from harvested signed mail; [] = unknown
    j["steps"] = json::array();
    for (const auto& t : r.trace) {
        json step = {{"step", t.step}, {"outcome", lookup::to_string(t.outcome)}, {"reason", t.reason}};
        step["candidates"] = json::array();
        for (const auto& v : t.verdicts) step["candidates"].push_back(verdict_json(v));
        j["steps"].push_back(std::move(step));
    }
    return j;
}

void print_text(const lookup::LookupResult& r) {
    std::cout << r.email << ": " << lookup::to_string(r.outcome);
    if (r.outcome == lookup::Outcome::Found) std::cout << " via " << r.source << " (" << r.selected.size() << " selected)";
    if (!r.capabilities.empty()) {
        std::cout << " capabilities";
        for (size_t i = 0; i < r.capabilities.size(); ++i) std::cout << (i == 0 ? " " : ",") << r.capabilities[i];
    }
    if (r.outcome != lookup::Outcome::Found) std::cout << " (" << r.reason << ")";
    std::cout << "\n";
    for (const auto& t : r.trace) {
        std::cout << "  " << t.step << ": " << lookup::to_string(t.outcome);
        if (!t.reason.empty()) std::cout << " - " << t.reason;
        std::cout << "\n";
        for (const auto& v : t.verdicts) {
            std::cout << "    " << (v.usable ? "usable  " : "rejected") << " " << v.cert.subject() << "\n"
                      << "             sha256 " << v.cert.fingerprint_sha256() << "\n"
                      << "             " << v.cert.key_description() << ", valid "
                      << crypto::format_time_utc(v.cert.not_before()) << " .. "
                      << crypto::format_time_utc(v.cert.not_after()) << "\n";
            if (!v.usable) std::cout << "             why: " << v.reason << "\n";
        }
    }
}

void report_to_stderr(const std::string& text) { note(text); }

}  // namespace

int cmd_lookup(int argc, char** argv) {
    po::options_description desc(
        "sealmilter lookup EMAIL... [--json]\n"
        "Resolves addresses through lookup.order; prints the answering source and every candidate\n"
        "with its verdict. Exit: 0 all found, 1 some have no certificate, 2 errors");
    desc.add_options()("email", po::value<std::vector<std::string>>()->composing(), "address (positional)")(
        "json", "print JSON");
    po::positional_options_description pos;
    pos.add("email", -1);
    Parsed p = parse_command(argc, argv, desc, &pos);
    if (p.help) return kOk;
    if (p.vm.count("email") == 0U) throw CliError(kUsage, "lookup: at least one EMAIL is required");
    const auto emails = p.vm["email"].as<std::vector<std::string>>();
    std::unique_ptr<LookupStack> stack = build_lookup(*p.config, report_to_stderr);
    for (const std::string& n : stack->notes) note(n);
    for (const std::string& e : stack->errors) note("error: " + e);
    const std::vector<lookup::LookupResult> results = stack->chain->resolve(emails);
    int code = kOk;
    json all = json::array();
    for (const auto& r : results) {
        if (r.outcome == lookup::Outcome::TempError) code = 2;
        if (r.outcome == lookup::Outcome::NotFound && code == kOk) code = 1;
        if (p.vm.count("json") != 0U) {
            all.push_back(result_json(r));
        } else {
            print_text(r);
        }
    }
    if (p.vm.count("json") != 0U) std::cout << all.dump(2) << "\n";
    return code;
}

int cmd_cache(int argc, char** argv) {
    po::options_description desc(
        "sealmilter cache list [--json] | sealmilter cache purge [EMAIL...]\n"
        "Shows or removes cache entries (purge without EMAIL empties the cache)");
    desc.add_options()("action", po::value<std::string>(), "list or purge")(
        "email", po::value<std::vector<std::string>>()->composing(), "addresses to purge")("json", "print JSON");
    po::positional_options_description pos;
    pos.add("action", 1).add("email", -1);
    Parsed p = parse_command(argc, argv, desc, &pos);
    if (p.help) return kOk;
    const std::string action = p.vm.count("action") != 0U ? p.vm["action"].as<std::string>() : "";
    std::unique_ptr<lookup::CertificateCache> cache = open_cache(*p.config, report_to_stderr);
    if (!cache) throw CliError(kConfig, "cache.path is empty: there is no cache");
    if (action == "list") {
        json all = json::array();
        for (const lookup::CacheEntry& e : cache->list()) {
            json j = {{"email", e.email},
                      {"kind", e.negative ? "negative" : "positive"},
                      {"source", e.source},
                      {"reason", e.reason},
                      {"etag", e.etag},
                      {"stored", crypto::format_time_utc(e.stored_at)},
                      {"fresh_until", crypto::format_time_utc(e.expires_at)},
                      {"stale_until", crypto::format_time_utc(e.stale_until)}};
            j["certificates"] = json::array();
            for (const auto& c : e.certificates) j["certificates"].push_back(c.fingerprint_sha256());
            all.push_back(std::move(j));
        }
        if (p.vm.count("json") != 0U) {
            std::cout << all.dump(2) << "\n";
        } else {
            for (const auto& j : all)
                std::cout << j["email"].get<std::string>() << "  " << j["kind"].get<std::string>() << " from "
                          << j["source"].get<std::string>() << ", fresh until " << j["fresh_until"].get<std::string>()
                          << ", " << j["certificates"].size() << " certificate(s)\n";
        }
        return cache->healthy() ? kOk : kSoftware;
    }
    if (action == "purge") {
        int removed = 0;
        if (p.vm.count("email") == 0U) {
            removed = cache->purge_all();
        } else {
            for (const std::string& e : p.vm["email"].as<std::vector<std::string>>()) removed += cache->purge(e);
        }
        std::cout << "purged " << removed << " entr" << (removed == 1 ? "y" : "ies") << "\n";
        return cache->healthy() ? kOk : kSoftware;
    }
    throw CliError(kUsage, "cache: expected 'list' or 'purge'");
}

}  // namespace sealmilter::cli
