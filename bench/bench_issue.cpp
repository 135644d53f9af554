// bench/bench_issue.cpp — certificates issued per second (issue 13): keys::Issuer::issue for a
// new address each time — certificate built and signed by the CA, private key wrapped and
// imported into the key store as escrowed, the record written — with the key pair coming from
// the pool's own generator thread (issue.pool_threads = 1: the rate the pool sustains), against
// the same with the key pairs generated before the clock starts (the pool given them with put()),
// and that again in a store that already holds many keys (each import rewrites the whole index).
// bench/issue.sh runs it pinned to one core and writes the "issue" section of BENCHMARKS.md.
//
// usage: bench_issue [--benchmark_* flags]   (SEALMILTER_BENCH_ISSUE_N = issues per case, default
// 40; SEALMILTER_BENCH_ISSUE_STORE_KEYS = keys already in the store of the third case, default 10000)
// Every issue() must succeed and yield a certificate for the address; anything else aborts.
#include "crypto/certificate_builder.hpp"
#include "keys/issuer.hpp"
#include "keys/master_key.hpp"
#include "keys/store.hpp"

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>

namespace crypto = sealmilter::crypto;
namespace keys = sealmilter::keys;
namespace fs = std::filesystem;

namespace {

void require(bool ok, const std::string& what) {
    if (!ok) {
        std::cerr << "bench_issue: " << what << "\n";
        std::abort();
    }
}

int issues_per_case() {
    const char* n = std::getenv("SEALMILTER_BENCH_ISSUE_N");
    return n != nullptr && std::atoi(n) > 0 ? std::atoi(n) : 40;
}

// A fresh keys.dir with a master key and a CA (RSA-3072 root, as `ca init` makes).
struct Fixture {
    std::string root;
    std::shared_ptr<keys::KeyStore> store;

    Fixture() {
        char tmpl[] = "/tmp/sealmilter-bench-issue-XXXXXX";
        require(mkdtemp(tmpl) != nullptr, "mkdtemp");
        root = tmpl;
        keys::StoreOptions o;
        o.dir = root + "/keys";
        o.master_key_file = root + "/master.key";
        std::string error;
        require(keys::create_master_key_file(o.master_key_file, &error), error);
        store = keys::KeyStore::open(o, &error);
        require(store != nullptr, error);
        require(keys::init_ca(*store, keys::IssueSettings{}, "", &error).has_value(), error);
    }
    ~Fixture() { fs::remove_all(root); }
    Fixture(const Fixture&) = delete;
    Fixture& operator=(const Fixture&) = delete;

    std::shared_ptr<keys::Issuer> issuer(unsigned threads) {
        keys::IssueSettings s;
        s.pool_threads = threads;
        s.pool_size = 8;
        std::string error;
        auto i = keys::Issuer::open(store, std::make_shared<keys::IssuedRegistry>(store->options().dir), s, &error);
        require(i != nullptr, error);
        return i;
    }
};

void issue_one(keys::Issuer& issuer, int n) {
    const std::string address = "customer" + std::to_string(n) + "@example.com";
    std::string error;
    const std::optional<crypto::Certificate> c = issuer.issue(address, &error);
    require(c.has_value() && c->email_addresses().front() == address, "issue " + address + ": " + error);
}

// The pool's generator thread makes every key pair while the clock runs: issue() takes the
// next one as soon as it is ready (a bounded 1 ms poll; ready() never blocks).
void BM_IssueWithPoolGenerating(benchmark::State& state) {
    Fixture f;
    auto issuer = f.issuer(1);
    // Drain what the pool made before the clock started: every key pair below is made in the loop.
    for (int i = 0; i < 6000 && issuer->pool().ready() < 8; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    while (issuer->pool().take() != nullptr) {
    }
    int n = 0;
    for (auto _ : state) {
        for (int i = 0; i < 600000 && !issuer->ready(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        issue_one(*issuer, n++);
    }
    state.SetItemsProcessed(state.iterations());
    state.counters["generated"] = static_cast<double>(issuer->pool().generated());
}

// The same issue() with every key pair generated before the clock starts.
void BM_IssuePregenerated(benchmark::State& state) {
    Fixture f;
    auto issuer = f.issuer(0);
    for (int i = 0; i < issues_per_case(); ++i) issuer->pool().put(crypto::generate_rsa_key(2048));
    int n = 0;
    for (auto _ : state) issue_one(*issuer, n++);
    state.SetItemsProcessed(state.iterations());
}

// The same as BM_IssuePregenerated in a store that already holds `state.range(0)` keys: every
// import rewrites the store's whole index, so this is what a store's size costs each issue.
void BM_IssuePregeneratedFullStore(benchmark::State& state) {
    Fixture f;
    const auto n_keys = static_cast<int>(state.range(0));
    {
        // Minted cheaply: one EC key for every filler certificate, one throw-away issuer.
        crypto::EVP_PKEY_ptr shared = crypto::generate_ec_key("prime256v1");
        crypto::EVP_PKEY_ptr ca_key = crypto::generate_ec_key("prime256v1");
        const crypto::Certificate ca = crypto::CertificateBuilder().common_name("filler CA").public_key(ca_key.get())
                                           .basic_constraints(true).build();
        std::vector<crypto::KeyMaterial> fill;
        for (int i = 0; i < n_keys; ++i) {
            const std::string a = "filler" + std::to_string(i) + "@example.org";
            EVP_PKEY_up_ref(shared.get());
            fill.push_back(crypto::KeyMaterial{crypto::EVP_PKEY_ptr(shared.get()),
                                               crypto::CertificateBuilder().common_name(a).add_email_san(a)
                                                   .public_key(shared.get()).issuer(ca, ca_key.get()).build(),
                                               {}});
        }
        std::string error;
        require(f.store->import_keys(std::move(fill), &error).has_value(), error);
    }
    auto issuer = f.issuer(0);
    for (int i = 0; i < issues_per_case(); ++i) issuer->pool().put(crypto::generate_rsa_key(2048));
    int n = 0;
    for (auto _ : state) issue_one(*issuer, n++);
    state.SetItemsProcessed(state.iterations());
}

void BM_KeyGenerationOnly(benchmark::State& state) {
    for (auto _ : state) benchmark::DoNotOptimize(crypto::generate_rsa_key(2048));
    state.SetItemsProcessed(state.iterations());
}

}  // namespace

int main(int argc, char** argv) {
    const int n = issues_per_case();
    benchmark::RegisterBenchmark("issue/pool_generating", BM_IssueWithPoolGenerating)->Iterations(n)->UseRealTime()->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark("issue/pregenerated", BM_IssuePregenerated)->Iterations(n)->UseRealTime()->Unit(benchmark::kMillisecond);
    const char* fill = std::getenv("SEALMILTER_BENCH_ISSUE_STORE_KEYS");
    const long store_keys = fill != nullptr && std::atol(fill) > 0 ? std::atol(fill) : 10000;
    benchmark::RegisterBenchmark("issue/pregenerated_full_store", BM_IssuePregeneratedFullStore)->Arg(store_keys)->Iterations(n)->UseRealTime()->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark("rsa2048_keygen", BM_KeyGenerationOnly)->Iterations(n)->UseRealTime()->Unit(benchmark::kMillisecond);
    benchmark::Initialize(&argc, argv);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
