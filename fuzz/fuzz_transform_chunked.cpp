// fuzz/fuzz_transform_chunked.cpp — the same message fed in arbitrary chunks, as the milter
// receives it (header by header, body in pieces of any size).
//
// Differential: splitting the input in chunks must give exactly what splitting it whole gives
// (header fields, line ending, body bytes); the CRLF canonicaliser and the 76-column base64
// writer fed in the same chunks must give what they give for the whole body (and what an
// independent reference gives); then the chunk-built message goes through the transform with
// its full oracle (fuzz_support.hpp). The chunk schedule comes from a hash of the input:
// one byte at a time, 1..16 bytes, 1..4096 bytes, or a cut after every CR and every LF (the
// CR/LF pair split across chunks).
#include "core/message.hpp"
#include "core/mime.hpp"
#include "crypto/base64.hpp"
#include "fuzz/fuzz_support.hpp"

#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

using namespace sealmilter;

namespace {

// The chunk lengths for `n` bytes of `bytes` under schedule `mode`.
std::vector<size_t> schedule(std::string_view bytes, unsigned mode, uint64_t seed) {
    std::vector<size_t> out;
    uint64_t x = seed | 1;
    const auto next = [&x] {  // xorshift64
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        return x;
    };
    size_t pos = 0;
    while (pos < bytes.size()) {
        size_t len = 1;
        if (mode == 1) len = 1 + next() % 16;
        if (mode == 2) len = 1 + next() % 4096;
        if (mode == 3) {
            size_t cut = bytes.find_first_of("\r\n", pos);
            len = cut == std::string_view::npos ? bytes.size() - pos : cut - pos + 1;
        }
        len = std::min(len, bytes.size() - pos);
        out.push_back(len);
        pos += len;
    }
    return out;
}

void for_each_piece(std::string_view bytes, const std::vector<size_t>& lens,
                    const std::function<void(std::string_view)>& f) {
    size_t pos = 0;
    for (size_t len : lens) {
        f(bytes.substr(pos, len));
        pos += len;
    }
}

std::string base64_of(std::string_view body, const std::vector<size_t>* lens) {
    crypto::StringSink sink;
    crypto::Base64LineWriter w(sink, "\r\n");
    if (lens == nullptr) {
        w.write(body.data(), body.size());
    } else {
        for_each_piece(body, *lens, [&](std::string_view p) { w.write(p.data(), p.size()); });
    }
    w.finish();
    return sink.out;
}

void check_canonicalizer(std::string_view body, const std::vector<size_t>& lens) {
    const std::string want = fuzz::reference_crlf(body);
    std::string scratch;
    core::CrlfCanonicalizer whole;
    FUZZ_CHECK(std::string(whole.feed(body, scratch)) == want,
               "CrlfCanonicalizer (one piece) differs from the reference");
    core::CrlfCanonicalizer pieces;
    std::string got;
    for_each_piece(body, lens, [&](std::string_view p) { got.append(pieces.feed(p, scratch)); });
    FUZZ_CHECK(got == want, "CrlfCanonicalizer (in chunks) differs from the reference");
}

void check_base64(std::string_view body, const std::vector<size_t>& lens) {
    const std::string whole = base64_of(body, nullptr);
    FUZZ_CHECK(base64_of(body, &lens) == whole, "Base64LineWriter output depends on the chunking");
    std::string compact;
    size_t line = 0;
    for (char c : whole) {
        if (c == '\r') continue;
        if (c == '\n') {
            FUZZ_CHECK(line <= 76, "base64 line longer than 76");
            line = 0;
            continue;
        }
        compact += c;
        ++line;
    }
    FUZZ_CHECK(line == 0, "base64 output does not end with a line break");
    std::string decoded(compact.size() / 4 * 3, '\0');
    const int n =
        EVP_DecodeBlock(reinterpret_cast<unsigned char*>(decoded.data()),
                        reinterpret_cast<const unsigned char*>(compact.data()), static_cast<int>(compact.size()));
    FUZZ_CHECK(n >= 0, "Base64LineWriter wrote invalid base64");
    size_t pad = 0;
    while (pad < 2 && pad < compact.size() && compact[compact.size() - 1 - pad] == '=') ++pad;
    decoded.resize(static_cast<size_t>(n) - pad);
    FUZZ_CHECK(decoded == body, "base64 does not decode to the body");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
    fuzz::init();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view input = fuzz::as_view(data, size);
    const uint64_t h = fuzz::hash_of(input);
    fuzz::TransformVariant v = fuzz::transform_variant(h);
    const unsigned mode = static_cast<unsigned>(h >> 60) & 3;
    const std::vector<size_t> lens = schedule(input, mode, h);

    core::Message whole;
    core::MessageSplitter ws(whole);
    ws.feed(input.data(), input.size());
    ws.finish();

    v.memory_limit = (h >> 13) & 1 ? 16 : v.memory_limit;  // the temp-file spool more often here
    core::Message chunked(v.memory_limit);
    core::MessageSplitter cs(chunked);
    for_each_piece(input, lens, [&](std::string_view p) { cs.feed(p.data(), p.size()); });
    cs.finish();

    FUZZ_CHECK(whole.headers.size() == chunked.headers.size(), "field count depends on the chunking");
    for (size_t i = 0; i < whole.headers.size(); ++i) {
        FUZZ_CHECK(whole.headers[i].name == chunked.headers[i].name, "field name depends on the chunking");
        FUZZ_CHECK(whole.headers[i].value == chunked.headers[i].value, "field value depends on the chunking");
    }
    FUZZ_CHECK(whole.eol == chunked.eol, "detected line ending depends on the chunking");
    const std::string body = fuzz::body_bytes(whole);
    FUZZ_CHECK(body == fuzz::body_bytes(chunked), "body depends on the chunking");
    FUZZ_CHECK(chunked.body.size() == body.size(), "BodySpool::size disagrees with its bytes");
    FUZZ_CHECK(chunked.body.head(64) == body.substr(0, 64), "BodySpool::head disagrees with its bytes");

    const std::vector<size_t> body_lens = schedule(body, mode, h >> 1);
    check_canonicalizer(body, body_lens);
    check_base64(body, body_lens);
    fuzz::exercise_transform(chunked, v);
    return 0;
}
