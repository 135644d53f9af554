// tests/unit/base — the bottom layer: ASCII helpers, encodings, files, the Logger.
#include "base/ascii.hpp"
#include "base/encoding.hpp"
#include "base/file.hpp"
#include "base/handle.hpp"
#include "base/logger.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>

#include <clocale>
#include <cstdlib>
#include <filesystem>
#include <system_error>
#include <vector>

namespace sealmilter::base {
namespace {

TEST(Ascii, LowerFoldsAsciiOnlyWhateverTheLocale) {
    // A Latin-1 locale would fold 0xC4 to 0xE4 through std::tolower; we never do.
    std::setlocale(LC_ALL, "C.UTF-8");
    EXPECT_EQ(to_lower("Bob@Example.ORG"), "bob@example.org");
    EXPECT_EQ(to_lower("\xC3\x84rger@X.de"), "\xC3\x84rger@x.de");
    EXPECT_EQ(to_lower(std::string("A\0B", 3)), std::string("a\0b", 3));
}

TEST(Ascii, IequalsAndIfind) {
    EXPECT_TRUE(iequals("Content-Type", "content-type"));
    EXPECT_FALSE(iequals("Content-Type", "content-typ"));
    EXPECT_FALSE(iequals("\xC3\x84", "\xC3\xA4"));
    EXPECT_EQ(ifind("Re: [SECURE] hi", "[secure]"), 4u);
    EXPECT_EQ(ifind("hello", "xyz"), std::string_view::npos);
    EXPECT_EQ(ifind("hello", ""), 0u);
}

TEST(Ascii, TrimRemovesSpaceTabCrLfOnly) {
    EXPECT_EQ(trim(" \t a b \r\n"), "a b");
    EXPECT_EQ(trim(""), "");
    EXPECT_EQ(trim("\v x \v"), "\v x \v");
}

TEST(Encoding, HexRoundTrip) {
    EXPECT_EQ(to_hex(std::string("\x00\x0f\xab\xff", 4)), "000fabff");
    EXPECT_EQ(to_hex_colons(std::string("\x00\x0f\xab", 3)), "00:0F:AB");
    EXPECT_EQ(from_hex("000FabfF").value(), std::string("\x00\x0f\xab\xff", 4));
    EXPECT_FALSE(from_hex("abc").has_value());
    EXPECT_FALSE(from_hex("zz").has_value());
}

TEST(Encoding, PercentEncodeKeepsUnreservedAndAskedBytes) {
    EXPECT_EQ(percent_encode("a b/c@d.e~_-"), "a%20b%2Fc%40d.e~_-");
    EXPECT_EQ(percent_encode("a+b@c", "@+"), "a+b@c");
    EXPECT_EQ(percent_encode("\xC3\xA4"), "%C3%A4");
}

struct TempDir {
    std::filesystem::path path;
    TempDir() {
        char tmpl[] = "/tmp/sealmilter-base-XXXXXX";
        path = mkdtemp(tmpl);
    }
    ~TempDir() { std::filesystem::remove_all(path); }
};

TEST(File, WriteAtomicallyReplacesAndLeavesNoTemporary) {
    TempDir d;
    const std::string p = (d.path / "f").string();
    write_atomically(p, "one", 0600);
    write_atomically(p, std::string("two\0three", 9), 0600);
    EXPECT_EQ(read_file(p), std::string("two\0three", 9));
    struct stat st {};
    ASSERT_EQ(stat(p.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(d.path), {}), 1);
}

TEST(File, ErrorsNameThePath) {
    TempDir d;
    try {
        (void)read_file((d.path / "absent").string());
        FAIL() << "no error";
    } catch (const std::system_error& e) {
        EXPECT_NE(std::string(e.what()).find("absent"), std::string::npos);
    }
    EXPECT_THROW(write_atomically((d.path / "no" / "dir").string(), "x"), std::system_error);
    write_atomically((d.path / "big").string(), std::string(100, 'x'));
    EXPECT_THROW((void)read_file((d.path / "big").string(), 99), std::system_error);
}

TEST(Handle, UniqueFdClosesOnce) {
    int raw = ::open("/dev/null", O_RDONLY);
    ASSERT_GE(raw, 0);
    {
        UniqueFd a(raw);
        UniqueFd b(std::move(a));
        EXPECT_FALSE(a);
        EXPECT_EQ(b.get(), raw);
    }
    EXPECT_EQ(fcntl(raw, F_GETFD), -1);  // closed
}

TEST(Logger, LevelsFilterAndChildrenCarryTheTag) {
    std::vector<std::pair<LogLevel, std::string>> lines;
    const Logger root = Logger::to_function([&](LogLevel l, const std::string& s) { lines.emplace_back(l, s); },
                                            LogLevel::Info);
    root.debug("hidden");
    root.info("plain");
    const Logger child = root.child("S1").child("4XyZ1");
    child.error("bad");
    child.as_function(LogLevel::Warning)("via function");
    ASSERT_EQ(lines.size(), 3u);
    EXPECT_EQ(lines[0].second, "plain");
    EXPECT_EQ(lines[1], std::make_pair(LogLevel::Error, std::string("4XyZ1: bad")));
    EXPECT_EQ(lines[2], std::make_pair(LogLevel::Warning, std::string("4XyZ1: via function")));
    Logger none;
    none.error("discarded");  // the default logger drops lines without failing
    EXPECT_FALSE(none.enabled(LogLevel::Error));
}

TEST(Logger, ParsesLevelsAndTargets) {
    EXPECT_EQ(parse_log_level("debug"), LogLevel::Debug);
    EXPECT_EQ(parse_log_level("warning"), LogLevel::Warning);
    EXPECT_FALSE(parse_log_level("verbose").has_value());
    EXPECT_TRUE(Logger::for_target("stderr", LogLevel::Info).has_value());
    EXPECT_FALSE(Logger::for_target("file", LogLevel::Info).has_value());
}

}  // namespace
}  // namespace sealmilter::base
