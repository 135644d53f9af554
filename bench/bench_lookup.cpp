// bench/bench_lookup.cpp — certificate lookup latency through the daemon's own lookup stack.
//
// usage: bench_lookup CONFIG ADDRESSES_FILE CACHE_PATH WARM_ITERATIONS
// CONFIG is an INI file for cli::build_lookup (the stack `sealmilter run` builds; the cache is
// on, at CACHE_PATH): its directory answers after an added delay (bench/lookup.sh puts a slow
// upstream behind nginx with TLS + HTTP/2). ADDRESSES_FILE holds one address per line (the
// recipients, all with certificates), plus one line "warmup ADDRESS" naming an address the
// directory does not know.
//
// "Cold" means the cache holds nothing (purge_all() before every repetition), so the lookup
// is what the daemon does for a new recipient: cache miss, directory, validation, cache write.
// Cold lookups run the way milter/transaction.cpp starts them: one std::async thread per RCPT,
// each calling chain->resolve({address}). Figures (key=value lines, milliseconds; *_cpu_ms is
// this process's user + system time, all threads):
//   cold_single_*   one recipient                                      (the baseline)
//   cold_rcpt_*     N recipients, one async resolve each, all at once  (the milter)
//   cold_rcpt_first_burst_*  the same, the first time (connections are opened; one run)
//   cold_call_*     N recipients in one resolve() call  (`sealmilter encrypt` / `lookup`)
//   cold_require_ms N `require` recipients: each RCPT waits for its own answer (one run)
//   warm_ms_p50/p99, warm_per_s_1t/2t   one address per call from the SQLite cache,
//                   validation included, on one thread / two threads sharing the stack
// Every result is checked (Found, one certificate, answered by the expected step); anything
// else ends the run with exit 1: a benchmark of failing lookups measures nothing.
#include "cli/wiring.hpp"
#include "conf/config.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <exception>
#include <fstream>
#include <future>
#include <iostream>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <sys/resource.h>

namespace {

using Clock = std::chrono::steady_clock;
using sealmilter::cli::LookupStack;
using sealmilter::lookup::LookupResult;

constexpr int kColdRuns = 11;  // of each kind; medians reported

double ms_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// Nearest rank on the sorted samples.
double percentile(std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    const auto i = static_cast<std::size_t>(std::lround(p / 100.0 * static_cast<double>(v.size() - 1)));
    return v[std::min(i, v.size() - 1)];
}

void check(const LookupResult& r, const std::string& source) {
    if (r.outcome != sealmilter::lookup::Outcome::Found || r.selected.size() != 1)
        throw std::runtime_error("lookup of " + r.email + " did not find its certificate: " + r.reason);
    if (r.source != source)
        throw std::runtime_error("lookup of " + r.email + " answered by '" + r.source + "', expected " + source);
}

// As Transaction::recipient does it: a thread per recipient, started at once.
void resolve_per_rcpt(const LookupStack& stack, const std::vector<std::string>& addresses,
                      const std::string& source = "directory") {
    std::vector<std::future<LookupResult>> futures;
    futures.reserve(addresses.size());
    for (const std::string& a : addresses)
        futures.push_back(std::async(std::launch::async, [&stack, a] { return stack.chain->resolve({a}).front(); }));
    for (auto& f : futures) check(f.get(), source);
}

void resolve_one_call(const LookupStack& stack, const std::vector<std::string>& addresses,
                      const std::string& source = "directory") {
    const std::vector<LookupResult> results = stack.chain->resolve(addresses);
    if (results.size() != addresses.size()) throw std::runtime_error("wrong number of results");
    for (const LookupResult& r : results) check(r, source);
}

// A `require` recipient waits at RCPT, and the MTA sends the next RCPT after the reply.
void resolve_require(const LookupStack& stack, const std::vector<std::string>& addresses) {
    for (const std::string& a : addresses)
        check(std::async(std::launch::async, [&stack, a] { return stack.chain->resolve({a}).front(); }).get(),
              "directory");
}

struct Sample {
    double wall_ms;
    double cpu_ms;  // user + system time of this process (all its threads)
};

double cpu_ms_now() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    const auto ms = [](const timeval& t) {
        return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_usec) / 1e3;
    };
    return ms(u.ru_utime) + ms(u.ru_stime);
}

// Runs `fn` on an empty cache; returns its wall and CPU time.
template <typename Fn>
Sample cold(const LookupStack& stack, Fn fn) {
    if (stack.cache) stack.cache->purge_all();  // null when lookup.order has no cache step
    const double cpu0 = cpu_ms_now();
    const auto t0 = Clock::now();
    fn();
    return {ms_since(t0), cpu_ms_now() - cpu0};
}

void print_runs(const std::string& key, const std::vector<Sample>& samples) {
    std::vector<double> wall;
    std::vector<double> cpu;
    for (const Sample& s : samples) {
        wall.push_back(s.wall_ms);
        cpu.push_back(s.cpu_ms);
    }
    std::cout << key << "_ms_p50=" << percentile(wall, 50) << "\n"
              << key << "_ms_min=" << *std::min_element(wall.begin(), wall.end()) << "\n"
              << key << "_ms_max=" << *std::max_element(wall.begin(), wall.end()) << "\n"
              << key << "_cpu_ms_p50=" << percentile(cpu, 50) << "\n"
              << key << "_runs=" << samples.size() << "\n";
}

void warm(const LookupStack& stack, const std::vector<std::string>& addresses, long iterations) {
    std::vector<double> lat;
    lat.reserve(static_cast<std::size_t>(iterations));
    const auto w0 = Clock::now();
    for (long i = 0; i < iterations; ++i) {
        const auto t0 = Clock::now();
        const std::vector<LookupResult> r =
            stack.chain->resolve({addresses[static_cast<std::size_t>(i) % addresses.size()]});
        lat.push_back(ms_since(t0));
        check(r.front(), "cache");
    }
    const double one_thread_ms = ms_since(w0);

    const long per_thread = iterations / 2;
    std::mutex failure_mutex;
    std::exception_ptr failure;
    const auto t2 = Clock::now();
    std::vector<std::thread> threads;
    for (long t = 0; t < 2; ++t)
        threads.emplace_back([&, t] {
            try {
                for (long i = 0; i < per_thread; ++i)
                    check(stack.chain->resolve({addresses[static_cast<std::size_t>(i + t) % addresses.size()]}).front(),
                          "cache");
            } catch (...) {
                const std::lock_guard<std::mutex> lock(failure_mutex);
                failure = std::current_exception();
            }
        });
    for (auto& th : threads) th.join();
    if (failure) std::rethrow_exception(failure);
    const double two_thread_ms = ms_since(t2);

    std::cout << "warm_iterations=" << iterations << "\n"
              << "warm_ms_p50=" << percentile(lat, 50) << "\n"
              << "warm_ms_p99=" << percentile(lat, 99) << "\n"
              << "warm_per_s_1t=" << static_cast<double>(iterations) / (one_thread_ms / 1000.0) << "\n"
              << "warm_per_s_2t=" << static_cast<double>(per_thread * 2) / (two_thread_ms / 1000.0) << "\n";
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot read " + path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

std::unique_ptr<LookupStack> make_stack(const std::string& conf_path, const std::string& cache_path) {
    auto config = sealmilter::conf::parse_config_text(read_file(conf_path), conf_path, {{"cache.path", cache_path}});
    auto stack =
        sealmilter::cli::build_lookup(*config, [](const std::string& e) { std::cerr << "lookup: " << e << "\n"; });
    if (!stack->errors.empty()) throw std::runtime_error("lookup stack: " + stack->errors.front());
    return stack;
}

// The DNS SMIMEA source (lookup.order = dns), and the message with several sources configured
// (lookup.order = cache,directory,dns: directory and dns asked in parallel). Cold = a new
// stack (a new libunbound context: its DNS cache empty; not timed) with the SQLite cache
// purged; the warmup address opens the directory connection first, as in a running daemon.
// Warm = the same stack again: libunbound answers from its cache (the dns source does not use
// the SQLite cache).
void dns_runs(const std::string& dns_conf, const std::string& multi_conf, const std::string& cache_path,
              const std::vector<std::string>& addresses, const std::string& warmup) {
    std::vector<Sample> single;
    std::vector<Sample> rcpt;
    std::vector<Sample> multi;
    for (int i = 0; i < kColdRuns; ++i) {
        const std::string& one = addresses[static_cast<std::size_t>(i) % addresses.size()];
        auto s1 = make_stack(dns_conf, cache_path);
        single.push_back(cold(*s1, [&] { resolve_per_rcpt(*s1, {one}, "dns"); }));
        auto s2 = make_stack(dns_conf, cache_path);
        rcpt.push_back(cold(*s2, [&] { resolve_per_rcpt(*s2, addresses, "dns"); }));
        auto s3 = make_stack(multi_conf, cache_path);
        s3->chain->resolve({warmup});
        multi.push_back(cold(*s3, [&] { resolve_one_call(*s3, addresses, "directory"); }));
    }
    print_runs("dns_cold_single", single);
    print_runs("dns_cold_rcpt", rcpt);
    print_runs("multi_cold_call", multi);

    auto stack = make_stack(dns_conf, cache_path);
    resolve_one_call(*stack, addresses, "dns");  // fills libunbound's cache
    constexpr int kWarm = 2000;
    std::vector<double> lat;
    lat.reserve(kWarm);
    const auto t0 = Clock::now();
    for (int i = 0; i < kWarm; ++i) {
        const auto t = Clock::now();
        check(stack->chain->resolve({addresses[static_cast<std::size_t>(i) % addresses.size()]}).front(), "dns");
        lat.push_back(ms_since(t));
    }
    const double total_ms = ms_since(t0);
    std::cout << "dns_warm_iterations=" << kWarm << "\n"
              << "dns_warm_ms_p50=" << percentile(lat, 50) << "\n"
              << "dns_warm_ms_p99=" << percentile(lat, 99) << "\n"
              << "dns_warm_per_s_1t=" << kWarm / (total_ms / 1000.0) << "\n";
}

}  // namespace

int main(int argc, char** argv) try {
    if (argc != 5 && argc != 7) {
        std::cerr << "usage: bench_lookup CONFIG ADDRESSES_FILE CACHE_PATH WARM_ITERATIONS [DNS_CONFIG MULTI_CONFIG]\n";
        return 2;
    }
    std::vector<std::string> addresses;
    std::string warmup;
    std::istringstream list(read_file(argv[2]));
    for (std::string line; std::getline(list, line);) {
        if (line.rfind("warmup ", 0) == 0)
            warmup = line.substr(7);
        else if (!line.empty())
            addresses.push_back(line);
    }
    const long warm_iterations = std::stol(argv[4]);
    if (addresses.size() < 2 || warmup.empty() || warm_iterations < 100) throw std::runtime_error("bad arguments");

    auto config = sealmilter::conf::parse_config_text(read_file(argv[1]), argv[1], {{"cache.path", argv[3]}});
    auto stack =
        sealmilter::cli::build_lookup(*config, [](const std::string& e) { std::cerr << "lookup: " << e << "\n"; });
    if (!stack->errors.empty()) throw std::runtime_error("lookup stack: " + stack->errors.front());
    if (!stack->cache) throw std::runtime_error("the benchmark needs the cache on");

    // A running daemon has its first directory connection open already: open it (a 404).
    stack->chain->resolve({warmup});

    // The first time a message's recipients are looked up at once, the directory source opens
    // the connections it needs; measured once on its own, then left out of the medians.
    const Sample first_burst = cold(*stack, [&] { resolve_per_rcpt(*stack, addresses); });
    // Baseline and candidates interleaved, so other load on the host hits them alike.
    std::vector<Sample> single;
    std::vector<Sample> rcpt;
    std::vector<Sample> call;
    for (int i = 0; i < kColdRuns; ++i) {
        const std::string& one = addresses[static_cast<std::size_t>(i) % addresses.size()];
        single.push_back(cold(*stack, [&] { resolve_per_rcpt(*stack, {one}); }));
        rcpt.push_back(cold(*stack, [&] { resolve_per_rcpt(*stack, addresses); }));
        call.push_back(cold(*stack, [&] { resolve_one_call(*stack, addresses); }));
    }
    const Sample require = cold(*stack, [&] { resolve_require(*stack, addresses); });

    std::cout << "addresses=" << addresses.size() << "\n";
    print_runs("cold_single", single);
    print_runs("cold_rcpt", rcpt);
    print_runs("cold_call", call);
    std::cout << "cold_rcpt_first_burst_ms=" << first_burst.wall_ms << "\n"
              << "cold_rcpt_first_burst_cpu_ms=" << first_burst.cpu_ms << "\n"
              << "cold_require_ms=" << require.wall_ms << "\n";

    // Warm: the cache holds all addresses (filled by the last cold run); the validator checks
    // every answer, as in the daemon.
    warm(*stack, addresses, warm_iterations);
    if (argc == 7) dns_runs(argv[5], argv[6], argv[3], addresses, warmup);
    return 0;
} catch (const std::exception& e) {
    std::cerr << "bench_lookup: " << e.what() << "\n";
    return 1;
}
