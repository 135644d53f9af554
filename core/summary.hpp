// core/summary.hpp — the structured outcome of one message, and its log lines.
//
// Purpose:   one summary per message (STYLE.md: one summary line per message, one line per
//            recipient decision). The struct is what metrics read; the log line is formatted
//            from it, with the wording the tests and operators' greps know
//            ("encrypted (aes-256-cbc) for 1 recipient(s) (1 certificate(s)), 0 copies split
//            off", "tempfailed: ...", "refused: ...", "passed unchanged: ...", "dry-run: ...").
// Ownership: plain values.
// Threads:   pure functions.
// Errors:    none.
#pragma once

#include "core/decide.hpp"

#include <chrono>
#include <string>
#include <vector>

namespace sealmilter::core {

enum class Action {
    Encrypted,       // groups[0] encrypted in place
    DeliveredPlain,  // groups[0] left plain (copies may have been encrypted)
    PassedUnchanged, // already encrypted
    Tempfailed,
    Refused,
    DryRun,  // decided and logged, nothing changed
    Decrypted,        // inbound S/MIME opened for the local recipients (groups[0])
    DecryptFailed,    // inbound S/MIME the ring cannot open: delivered unchanged, marked
};
const char* to_string(Action a) noexcept;

struct MessageSummary {
    Action action = Action::DeliveredPlain;
    std::string reason;   // Tempfailed / Refused / PassedUnchanged / DryRun: why (a sentence)
    bool dry_run = false;
    size_t recipients = 0;        // of groups[0] (the recipients this transaction keeps)
    size_t certificates = 0;      // RecipientInfos of groups[0], the archive not counted
    size_t copies = 0;            // groups split off and re-injected
    bool archived = false;        // crypto.archive_cert was added to the encrypted envelopes
    std::string cipher;           // "aes-256-cbc" when groups[0] is encrypted
    bool oaep = false;            // RSA-OAEP key transport
    bool signing_failed = false;  // the signing line (below) is a warning: no usable signer
    std::vector<std::string> sources;  // the lookup sources that answered, once each
    std::chrono::milliseconds lookup_wait{0};
    std::chrono::milliseconds planning{0};
    std::vector<RecipientDecision> decisions;  // one per envelope recipient
    std::string decryption;  // Decrypted / DecryptFailed: the trace header's value (trimmed)
    // Signing: "signed by ADDRESS (RULE, key ID) for N envelope(s)", or why a message that
    // should have been signed was sent unsigned; "" when nothing was to be signed.
    std::string signing;
};

// The one summary line (without the tag).
std::string format_summary(const MessageSummary& s);

// One recipient's decision line: "rcpt=<a> mode=M outcome=O[ bcc][ cert=FP...][ (reason)]",
// "dry-run: " first in dry-run mode.
std::string format_decision(const RecipientDecision& d, bool dry_run);

}  // namespace sealmilter::core
