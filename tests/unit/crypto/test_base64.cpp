// The 76-column base64 writer: layout and exact round trip for every length and chunking.
#include "crypto/base64.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>

namespace crypto = sealmilter::crypto;

namespace {

std::string encode(const std::string& in, size_t chunk, const std::string& eol) {
    crypto::StringSink sink;
    crypto::Base64LineWriter w(sink, eol);
    for (size_t off = 0; off < in.size(); off += chunk) w.write(in.data() + off, std::min(chunk, in.size() - off));
    w.finish();
    return sink.out;
}

std::string decode(const std::string& text) {
    std::string compact;
    for (char c : text)
        if (c != '\r' && c != '\n') compact += c;
    std::string out(compact.size(), '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(compact.data()), static_cast<int>(compact.size()));
    size_t pad = 0;
    if (!compact.empty() && compact.back() == '=') ++pad;
    if (compact.size() > 1 && compact[compact.size() - 2] == '=') ++pad;
    out.resize(static_cast<size_t>(n) - pad);
    return out;
}

}  // namespace

TEST(Base64LineWriter, LinesAreExactly76ExceptLast) {
    std::string data;
    for (int i = 0; i < 1000; ++i) data += static_cast<char>(i * 7);
    for (const std::string eol : {"\r\n", "\n"}) {
        const std::string text = encode(data, 1000, eol);
        size_t pos = 0;
        std::vector<size_t> lengths;
        while (pos < text.size()) {
            const size_t e = text.find(eol, pos);
            ASSERT_NE(e, std::string::npos);
            lengths.push_back(e - pos);
            pos = e + eol.size();
        }
        ASSERT_FALSE(lengths.empty());
        for (size_t i = 0; i + 1 < lengths.size(); ++i) EXPECT_EQ(lengths[i], 76u);
        EXPECT_LE(lengths.back(), 76u);
        EXPECT_GT(lengths.back(), 0u);
    }
}

TEST(Base64LineWriter, RoundTripsEveryLengthAndChunking) {
    for (size_t len : {0u, 1u, 2u, 3u, 56u, 57u, 58u, 114u, 1000u, 70000u}) {
        std::string data(len, '\0');
        for (size_t i = 0; i < len; ++i) data[i] = static_cast<char>((i * 131) ^ (i >> 3));
        for (size_t chunk : {1u, 5u, 57u, 4096u, 100000u}) {
            EXPECT_EQ(decode(encode(data, chunk, "\r\n")), data) << "len " << len << " chunk " << chunk;
        }
    }
    EXPECT_EQ(encode("", 1, "\n"), "");
}

TEST(Base64LineWriter, SinkBioPropagatesSinkFailure) {
    struct Failing : crypto::ByteSink {
        void write(const char*, size_t) override { throw std::runtime_error("disk full"); }
    } failing;
    crypto::BIO_ptr bio = crypto::make_sink_bio(failing);
    EXPECT_EQ(BIO_write(bio.get(), "abc", 3), -1);
    EXPECT_THROW(crypto::rethrow_pending(bio.get()), std::runtime_error);
}
