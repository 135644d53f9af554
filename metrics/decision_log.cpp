// metrics/decision_log.cpp — the JSON-lines decision journal (see decision_log.hpp).
#include "metrics/decision_log.hpp"

#include "base/ascii.hpp"
#include "crypto/certificate.hpp"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>
#include <fcntl.h>

namespace sealmilter::metrics {
namespace {

using json = nlohmann::json;

json line_for(std::time_t now, const std::string& queue_id, const char* stage, bool dry_run,
              const core::RecipientDecision& d, RecipientOutcome outcome, const std::string& reason) {
    json certs = json::array();
    for (const crypto::Certificate& c : d.certificates) certs.push_back(c.fingerprint_sha256());
    return json{{"time", crypto::format_time_utc(now)},
                {"unix", static_cast<long long>(now)},
                {"queue_id", queue_id},
                {"stage", stage},
                {"dry_run", dry_run},
                {"rcpt", d.address},
                {"domain", domain_of(d.address)},
                {"mode", core::to_string(d.mode)},
                {"decision", core::to_string(d.outcome)},
                {"outcome", to_string(outcome)},
                {"bcc", d.bcc},
                {"certificates", std::move(certs)},
                {"reason", reason}};
}

}  // namespace

std::string domain_of(const std::string& address) {
    const size_t at = address.rfind('@');
    return at == std::string::npos ? std::string() : base::to_lower(std::string_view(address).substr(at + 1));
}

std::shared_ptr<DecisionLog> DecisionLog::open(const std::string& path, base::Logger log, std::string& error,
                                               const base::Clock* clock) {
    // 0640: the journal names correspondents; it is for the administrator, not everyone.
    base::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640));
    if (fd.get() < 0) {
        error = path + ": " + std::strerror(errno);
        return nullptr;
    }
    return std::make_shared<DecisionLog>(std::move(fd), path, std::move(log), clock);
}

DecisionLog::DecisionLog(base::UniqueFd fd, std::string path, base::Logger log, const base::Clock* clock)
    : fd_(std::move(fd)), path_(std::move(path)), log_(std::move(log)), clock_(clock) {}

void DecisionLog::write_line(const std::string& line) noexcept {
    base::MutexLock lock(mutex_);
    const ssize_t n = ::write(fd_.get(), line.data(), line.size());
    if (n == static_cast<ssize_t>(line.size()) || warned_) return;
    warned_ = true;
    log_.error("log.decisions " + path_ + ": cannot append (" + (n < 0 ? std::strerror(errno) : "short write") +
               "); decisions are missing from the journal until the next reload");
}

void DecisionLog::recipient_refused(const std::string& tag, const core::RecipientDecision& d, bool dry_run) noexcept {
    try {
        const RecipientOutcome o =
            d.outcome == core::Outcome::Tempfail ? RecipientOutcome::Tempfailed : RecipientOutcome::Refused;
        write_line(line_for(base::now_from(clock_), tag, "rcpt", dry_run, d, o, d.reason).dump() + "\n");
    } catch (...) {  // a failed allocation or an encoding error drops the line, never the mail
    }
}

void DecisionLog::message_decided(const MessageReport& r) noexcept {
    try {
        const core::MessageSummary& s = *r.summary;
        const std::time_t now = base::now_from(clock_);
        std::string lines;
        for (const core::RecipientDecision& d : s.decisions) {
            const RecipientOutcome o = effective_outcome(s, d);
            // A recipient that could have been served shares the message's fate: say why.
            const bool own = (o == RecipientOutcome::Refused && d.outcome == core::Outcome::Reject) ||
                             (o == RecipientOutcome::Tempfailed && d.outcome == core::Outcome::Tempfail);
            const bool shared_fate = (o == RecipientOutcome::Refused || o == RecipientOutcome::Tempfailed) && !own;
            const std::string reason = shared_fate ? "message " + std::string(core::to_string(s.action)) + ": " + s.reason
                                                   : d.reason;
            // json::dump with error_handler replace: an address in invalid UTF-8 is still written.
            lines += line_for(now, r.queue_id, "data", s.dry_run, d, o, reason)
                         .dump(-1, ' ', false, json::error_handler_t::replace) +
                     "\n";
        }
        if (!lines.empty()) write_line(lines);
    } catch (...) {
    }
}

}  // namespace sealmilter::metrics
