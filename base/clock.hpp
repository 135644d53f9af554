// base/clock.hpp — the time source of validation, caching and journals, injectable for tests.
// Threads: implementations must be thread-safe (now() is called from any thread).
#pragma once

#include <ctime>

namespace sealmilter::base {

class Clock {
public:
    virtual ~Clock() = default;
    virtual std::time_t now() const = 0;  // seconds since the epoch, UTC
};

class SystemClock final : public Clock {
public:
    std::time_t now() const override { return std::time(nullptr); }
};

// The clock to use when none was injected.
inline std::time_t now_from(const Clock* clock) { return clock != nullptr ? clock->now() : std::time(nullptr); }

}  // namespace sealmilter::base
