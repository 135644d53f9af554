// bench/bench_lookup.cpp — certificate lookup latency through the daemon's own lookup stack.
//
// usage: bench_lookup CONFIG ADDRESSES_FILE WARM_ITERATIONS
// CONFIG is an INI file for cli::build_lookup (the stack `sealmilter run` builds): its
// directory answers after an added delay (bench/lookup.sh puts a slow upstream behind nginx
// with TLS + HTTP/2). ADDRESSES_FILE holds one address per line (50 with certificates), plus
// one line "warmup ADDRESS" naming an address the directory does not know.
// Prints key=value lines (milliseconds / per second) for bench/lookup.sh:
//   cold_single_ms_*   one address per call, cache off (the directory answers every time)
//   cold_50_ms_*       all 50 addresses in one call (one message's recipients), cache off
//   warm_ms_p50/p99    one address per call from the SQLite cache, validation included
//   warm_per_s_1t/2t   warm lookups per second on one / two threads
// Every result is checked (Found, the right number of certificates); any other answer ends
// the run with exit 1: a benchmark of failing lookups measures nothing.
#include "cli/wiring.hpp"
#include "conf/config.hpp"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using sealmilter::cli::LookupStack;

double ms_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

double percentile(std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    const auto i = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
}

std::unique_ptr<LookupStack> stack_from(const std::string& text, const std::string& cache_path) {
    auto config = sealmilter::conf::parse_config_text(text, "bench", {{"cache.path", cache_path}});
    auto stack = sealmilter::cli::build_lookup(*config, [](const std::string& e) { std::cerr << "lookup: " << e << "\n"; });
    if (!stack->errors.empty()) throw std::runtime_error("lookup stack: " + stack->errors.front());
    return stack;
}

void expect_found(const std::vector<sealmilter::lookup::LookupResult>& results, size_t n) {
    if (results.size() != n) throw std::runtime_error("wrong number of results");
    for (const auto& r : results)
        if (r.outcome != sealmilter::lookup::Outcome::Found || r.selected.size() != 1)
            throw std::runtime_error("lookup of " + r.email + " did not find its certificate: " + r.reason);
}

}  // namespace

int main(int argc, char** argv) try {
    if (argc != 4) {
        std::cerr << "usage: bench_lookup CONFIG ADDRESSES_FILE WARM_ITERATIONS\n";
        return 2;
    }
    std::ifstream cf(argv[1]);
    std::stringstream text;
    text << cf.rdbuf();
    std::vector<std::string> addresses;
    std::string warmup;
    std::ifstream af(argv[2]);
    for (std::string line; std::getline(af, line);) {
        if (line.rfind("warmup ", 0) == 0) warmup = line.substr(7);
        else if (!line.empty()) addresses.push_back(line);
    }
    const long warm_iterations = std::stol(argv[3]);
    if (addresses.size() < 2 || warmup.empty() || warm_iterations < 100) throw std::runtime_error("bad arguments");

    // Cold: no cache, so every lookup asks the directory. The first request (an unknown
    // address) opens the TLS + HTTP/2 connection, as a running daemon has it open already.
    auto cold = stack_from(text.str(), "");
    cold->chain->resolve({warmup});
    std::vector<double> single;
    for (size_t i = 0; i < 10 && i < addresses.size(); ++i) {
        const auto t0 = Clock::now();
        expect_found(cold->chain->resolve({addresses[i]}), 1);
        single.push_back(ms_since(t0));
    }
    std::vector<double> many;
    for (int rep = 0; rep < 5; ++rep) {
        const auto t0 = Clock::now();
        expect_found(cold->chain->resolve(addresses), addresses.size());
        many.push_back(ms_since(t0));
    }

    // Warm: the SQLite cache answers (and the validator checks every answer, as in the daemon).
    const std::string cache_path = std::string(argv[2]) + ".cache.db";
    auto warm = stack_from(text.str(), cache_path);
    expect_found(warm->chain->resolve(addresses), addresses.size());
    std::vector<double> lat;
    lat.reserve(static_cast<size_t>(warm_iterations));
    const auto w0 = Clock::now();
    for (long i = 0; i < warm_iterations; ++i) {
        const auto t0 = Clock::now();
        const auto r = warm->chain->resolve({addresses[static_cast<size_t>(i) % addresses.size()]});
        lat.push_back(ms_since(t0));
        if (r[0].source != "cache") throw std::runtime_error("warm lookup not answered by the cache: " + r[0].source);
    }
    const double warm_total_ms = ms_since(w0);
    const auto t2 = Clock::now();
    std::vector<std::thread> threads;
    std::exception_ptr failure;
    for (int t = 0; t < 2; ++t)
        threads.emplace_back([&, t] {
            try {
                for (long i = 0; i < warm_iterations / 2; ++i)
                    expect_found(warm->chain->resolve({addresses[static_cast<size_t>(i + t) % addresses.size()]}), 1);
            } catch (...) {
                failure = std::current_exception();
            }
        });
    for (auto& th : threads) th.join();
    if (failure) std::rethrow_exception(failure);
    const double two_thread_ms = ms_since(t2);

    std::cout << "addresses=" << addresses.size() << "\n"
              << "cold_single_ms_p50=" << percentile(single, 50) << "\n"
              << "cold_single_ms_min=" << *std::min_element(single.begin(), single.end()) << "\n"
              << "cold_single_ms_max=" << *std::max_element(single.begin(), single.end()) << "\n"
              << "cold_50_ms_p50=" << percentile(many, 50) << "\n"
              << "cold_50_ms_min=" << *std::min_element(many.begin(), many.end()) << "\n"
              << "cold_50_ms_max=" << *std::max_element(many.begin(), many.end()) << "\n"
              << "warm_iterations=" << warm_iterations << "\n"
              << "warm_ms_p50=" << percentile(lat, 50) << "\n"
              << "warm_ms_p99=" << percentile(lat, 99) << "\n"
              << "warm_per_s_1t=" << static_cast<double>(warm_iterations) / (warm_total_ms / 1000.0) << "\n"
              << "warm_per_s_2t=" << static_cast<double>(warm_iterations / 2 * 2) / (two_thread_ms / 1000.0) << "\n";
    return 0;
} catch (const std::exception& e) {
    std::cerr << "bench_lookup: " << e.what() << "\n";
    return 1;
}
