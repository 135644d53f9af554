// bench/bench_ldap.cpp — LDAP certificate lookups beside the directory source, in one run.
//
// usage: bench_ldap DIRECTORY_CONFIG LDAP_CONFIG ADDRESSES_FILE CACHE_DIR WARM_ITERATIONS
// Two lookup stacks as `sealmilter run` builds them (cli::build_lookup, cache on, every answer
// validated): DIRECTORY_CONFIG with lookup.order = cache,directory (the baseline) and
// LDAP_CONFIG with lookup.order = cache,ldap, both serving the same recipients from loopback
// (bench/ldap.sh: nginx TLS + HTTP/2 and slapd over ldaps://). Each stack is warmed once
// (connections open, as in a running daemon), then, interleaved, kColdRuns times each on an
// empty cache: one recipient; N recipients one thread per RCPT (the milter); N in one
// resolve() call (the CLI). Warm: WARM_ITERATIONS cache hits per stack, and the same number
// of LDAP searches without the cache (the source on its kept connection).
// Figures (key=value, milliseconds): {dir,ldap}_{single,rcpt,call}_ms_p50, *_min, *_max;
// {dir,ldap}_warm_ms_p50/p99; ldap_nocache_ms_p50/p99. Every answer is checked (Found, one
// certificate, the expected step); anything else ends the run with exit 1.
#include "cli/wiring.hpp"
#include "conf/config.hpp"
#include "lookup/ldap_source.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <future>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using sealmilter::cli::LookupStack;
using sealmilter::lookup::LookupResult;

constexpr int kColdRuns = 11;

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

double percentile(std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    const auto i = static_cast<std::size_t>(std::lround(p / 100.0 * static_cast<double>(v.size() - 1)));
    return v[std::min(i, v.size() - 1)];
}

void check(const LookupResult& r, const std::string& source) {
    if (r.outcome != sealmilter::lookup::Outcome::Found || r.selected.size() != 1)
        throw std::runtime_error("lookup of " + r.email + " did not find its certificate: " + r.reason);
    if (r.source != source) throw std::runtime_error("lookup of " + r.email + " answered by '" + r.source + "', expected " + source);
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot read " + path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

struct Bench {
    std::string name;    // "dir" / "ldap"
    std::string source;  // the step that must answer cold lookups
    std::unique_ptr<LookupStack> stack;
    std::vector<double> single, rcpt, call;

    double cold(const std::vector<std::string>& addresses, bool one_call) const {
        stack->cache->purge_all();
        const auto t0 = Clock::now();
        if (one_call) {
            for (const LookupResult& r : stack->chain->resolve(addresses)) check(r, source);
        } else {
            std::vector<std::future<LookupResult>> f;
            for (const std::string& a : addresses)
                f.push_back(std::async(std::launch::async, [this, a] { return stack->chain->resolve({a}).front(); }));
            for (auto& x : f) check(x.get(), source);
        }
        return ms_since(t0);
    }

    void report(const std::vector<std::string>& addresses, long iterations) const {
        for (const auto& [key, v] : {std::pair{"single", &single}, {"rcpt", &rcpt}, {"call", &call}})
            std::cout << name << "_" << key << "_ms_p50=" << percentile(*v, 50) << "\n"
                      << name << "_" << key << "_ms_min=" << *std::min_element(v->begin(), v->end()) << "\n"
                      << name << "_" << key << "_ms_max=" << *std::max_element(v->begin(), v->end()) << "\n";
        std::vector<double> lat;
        for (long i = 0; i < iterations; ++i) {
            const auto t0 = Clock::now();
            const LookupResult r = stack->chain->resolve({addresses[static_cast<size_t>(i) % addresses.size()]}).front();
            lat.push_back(ms_since(t0));
            check(r, "cache");
        }
        std::cout << name << "_warm_ms_p50=" << percentile(lat, 50) << "\n" << name << "_warm_ms_p99=" << percentile(lat, 99) << "\n";
    }
};

Bench make(const std::string& name, const std::string& source, const std::string& config, const std::string& cache) {
    auto cfg = sealmilter::conf::parse_config_text(read_file(config), config, {{"cache.path", cache}});
    Bench b{name, source, sealmilter::cli::build_lookup(*cfg, [](const std::string& e) { std::cerr << "lookup: " << e << "\n"; }), {}, {}, {}};
    if (!b.stack->errors.empty()) throw std::runtime_error(name + ": " + b.stack->errors.front());
    if (!b.stack->cache) throw std::runtime_error(name + ": the benchmark needs the cache on");
    return b;
}

}  // namespace

int main(int argc, char** argv) try {
    if (argc != 6) {
        std::cerr << "usage: bench_ldap DIRECTORY_CONFIG LDAP_CONFIG ADDRESSES_FILE CACHE_DIR WARM_ITERATIONS\n";
        return 2;
    }
    std::vector<std::string> addresses;
    std::istringstream list(read_file(argv[3]));
    for (std::string line; std::getline(list, line);)
        if (!line.empty()) addresses.push_back(line);
    const long iterations = std::stol(argv[5]);
    if (addresses.size() < 2 || iterations < 100) throw std::runtime_error("bad arguments");
    Bench dir = make("dir", "directory", argv[1], std::string(argv[4]) + "/dir.db");
    Bench ldap = make("ldap", "ldap", argv[2], std::string(argv[4]) + "/ldap.db");
    for (Bench* b : {&dir, &ldap}) b->cold({addresses.front()}, false);  // connections open, as in a daemon
    for (int i = 0; i < kColdRuns; ++i) {
        const std::vector<std::string> one{addresses[static_cast<size_t>(i) % addresses.size()]};
        for (Bench* b : {&dir, &ldap}) {
            b->single.push_back(b->cold(one, false));
            b->rcpt.push_back(b->cold(addresses, false));
            b->call.push_back(b->cold(addresses, true));
        }
    }
    std::cout << "addresses=" << addresses.size() << "\n";
    dir.report(addresses, iterations);
    ldap.report(addresses, iterations);

    // The LDAP source alone (no cache, no validation): one search per call on the kept connection.
    auto cfg = sealmilter::conf::parse_config_text(read_file(argv[2]), argv[2], {});
    sealmilter::lookup::LdapSource source(sealmilter::lookup::ldap_options(sealmilter::cli::ConfigSettings(*cfg)));
    std::vector<double> lat;
    for (long i = 0; i < iterations; ++i) {
        const auto t0 = Clock::now();
        const auto a = source.lookup(sealmilter::lookup::make_query(addresses[static_cast<size_t>(i) % addresses.size()]));
        lat.push_back(ms_since(t0));
        if (a.outcome != sealmilter::lookup::Outcome::Found) throw std::runtime_error("LDAP search failed: " + a.reason);
    }
    std::cout << "ldap_nocache_ms_p50=" << percentile(lat, 50) << "\nldap_nocache_ms_p99=" << percentile(lat, 99) << "\n"
              << "ldap_nocache_connections=" << source.connections_opened() << "\n";
    return 0;
} catch (const std::exception& e) {
    std::cerr << "bench_ldap: " << e.what() << "\n";
    return 1;
}
