// Header splitting, serialisation and spooling: table-driven, and fed one byte at a time.
#include "core/message.hpp"

#include <gtest/gtest.h>

namespace core = sealmilter::core;

namespace {

struct SplitRow {
    const char* name;
    std::string raw;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
};

std::unique_ptr<core::Message> split(const std::string& raw, size_t chunk) {
    auto m = std::make_unique<core::Message>(16, "/tmp");  // tiny threshold: exercises the file spool
    core::MessageSplitter s(*m);
    for (size_t off = 0; off < raw.size(); off += chunk) s.feed(raw.data() + off, std::min(chunk, raw.size() - off));
    s.finish();
    return m;
}

std::string body_of(const core::Message& m) {
    std::string out;
    m.body.for_each_chunk([&](std::string_view c) { out.append(c); });
    return out;
}

class Splitter : public ::testing::TestWithParam<SplitRow> {};

TEST_P(Splitter, SameResultForEveryChunking) {
    const auto& row = GetParam();
    for (size_t chunk : {1u, 2u, 7u, 4096u}) {
        auto m = split(row.raw, chunk);
        ASSERT_EQ(m->headers.size(), row.headers.size()) << row.name << " chunk " << chunk;
        for (size_t i = 0; i < row.headers.size(); ++i) {
            EXPECT_EQ(m->headers[i].name, row.headers[i].first) << row.name;
            EXPECT_EQ(m->headers[i].value, row.headers[i].second) << row.name;
        }
        EXPECT_EQ(body_of(*m), row.body) << row.name << " chunk " << chunk;
        EXPECT_EQ(m->body.size(), row.body.size());
    }
}

INSTANTIATE_TEST_SUITE_P(
    Table, Splitter,
    ::testing::Values(
        SplitRow{"simple_lf", "A: 1\nB: 2\n\nbody\n", {{"A", " 1"}, {"B", " 2"}}, "body\n"},
        SplitRow{"simple_crlf", "A: 1\r\nB: 2\r\n\r\nbody\r\n", {{"A", " 1"}, {"B", " 2"}}, "body\r\n"},
        SplitRow{"folded", "Subject: a\n\tb\n  c\nX: y\n\n", {{"Subject", " a\n\tb\n  c"}, {"X", " y"}}, ""},
        SplitRow{"folded_crlf", "To: a,\r\n b\r\n\r\nx", {{"To", " a,\r\n b"}}, "x"},
        SplitRow{"no_body_separator", "A: 1\nB: 2", {{"A", " 1"}, {"B", " 2"}}, ""},
        SplitRow{"empty_body", "A: 1\n\n", {{"A", " 1"}}, ""},
        SplitRow{"no_headers", "\nbody only\n", {}, "body only\n"},
        SplitRow{"obsolete_space_before_colon", "Subject : x\n\nb", {{"Subject ", " x"}}, "b"},
        SplitRow{"non_header_line_starts_body", "A: 1\nthis is not a header\nmore\n",
                 {{"A", " 1"}}, "this is not a header\nmore\n"},
        SplitRow{"bare_cr_kept_in_value", "A: x\ry\n\nb\rc", {{"A", " x\ry"}}, "b\rc"},
        SplitRow{"empty_value", "A:\nB:   \n\n", {{"A", ""}, {"B", "   "}}, ""},
        SplitRow{"mixed_endings", "A: 1\r\nB: 2\n\r\nz\n", {{"A", " 1"}, {"B", " 2"}}, "z\n"}),
    [](const auto& row_info) { return std::string(row_info.param.name); });

TEST(Splitter, RecordsFirstLineEnding) {
    EXPECT_EQ(split("A: 1\r\n\r\n", 1)->eol, "\r\n");
    EXPECT_EQ(split("A: 1\n\n", 1)->eol, "\n");
}

TEST(SerializeField, RewritesFoldingBreaks) {
    const core::HeaderField f{"Subject", " a\n\tb\r\n c"};
    EXPECT_EQ(core::serialize_field(f, "\r\n"), "Subject: a\r\n\tb\r\n c\r\n");
    EXPECT_EQ(core::serialize_field(f, "\n"), "Subject: a\n\tb\n c\n");
}

TEST(ContentHeaders, ExactlyTheSixNames) {
    for (const char* n : {"Content-Type", "content-transfer-encoding", "CONTENT-DISPOSITION", "Content-ID",
                          "Content-Description", "Content-Language", "Content-Type "})
        EXPECT_TRUE(core::is_content_header(n)) << n;
    for (const char* n : {"MIME-Version", "Content-Base", "Content-Location", "Subject", "X-Content-Type"})
        EXPECT_FALSE(core::is_content_header(n)) << n;
}

TEST(BodySpool, MemoryAndFileHoldTheSameBytes) {
    std::string data;
    for (int i = 0; i < 300000; ++i) data += static_cast<char>(i % 251);
    core::BodySpool mem(1 << 30);
    core::BodySpool file(1000);
    for (size_t off = 0; off < data.size(); off += 777) {
        const size_t n = std::min<size_t>(777, data.size() - off);
        mem.append(data.data() + off, n);
        file.append(data.data() + off, n);
    }
    EXPECT_FALSE(mem.on_disk());
    EXPECT_TRUE(file.on_disk());
    std::string a;
    std::string b;
    mem.for_each_chunk([&](std::string_view c) { a.append(c); });
    file.for_each_chunk([&](std::string_view c) { b.append(c); });
    EXPECT_EQ(a, data);
    EXPECT_EQ(b, data);
    EXPECT_EQ(file.head(10), data.substr(0, 10));
    file.append("tail", 4);  // appending after reading continues at the end
    EXPECT_EQ(file.size(), data.size() + 4);
    std::string c;
    file.for_each_chunk([&](std::string_view x) { c.append(x); });
    EXPECT_EQ(c, data + "tail");
}

TEST(BodySpool, UnwritableSpoolDirThrows) {
    core::BodySpool s(4, "/nonexistent-dir");
    EXPECT_THROW(s.append("0123456789", 10), std::system_error);
}

}  // namespace
