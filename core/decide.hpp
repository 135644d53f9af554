// core/decide.hpp — per-recipient verdicts and envelope groups for one message (SPEC §4, §7).
//
// Purpose:   given the message headers, the envelope recipients, the policy and each
//            recipient's lookup result, decide for every recipient: encrypt (to which
//            certificates), deliver plain, reject (550 5.7.1) or tempfail (451 4.7.x); and
//            how recipients share envelopes:
//              - To/Cc recipients that are encrypted share one envelope per key type (RSA and
//                EC never share: NSS cannot decode an envelope holding an ECDH recipient);
//              - each encrypted Bcc recipient (an envelope recipient absent from To/Cc) gets
//                an envelope of its own, so no RecipientInfo reveals a Bcc;
//              - plain recipients share the original message.
//            The first group stays in the MTA's transaction; the others are split off (the
//            milter removes them and re-injects copies).
// Ownership: plain values.
// Threads:   pure functions, re-entrant.
// Errors:    none thrown for bad input; a header that does not parse names no recipients.
#pragma once

#include "core/message.hpp"
#include "core/policy.hpp"
#include "crypto/certificate.hpp"
#include "crypto/envelope.hpp"
#include "lookup/chain.hpp"

#include <optional>
#include <string>
#include <vector>

namespace sealmilter::core {

struct PolicyOptions {
    Mode default_mode = Mode::Opportunistic;      // policy.default_mode
    bool no_cert_tempfail = false;                // policy.no_cert_action = tempfail
    bool no_cert_issue = false;                   // policy.no_cert_action = issue: require misses issue
    bool lookup_error_pass = false;               // policy.on_lookup_error = pass
    std::vector<std::string> internal_domains;    // policy.internal_domains
    std::string subject_tag = "[secure]";         // raises the message to require; "" = off
    std::string trigger_header = "X-Sealmilter-Encrypt";  // "yes" raises to require; "" = off
};

// Issue: an `issue` recipient (or a `require` one under no_cert_action = issue) with a definite
// miss: a certificate will be issued for it (docs/issuing.md); the transaction issues it at end
// of data and the recipient is then encrypted to. An Issue left at planning time (not issued)
// tempfails the message, never passes it in plaintext.
enum class Outcome { Encrypt, Plain, Reject, Tempfail, Issue };
const char* to_string(Outcome o) noexcept;

struct RecipientDecision {
    std::string address;  // as given by the MTA
    Mode mode = Mode::Opportunistic;
    std::string policy_key;  // the table key that matched ("" = default or trigger)
    std::optional<bool> sign;  // the policy entry's +sign / +nosign (nullopt: the sender's default)
    bool bcc = false;
    Outcome outcome = Outcome::Plain;
    std::vector<crypto::Certificate> certificates;  // Encrypt
    std::vector<std::string> capabilities;          // SMIMECapabilities seen (harvest); empty = unknown
    std::string reply;  // Reject/Tempfail: "550 5.7.1 <sentence>" / "451 4.7.1 <sentence>"
    std::string reason;  // for the log: why this outcome
};

struct EnvelopeGroup {
    bool encrypted = false;
    std::vector<size_t> recipients;  // indexes into Decision::recipients
    std::vector<crypto::Certificate> certificates;
};

struct Decision {
    bool raised_to_require = false;  // a subject tag or trigger header was present
    std::vector<RecipientDecision> recipients;
    std::vector<EnvelopeGroup> groups;  // groups[0] stays in the transaction
};

// True when a definite miss of `d`'s mode issues a certificate (mode issue, or require with
// policy.no_cert_action = issue).
bool issues_on_miss(const RecipientDecision& d, const PolicyOptions& options) noexcept;

// The policy mode of one recipient (before any lookup), honouring internal domains.
RecipientDecision classify(const std::string& address, const PolicyTable& policy, const PolicyOptions& options,
                           bool raised);

// Whether the message carries the subject tag or the trigger header (SPEC §4).
bool has_trigger(const Message& m, const PolicyOptions& options);

// The addr-specs named in To and Cc (GMime's RFC 5322 address parser; groups expanded).
std::vector<std::string> visible_recipients(const Message& m);

// `lookups[i]` belongs to `envelope_rcpts[i]`; entries for recipients that need no lookup
// (never / internal) are ignored.
// crypto.cipher = auto (SPEC §5, RFC 8551 §2.7): AES-256-GCM only when every recipient of the
// envelope advertised it, else AES-256-CBC when every recipient advertised it, else AES-128-CBC
// (which every S/MIME receiver must read, RFC 8551 §2.7); RSA-OAEP only when every recipient
// advertised it. A recipient whose capabilities are unknown (no signed mail seen) counts as
// AES-256-CBC and AES-128-CBC with PKCS#1 v1.5: what every client in use reads. `base`
// supplies everything else.
crypto::EnvelopeOptions choose_envelope(const std::vector<const std::vector<std::string>*>& capabilities,
                                        crypto::EnvelopeOptions base);

// The one recipient decision, at RCPT time (no trigger known yet: `raised` false) and at end
// of data. `lookup` is null when no lookup result exists (that counts as a failed lookup for
// require / opportunistic recipients; `never` needs none).
RecipientDecision decide_recipient(const std::string& address, const PolicyTable& policy, const PolicyOptions& options,
                                   bool raised, const lookup::LookupResult* lookup);

// At RCPT time: the reply line for a `require` (or `issue`) recipient whose answer is already
// definite ("550 5.7.1 ..." / "451 4.7.1 ..."), or nullopt to accept it (decided at end of
// data; an Issue outcome is accepted: the transaction checks the issuer itself).
std::optional<std::string> rcpt_reply(const RecipientDecision& d);

// Appends each of `certs` that `to` does not hold yet (same SHA-256 fingerprint); returns how
// many were appended. One certificate never gets two RecipientInfos in an envelope.
size_t add_certificates(std::vector<crypto::Certificate>& to, const std::vector<crypto::Certificate>& certs);

Decision decide(const Message& m, const std::vector<std::string>& envelope_rcpts, const PolicyTable& policy,
                const PolicyOptions& options, const std::vector<lookup::LookupResult>& lookups);

}  // namespace sealmilter::core
