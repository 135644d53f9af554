// milter/journal.hpp — remembers which split-off copies were already handed over.
//
// Purpose:   a copy is re-injected before the MTA hears the end-of-data verdict. If that
//            verdict never arrives (the daemon is killed, a later copy fails, the MTA times
//            out), the sender retries the whole message, and without a memory the copies
//            handed over the first time would be delivered twice. The journal keeps one empty
//            file per copy handed over, named by SHA-256 over (sender, the copy's recipients,
//            Message-ID, From, To, Cc, Subject, Content-Type, the body) — not Date or trace
//            fields, which the MTA may add anew on each attempt; a retry of the same message
//            finds it and skips that copy. Entries older than max_age are pruned.
// Ownership: files in `dir` (milter.spool_dir/reinjected); nothing in memory.
// Threads:   file operations only; safe from every session thread and across restarts.
// Errors:    a journal that cannot be written is logged by the caller and not fatal (the
//            copy was delivered; at worst a retry duplicates it, as without a journal).
//            key() throws std::system_error when the spooled body cannot be read.
#pragma once

#include "core/message.hpp"

#include <ctime>
#include <string>
#include <vector>

namespace sealmilter::milter {

class Journal {
public:
    explicit Journal(std::string dir, long long max_age_s = 5LL * 86400);
    static std::string key(const core::Message& m, const std::string& sender, std::vector<std::string> recipients);
    bool contains(const std::string& key) const;
    // "" when recorded, else why not, naming the file ("cannot create DIR/KEY: Permission denied").
    std::string record(const std::string& key) const;
    const std::string& dir() const { return dir_; }
    size_t prune() const;                       // removes entries older than max_age; returns how many

private:
    std::string dir_;
    long long max_age_s_;
};

}  // namespace sealmilter::milter
