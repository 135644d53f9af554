// metrics/decision_log.hpp — log.decisions: one JSON line per recipient decision.
//
// Purpose:   the journal `sealmilter report` reads (metrics/report.hpp): for every envelope
//            recipient of every decided message (and every `require` recipient refused at
//            RCPT) one line with the time, queue id, recipient, domain, policy mode, the
//            outcome it got (in dry run: would have got), whether it was a dry run and why.
//            Fields are documented in docs/logging.md. nlohmann-json writes the lines.
// Ownership: owns its file descriptor (O_APPEND, opened at construction: one per snapshot,
//            so a SIGHUP after logrotate moved the file opens a new one).
// Threads:   thread-safe; each line is one write(2) under a mutex.
// Errors:    open() reports a file that cannot be opened (the daemon refuses to start);
//            a failed write drops the line and is logged once per snapshot, mail flows.
#pragma once

#include "base/clock.hpp"
#include "base/handle.hpp"
#include "base/logger.hpp"
#include "base/mutex.hpp"
#include "metrics/observer.hpp"

#include <memory>
#include <string>

namespace sealmilter::metrics {

class DecisionLog final : public Observer {
public:
    // nullptr with `error` set when `path` cannot be opened for appending.
    static std::shared_ptr<DecisionLog> open(const std::string& path, base::Logger log, std::string& error,
                                             const base::Clock* clock = nullptr);

    void recipient_refused(const std::string& tag, const core::RecipientDecision& d, bool dry_run) noexcept override;
    void message_decided(const MessageReport& r) noexcept override;

    DecisionLog(base::UniqueFd fd, std::string path, base::Logger log, const base::Clock* clock);

private:
    void write_line(const std::string& line) noexcept;

    base::UniqueFd fd_;
    std::string path_;
    base::Logger log_;
    const base::Clock* clock_;
    base::Mutex mutex_;
    bool warned_ SEALMILTER_GUARDED_BY(mutex_) = false;
};

// The recipient's domain (after the last '@', lower case); "" without one.
std::string domain_of(const std::string& address);

}  // namespace sealmilter::metrics
