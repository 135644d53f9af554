// lookup/clock.hpp — the time source of validation and caching, injectable for tests.
// Threads: implementations must be thread-safe (now() is called from any thread).
#pragma once

#include <ctime>

namespace sealmilter::lookup {

class Clock {
public:
    virtual ~Clock() = default;
    virtual std::time_t now() const = 0;  // seconds since the epoch, UTC
};

class SystemClock final : public Clock {
public:
    std::time_t now() const override { return std::time(nullptr); }
};

}  // namespace sealmilter::lookup
