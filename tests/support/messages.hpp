// tests/support/messages.hpp — a whole message in a string, parsed the way the milter feeds it,
// and the CRLF form of a string as the tests' own oracle.
// Ownership: the returned Message is the caller's.
#pragma once

#include "core/message.hpp"

#include <memory>
#include <string>

namespace sealmilter::testing {

inline std::unique_ptr<core::Message> parse_message(const std::string& raw) {
    auto m = std::make_unique<core::Message>();
    core::MessageSplitter s(*m);
    s.feed(raw.data(), raw.size());
    s.finish();
    return m;
}

// Test-side oracle, written independently of core: the CRLF canonical form of a byte string
// (a bare LF becomes CRLF; CRLF stays).
inline std::string crlf(const std::string& in) {
    std::string out;
    for (size_t i = 0; i < in.size(); ++i) {
        if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r')) out += '\r';
        out += in[i];
    }
    return out;
}

}  // namespace sealmilter::testing
