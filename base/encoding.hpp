// base/encoding.hpp — hex and percent encoding.
//
// Purpose:   lower-case hex for fingerprints and hashes (RFC 8162 owner names, journal keys),
//            upper-case %XX percent encoding of everything but RFC 3986 §2.3 unreserved bytes
//            (URL templates), and a file-name-safe variant that also keeps '@' and '+'; HTML
//            escaping (the pickup notice and the pickup pages).
// Ownership: plain values.
// Threads:   pure functions.
// Errors:    from_hex returns nullopt on odd length or a non-hex digit.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace sealmilter::base {

// Lower-case hex of the bytes ("0a1b...").
std::string to_hex(std::string_view bytes);
// Upper-case hex joined by ':' ("0A:1B:...") — the way OpenSSL prints fingerprints.
std::string to_hex_colons(std::string_view bytes);
std::optional<std::string> from_hex(std::string_view hex);

// RFC 3986 §2.3 unreserved bytes stay; every other byte becomes %XX (upper-case hex, §2.1).
// `keep` lists further bytes to leave as they are.
std::string percent_encode(std::string_view in, std::string_view keep = {});

// & < > " ' as character references: safe in HTML text and in quoted attribute values.
std::string html_escape(std::string_view text);

}  // namespace sealmilter::base
