// The man pages the build wrote (build/man/, what `cmake --install` and the package install)
// against their sources, so they cannot drift: sealmilter.conf(5) against the option table
// and docs/configuration.md (every key, its default exactly as the reference prints it);
// sealmilter(8) against the built binary's own --help of every command and the exit codes.
// groff must render both without a warning.
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "conf/config.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

namespace cli = sealmilter::cli;
namespace conf = sealmilter::conf;

namespace {

std::string read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string run(const std::string& command) {
    std::string out;
    FILE* p = popen(command.c_str(), "r");
    if (p == nullptr) return out;
    std::array<char, 4096> buf{};
    size_t n = 0;
    while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
    pclose(p);
    return out;
}

// troff back to text, for the escapes the generator writes.
std::string plain(std::string s) {
    for (const auto& [from, to] : {std::pair<std::string, std::string>{"\\-", "-"}, {"\\&", ""}, {"\\e", "\\"}}) {
        for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
    }
    return s;
}

const std::string kMan = SEALMILTER_MAN_DIR;
const std::string kBin = SEALMILTER_BINARY;

TEST(ManPage, ConfigPageHasEveryKeyWithItsDefaultInItsSection) {
    const std::string page = read(kMan + "/sealmilter.conf.5");
    ASSERT_FALSE(page.empty()) << kMan << "/sealmilter.conf.5 (the `man` target writes it)";
    for (const conf::OptionSpec& s : conf::option_table()) {
        const std::string key(s.key);
        const std::string section = ".SH [" + key.substr(0, key.find('.')) + "]\n";
        const size_t sec = page.find(section);
        ASSERT_NE(sec, std::string::npos) << section;
        const size_t next_sec = page.find(".SH ", sec + 1);
        const size_t at = page.find(".TP\n.B " + key.substr(key.find('.') + 1) + "\n", sec);
        ASSERT_TRUE(at != std::string::npos && at < next_sec) << key << " not in its section";
        const size_t end = page.find(".TP\n", at + 1);
        const std::string entry = plain(page.substr(at, std::min(end, next_sec) - at));
        const std::string want = s.default_value.empty() ? "Default: (empty)" : "Default: \\fB" + std::string(s.default_value) + "\\fR";
        EXPECT_NE(entry.find(want), std::string::npos) << key << ":\n" << entry;
        EXPECT_NE(entry.find(std::string(s.help)), std::string::npos) << key << ": help text";
    }
}

// docs/configuration.md's default column prints each default exactly as the table holds it.
TEST(ManPage, ReferenceDefaultColumnEqualsTheTable) {
    const std::string doc = read(std::string(SEALMILTER_SOURCE_DIR) + "/docs/configuration.md");
    for (const conf::OptionSpec& s : conf::option_table()) {
        const std::string key(s.key);
        const size_t row = doc.find("| `" + key + "` |");
        ASSERT_NE(row, std::string::npos) << key;
        std::string line = doc.substr(row, doc.find('\n', row) - row);
        // | `key` | type | default | meaning |
        size_t cell = 0;
        for (int i = 0; i < 2; ++i) cell = line.find(" | ", cell + 1);
        ASSERT_NE(cell, std::string::npos) << line;
        const std::string def = line.substr(cell + 3);
        EXPECT_EQ(def.rfind("`" + std::string(s.default_value) + "`", 0), 0u) << key << ": " << def.substr(0, 60);
    }
}

TEST(ManPage, CommandPageHasEveryCommandsOwnHelp) {
    const std::string page = plain(read(kMan + "/sealmilter.8"));
    ASSERT_FALSE(page.empty());
    for (const cli::Command& c : cli::commands()) {
        if (c.hidden) {
            EXPECT_EQ(page.find(".SS " + std::string(c.name) + "\n"), std::string::npos) << c.name;
            continue;
        }
        EXPECT_NE(page.find(".SS " + std::string(c.name) + "\n" + c.summary), std::string::npos) << c.name;
        std::string help = run(kBin + " " + c.name + " --help");
        help.resize(std::min(help.size(), help.find("Configuration overrides")));
        ASSERT_FALSE(help.empty()) << c.name;
        std::istringstream lines(help);
        for (std::string l; std::getline(lines, l);) {
            while (!l.empty() && l.back() == ' ') l.pop_back();
            if (!l.empty()) {
                EXPECT_NE(page.find(l), std::string::npos) << c.name << " --help line missing: " << l;
            }
        }
    }
    for (int code : {cli::kOk, cli::kUsage, cli::kDataErr, cli::kNoInput, cli::kSoftware, cli::kIoErr, cli::kTempFail, cli::kConfig})
        EXPECT_NE(page.find(".TP\n.B " + std::to_string(code) + "\n"), std::string::npos) << "exit code " << code;
    for (const char* section : {".SH SIGNALS", ".SH EXIT STATUS", ".SH FILES", "SIGHUP", "SIGTERM"})
        EXPECT_NE(page.find(section), std::string::npos) << section;
}

TEST(ManPage, GroffRendersBothWithoutWarnings) {
    for (const char* page : {"/sealmilter.8", "/sealmilter.conf.5"}) {
        const std::string warnings = run("groff -man -Tutf8 -ww -z " + kMan + page + " 2>&1");
        EXPECT_EQ(warnings, "") << page;
    }
}

}  // namespace
