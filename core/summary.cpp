// core/summary.cpp — log lines from the structured summary (see summary.hpp).
#include "core/summary.hpp"

namespace sealmilter::core {

const char* to_string(Action a) noexcept {
    switch (a) {
    case Action::Encrypted: return "encrypted";
    case Action::DeliveredPlain: return "plain";
    case Action::PassedUnchanged: return "passed";
    case Action::Tempfailed: return "tempfailed";
    case Action::Refused: return "refused";
    case Action::DryRun: return "dry-run";
    case Action::Decrypted: return "decrypted";
    case Action::DecryptFailed: return "decrypt-failed";
    }
    return "?";
}

std::string format_summary(const MessageSummary& s) {
    const std::string copies = std::to_string(s.copies) + " copies split off";
    switch (s.action) {
    case Action::Encrypted:
        return "encrypted (" + s.cipher + (s.oaep ? ", RSA-OAEP" : "") + ") for " + std::to_string(s.recipients) +
               " recipient(s) (" + std::to_string(s.certificates) + " certificate(s)" +
               (s.archived ? " and the archive" : "") + "), " + copies;
    case Action::DeliveredPlain:
        return "delivered plain to " + std::to_string(s.recipients) + " recipient(s), " + copies;
    case Action::PassedUnchanged: return "passed unchanged: " + s.reason;
    case Action::Tempfailed: return "tempfailed: " + s.reason;
    case Action::Refused: return "refused: " + s.reason;
    case Action::DryRun: return "dry-run: " + s.reason;
    case Action::Decrypted:
        return "decrypted for " + std::to_string(s.recipients) + " local recipient(s) (" + s.decryption + "), " + copies;
    case Action::DecryptFailed:
        return "not decrypted, delivered unchanged to " + std::to_string(s.recipients) + " local recipient(s) (" +
               s.decryption + "): " + s.reason + ", " + copies;
    }
    return s.reason;
}

std::string format_decision(const RecipientDecision& d, bool dry_run) {
    std::string line = std::string(dry_run ? "dry-run: " : "") + "rcpt=<" + d.address + "> mode=" + to_string(d.mode) +
                       " outcome=" + to_string(d.outcome) + (d.bcc ? " bcc" : "");
    for (const auto& c : d.certificates) line += " cert=" + c.fingerprint_sha256();
    if (!d.reason.empty()) line += " (" + d.reason + ")";
    return line;
}

}  // namespace sealmilter::core
