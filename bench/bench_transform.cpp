// bench/bench_transform.cpp — throughput of the S/MIME transform and of its pieces.
//
// What is measured (all single-threaded, output discarded by a counting sink):
//   transform/SIZE/Nrcpt   the transform proper, one message per iteration: plan_encryption
//                          + write_transformed (header edits, CRLF canonicalisation, CMS
//                          AES-256-CBC, 76-column base64) of a core::Message built beforehand
//                          (body in memory).
//   end_to_end/SIZE/Nrcpt  the same plus ingest: the raw bytes are split into a fresh
//                          core::Message (64 KiB feeds, body in memory) inside the loop.
//   end_to_end_spooled/... end_to_end with the milter's default 1 MiB memory threshold, so the
//                          body goes through a temp file in $TMPDIR (or /tmp).
//   piece/...              the stages of the transform on their own, so BENCHMARKS.md can say
//                          where the time goes (see bench/report.py):
//     split       MessageSplitter + BodySpool (in memory)
//     plan        plan_encryption (GMime Content-Type parse + encrypted-form detection)
//     crlf        CrlfCanonicalizer over the body in 64 KiB chunks
//     cms         EnvelopeWriter: inner header + canonical body -> DER CMS, no base64
//     cms_fixed   EnvelopeWriter with an empty body (per-message cost: CEK + RSA per recipient)
//     aes_evp     bare EVP AES-256-CBC over the body (the in-process cipher bound)
//     base64      Base64LineWriter replaying the exact DER chunks the cms piece produced
//
// Sizes are binary: 10KB = 10 KiB, ..., 10MB = 10 MiB. bytes_per_second counts the raw
// input message bytes; items_per_second counts messages.
//
// Extra mode (used by bench/run.sh so the CLI baselines encrypt the very same messages):
//   bench_transform --write-message BYTES FILE    writes the generated message and exits.

#include "core/message.hpp"
#include "core/mime.hpp"
#include "core/transform.hpp"
#include "crypto/base64.hpp"
#include "crypto/certificate.hpp"
#include "crypto/certificate_builder.hpp"
#include "crypto/envelope.hpp"

#include <benchmark/benchmark.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include <cstdio>
#include <ctime>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using namespace sealmilter;

constexpr size_t kKiB = 1024;
constexpr size_t kMiB = 1024 * 1024;
constexpr size_t kChunk = 64 * kKiB;             // the CLI reads stdin in 64 KiB pieces
constexpr size_t kInMemory = 256 * kMiB;         // keeps every benchmark body in memory
constexpr size_t kMilterThreshold = 1 * kMiB;    // milter.memory_threshold default
constexpr int kMaxRecipients = 10;

// ---- output sinks ------------------------------------------------------------------------

class CountingSink final : public crypto::ByteSink {
public:
    void write(const char* data, size_t len) override {
        benchmark::DoNotOptimize(data);
        bytes += len;
        ++writes;
    }
    unsigned long long bytes = 0;
    unsigned long long writes = 0;
};

// Keeps what it is given, chunk by chunk, so a later stage can be replayed exactly.
class RecordingSink final : public crypto::ByteSink {
public:
    void write(const char* data, size_t len) override {
        data_.append(data, len);
        chunks.push_back(len);
    }
    std::string data_;
    std::vector<size_t> chunks;
};

// ---- recipients ------------------------------------------------------------------------

// RSA-2048, self-signed, keyUsage keyEncipherment, SAN email: what a recipient would publish.
crypto::Certificate make_recipient(int n) {
    crypto::EVP_PKEY_ptr key = crypto::generate_rsa_key(2048);
    const std::time_t now = std::time(nullptr);
    crypto::Certificate cert = crypto::CertificateBuilder()
                                   .public_key(key.get())
                                   .common_name("Bench Recipient " + std::to_string(n))
                                   .serial(static_cast<uint64_t>(1000 + n))
                                   .validity(now - 3600, now + 86400L * 30)
                                   .basic_constraints(false)
                                   .key_usage(crypto::kKeyEncipherment)
                                   .extended_key_usage({"emailProtection"})
                                   .add_email_san("rcpt" + std::to_string(n) + "@example.net")
                                   .build();
    if (const std::string why = cert.encryption_unsuitability(); !why.empty())
        throw std::runtime_error("generated recipient unsuitable: " + why);
    return cert;
}

const std::vector<crypto::Certificate>& all_recipients() {
    static const std::vector<crypto::Certificate> certs = [] {
        std::vector<crypto::Certificate> v;
        for (int i = 1; i <= kMaxRecipients; ++i) v.push_back(make_recipient(i));
        return v;
    }();
    return certs;
}

std::vector<crypto::Certificate> recipients(int n) {
    const auto& all = all_recipients();
    return {all.begin(), all.begin() + n};
}

// ---- messages --------------------------------------------------------------------------

// Deterministic filler for the attachment (xorshift64*): incompressible, like a PDF/ZIP.
void fill_random(std::string& out, size_t n, unsigned long long seed) {
    out.resize(n);
    unsigned long long s = seed;
    for (size_t i = 0; i < n; i += 8) {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        const unsigned long long v = s * 2685821657736338717ULL;
        const size_t take = std::min<size_t>(8, n - i);
        std::memcpy(out.data() + i, &v, take);
    }
}

// A realistic multipart/mixed message with CRLF line ends (as an MTA hands it to a milter):
// trace and address headers, a text/plain part, and a base64 application/pdf attachment
// sized so that the whole message is exactly `target` bytes.
std::string make_message(size_t target) {
    const std::string boundary = "=_sealmilter_bench_5f3a9c";
    std::string head =
        "Return-Path: <alice@example.org>\r\n"
        "Received: from mail.example.org (mail.example.org [192.0.2.10])\r\n"
        "\tby mx.example.net (Postfix) with ESMTPS id 4T7Q2Y0bZ1z9sWm\r\n"
        "\tfor <bob@example.net>; Tue,  5 Mar 2024 10:00:01 +0000 (UTC)\r\n"
        "From: Alice Example <alice@example.org>\r\n"
        "To: Bob Example <bob@example.net>\r\n"
        "Subject: Q1 report and contract draft\r\n"
        "Date: Tue, 05 Mar 2024 10:00:00 +0000\r\n"
        "Message-ID: <20240305100000.4T7Q2Y0bZ1z9sWm@mail.example.org>\r\n"
        "User-Agent: sealmilter-bench\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=\"" +
        boundary +
        "\"\r\n"
        "\r\n"
        "This is a multi-part message in MIME format.\r\n"
        "\r\n"
        "--" +
        boundary +
        "\r\n"
        "Content-Type: text/plain; charset=utf-8; format=flowed\r\n"
        "Content-Transfer-Encoding: 7bit\r\n"
        "\r\n"
        "Hello Bob,\r\n"
        "\r\n";
    for (int i = 0; i < 12; ++i)
        head +=
            "please find attached the quarterly report. The figures in section 3 were revised \r\n"
            "after the audit; the contract draft follows next week. Regards, Alice.\r\n";
    head += "\r\n--" + boundary +
            "\r\n"
            "Content-Type: application/pdf; name=\"report-q1.pdf\"\r\n"
            "Content-Transfer-Encoding: base64\r\n"
            "Content-Disposition: attachment; filename=\"report-q1.pdf\"\r\n"
            "\r\n";
    const std::string tail = "\r\n--" + boundary + "--\r\n";
    if (target < head.size() + tail.size() + 6) throw std::invalid_argument("message size too small");

    // Attachment lines: 76 base64 characters + CRLF; the last line is shorter (a multiple
    // of 4) and may need a little top-up in the epilogue to hit `target` exactly.
    const size_t room = target - head.size() - tail.size();
    const size_t full_lines = room / 78;
    size_t rest = room - full_lines * 78;  // 0..77 bytes for the last line + CRLF
    size_t last_chars = rest >= 6 ? ((rest - 2) / 4) * 4 : 0;
    size_t epilogue = rest - (last_chars > 0 ? last_chars + 2 : 0);
    const size_t raw_len = full_lines * 57 + last_chars / 4 * 3;

    std::string raw;
    fill_random(raw, raw_len, 0x9e3779b97f4a7c15ULL ^ target);
    std::string msg;
    msg.reserve(target);
    msg += head;
    char line[80];
    size_t off = 0;
    for (size_t l = 0; l < full_lines; ++l, off += 57) {
        EVP_EncodeBlock(reinterpret_cast<unsigned char*>(line), reinterpret_cast<const unsigned char*>(raw.data() + off),
                        57);
        msg.append(line, 76);
        msg += "\r\n";
    }
    if (last_chars > 0) {
        const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(line),
                                      reinterpret_cast<const unsigned char*>(raw.data() + off),
                                      static_cast<int>(raw_len - off));
        msg.append(line, static_cast<size_t>(n));
        msg += "\r\n";
    }
    msg += tail;
    // Top-up: spaces before the final CRLF of the closing delimiter are transport padding
    // (RFC 2046 §5.1.1), harmless to every parser.
    msg.insert(msg.size() - 2, epilogue, ' ');
    if (msg.size() != target) throw std::logic_error("message generator size mismatch");
    return msg;
}

const std::string& message_of(size_t size) {
    static std::map<size_t, std::string> cache;
    auto it = cache.find(size);
    if (it == cache.end()) it = cache.emplace(size, make_message(size)).first;
    return it->second;
}

// Splits like the CLI: 64 KiB reads pushed into the splitter.
void split_into(const std::string& raw, core::Message& msg) {
    core::MessageSplitter splitter(msg);
    for (size_t off = 0; off < raw.size(); off += kChunk)
        splitter.feed(raw.data() + off, std::min(kChunk, raw.size() - off));
    splitter.finish();
}

core::TransformOptions options() {
    core::TransformOptions opt;  // defaults: AES-256-CBC, RSA PKCS#1 v1.5, no header protection
    opt.eol = "\r\n";
    return opt;
}

std::string spool_dir() {
    const char* t = std::getenv("TMPDIR");
    return t != nullptr && *t != '\0' ? t : "/tmp";
}

// The canonical (CRLF) body as the transform feeds it to the envelope, in 64 KiB chunks.
std::vector<std::string> canonical_chunks(const core::Message& m) {
    std::vector<std::string> out;
    core::CrlfCanonicalizer canon;
    m.body.for_each_chunk([&](std::string_view chunk) {
        std::string scratch;
        out.emplace_back(canon.feed(chunk, scratch));
    });
    return out;
}

void set_rates(benchmark::State& state, size_t bytes_per_item) {
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * static_cast<long long>(bytes_per_item));
}

// ---- whole transform -------------------------------------------------------------------

unsigned long long transform(const core::Message& msg, const std::vector<crypto::Certificate>& certs,
                             const core::TransformOptions& opt) {
    const core::Plan plan = core::plan_encryption(msg, opt);
    if (plan.kind != core::PlanKind::Encrypt) throw std::logic_error("benchmark message would pass through");
    CountingSink sink;
    core::write_transformed(msg, plan, certs, opt, sink);
    return sink.bytes;
}

void BM_Transform(benchmark::State& state, size_t size, int nrcpt) {
    const std::string& raw = message_of(size);
    const auto certs = recipients(nrcpt);
    const auto opt = options();
    core::Message msg(kInMemory, spool_dir());
    split_into(raw, msg);
    unsigned long long out_bytes = transform(msg, certs, opt);  // warm-up (GMime init, caches)
    for (auto _ : state) {
        out_bytes = transform(msg, certs, opt);
        benchmark::DoNotOptimize(out_bytes);
    }
    set_rates(state, raw.size());
    state.counters["out_bytes"] = static_cast<double>(out_bytes);
}

unsigned long long end_to_end(const std::string& raw, const std::vector<crypto::Certificate>& certs,
                              const core::TransformOptions& opt, size_t memory_limit) {
    core::Message msg(memory_limit, spool_dir());
    split_into(raw, msg);
    return transform(msg, certs, opt);
}

void BM_EndToEnd(benchmark::State& state, size_t size, int nrcpt, size_t memory_limit) {
    const std::string& raw = message_of(size);
    const auto certs = recipients(nrcpt);
    const auto opt = options();
    unsigned long long out_bytes = end_to_end(raw, certs, opt, memory_limit);  // warm-up
    for (auto _ : state) {
        out_bytes = end_to_end(raw, certs, opt, memory_limit);
        benchmark::DoNotOptimize(out_bytes);
    }
    set_rates(state, raw.size());
    state.counters["out_bytes"] = static_cast<double>(out_bytes);
}

// ---- pieces ------------------------------------------------------------------------------

void BM_Split(benchmark::State& state, size_t size) {
    const std::string& raw = message_of(size);
    for (auto _ : state) {
        core::Message msg(kInMemory, spool_dir());
        split_into(raw, msg);
        benchmark::DoNotOptimize(msg.body.size());
    }
    set_rates(state, raw.size());
}

void BM_Plan(benchmark::State& state, size_t size) {
    const std::string& raw = message_of(size);
    core::Message msg(kInMemory, spool_dir());
    split_into(raw, msg);
    const auto opt = options();
    for (auto _ : state) {
        core::Plan plan = core::plan_encryption(msg, opt);
        benchmark::DoNotOptimize(plan.edits.data());
    }
    set_rates(state, raw.size());
}

void BM_Crlf(benchmark::State& state, size_t size) {
    const std::string& raw = message_of(size);
    core::Message msg(kInMemory, spool_dir());
    split_into(raw, msg);
    std::string buf;
    for (auto _ : state) {
        core::CrlfCanonicalizer canon;
        msg.body.for_each_chunk([&](std::string_view chunk) {
            const std::string_view canonical = canon.feed(chunk, buf);
            benchmark::DoNotOptimize(canonical.data());
        });
    }
    set_rates(state, raw.size());
}

// Envelope only: the inner header section and the canonical body go into the CMS stream;
// the DER output is counted, not base64-encoded.
void BM_Cms(benchmark::State& state, size_t size, int nrcpt) {
    const std::string& raw = message_of(size);
    core::Message msg(kInMemory, spool_dir());
    split_into(raw, msg);
    const auto opt = options();
    const std::string inner = core::inner_header_section(msg, opt);
    const std::vector<std::string> body = canonical_chunks(msg);
    const auto certs = recipients(nrcpt);
    unsigned long long der = 0;
    unsigned long long writes = 0;
    for (auto _ : state) {
        CountingSink sink;
        crypto::EnvelopeWriter env(certs, opt.envelope, sink);
        env.write(inner.data(), inner.size());
        for (const std::string& c : body) env.write(c.data(), c.size());
        env.finish();
        der = sink.bytes;
        writes = sink.writes;
    }
    set_rates(state, raw.size());
    state.counters["der_bytes"] = static_cast<double>(der);
    state.counters["der_writes"] = static_cast<double>(writes);
}

void BM_CmsFixed(benchmark::State& state, int nrcpt) {
    const auto certs = recipients(nrcpt);
    const auto opt = options();
    for (auto _ : state) {
        CountingSink sink;
        crypto::EnvelopeWriter env(certs, opt.envelope, sink);
        env.finish();
        benchmark::DoNotOptimize(sink.bytes);
    }
    state.SetItemsProcessed(state.iterations());
}

void BM_AesEvp(benchmark::State& state, size_t size) {
    const std::string& raw = message_of(size);
    unsigned char key[32];
    unsigned char iv[16];
    if (RAND_bytes(key, sizeof key) != 1 || RAND_bytes(iv, sizeof iv) != 1) crypto::throw_openssl("RAND_bytes");
    std::vector<unsigned char> out(kChunk + 32);
    std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
    for (auto _ : state) {
        if (EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_cbc(), nullptr, key, iv) != 1) crypto::throw_openssl("init");
        int n = 0;
        for (size_t off = 0; off < raw.size(); off += kChunk) {
            const int len = static_cast<int>(std::min(kChunk, raw.size() - off));
            if (EVP_EncryptUpdate(ctx.get(), out.data(), &n, reinterpret_cast<const unsigned char*>(raw.data() + off),
                                  len) != 1)
                crypto::throw_openssl("update");
            benchmark::DoNotOptimize(out.data());
        }
        if (EVP_EncryptFinal_ex(ctx.get(), out.data(), &n) != 1) crypto::throw_openssl("final");
    }
    set_rates(state, raw.size());
}

// Base64LineWriter fed exactly what the envelope emits for this message (same bytes, same
// chunk sizes), so cms + base64 add up to the envelope stage of the transform.
void BM_Base64(benchmark::State& state, size_t size) {
    const std::string& raw = message_of(size);
    core::Message msg(kInMemory, spool_dir());
    split_into(raw, msg);
    const auto opt = options();
    RecordingSink rec;
    {
        const std::string inner = core::inner_header_section(msg, opt);
        crypto::EnvelopeWriter env(recipients(1), opt.envelope, rec);
        env.write(inner.data(), inner.size());
        for (const std::string& c : canonical_chunks(msg)) env.write(c.data(), c.size());
        env.finish();
    }
    unsigned long long out_bytes = 0;
    for (auto _ : state) {
        CountingSink sink;
        crypto::Base64LineWriter b64(sink, opt.eol);
        size_t off = 0;
        for (size_t len : rec.chunks) {
            b64.write(rec.data_.data() + off, len);
            off += len;
        }
        b64.finish();
        out_bytes = sink.bytes;
    }
    set_rates(state, raw.size());  // per message, like the others (input: DER bytes below)
    state.counters["der_bytes"] = static_cast<double>(rec.data_.size());
    state.counters["b64_bytes"] = static_cast<double>(out_bytes);
}

struct Size {
    const char* label;
    size_t bytes;
};
constexpr Size kSizes[] = {{"10KB", 10 * kKiB}, {"100KB", 100 * kKiB}, {"1MB", 1 * kMiB}, {"10MB", 10 * kMiB}};

void register_all() {
    for (const Size& s : kSizes)
        for (int r : {1, 10}) {
            const std::string tail = std::string(s.label) + "/" + std::to_string(r) + "rcpt";
            benchmark::RegisterBenchmark(("transform/" + tail).c_str(), BM_Transform, s.bytes, r)
                ->Unit(benchmark::kMicrosecond);
            benchmark::RegisterBenchmark(("end_to_end/" + tail).c_str(), BM_EndToEnd, s.bytes, r, kInMemory)
                ->Unit(benchmark::kMicrosecond);
        }
    benchmark::RegisterBenchmark("end_to_end_spooled/10MB/1rcpt", BM_EndToEnd, 10 * kMiB, 1, kMilterThreshold)
        ->Unit(benchmark::kMicrosecond);
    for (const Size& s : kSizes) {
        const std::string l = s.label;
        benchmark::RegisterBenchmark(("piece/split/" + l).c_str(), BM_Split, s.bytes)->Unit(benchmark::kMicrosecond);
        benchmark::RegisterBenchmark(("piece/plan/" + l).c_str(), BM_Plan, s.bytes)->Unit(benchmark::kMicrosecond);
        benchmark::RegisterBenchmark(("piece/crlf/" + l).c_str(), BM_Crlf, s.bytes)->Unit(benchmark::kMicrosecond);
        benchmark::RegisterBenchmark(("piece/cms/" + l + "/1rcpt").c_str(), BM_Cms, s.bytes, 1)
            ->Unit(benchmark::kMicrosecond);
        benchmark::RegisterBenchmark(("piece/aes_evp/" + l).c_str(), BM_AesEvp, s.bytes)
            ->Unit(benchmark::kMicrosecond);
        benchmark::RegisterBenchmark(("piece/base64/" + l).c_str(), BM_Base64, s.bytes)
            ->Unit(benchmark::kMicrosecond);
    }
    for (int r : {1, 10})
        benchmark::RegisterBenchmark(("piece/cms_fixed/" + std::to_string(r) + "rcpt").c_str(), BM_CmsFixed, r)
            ->Unit(benchmark::kMicrosecond);
}

int write_message(const char* size_arg, const char* path) {
    char* end = nullptr;
    const unsigned long long n = std::strtoull(size_arg, &end, 10);
    if (end == size_arg || *end != '\0' || n == 0) {
        std::cerr << "bench_transform: bad size '" << size_arg << "'\n";
        return 64;
    }
    const std::string msg = make_message(static_cast<size_t>(n));
    std::FILE* f = std::fopen(path, "wb");
    if (f == nullptr) {
        std::perror(path);
        return 73;
    }
    const bool ok = std::fwrite(msg.data(), 1, msg.size(), f) == msg.size();
    if (std::fclose(f) != 0 || !ok) {
        std::perror(path);
        return 74;
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        if (argc >= 2 && std::strcmp(argv[1], "--write-message") == 0) {
            if (argc != 4) {
                std::cerr << "usage: bench_transform --write-message BYTES FILE\n";
                return 64;
            }
            return write_message(argv[2], argv[3]);
        }
        benchmark::Initialize(&argc, argv);
        if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 64;
        all_recipients();  // RSA key generation happens here, not inside a benchmark
        register_all();
        benchmark::RunSpecifiedBenchmarks();
        benchmark::Shutdown();
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "bench_transform: " << e.what() << "\n";
        return 70;
    }
}
