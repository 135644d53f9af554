// bench/bench_inbound_decrypt.cpp — inbound decryption (keys.decrypt_inbound) in process,
// against one `openssl cms -decrypt` process per message, and with 1 vs 100,000 keys in the ring.
//
// What is measured (single-threaded; bench/inbound_decrypt.sh runs it and writes BENCHMARKS.md):
//   inbound/SIZE          core::open_inbound of an S/MIME message (AES-256-CBC, RSA-2048
//                         PKCS#1 v1.5) of SIZE plaintext, ring of 1 key: the milter's work at end
//                         of data (find the envelope, look the key up by RecipientIdentifier,
//                         decrypt, split the entity into a spooled Message, check for a signature).
//   openssl_process/SIZE  one `openssl cms -decrypt -inkey KEY -recip CERT` process per message on
//                         the same file (stdout to /dev/null): the baseline of a script that
//                         decrypts with the openssl tool.
//   ring/KEYS             inbound/10KB with KEYS entries in the ring (1 or 100,000 certificates,
//                         ten per address, one EC P-256 key shared so the ring builds in
//                         seconds), the message
//                         encrypted to the last certificate added: the lookup is by identifier,
//                         so 100,000 keys should cost about what 1 does.
#include "core/inbound_decrypt.hpp"
#include "core/transform.hpp"
#include "crypto/certificate_builder.hpp"
#include "keys/key_ring.hpp"

#include <benchmark/benchmark.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <memory>
#include <string>
#include <unistd.h>

namespace core = sealmilter::core;
namespace crypto = sealmilter::crypto;
namespace keys = sealmilter::keys;

namespace {

crypto::EVP_PKEY_ptr make_key(bool ec) {
    crypto::EVP_PKEY_ptr k(ec ? EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")
                              : EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048)));
    if (!k) std::abort();
    return k;
}

crypto::Certificate make_cert(EVP_PKEY* key, uint64_t serial, bool ec, const std::string& address = "alice@bank.example") {
    crypto::CertificateBuilder b;
    const std::time_t now = std::time(nullptr);
    b.public_key(key).common_name("bench").serial(serial).validity(now - 60, now + 86400L * 365);
    b.add_email_san(address).extended_key_usage({"emailProtection"});
    b.key_usage(crypto::key_usage_from_names(ec ? "keyAgreement,digitalSignature" : "keyEncipherment,digitalSignature"));
    return b.build();
}

std::string plain_message(size_t bytes) {
    std::string m = "From: carol@partner.example\r\nTo: alice@bank.example\r\nSubject: bench\r\nMIME-Version: 1.0\r\n"
                    "Content-Type: text/plain; charset=us-ascii\r\n\r\n";
    const std::string line = "The quick brown fox jumps over the lazy dog, 0123456789 abcdefghij.\r\n";
    while (m.size() < bytes) m += line;
    return m;
}

std::unique_ptr<core::Message> parse(const std::string& raw) {
    auto m = std::make_unique<core::Message>(1 << 20, "/tmp");
    core::MessageSplitter s(*m);
    s.feed(raw.data(), raw.size());
    s.finish();
    return m;
}

std::string encrypt(const std::string& plain, const crypto::Certificate& to) {
    const auto m = parse(plain);
    core::TransformOptions o;
    crypto::StringSink out;
    core::write_transformed(*m, core::plan_encryption(*m, o), {to}, o, out);
    return out.out;
}

crypto::KeyMaterial material(EVP_PKEY* key, const crypto::Certificate& cert) {
    crypto::KeyMaterial k;
    EVP_PKEY_up_ref(key);
    k.key.reset(key);
    k.certificate = cert;
    return k;
}

void open_once(benchmark::State& state, const core::Message& m, const keys::KeyRing& ring) {
    core::DecryptSettings s;
    s.enabled = true;
    s.domains = {"bank.example"};
    const core::OpenedMessage o = core::open_inbound(m, &ring, s);
    if (o.result != core::OpenedMessage::Result::Decrypted) state.SkipWithError("not decrypted");
    benchmark::DoNotOptimize(o.message.get());
}

struct Fixture {
    crypto::EVP_PKEY_ptr key = make_key(false);
    crypto::Certificate cert = make_cert(key.get(), 1, false);
    keys::MemoryKeyRing ring;
    std::string dir;
    Fixture() {
        ring.add(material(key.get(), cert), "bench");
        char tmpl[] = "/tmp/sealmilter-bench-decrypt-XXXXXX";
        dir = mkdtemp(tmpl);
        crypto::BIO_ptr kb(BIO_new_file((dir + "/key.pem").c_str(), "w"));
        PEM_write_bio_PrivateKey(kb.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr);
        crypto::BIO_ptr cb(BIO_new_file((dir + "/cert.pem").c_str(), "w"));
        PEM_write_bio_X509(cb.get(), cert.native());
    }
    ~Fixture() { std::system(("rm -rf " + dir).c_str()); }
};

Fixture& fixture() {
    static Fixture f;
    return f;
}

void BM_inbound(benchmark::State& state) {
    const std::string sent = encrypt(plain_message(static_cast<size_t>(state.range(0))), fixture().cert);
    const auto m = parse(sent);
    for (auto _ : state) open_once(state, *m, fixture().ring);
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}

void BM_openssl_process(benchmark::State& state) {
    Fixture& f = fixture();
    const std::string sent = encrypt(plain_message(static_cast<size_t>(state.range(0))), f.cert);
    const std::string file = f.dir + "/msg-" + std::to_string(state.range(0)) + ".eml";
    std::ofstream(file, std::ios::binary) << sent;
    const std::string cmd = "openssl cms -decrypt -in " + file + " -inkey " + f.dir + "/key.pem -recip " + f.dir +
                            "/cert.pem > /dev/null";
    for (auto _ : state)
        if (std::system(cmd.c_str()) != 0) state.SkipWithError("openssl cms -decrypt failed");
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}

void BM_ring(benchmark::State& state) {
    const auto n = static_cast<uint64_t>(state.range(0));
    const crypto::EVP_PKEY_ptr key = make_key(true);
    keys::MemoryKeyRing ring;
    crypto::Certificate last = make_cert(key.get(), 1000, true);
    for (uint64_t i = 0; i < n; ++i) {
        // Ten certificates per address, as the issue sizes it (10,000 staff, one a year, ten years).
        last = make_cert(key.get(), 1000 + i, true, "user" + std::to_string(i / 10) + "@bank.example");
        ring.add(material(key.get(), last), "bench");
    }
    const auto m = parse(encrypt(plain_message(10 * 1024), last));
    for (auto _ : state) open_once(state, *m, ring);
    state.counters["keys"] = static_cast<double>(ring.size());
}

}  // namespace

BENCHMARK(BM_inbound)->Name("inbound")->Arg(10 * 1024)->Arg(10 * 1024 * 1024)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_openssl_process)->Name("openssl_process")->Arg(10 * 1024)->Arg(10 * 1024 * 1024)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ring)->Name("ring")->Arg(1)->Arg(100000)->Unit(benchmark::kMillisecond)->Iterations(3000);

BENCHMARK_MAIN();
