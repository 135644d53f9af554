// tests/support/polling.hpp — waiting for something a background thread or another process
// does, with a bound, and counting the files it leaves.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <system_error>
#include <thread>

namespace sealmilter::testing {

// Calls pred until it is true (at most ms, every 20 ms); pred is called once more only after a false.
template <typename Pred>
bool wait_for(Pred pred, int ms) {
    for (int i = 0; i < ms / 20; ++i) {
        if (pred()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return pred();
}

// Files in dir whose extension is ext (".req"); 0 when dir cannot be read.
inline size_t count_files(const std::string& dir, const std::string& ext) {
    size_t n = 0;
    std::error_code ec;
    for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
        if (it->path().extension() == ext) ++n;
    return n;
}

}  // namespace sealmilter::testing
