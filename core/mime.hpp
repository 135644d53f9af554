// core/mime.hpp — MIME facts about a message: its parsed Content-Type (GMime), CRLF
// canonicalisation, and whether the message is already encrypted.
//
// Ownership: ContentType is a plain value (GMime objects are released inside).
// Threads:   ensure_gmime() initialises GMime once per process (thread-safe); afterwards
//            the functions here are re-entrant.
// Errors:    unparsable input yields empty / "none" values, never exceptions.
#pragma once

#include "core/message.hpp"

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace sealmilter::core {

void ensure_gmime();

struct ContentType {
    std::string type;     // lower case, e.g. "application"
    std::string subtype;  // lower case, e.g. "pkcs7-mime"
    std::map<std::string, std::string> params;  // lower-case names, decoded values (RFC 2231)
    std::string param(const std::string& name) const;
};

// Parses a raw header value (folding allowed). std::nullopt when GMime cannot make sense of it.
std::optional<ContentType> parse_content_type(std::string_view raw_value);
// The message's top-level Content-Type: the first Content-Type field (RFC 2045 §5.2 default
// text/plain when absent or unparsable).
ContentType top_level_content_type(const Message& m);

// Converts bare LF to CRLF across chunk boundaries (RFC 5751 §3.1.1 canonical form). CRLF
// stays, a lone CR stays: the entity's bytes are otherwise untouched.
class CrlfCanonicalizer {
public:
    // Returns the canonical form of `in`: `in` itself when it has no bare LF (no copy), else
    // a view of `scratch`, which it overwrites.
    std::string_view feed(std::string_view in, std::string& scratch);

private:
    bool prev_cr_ = false;
};

enum class EncryptedForm { None, SmimeEnveloped, SmimeAuthEnveloped, PgpMime, PgpInline };
const char* to_string(EncryptedForm f) noexcept;

// Mail that is already encrypted passes untouched (SPEC §4). For application/pkcs7-mime the
// CMS content type inside the body decides (smime-type is often missing or wrong), so an
// opaque-signed message is not mistaken for an encrypted one.
EncryptedForm detect_encrypted(const Message& m);

}  // namespace sealmilter::core
