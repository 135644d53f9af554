// metrics/report.cpp — the rollout report (see report.hpp).
#include "metrics/report.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <sstream>
#include <tuple>

namespace sealmilter::metrics {
namespace {

using json = nlohmann::json;

constexpr std::array<const char*, 4> kOutcomes = {"encrypted", "plain", "refused", "tempfailed"};

int outcome_index(const std::string& o) {
    for (size_t i = 0; i < kOutcomes.size(); ++i)
        if (o == kOutcomes[i]) return static_cast<int>(i);
    return -1;
}

struct Acc {
    ReportRow row;
    std::map<std::string, unsigned long long> reasons;
};

std::string pad(const std::string& s, size_t w) { return s.size() >= w ? s : s + std::string(w - s.size(), ' '); }
std::string rpad(const std::string& s, size_t w) { return s.size() >= w ? s : std::string(w - s.size(), ' ') + s; }

}  // namespace

unsigned long long ReportRow::total() const {
    unsigned long long t = 0;
    for (unsigned long long c : counts) t += c;
    return t;
}

long long parse_since(const std::string& s) {
    if (s.empty()) return -1;
    size_t used = 0;
    long long n = 0;
    try {
        n = std::stoll(s, &used);
    } catch (...) {
        return -1;
    }
    if (n < 0) return -1;
    const std::string unit = s.substr(used);
    if (unit.empty() || unit == "s") return n;
    if (unit == "m") return n * 60;
    if (unit == "h") return n * 3600;
    if (unit == "d") return n * 86400;
    return -1;
}

Report build_report(std::istream& in, std::time_t since, size_t top) {
    Report rep;
    std::map<std::tuple<bool, std::string, std::string>, Acc> acc;
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty()) continue;
        const json j = json::parse(line, nullptr, false);
        if (j.is_discarded() || !j.is_object() || !j.contains("unix") || !j["unix"].is_number_integer() ||
            !j.contains("outcome") || !j["outcome"].is_string() || !j.contains("rcpt")) {
            ++rep.skipped_lines;
            continue;
        }
        const int oi = outcome_index(j["outcome"].get<std::string>());
        if (oi < 0) {
            ++rep.skipped_lines;
            continue;
        }
        const auto t = static_cast<std::time_t>(j["unix"].get<long long>());
        if (t < since) continue;
        const bool dry = j.value("dry_run", false);
        const std::string domain = j.value("domain", std::string());
        const std::string mode = j.value("mode", std::string("?"));
        Acc& a = acc[{dry, domain, mode}];
        a.row.domain = domain;
        a.row.mode = mode;
        a.row.dry_run = dry;
        a.row.counts[static_cast<size_t>(oi)] += 1;
        if (oi != 0) a.reasons[j.value("reason", std::string())] += 1;  // why not encrypted
        ++rep.decisions;
        rep.first = rep.first == 0 ? t : std::min(rep.first, t);
        rep.last = std::max(rep.last, t);
    }
    for (auto& [key, a] : acc) {
        std::vector<std::pair<std::string, unsigned long long>> reasons(a.reasons.begin(), a.reasons.end());
        std::stable_sort(reasons.begin(), reasons.end(), [](const auto& x, const auto& y) { return x.second > y.second; });
        if (reasons.size() > top) reasons.resize(top);
        a.row.top_reasons = std::move(reasons);
        rep.rows.push_back(std::move(a.row));
    }
    return rep;
}

std::string format_table(const Report& r) {
    std::ostringstream out;
    if (r.rows.empty()) {
        out << "no decisions in the journal for this period";
        if (r.skipped_lines != 0) out << " (" << r.skipped_lines << " lines were not decisions)";
        out << "\n";
        return out.str();
    }
    size_t dw = 6;
    for (const ReportRow& row : r.rows) dw = std::max(dw, row.domain.size());
    const std::vector<std::string> heads = {"encrypted", "plain", "refused", "tempfailed"};
    bool any_dry = false;
    for (const ReportRow& row : r.rows) any_dry = any_dry || row.dry_run;
    out << pad("domain", dw) << "  " << pad("mode", 13) << "  " << pad("run", 7);
    for (const std::string& h : heads) out << "  " << rpad(h, 10);
    out << "\n";
    for (const ReportRow& row : r.rows) {
        out << pad(row.domain.empty() ? "-" : row.domain, dw) << "  " << pad(row.mode, 13) << "  "
            << pad(row.dry_run ? "dry-run" : "live", 7);
        for (unsigned long long c : row.counts) out << "  " << rpad(std::to_string(c), 10);
        out << "\n";
        for (const auto& [why, n] : row.top_reasons)
            out << "    " << n << "x " << (why.empty() ? "(no reason given)" : why) << "\n";
    }
    out << r.decisions << " recipient decision(s)";
    if (any_dry) out << "; dry-run rows say what would have happened";
    if (r.skipped_lines != 0) out << "; " << r.skipped_lines << " line(s) skipped (not decisions)";
    out << "\n";
    return out.str();
}

std::string format_json(const Report& r) {
    json rows = json::array();
    for (const ReportRow& row : r.rows) {
        json reasons = json::array();
        for (const auto& [why, n] : row.top_reasons) reasons.push_back({{"reason", why}, {"count", n}});
        json j = {{"domain", row.domain}, {"mode", row.mode}, {"dry_run", row.dry_run}, {"top_reasons", reasons}};
        for (size_t i = 0; i < kOutcomes.size(); ++i) j[kOutcomes[i]] = row.counts[i];
        rows.push_back(std::move(j));
    }
    return json{{"decisions", r.decisions},
                {"skipped_lines", r.skipped_lines},
                {"first", static_cast<long long>(r.first)},
                {"last", static_cast<long long>(r.last)},
                {"rows", rows}}
               .dump(2) +
           "\n";
}

}  // namespace sealmilter::metrics
