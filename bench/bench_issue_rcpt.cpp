// bench/bench_issue_rcpt.cpp — the RCPT-time verdict for a new address under policy mode `issue`
// (issue 13: "the RCPT-time verdict stays as fast as a cache hit"), against a `require`
// recipient whose certificate is a cache hit, same run. bench/issue_rcpt.sh runs it.
//
// Each iteration is one milter::Transaction::recipient() call, as the daemon makes it: the
// bounded resolver runs the lookup through a Chain in the default order issued, cache,
// directory (the store is empty and left out), a real SQLite cache in /tmp, the answer
// validated; then the RCPT decision.
//   BM_RcptCacheHit         `require`, the certificate cached (the baseline)
//   BM_RcptIssueNegCached   `issue`, a new address the directory said 404 for (negative-cached):
//                           issued NotFound, the negative entry skips the directory, Outcome
//                           Issue, keys::uncertifiable_reason, the pool's ready()
//   BM_RcptIssueFirstSeen   the same, the directory asked (a scripted source answering 404 at
//                           once: no network, so this is our own cost only)
// The issuer's RCPT-time parts are the real ones: KeyPairPool::ready(), IssuedRegistry::get()
// (the `issued` source), keys::uncertifiable_reason.
// Every verdict is checked (accepted, and the lookup answered as expected); a wrong one ends
// the run with exit 1.
#include "crypto/certificate_builder.hpp"
#include "keys/issuer.hpp"
#include "lookup/cache.hpp"
#include "lookup/issued_source.hpp"
#include "milter/transaction.hpp"
#include "tests/support/scripted_source.hpp"
#include "tests/support/test_pki.hpp"

#include <benchmark/benchmark.h>

#include <cstdio>
#include <functional>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <unistd.h>

namespace {

using namespace sealmilter;

// What cli/issuing's adapter does at RCPT time, over the real parts: keys::KeyPairPool::ready()
// (one pooled RSA-2048 pair, no generating thread) and the registry read of the `issued` source
// (keys::IssuedRegistry::get on a keys.dir: a file that does not exist for a new address).
class RcptIssuer final : public milter::CertificateIssuer, public lookup::IssuedCertificates {
public:
    explicit RcptIssuer(const std::string& keys_dir) : registry_(keys_dir) { pool_.put(crypto::generate_rsa_key(2048)); }
    std::optional<std::string> uncertifiable_reason(std::string_view address) const override {
        return keys::uncertifiable_reason(address);
    }
    bool ready() const override { return pool_.ready() > 0; }
    std::optional<crypto::Certificate> issue(std::string_view /*address*/, std::string* error) override {
        *error = "not issued at RCPT time";
        return std::nullopt;
    }
    std::optional<crypto::Certificate> current(std::string_view address) const override {
        const std::optional<keys::IssuedRecord> r = registry_.get(address);
        if (!r) return std::nullopt;
        return crypto::parse_certificates(r->certificate_pem).certificates.front();
    }
    void superseded(std::string_view /*address*/, const std::string& /*reason*/) override {}

private:
    keys::KeyPairPool pool_{2048, 1, 0};  // a warm pool: its generating threads are not what RCPT waits for
    keys::IssuedRegistry registry_;
};

struct Stack {
    std::filesystem::path dir;
    std::unique_ptr<lookup::SqliteCache> cache;
    std::unique_ptr<lookup::Validator> validator;
    std::shared_ptr<RcptIssuer> issuer;
    std::unique_ptr<lookup::IssuedSource> issued;
    testing::ScriptedSource directory{"directory"};
    std::unique_ptr<lookup::Chain> chain;
    std::shared_ptr<const milter::Services> services;

    Stack() {
        dir = std::filesystem::temp_directory_path() / ("sealmilter-bench-issue-" + std::to_string(::getpid()));
        std::filesystem::remove_all(dir);
        std::filesystem::create_directories(dir);
        lookup::CacheOptions co;
        co.path = (dir / "cache.db").string();
        co.min_ttl = 3600;
        co.max_ttl = 86400;
        co.negative_ttl = 86400;
        cache = std::make_unique<lookup::SqliteCache>(co);
        validator = std::make_unique<lookup::Validator>(lookup::ValidatorOptions{});
        issuer = std::make_shared<RcptIssuer>((dir / "keys").string());
        issued = std::make_unique<lookup::IssuedSource>(issuer);
        chain = std::make_unique<lookup::Chain>(std::vector<std::string>{"issued", "cache", "directory"},
                                                std::vector<lookup::CertificateSource*>{issued.get(), &directory},
                                                *validator, cache.get(), lookup::EncryptTo::AllValid);
        auto s = std::make_shared<milter::Services>();
        s->resolver = std::make_shared<lookup::Resolver>(*chain);
        s->plan.policy = core::PolicyTable::parse("@known.example require\n@new.example issue\n@other.example require\n", "policy");
        s->issuer = issuer;
        s->log = base::Logger::to_function([](base::LogLevel, const std::string&) {});
        services = s;
        cache->put_positive("bob@known.example", {testing::make_identity({.email = "bob@known.example"}).cert},
                            "directory", 86400, std::nullopt, "");
        cache->put_negative("jane@new.example", "directory", "HTTP 404");
    }
    ~Stack() { std::filesystem::remove_all(dir); }
};

Stack& stack() {
    static Stack s;
    return s;
}

void check(bool ok, const char* what) {
    if (ok) return;
    std::cerr << "bench_issue_rcpt: " << what << "\n";
    std::exit(1);
}

void rcpt(benchmark::State& state, const std::function<std::string(size_t)>& address, bool accept = true) {
    Stack& s = stack();
    size_t n = 0;
    for (auto _ : state) {
        milter::Transaction tx(s.services, "B1");
        const milter::Reply r = tx.recipient("<" + address(n++) + ">");
        check(r.accept == accept, accept ? "the recipient was not accepted" : "the recipient was not refused");
        benchmark::DoNotOptimize(r);
    }
}

void BM_RcptCacheHit(benchmark::State& state) {
    const int before = stack().directory.calls;
    rcpt(state, [](size_t) { return std::string("bob@known.example"); });
    check(stack().directory.calls == before, "the cache hit asked the directory");
}

void BM_RcptIssueNegCached(benchmark::State& state) {
    const int before = stack().directory.calls;
    rcpt(state, [](size_t) { return std::string("jane@new.example"); });
    check(stack().directory.calls == before, "the negative entry did not skip the directory");
}

// A new address each time: the directory is asked (and its 404 negative-cached), as for the
// first message to a recipient.
void BM_RcptIssueFirstSeen(benchmark::State& state) {
    static size_t run = 0;
    ++run;
    const int before = stack().directory.calls;
    rcpt(state, [](size_t n) { return "first" + std::to_string(run) + "-" + std::to_string(n) + "@new.example"; });
    check(stack().directory.calls > before, "the directory was not asked");
}

// The same first lookup for a `require` recipient (refused 550 5.7.1 at RCPT): the directory and
// the negative cache entry without anything of issuing, so the last two rows' ratio is what
// issuing adds to a first-seen address.
void BM_RcptRequireFirstSeen(benchmark::State& state) {
    static size_t run = 0;
    ++run;
    const int before = stack().directory.calls;
    rcpt(state, [](size_t n) { return "first" + std::to_string(run) + "-" + std::to_string(n) + "@other.example"; },
         false);
    check(stack().directory.calls > before, "the directory was not asked");
}

}  // namespace

BENCHMARK(BM_RcptCacheHit);
BENCHMARK(BM_RcptIssueNegCached);
BENCHMARK(BM_RcptIssueFirstSeen);
BENCHMARK(BM_RcptRequireFirstSeen);
BENCHMARK_MAIN();
