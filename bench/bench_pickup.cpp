// bench/bench_pickup.cpp — what one pickup download costs (issue 13, docs/issuing.md): the
// PKCS#12 the recipient downloads (RSA-2048 key, its certificate and the CA), protected with
// AES-256-CBC/PBKDF2 at 100,000 iterations (the default) against the legacy 3DES protection at
// 2,048 (the baseline, same run); and the CSRF token made and checked per form.
// bench/pickup.sh runs it pinned to one core and writes the "pickup" section of BENCHMARKS.md.
#include "crypto/certificate_builder.hpp"
#include "crypto/pkcs12.hpp"
#include "pickup/guard.hpp"

#include <benchmark/benchmark.h>

namespace {

using namespace sealmilter;

struct Material {
    crypto::KeyMaterial m;
    Material() {
        crypto::EVP_PKEY_ptr ca_key = crypto::generate_rsa_key(2048);
        const crypto::Certificate ca = crypto::CertificateBuilder()
                                           .common_name("Bench CA")
                                           .public_key(ca_key.get())
                                           .basic_constraints(true)
                                           .build();
        m.key = crypto::generate_rsa_key(2048);
        m.certificate = crypto::CertificateBuilder()
                            .common_name("bench@customer.example")
                            .add_email_san("bench@customer.example")
                            .public_key(m.key.get())
                            .issuer(ca, ca_key.get())
                            .build();
        m.chain.push_back(ca);
    }
};

const Material& material() {
    static const Material m;
    return m;
}

void pkcs12(benchmark::State& state, crypto::Pkcs12Protection p) {
    const crypto::KeyMaterial& m = material().m;
    for (auto _ : state) benchmark::DoNotOptimize(crypto::write_pkcs12_all({&m}, "a password of the recipient", p));
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK_CAPTURE(pkcs12, aes256, crypto::Pkcs12Protection::Aes256)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(pkcs12, tripledes, crypto::Pkcs12Protection::TripleDes)->Unit(benchmark::kMillisecond)->UseRealTime();

void csrf(benchmark::State& state) {
    const pickup::Csrf c;
    const std::string th(64, 'a');
    for (auto _ : state) benchmark::DoNotOptimize(c.check(c.issue(th, "download", 1800000000), th, "download", 1800000000));
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(csrf)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
