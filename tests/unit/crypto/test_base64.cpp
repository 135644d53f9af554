// The 76-column base64 writer (layout, exact round trip for every length and chunking) and the
// MIME base64 decoder (table rows, each also fed one byte at a time; OpenSSL as the reference).
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

// The writer's output must be clean base64 for the one decoder (crypto::Base64Decoder).
std::string decode(const std::string& text) {
    bool clean = false;
    std::string out = crypto::decode_base64(text, &clean);
    EXPECT_TRUE(clean);
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

namespace {

struct DecodeRow {
    const char* name;
    std::string text;
    std::string bytes;
    unsigned long long garbage = 0;
    bool truncated = false;
};

std::string feed_in_pieces(const std::string& text, size_t piece, crypto::Base64Decoder& d) {
    std::string out;
    for (size_t off = 0; off < text.size(); off += piece) d.feed(std::string_view(text).substr(off, piece), out);
    d.finish(out);
    return out;
}

}  // namespace

TEST(Base64Decoder, RowsGiveTheSameResultWhateverTheFeeding) {
    const std::vector<DecodeRow> rows = {
        {"empty", "", ""},
        {"one group", "TWFu", "Man"},
        {"two pad", "TQ==", "M"},
        {"one pad", "TWE=", "Ma"},
        {"missing padding", "TWE", "Ma"},
        {"missing double padding", "TQ", "M"},
        {"crlf lines", "TWFu\r\nTWFu\r\n", "ManMan"},
        {"lf, spaces and tabs", " TW Fu\n\tTWE=\n", "ManMa"},
        {"line break inside a group", "TW\r\nFu", "Man"},
        {"garbage skipped and counted", "TW*Fu!", "Man", 2},
        {"8-bit garbage", "TW\xc3\xa4" "Fu", "Man", 2},
        {"data after padding is garbage", "TQ==TWFu", "M", 4},
        {"padding then whitespace", "TQ==\r\n\r\n", "M"},
        {"extra padding", "TQ====", "M"},
        {"one dangling character", "TWFuT", "Man", 0, true},
        {"all 64 characters", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
         std::string("\x00\x10\x83\x10\x51\x87\x20\x92\x8b\x30\xd3\x8f\x41\x14\x93\x51\x55\x97"
                     "\x61\x96\x9b\x71\xd7\x9f\x82\x18\xa3\x92\x59\xa7\xa2\x9a\xab\xb2\xdb\xaf"
                     "\xc3\x1c\xb3\xd3\x5d\xb7\xe3\x9e\xbb\xf3\xdf\xbf", 48)},
    };
    for (const DecodeRow& row : rows) {
        for (const size_t piece : {size_t{1}, size_t{2}, size_t{3}, size_t{5}, size_t{1000}}) {
            crypto::Base64Decoder d;
            EXPECT_EQ(feed_in_pieces(row.text, piece, d), row.bytes) << row.name << ", pieces of " << piece;
            EXPECT_EQ(d.garbage(), row.garbage) << row.name;
            EXPECT_EQ(d.truncated(), row.truncated) << row.name;
            EXPECT_EQ(d.clean(), row.garbage == 0 && !row.truncated) << row.name;
        }
    }
}

TEST(Base64Decoder, AgreesWithOpenSslOnRandomData) {
    std::string data;
    for (int i = 0; i < 5000; ++i) data += static_cast<char>((i * 2654435761u) >> 13);
    for (size_t len = 0; len < 200; ++len) {
        const std::string in = data.substr(len * 7, len);
        std::string b64(4 * ((len + 2) / 3) + 1, '\0');
        const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()),
                                      reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(len));
        b64.resize(static_cast<size_t>(n));
        bool clean = false;
        EXPECT_EQ(crypto::decode_base64(b64, &clean), in) << len;
        EXPECT_TRUE(clean) << len;
    }
}
