// tests/support/messages.hpp — a whole message in a string, parsed the way the milter feeds it.
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

}  // namespace sealmilter::testing
