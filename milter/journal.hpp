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
//            Journal is the interface; FileJournal keeps one node's entries as files,
//            pg/journal.hpp keeps them in PostgreSQL so that a message retried on another node
//            (database.shared = journal) does not get a copy twice either. The transaction
//            asks before each copy and records it right after the next hop's 250, before the
//            next copy's hand-over begins; a journal that cannot answer or cannot record
//            tempfails the message (journal.hpp's promise: never a duplicate, never a loss,
//            apart from the instant between that 250 and the write).
// Ownership: FileJournal: files in `dir` (milter.spool_dir/reinjected); nothing in memory.
// Threads:   every implementation is safe from every session thread and across restarts.
// Errors:    contains() answers Unknown and record() false (with *error set) when the journal
//            cannot be read or written; key() throws std::system_error when the spooled body
//            cannot be read.
#pragma once

#include "core/message.hpp"

#include <ctime>
#include <string>
#include <vector>

namespace sealmilter::milter {

class Journal {
public:
    enum class Seen { No, Yes, Unknown };
    virtual ~Journal() = default;
    static std::string key(const core::Message& m, const std::string& sender, std::vector<std::string> recipients);
    // Whether a copy with this key was handed over (within max_age); Unknown with *error set
    // when the journal cannot be read.
    virtual Seen contains(const std::string& key, std::string* error) const = 0;
    // false (with *error set) when the entry could not be written; the error names the file
    // and why ("cannot create DIR/KEY: Permission denied").
    virtual bool record(const std::string& key, std::string* error) const = 0;
    virtual size_t prune() const = 0;  // removes entries older than max_age; returns how many
};

class FileJournal final : public Journal {
public:
    explicit FileJournal(std::string dir, long long max_age_s = 5LL * 86400);
    Seen contains(const std::string& key, std::string* error) const override;
    bool record(const std::string& key, std::string* error) const override;
    size_t prune() const override;
    const std::string& dir() const { return dir_; }

private:
    std::string dir_;
    long long max_age_s_;
};

}  // namespace sealmilter::milter
