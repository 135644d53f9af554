// core/plan.hpp — one plan per message: the transaction's facts in, everything to do out.
//
// Purpose:   the milter accumulates (sender, envelope recipients with their lookup results,
//            header fields, the body spool) and asks core once, at end of data, what to do.
//            plan_message() answers with a complete MessagePlan:
//              - the verdict (accept / tempfail 451 4.7.x / reject 550 5.7.1 / 552 5.3.4) with
//                the reply line — recipients cannot be refused one by one after DATA, so one
//                failing recipient decides for the message (failure aggregation);
//              - header edits for the message that stays in the transaction, trigger
//                stripping included (SPEC §4: the subject tag and the trigger header raise
//                the mode and never reach the recipient);
//              - per envelope group its kind and a writer that streams its content: for
//                groups[0] (stays in the transaction) the new body, for the others (split
//                off, re-injected) the whole message; recipients to remove;
//              - the structured summary (core/summary.hpp) the log line and metrics read.
//            Also here: the size refusals (milter.max_message_size, the encrypted-size
//            estimate against milter.mta_size_limit), dry run (decide and log, change
//            nothing) and the archive certificate (crypto.archive_cert: every encrypted
//            envelope is also encrypted to it).
// Ownership: plan_message() strips the triggers from `facts.message->headers` (the header
//            section every delivered form carries); the plan's writers borrow that Message
//            and must not outlive it.
// Threads:   re-entrant; one plan per transaction thread.
// Errors:    expected outcomes are verdicts; the writers throw on OpenSSL / I/O failures
//            (the caller tempfails, never passes plaintext).
#pragma once

#include "core/decide.hpp"
#include "core/inbound_decrypt.hpp"
#include "core/sign.hpp"
#include "core/summary.hpp"
#include "core/transform.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace sealmilter::core {

// Everything policy needs, from the configuration (immutable per snapshot).
struct PlanSettings {
    PolicyTable policy;
    PolicyOptions policy_options;
    TransformOptions transform;  // eol is CRLF on the milter wire
    bool cipher_auto = false;    // crypto.cipher = auto: per envelope from the capabilities
    bool dry_run = false;
    unsigned long long max_message_size = 104857600;
    unsigned long long mta_size_limit = 0;  // 0: not checked
    std::optional<crypto::Certificate> archive;  // crypto.archive_cert; every encrypted envelope too
    DecryptSettings decrypt;  // keys.decrypt_inbound, keys.decrypt_domains (core/inbound_decrypt.hpp)
    SignSettings sign;        // crypto.sign* (core/sign.hpp, docs/signing.md)
};

// What the transaction accumulated. `lookups[i]` belongs to `recipients[i]`.
struct TransactionFacts {
    std::string sender;                   // bare address
    std::vector<std::string> recipients;  // bare addresses, in RCPT order
    std::vector<lookup::LookupResult> lookups;
    Message* message = nullptr;
    bool too_big = false;  // the body exceeded max_message_size; nothing more was kept
    std::chrono::milliseconds lookup_wait{0};  // spent waiting for lookups at end of data
    const keys::KeyRing* keys = nullptr;  // the snapshot's key ring (inbound decryption, signing); null = none
};

struct Verdict {
    enum class Kind { Accept, Tempfail, Reject };
    Kind kind = Kind::Accept;
    std::string reply;  // "451 4.7.1 sentence" for Tempfail / Reject
};

// Sign: a signed message (sign only); SignEncrypt: the signed entity inside the envelope
// (RFC 8551 §3.5). Recipients whose signing differs never share a group. Decrypt: the
// local recipients of inbound S/MIME mail (always groups[0]; the external ones are split off
// with the message as sent); its writer streams the decrypted body, or is empty when the
// message could not be opened (delivered unchanged with the trace header saying why).
enum class GroupKind { Plain, Encrypt, Decrypt, Sign, SignEncrypt };
bool encrypts(GroupKind k) noexcept;  // Encrypt or SignEncrypt
const char* to_string(GroupKind k) noexcept;

using ContentWriter = std::function<void(crypto::ByteSink&)>;

struct PlannedGroup {
    GroupKind kind = GroupKind::Plain;
    std::vector<size_t> recipients;      // indexes into the envelope recipients
    std::vector<std::string> addresses;  // the same, bare
    std::vector<crypto::Certificate> certificates;  // the RecipientInfos (archive included)
    TransformOptions options;
    std::shared_ptr<const Signer> signer;  // Sign / SignEncrypt
    SignedEntityOptions sign_options;      // Sign / SignEncrypt (the boundary is fixed here)
    // groups[0]: the new body (empty when the body stays); the others: the whole message.
    ContentWriter write;
};

struct MessagePlan {
    Verdict verdict;
    std::vector<HeaderEdit> header_edits;  // for groups[0], in the order to apply them
    std::vector<PlannedGroup> groups;      // groups[0] stays; groups[1..] are re-injected
    std::vector<size_t> remove;            // recipients (indexes) that leave this transaction
    MessageSummary summary;
    // Inbound decryption: the opened message (harvest reads the decrypted content); null otherwise.
    std::shared_ptr<const OpenedMessage> decrypted;
    bool changes_message() const { return verdict.kind == Verdict::Kind::Accept && !summary.dry_run; }
};

MessagePlan plan_message(TransactionFacts& facts, const PlanSettings& s);

// The verdict after the plan's copies could not be handed over (nothing has changed yet).
MessagePlan reinjection_failed(MessagePlan plan, const std::string& why);

}  // namespace sealmilter::core
