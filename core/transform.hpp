// core/transform.hpp — the S/MIME message transform (SPEC §5): a Message in; header edits
// plus a streamed encrypted body out. Free of libmilter: the CLI applies a Plan to a file,
// the milter maps it onto smfi_chgheader / smfi_addheader / smfi_replacebody.
//
// Ownership: Plans are plain values; the writer functions borrow the Message and the sink.
// Threads:   all functions are re-entrant; one Message per thread.
// Errors:    expected outcomes are values (PlanKind::PassThrough with a reason); OpenSSL or
//            I/O failures throw (crypto::CryptoError, std::system_error): the caller
//            tempfails, never passes plaintext.
#pragma once

#include "core/message.hpp"
#include "core/mime.hpp"
#include "crypto/base64.hpp"
#include "crypto/certificate.hpp"
#include "crypto/envelope.hpp"

#include <string>
#include <vector>

namespace sealmilter::core {

struct TransformOptions {
    crypto::EnvelopeOptions envelope;
    bool protect_headers = false;             // RFC 9788 header protection
    std::string protected_subject = "[...]";  // outer Subject when protect_headers
    std::string eol = "\r\n";                 // line ending of the produced message
};

// An edit of the original header list. `index` is the 1-based occurrence among fields of
// the same name (case-insensitive) in the ORIGINAL message, as smfi_chgheader counts them;
// for Insert, the 0-based position in the header section (smfi_insheader: 0 = first).
struct HeaderEdit {
    enum class Op { Change, Delete, Append, Insert };
    Op op;
    std::string name;
    int index = 0;
    std::string value;  // raw value as it follows the colon (leading space included)
};

enum class PlanKind { Encrypt, PassThrough };

struct Plan {
    PlanKind kind = PlanKind::PassThrough;
    std::string reason;  // why it passes through ("already S/MIME enveloped-data")
    std::vector<HeaderEdit> edits;
};

// Decides pass-through vs encryption and the outer header edits.
Plan plan_encryption(const Message& m, const TransformOptions& options);

// The outer header edits that make `fields` (name, raw value) the message's content fields:
// each replaces the first field of its name, the other content fields go, MIME-Version is
// ensured; a non-empty `protected_subject` replaces the Subject (header protection).
// Shared by encryption and signing (core/sign).
Plan plan_outer(const Message& m, const std::vector<HeaderField>& fields, const std::string& protected_subject = {});

// The inner entity's header section, CRLF-canonical and ending with the empty line.
std::string inner_header_section(const Message& m, const TransformOptions& options);

// Streams the base64 CMS body (76 columns, options.eol) of the encrypted message to `out`.
// Recipients must be non-empty and encryption-suitable.
void write_encrypted_body(const Message& m, const std::vector<crypto::Certificate>& recipients,
                          const TransformOptions& options, crypto::ByteSink& out);

// The header list after the edits (what the MTA will hold after the milter's calls).
std::vector<HeaderField> apply_edits(const std::vector<HeaderField>& original,
                                     const std::vector<HeaderEdit>& edits);

// Whole-message convenience for the CLI: headers per plan, empty line, body (or the
// original body when the plan passes through).
void write_transformed(const Message& m, const Plan& plan, const std::vector<crypto::Certificate>& recipients,
                       const TransformOptions& options, crypto::ByteSink& out);

}  // namespace sealmilter::core
