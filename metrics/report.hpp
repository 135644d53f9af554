// metrics/report.hpp — the rollout report over the log.decisions journal.
//
// Purpose:   what `sealmilter report` prints: per recipient domain and policy mode, how many
//            recipients were (or, in dry run, would have been) encrypted, sent plain, refused,
//            tempfailed, and the most frequent reasons for anything not encrypted — what an
//            administrator reads before turning milter.dry_run off. Lines of real runs and of
//            dry runs are kept apart (a row says which).
// Ownership: plain values.
// Threads:   pure functions.
// Errors:    a line that is not a decision (bad JSON, missing fields) is counted in
//            `skipped_lines`, never fatal: a journal cut by a crash still reports.
#pragma once

#include <array>
#include <ctime>
#include <istream>
#include <map>
#include <string>
#include <vector>

namespace sealmilter::metrics {

struct ReportRow {
    std::string domain;
    std::string mode;
    bool dry_run = false;
    std::array<unsigned long long, 4> counts{};  // encrypted, plain, refused, tempfailed
    std::vector<std::pair<std::string, unsigned long long>> top_reasons;  // most frequent first
    unsigned long long total() const;
};

struct Report {
    std::vector<ReportRow> rows;  // by dry run, domain, mode
    unsigned long long decisions = 0;
    unsigned long long skipped_lines = 0;  // not a decision line
    std::time_t first = 0, last = 0;       // of the decisions counted
};

// Reads the journal; decisions before `since` (Unix time) are left out. `top` reasons per row.
Report build_report(std::istream& journal, std::time_t since, size_t top = 3);

// A table for the terminal (columns aligned).
std::string format_table(const Report& r);
// The same as JSON (one object; rows with their counts and reasons).
std::string format_json(const Report& r);

// "24h", "7d", "30m", "3600s", "90" (seconds) -> seconds; -1 when it does not parse.
long long parse_since(const std::string& s);

}  // namespace sealmilter::metrics
