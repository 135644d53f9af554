// crypto/base64.cpp — 76-column base64 and the ByteSink BIO adapter (see base64.hpp).
#include "crypto/base64.hpp"

#include <openssl/evp.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>

namespace sealmilter::crypto {

namespace {

// RFC 4648 §4 alphabet, as a 4096-entry table of character pairs: one lookup per 12 bits
// instead of one per 6. Measured (bench/) about 2x EVP_EncodeBlock; the partial last line
// still goes through EVP_EncodeBlock, and tests decode every output with OpenSSL.
struct PairTable {
    char pairs[4096][2];
    PairTable() {
        static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for (int i = 0; i < 4096; ++i) {
            pairs[i][0] = kAlphabet[i >> 6];
            pairs[i][1] = kAlphabet[i & 63];
        }
    }
};

const PairTable& pair_table() {
    static const PairTable table;
    return table;
}

// Encodes exactly 57 bytes into 76 characters.
void encode_line(const unsigned char* in, char* out, const PairTable& t) {
    for (size_t i = 0; i < 57; i += 3, out += 4) {
        const uint32_t v = (uint32_t{in[i]} << 16) | (uint32_t{in[i + 1]} << 8) | in[i + 2];
        std::memcpy(out, t.pairs[v >> 12], 2);
        std::memcpy(out + 2, t.pairs[v & 0xFFF], 2);
    }
}

}  // namespace

Base64LineWriter::Base64LineWriter(ByteSink& out, std::string eol) : out_(out), eol_(std::move(eol)) {}

void Base64LineWriter::emit_lines(const unsigned char* data, size_t groups) {
    const PairTable& table = pair_table();
    const size_t line_len = 76 + eol_.size();
    buffer_.resize(groups * line_len);
    char* dst = buffer_.data();
    for (size_t g = 0; g < groups; ++g) {
        encode_line(data + g * kLineInput, dst, table);
        std::memcpy(dst + 76, eol_.data(), eol_.size());
        dst += line_len;
    }
    out_.write(buffer_.data(), buffer_.size());
}

void Base64LineWriter::write(const char* data, size_t len) {
    auto p = reinterpret_cast<const unsigned char*>(data);
    encoded_ += len;
    if (pending_len_ > 0) {
        const size_t take = std::min(len, kLineInput - pending_len_);
        std::memcpy(pending_ + pending_len_, p, take);
        pending_len_ += take;
        p += take;
        len -= take;
        if (pending_len_ < kLineInput) return;
        emit_lines(pending_, 1);
        pending_len_ = 0;
    }
    // Encode in slices so the line buffer stays small however large the write.
    constexpr size_t kGroupsPerSlice = 1024;
    while (len >= kLineInput) {
        const size_t groups = std::min(len / kLineInput, kGroupsPerSlice);
        emit_lines(p, groups);
        p += groups * kLineInput;
        len -= groups * kLineInput;
    }
    std::memcpy(pending_, p, len);
    pending_len_ = len;
}

void Base64LineWriter::finish() {
    if (pending_len_ == 0) return;
    char line[80];
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(line), pending_,
                                  static_cast<int>(pending_len_));
    pending_len_ = 0;
    std::string last(line, static_cast<size_t>(n));
    last += eol_;
    out_.write(last.data(), last.size());
}

namespace {

struct SinkBioState {
    ByteSink* sink;
    std::exception_ptr error;
};

int sink_write(BIO* b, const char* data, int len) {
    auto* st = static_cast<SinkBioState*>(BIO_get_data(b));
    if (st->error) return -1;
    try {
        st->sink->write(data, static_cast<size_t>(len));
        return len;
    } catch (...) {
        st->error = std::current_exception();
        return -1;
    }
}

long sink_ctrl(BIO* /*b*/, int cmd, long /*num*/, void* /*ptr*/) {
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

int sink_create(BIO* b) {
    BIO_set_init(b, 1);
    return 1;
}

int sink_destroy(BIO* b) {
    // Ownership of the state returns from the BIO to a unique_ptr, which frees it.
    std::unique_ptr<SinkBioState> state(static_cast<SinkBioState*>(BIO_get_data(b)));
    BIO_set_data(b, nullptr);
    return 1;
}

const BIO_METHOD* sink_method() {
    static BIO_METHOD_ptr method;
    static std::once_flag once;
    std::call_once(once, [] {
        method.reset(BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "sealmilter sink"));
        if (!method) throw_openssl("BIO_meth_new");
        BIO_meth_set_write(method.get(), sink_write);
        BIO_meth_set_ctrl(method.get(), sink_ctrl);
        BIO_meth_set_create(method.get(), sink_create);
        BIO_meth_set_destroy(method.get(), sink_destroy);
    });
    return method.get();
}

}  // namespace

BIO_ptr make_sink_bio(ByteSink& sink) {
    BIO_ptr bio(BIO_new(sink_method()));
    if (!bio) throw_openssl("BIO_new(sink)");
    // The BIO owns its state from here on; sink_destroy frees it.
    BIO_set_data(bio.get(), std::make_unique<SinkBioState>(SinkBioState{&sink, nullptr}).release());
    return bio;
}

void rethrow_pending(BIO* sink_bio) {
    auto* st = static_cast<SinkBioState*>(BIO_get_data(sink_bio));
    if (st != nullptr && st->error) {
        std::exception_ptr e = st->error;
        st->error = nullptr;
        std::rethrow_exception(e);
    }
}

// ---- decoding ------------------------------------------------------------------------

namespace {

constexpr signed char kSkip = -1;     // whitespace
constexpr signed char kGarbage = -2;  // outside the alphabet
constexpr signed char kPad = -3;      // '='

struct DecodeTable {
    signed char value[256];
    DecodeTable() {
        static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for (signed char& v : value) v = kGarbage;
        for (int i = 0; i < 64; ++i) value[static_cast<unsigned char>(kAlphabet[i])] = static_cast<signed char>(i);
        for (const char c : {' ', '\t', '\r', '\n'}) value[static_cast<unsigned char>(c)] = kSkip;
        value[static_cast<unsigned char>('=')] = kPad;
    }
};

const DecodeTable& decode_table() {
    static const DecodeTable table;
    return table;
}

}  // namespace

void Base64Decoder::feed(std::string_view text, std::string& out) {
    const DecodeTable& t = decode_table();
    out.reserve(out.size() + text.size() / 4 * 3 + 3);
    for (const char c : text) {
        const signed char v = t.value[static_cast<unsigned char>(c)];
        if (v >= 0 && !ended_) {
            bits_ = (bits_ << 6) | static_cast<uint32_t>(v);
            if (++count_ == 4) {
                const char group[3] = {static_cast<char>(bits_ >> 16), static_cast<char>(bits_ >> 8),
                                       static_cast<char>(bits_)};
                out.append(group, 3);
                bits_ = 0;
                count_ = 0;
            }
        } else if (v == kPad) {
            ended_ = true;
        } else if (v != kSkip) {
            ++garbage_;  // outside the alphabet, or data after the padding
        }
    }
}

void Base64Decoder::finish(std::string& out) {
    // 2 sextets = 12 bits -> 1 byte; 3 sextets = 18 bits -> 2 bytes (RFC 4648 §4 cases).
    if (count_ == 2) {
        out += static_cast<char>(bits_ >> 4);
    } else if (count_ == 3) {
        out += static_cast<char>(bits_ >> 10);
        out += static_cast<char>(bits_ >> 2);
    } else if (count_ == 1) {
        truncated_ = true;
    }
    bits_ = 0;
    count_ = 0;
}

std::string decode_base64(std::string_view text, bool* clean) {
    Base64Decoder d;
    std::string out;
    d.feed(text, out);
    d.finish(out);
    if (clean != nullptr) *clean = d.clean();
    return out;
}

}  // namespace sealmilter::crypto
