// crypto/base64.hpp — byte sinks and the 76-column base64 writer used for S/MIME bodies.
//
// Why not BIO_f_base64: it wraps at 64 columns, while RFC 2045 §6.8 allows 76 and SPEC §5
// asks for 76 (fewer line breaks, the layout every major client emits).
// Ownership: writers borrow their downstream ByteSink, which must outlive them.
// Threads:   one writer per thread; no shared state.
// Errors:    ByteSink::write throws on failure; the BIO adapters turn exceptions into a BIO
//            error (-1) and keep the exception for rethrow_pending().
#pragma once

#include "crypto/ossl.hpp"

#include <cstddef>
#include <exception>
#include <string>

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

}  // namespace sealmilter::crypto
