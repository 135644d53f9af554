// crypto/base64.hpp — byte sinks, the 76-column base64 writer used for S/MIME bodies, and the
// one base64 decoder for MIME bodies.
//
// Why not BIO_f_base64: it wraps at 64 columns, while RFC 2045 §6.8 allows 76 and SPEC §5
// asks for 76 (fewer line breaks, the layout every major client emits).
// Ownership: writers borrow their downstream ByteSink, which must outlive them.
// Threads:   one writer / decoder per thread; no shared state.
// Errors:    ByteSink::write throws on failure; the BIO adapters turn exceptions into a BIO
//            error (-1) and keep the exception for rethrow_pending(). The decoder never throws
//            for its input: what it skipped is counted, and the caller decides (see below).
#pragma once

#include "crypto/ossl.hpp"

#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <string_view>

namespace sealmilter::crypto {

class ByteSink {
public:
    virtual ~ByteSink() = default;
    virtual void write(const char* data, size_t len) = 0;  // throws on failure
};

class StringSink final : public ByteSink {
public:
    void write(const char* data, size_t len) override { out.append(data, len); }
    std::string out;
};

// Encodes everything written to it as base64 lines of exactly 76 characters (the last may
// be shorter), each followed by `eol`. finish() emits the final partial line.
class Base64LineWriter final : public ByteSink {
public:
    Base64LineWriter(ByteSink& out, std::string eol);
    void write(const char* data, size_t len) override;
    void finish();
    unsigned long long encoded_bytes() const noexcept { return encoded_; }

private:
    void emit_lines(const unsigned char* data, size_t groups);

    static constexpr size_t kLineInput = 57;  // 57 bytes -> 76 base64 characters
    ByteSink& out_;
    std::string eol_;
    unsigned char pending_[kLineInput] = {};
    size_t pending_len_ = 0;
    std::string buffer_;
    unsigned long long encoded_ = 0;
};

// A source/sink BIO whose writes go to `sink` (borrowed). If the sink throws, the BIO write
// fails and the exception is kept: call rethrow_pending(bio) after the OpenSSL call returns.
BIO_ptr make_sink_bio(ByteSink& sink);
void rethrow_pending(BIO* sink_bio);

// Incremental base64 decoder (RFC 4648 §4 alphabet) for MIME bodies; text may be fed in any
// pieces, one byte at a time included, with the same result. The contract for what is not
// base64 (RFC 2045 §6.8: "characters outside of the base64 alphabet are to be ignored"):
//   - SP, HTAB, CR and LF are skipped silently (line structure is not checked);
//   - any other byte outside the alphabet is skipped too, and counted in garbage(): a caller
//     that needs a clean encoding (a CMS body it will hand to a parser) rejects garbage() > 0;
//   - '=' ends the data (RFC 2045 §6.8); later '=' and whitespace are skipped, anything else
//     after it is garbage and is not decoded;
//   - at finish(), 2 or 3 characters of a last group decode to 1 or 2 bytes whether or not
//     the padding is there; a single dangling character (6 bits, no whole byte) is counted as
//     truncated() and dropped.
class Base64Decoder {
public:
    // Appends the bytes the text completes to `out`.
    void feed(std::string_view text, std::string& out);
    // Ends the input: appends the bytes of a last partial group.
    void finish(std::string& out);

    unsigned long long garbage() const noexcept { return garbage_; }
    bool truncated() const noexcept { return truncated_; }
    bool clean() const noexcept { return garbage_ == 0 && !truncated_; }

private:
    uint32_t bits_ = 0;   // the sextets of the current group, most significant first
    int count_ = 0;       // sextets in bits_ (0..3)
    bool ended_ = false;  // '=' seen
    bool truncated_ = false;
    unsigned long long garbage_ = 0;
};

// Decodes a whole text with Base64Decoder; `clean` (optional) receives decoder.clean().
std::string decode_base64(std::string_view text, bool* clean = nullptr);

}  // namespace sealmilter::crypto
