// base/ascii.hpp — ASCII case folding and trimming, the one definition for the whole tree.
//
// Purpose:   mail protocols compare header names, domains and policy keys ASCII
//            case-insensitively (RFC 5322 §1.2.2, RFC 5321 §2.4). These helpers fold A-Z only:
//            bytes >= 0x80 (UTF-8) and every other byte stay as they are, whatever the process
//            locale (std::tolower would consult it).
// Ownership: plain values; the string_view results borrow their argument.
// Threads:   pure functions.
// Errors:    none.
#pragma once

#include <string>
#include <string_view>

namespace sealmilter::base {

constexpr char ascii_lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// A-Z -> a-z; every other byte unchanged.
std::string to_lower(std::string_view s);

// ASCII case-insensitive equality.
bool iequals(std::string_view a, std::string_view b) noexcept;

// True when `needle` occurs in `haystack`, ASCII case-insensitively; returns its offset or npos.
size_t ifind(std::string_view haystack, std::string_view needle) noexcept;

// Without leading and trailing SP, HTAB, CR and LF.
std::string_view trim(std::string_view s) noexcept;

}  // namespace sealmilter::base
