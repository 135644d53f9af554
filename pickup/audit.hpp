// pickup/audit.hpp — one line per pickup event (issue 13: "every event one audit log line").
//
// Purpose:   "pickup: event=<event> address=<addr> client=<ip> [key=value ...]" for notice,
//            code_sent, wrong_code, locked, pickup, rate_limited, csrf_refused, bad_link,
//            mail_failed. To pickup.audit_log (opened O_APPEND, created 0640, a timestamp in
//            front of each line) or, when that is empty, to the daemon log at info. Values are
//            made printable (no spaces, no control characters) so one line is one event.
//            Never tokens, codes or passwords.
// Ownership: AuditLog owns its file descriptor.
// Threads:   event() is safe concurrently (one write(2) per line, O_APPEND).
// Errors:    open() returns nullptr and one sentence; a failed write is logged as a warning.
#pragma once

#include "base/handle.hpp"
#include "base/logger.hpp"

#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace sealmilter::pickup {

class AuditLog {
public:
    // `path` "" = the daemon log.
    static std::unique_ptr<AuditLog> open(const std::string& path, base::Logger log, std::string* error);

    void event(std::string_view event, std::string_view address, std::string_view client,
               std::initializer_list<std::pair<std::string_view, std::string_view>> extra = {}) const;

    AuditLog(base::UniqueFd fd, base::Logger log) : fd_(std::move(fd)), log_(std::move(log)) {}

private:
    base::UniqueFd fd_;  // -1 = the daemon log
    base::Logger log_;
};

// `v` with every byte outside printable ASCII, space, '"' and '\\' as %XX: one token per value.
std::string audit_value(std::string_view v);

}  // namespace sealmilter::pickup
