// tests/support/manual_clock.hpp — a base::Clock the test moves by hand (`clock.t += 60`).
//
// Purpose:   the chain, the issued source and the notice worker read time through base::Clock;
//            their tests set it instead of sleeping.
// Threads:   `t` is atomic: a worker thread may read it while the test advances it.
#pragma once

#include "base/clock.hpp"

#include <atomic>
#include <ctime>

namespace sealmilter::testing {

class ManualClock final : public base::Clock {
public:
    ManualClock() = default;
    explicit ManualClock(std::time_t start) : t(start) {}
    std::time_t now() const override { return t.load(); }
    std::atomic<std::time_t> t{std::time(nullptr)};
};

}  // namespace sealmilter::testing
