// core/sign.hpp — outbound S/MIME signing (issue 12, docs/signing.md): who signs, the
// canonical entity that is signed, and the signed entity (multipart/signed or opaque
// application/pkcs7-mime; signed-data) streamed out — alone (sign only) or inside the envelope
// (sign-then-encrypt, RFC 8551 §3.5).
//
// Purpose:   choose_signer() picks the key: the From address's own active key from the ring,
//            else the domain's signing address (crypto.sign_key_domains), else crypto.sign_key;
//            never a retired, compromised or escrowed key (keys::active_key_for); a token key
//            is used in place (the ring hands out a handle). for_each_canonical_chunk() yields
//            exactly the bytes that are signed: the content header section and the body, CRLF,
//            every part 7-bit (a part with 8bit or binary content is re-encoded to
//            quoted-printable or base64 by GMime's g_mime_object_encode before signing, so a
//            relay's 8BITMIME downgrade cannot break the signature). write_signed_entity()
//            streams the signed entity (header section included or not) to a sink.
// Ownership: a Signer holds shared_ptrs into the ring's entries: it outlives a SIGHUP swap.
//            The writers borrow the Message and the sink.
// Threads:   re-entrant; one Message per thread.
// Errors:    no signer is a value (std::nullopt and *why); OpenSSL / I/O failures throw
//            (crypto::CryptoError, std::system_error): the caller tempfails.
#pragma once

#include "core/message.hpp"
#include "core/transform.hpp"
#include "crypto/digest.hpp"
#include "crypto/signed_data.hpp"
#include "keys/key_ring.hpp"

#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sealmilter::core {

enum class SignFormat { Detached, Opaque };

// The crypto.sign* options (immutable per snapshot).
struct SignSettings {
    bool always = false;                      // crypto.sign = always: the global default
    SignFormat format = SignFormat::Detached;  // crypto.sign_format
    crypto::Digest digest = crypto::Digest::Sha256;  // crypto.sign_digest
    std::string sign_key;                      // crypto.sign_key: the address whose key signs for the others
    std::map<std::string, std::string> domain_keys;  // crypto.sign_key_domains: sender domain -> address
    std::vector<std::string> sign_domains;     // crypto.sign_sender_domains: senders there always sign
    std::vector<std::string> nosign_domains;   // crypto.nosign_sender_domains: senders there never do
    bool missing_tempfail = false;             // crypto.sign_missing = tempfail
};

// What this gateway can decrypt, strongest first (the SMIMECapabilities it announces).
const std::vector<std::string>& gateway_capabilities();

// Parses crypto.sign_key_domains entries "domain=address"; throws std::invalid_argument naming
// the bad entry.
std::map<std::string, std::string> parse_domain_keys(const std::vector<std::string>& entries);

// The sender domain's default (before any recipient's policy entry): true = sign.
bool sender_signs(std::string_view from, const SignSettings& s);

struct Signer {
    keys::KeyEntry entry;  // the key that signs
    keys::PrivateKey key;  // its usable private half (file key unwrapped, or a token handle)
    std::optional<crypto::Certificate> encryption;  // SMIMEEncryptionKeyPreference
    std::string address;   // whose key it is
    std::string rule;      // "sender", "domain key", "crypto.sign_key" (for the log)
};

// Who signs mail from `from` at `now`; std::nullopt and *why when nobody can.
std::optional<Signer> choose_signer(const keys::KeyRing* ring, std::string_view from, const SignSettings& s,
                                    std::time_t now, std::string* why);

// The first addr-spec of the From field (GMime's address parser), lower-case; "" when none.
std::string from_address(const Message& m);

// The encryption certificate to announce for a signer: its own certificate when it can receive
// encrypted mail, else the address's newest active key whose certificate can; std::nullopt when none.
std::optional<crypto::Certificate> encryption_preference(const keys::KeyRing& ring, const keys::KeyInfo& signer,
                                                          std::time_t now);

// True when the message body holds a byte that is not 7-bit (NUL, >= 0x80) or a line longer
// than 998 octets: it is re-encoded before it is signed.
bool needs_7bit(const Message& m);

// The exact bytes that are signed (content header section + body, CRLF, 7-bit), in chunks.
void for_each_canonical_chunk(const Message& m, const std::function<void(std::string_view)>& fn);

struct SignedEntityOptions {
    SignFormat format = SignFormat::Detached;
    crypto::SignOptions sign;  // digest, capabilities, key preference
    std::string boundary;      // multipart/signed; make_boundary() when empty
};

// A fresh random MIME boundary ("=_sealmilter_" + 32 hex digits: cannot occur in QP or base64).
std::string make_boundary();

// The Content-Type (and Content-Transfer-Encoding for opaque) fields of the signed entity, as
// header edits' values: {name, raw value} pairs.
std::vector<HeaderField> signed_entity_fields(const SignedEntityOptions& o);

// Streams the body of the signed entity (what follows its header section), `eol` between the
// lines this code writes (the signed part itself is CRLF: CRLF is what is signed).
void write_signed_body(const Message& m, const Signer& signer, const SignedEntityOptions& o, const std::string& eol,
                       crypto::ByteSink& out);

// Header section (CRLF) + empty line + body: the entity that goes inside an envelope.
void write_signed_entity(const Message& m, const Signer& signer, const SignedEntityOptions& o, crypto::ByteSink& out);

// The outer header edits of a sign-only message: content fields replaced by the signed entity's.
Plan plan_signing(const Message& m, const SignedEntityOptions& o);

// Sign-only whole message (CLI / split copies): headers per plan, empty line, signed body.
void write_signed_message(const Message& m, const Signer& signer, const SignedEntityOptions& o, const std::string& eol,
                          crypto::ByteSink& out);

// Sign-then-encrypt: the signed entity inside the envelope; the body as write_encrypted_body.
void write_signed_encrypted_body(const Message& m, const Signer& signer, const SignedEntityOptions& so,
                                 const std::vector<crypto::Certificate>& recipients, const TransformOptions& options,
                                 crypto::ByteSink& out);
void write_signed_encrypted(const Message& m, const Signer& signer, const SignedEntityOptions& so,
                            const std::vector<crypto::Certificate>& recipients, const TransformOptions& options,
                            crypto::ByteSink& out);

// DKIM ordering (SPEC §8, docs/signing.md): given the value of Postfix's smtpd_milters (or
// non_smtpd_milters) and our milter.socket ("inet:PORT@HOST" / "unix:PATH"), the entry that looks
// like a DKIM signer (its text mentions "dkim") and comes before ours; "" when none does, or when
// ours is not in the list.
std::string dkim_before_us(std::string_view milters, std::string_view our_socket);

// SignOptions for a signer under these settings (capabilities, key preference, digest).
SignedEntityOptions entity_options(const Signer& signer, const SignSettings& s);

}  // namespace sealmilter::core
