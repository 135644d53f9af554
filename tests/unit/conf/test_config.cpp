// The option table and INI parsing: good values normalise, bad ones name file:line.
#include "conf/config.hpp"

#include <gtest/gtest.h>

namespace conf = sealmilter::conf;

TEST(Config, DefaultsComeFromTheTable) {
    auto c = conf::parse_config_text("", "x.conf");
    EXPECT_EQ(c->get("crypto.cipher"), "aes-256-cbc");
    EXPECT_EQ(c->get("crypto.rsa_padding"), "pkcs1");
    EXPECT_FALSE(c->get_bool("crypto.protect_headers"));
    EXPECT_EQ(c->get_int("milter.max_message_size"), 104857600);
    EXPECT_EQ(c->origin("crypto.cipher"), "default");
    for (const auto& spec : conf::option_table()) EXPECT_FALSE(spec.help.empty()) << spec.key;
}

TEST(Config, FileValuesAndOverridesWithOrigins) {
    auto c = conf::parse_config_text("# comment\n[crypto]\ncipher = aes-128-cbc\n\nprotect_headers = yes\n", "s.conf",
                                     {{"crypto.cipher", "aes-256-gcm"}});
    EXPECT_EQ(c->get("crypto.cipher"), "aes-256-gcm");
    EXPECT_EQ(c->origin("crypto.cipher"), "--crypto.cipher");
    EXPECT_TRUE(c->get_bool("crypto.protect_headers"));
    EXPECT_EQ(c->origin("crypto.protect_headers"), "s.conf:5");
}

struct BadRow {
    const char* name;
    const char* text;
    const char* expect;  // substring of the error
};

class BadConfig : public ::testing::TestWithParam<BadRow> {};

TEST_P(BadConfig, NamesFileAndLine) {
    try {
        conf::parse_config_text(GetParam().text, "/etc/sealmilter/sealmilter.conf");
        FAIL() << "accepted: " << GetParam().name;
    } catch (const conf::ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find(GetParam().expect), std::string::npos) << e.what();
    }
}

INSTANTIATE_TEST_SUITE_P(
    Table, BadConfig,
    ::testing::Values(
        BadRow{"unknown_key", "[crypto]\nciphers = x\n", "sealmilter.conf:2: unknown key 'crypto.ciphers'"},
        BadRow{"bad_enum", "\n[crypto]\ncipher = des\n", "sealmilter.conf:3: bad value 'des' for crypto.cipher"},
        BadRow{"bad_bool", "[crypto]\nprotect_headers = maybe\n", ":2: bad value 'maybe'"},
        BadRow{"bad_int", "[directory]\nmax_connections = 10MB\n", "expected an integer"},
        BadRow{"bad_size", "[milter]\nmax_message_size = 10 parsecs\n", "expected a number of bytes"},
        BadRow{"size_overflow", "[milter]\nmax_message_size = 999999999999G\n", "expected 1024.."},
        BadRow{"bad_duration", "[cache]\nmin_ttl = soon\n", ":2: bad value 'soon' for cache.min_ttl"},
        BadRow{"reinject_no_port", "[milter]\nreinject = 127.0.0.1\n", ":2: bad value '127.0.0.1' for milter.reinject"},
        BadRow{"reinject_bad_port", "[milter]\nreinject = localhost:99999\n", "port 1..65535"},
        BadRow{"reinject_bare_v6", "[milter]\nreinject = ::1:10027\n", "needs brackets"},
        BadRow{"socket_kind", "[milter]\nsocket = tcp:8891\n", "expected inet:PORT@HOST"},
        BadRow{"socket_relative", "[milter]\nsocket = unix:milter.sock\n", "must be absolute"},
        BadRow{"url_scheme", "[directory]\nurl = ftp://dir/{email}\n", "must start with https://"},
        BadRow{"url_placeholder", "[directory]\nurl = https://dir/{mail}\n", "unknown placeholder {mail}"},
        BadRow{"url_same_for_all", "[directory]\nurl = https://dir/certs\n", ":2: directory.url: neither {email}"},
        BadRow{"client_cert_alone", "[directory]\nclient_cert = /etc/c.pem\n", ":2: directory.client_cert: "},
        BadRow{"domain", "[policy]\ninternal_domains = bank.example, bad domain\n", "'bad domain' is not a domain"},
        BadRow{"header", "[policy]\ntrigger_header = X Encrypt\n", "expected a header field name"},
        BadRow{"ttl_order", "[cache]\nmin_ttl = 2d\nmax_ttl = 1d\n", ":2: cache.min_ttl: cache.min_ttl (172800) is larger"},
        // Found by fuzz_config: only max_ttl set, below the default min_ttl; the error must name
        // where max_ttl was set, not "configuration".
        BadRow{"ttl_order_default_min", "[cache]\nmax_ttl = 0\n", "sealmilter.conf:2: cache.max_ttl: cache.min_ttl (3600)"},
        BadRow{"log_level", "[log]\nlevel = verbose\n", "expected one of error, warning, info, debug"},
        BadRow{"path_control", "[store]\ndir = /var/\x01lib\n", "control characters"},
        BadRow{"int_out_of_range", "[milter]\nmax_message_size = 1\n", "expected 1024.."},
        BadRow{"no_section", "cipher = aes-128-cbc\n", ":1: key outside of any [section]"},
        BadRow{"no_equals", "[crypto]\ncipher\n", ":2: expected 'key = value'"},
        BadRow{"bad_section", "[crypto\n", ":1: malformed section header"},
        BadRow{"unknown_section", "[nope]\nx = 1\n", "unknown key 'nope.x'"}),
    [](const auto& row_info) { return std::string(row_info.param.name); });

TEST(Config, KindsNormaliseUnitsAndLists) {
    auto c = conf::parse_config_text(
        "[milter]\nmax_message_size = 50M\nreinject_timeout_ms = 2s\nreinject = [::1]:10027\nsocket = unix:/run/s.sock\n"
        "[cache]\nmax_stale = 7d\nmin_ttl = 90m\n[policy]\ninternal_domains = Bank.Example , @corp.example\n"
        "[directory]\nurl = https://dir.example/v1/{domain}/{local}\n",
        "k.conf");
    EXPECT_EQ(c->get_int("milter.max_message_size"), 50LL << 20);
    EXPECT_EQ(c->get_int("milter.reinject_timeout_ms"), 2000);
    EXPECT_EQ(c->get("milter.reinject"), "[::1]:10027");
    EXPECT_EQ(c->get_int("cache.max_stale"), 7 * 86400);
    EXPECT_EQ(c->get_int("cache.min_ttl"), 5400);
    EXPECT_EQ(c->get_list("policy.internal_domains"), (std::vector<std::string>{"bank.example", "corp.example"}));
}

// run and check-config read the configuration through the same function, so a value one
// rejects the other rejects with the same words; a command-line override names the option.
TEST(Config, OverridesAreValidatedLikeFileValues) {
    try {
        conf::parse_config_text("", "x", {{"milter.reinject", "nohost"}});
        FAIL() << "accepted";
    } catch (const conf::ConfigError& e) {
        EXPECT_EQ(std::string(e.what()).rfind("--milter.reinject: bad value 'nohost' for milter.reinject", 0), 0u)
            << e.what();
    }
}

TEST(Config, BadOverrideNamesTheOption) {
    EXPECT_THROW(conf::parse_config_text("", "x", {{"crypto.rsa_padding", "pss"}}), conf::ConfigError);
}

#include <fstream>
#include <iterator>

// The reference and the example config must name every key with its real default.
TEST(Config, ReferenceAndExampleStayTrue) {
    const auto read = [](const std::string& rel) {
        std::ifstream in(std::string(SEALMILTER_SOURCE_DIR) + "/" + rel);
        return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    };
    const std::string doc = read("docs/configuration.md");
    const std::string example = read("conf/sealmilter.conf");
    ASSERT_FALSE(doc.empty());
    ASSERT_FALSE(example.empty());
    for (const auto& spec : conf::option_table()) {
        const std::string key(spec.key);
        EXPECT_NE(doc.find("| `" + key + "` |"), std::string::npos) << key << " missing from docs/configuration.md";
        EXPECT_NE(doc.find("`" + std::string(spec.default_value) + "`"), std::string::npos) << key;
        // In the example, each key appears in its section as "leaf = default".
        const std::string section = "[" + key.substr(0, key.find('.')) + "]";
        const std::string leaf = key.substr(key.find('.') + 1);
        const size_t sec = example.find(section);
        ASSERT_NE(sec, std::string::npos) << section << " missing from conf/sealmilter.conf";
        const std::string line = "\n" + leaf + " =";
        const size_t at = example.find(line, sec);
        ASSERT_NE(at, std::string::npos) << key << " missing from conf/sealmilter.conf";
        const size_t eol = example.find('\n', at + 1);
        std::string value = example.substr(at + line.size(), eol - at - line.size());
        value.erase(0, value.find_first_not_of(' '));
        EXPECT_EQ(value, std::string(spec.default_value)) << key << ": the example must show the default";
    }
    // And the example parses.
    EXPECT_NO_THROW(conf::parse_config_text(example, "conf/sealmilter.conf"));
}
