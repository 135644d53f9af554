// core/inbound_decrypt.hpp — opening inbound S/MIME mail for local users (issue 11 item 4).
//
// Purpose:   mail to recipients in keys.decrypt_domains that is EnvelopedData or
//            AuthEnvelopedData for a key of the ring (any state: active, retired, compromised)
//            is decrypted before delivery. open_inbound() decrypts once, at plan time, through
//            core::decrypt_message(msg, ring, ...) into a Message whose body spools like the
//            milter's own; the plan (core/plan.cpp, group kind `decrypt`) then turns it into
//            header edits (the outer headers stay, the content headers are replaced by the
//            inner entity's, one trace header first) and a body writer. A signature found
//            directly inside is verified over the decrypted bytes and its signer validated
//            like a recipient's certificate (lookup::Validator): valid, invalid or untrusted.
//            Mail the ring cannot open is delivered unchanged, marked result=failed with a
//            reason token; the detail (the RecipientIdentifiers no key matches) goes to the log.
//            X-Sealmilter-Decryption fields already on a message are removed first
//            (strip_decryption_headers), so nobody outside can forge one.
// Ownership: an OpenedMessage owns its decrypted Message (and that body's spool file, unlinked
//            at creation); the ring and the validator are borrowed.
// Threads:   re-entrant; the ring and the validator are thread-safe.
// Errors:    content problems (no key, damaged CMS) are values (Result::Failed + reason);
//            I/O and OpenSSL allocation failures throw (the transaction tempfails).
#pragma once

#include "core/message.hpp"
#include "core/transform.hpp"
#include "keys/key_ring.hpp"
#include "lookup/validate.hpp"

#include <memory>
#include <string>
#include <vector>

namespace sealmilter::core {

inline constexpr const char* kDecryptionHeader = "X-Sealmilter-Decryption";

struct DecryptSettings {
    bool enabled = false;              // keys.decrypt_inbound
    std::vector<std::string> domains;  // keys.decrypt_domains (default policy.internal_domains)
    const lookup::Validator* validator = nullptr;  // trust of a signature inside; null = untrusted
    unsigned long long max_signature_size = 26214400;  // larger decrypted bodies: signature not checked
    size_t memory_threshold = 1 << 20;                 // the decrypted body spools past this
    std::string spool_dir = "/tmp";
};

// Whether `address` is a local recipient whose copy is decrypted.
bool decrypts_for(const std::string& address, const DecryptSettings& s);

// Whether the top-level Content-Type can hold an envelope (application/(x-)pkcs7-mime, or
// multipart/signed around one): anything else is not looked into (no copy of the message).
bool may_be_encrypted(const Message& m);

struct OpenedMessage {
    enum class Result { NotEncrypted, Decrypted, Failed };
    Result result = Result::NotEncrypted;
    std::string reason;  // Failed: "no-key", "damaged", "key-unavailable", "unavailable"
    std::string detail;  // for the log: why, with the envelope's identifiers
    keys::KeyEntry key;  // Decrypted: the key that opened it
    std::string signature;  // "valid", "invalid", "untrusted"; "" = no signature inside
    std::string signer;     // the signer's address ("" when none)
    std::unique_ptr<Message> message;  // Decrypted: the decrypted message, CRLF
    size_t inner_begin = 0;            // message->headers[inner_begin..] came from inside
    bool protected_headers = false;    // RFC 9788: the inner header section replaced the outer

    // The trace header's value, with its leading space:
    // " result=decrypted; key=<sha256>[; signature=valid; signer=a@b]" or " result=failed; reason=no-key".
    std::string trace_value() const;
};

// Decrypts `m` with the ring (nullptr: no key store, every envelope fails "unavailable").
OpenedMessage open_inbound(const Message& m, const keys::KeyRing* ring, const DecryptSettings& s);

// The header edits that turn the MTA's copy of `outer` into the decrypted message: the trace
// header inserted first, the outer content headers deleted, the inner entity's appended (with
// RFC 9788 protected headers, the protected fields replace the outer ones of the same name).
std::vector<HeaderEdit> decryption_edits(const Message& outer, const OpenedMessage& o);

// Streams the decrypted body (CRLF).
void write_opened_body(const OpenedMessage& o, crypto::ByteSink& out);

// Removes every X-Sealmilter-Decryption field from `headers` and returns the edits that remove
// them from the MTA's copy (highest occurrence first, so the MTA's renumbering cannot matter).
std::vector<HeaderEdit> strip_decryption_headers(std::vector<HeaderField>& headers);

}  // namespace sealmilter::core
