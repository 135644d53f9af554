// The lookup stack built from plain settings (lookup/stack.hpp) through the source registry
// (lookup/registry.hpp): lookup.order names sources, a source registered under a new name
// joins the chain with no other change, unknown names and bad values name their key.
#include "lookup/stack.hpp"

#include "tests/support/scripted_source.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <unistd.h>

namespace lookup = sealmilter::lookup;
using sealmilter::testing::ScriptedSource;

namespace {

std::map<std::string, std::string, std::less<>> base_settings(const std::string& dir) {
    return {{"lookup.order", "store,cache,directory"},
            {"lookup.trust_anchors", ""},
            {"lookup.crl_files", ""},
            {"lookup.allow_expired", "false"},
            {"store.dir", dir},
            {"harvest.dir", dir + "/harvested"},
            {"cache.path", ""},
            {"cache.min_ttl", "3600"},
            {"cache.max_ttl", "86400"},
            {"cache.negative_ttl", "3600"},
            {"cache.max_stale", "604800"},
            {"directory.url", ""},
            {"crypto.encrypt_to", "all_valid"}};
}

class StackTest : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = ::testing::TempDir() + "sealmilter-stack-" + std::to_string(::getpid());
        std::filesystem::create_directories(dir_);
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }
    std::string dir_;
};

TEST_F(StackTest, BuiltinRegistryKnowsTheOrderNames) {
    const std::vector<std::string> names = lookup::builtin_sources().names();
    EXPECT_EQ(names, (std::vector<std::string>{"directory", "dns", "harvest", "issued", "ldap", "store"}));
}

TEST_F(StackTest, OffSourcesAreNotesAndTheChainResolves) {
    const auto stack = lookup::build_lookup_stack(lookup::MapSettings(base_settings(dir_)),
                                                  lookup::builtin_sources(), nullptr);
    ASSERT_TRUE(stack->chain);
    EXPECT_EQ(stack->cache, nullptr);
    ASSERT_EQ(stack->sources.size(), 1u);
    EXPECT_EQ(stack->sources[0]->name(), "store");
    EXPECT_EQ(stack->notes, (std::vector<std::string>{"cache: off (cache.path is empty)",
                                                       "directory: off (directory.url is empty)"}));
    EXPECT_EQ(stack->chain->resolve({"a@example.org"})[0].outcome, lookup::Outcome::NotFound);
}

TEST_F(StackTest, ANewSourceRegistersUnderItsOrderName) {
    auto settings = base_settings(dir_);
    settings["lookup.order"] = "scripted";
    lookup::SourceRegistry registry = lookup::builtin_sources();
    ScriptedSource* made = nullptr;
    registry.add("scripted", [&made](const lookup::Settings&) {
        lookup::BuiltSource b;
        auto s = std::make_unique<ScriptedSource>("scripted");
        made = s.get();
        b.source = std::move(s);
        return b;
    });
    const auto stack = lookup::build_lookup_stack(lookup::MapSettings(settings), registry, nullptr);
    ASSERT_NE(made, nullptr);
    stack->chain->resolve({"a@example.org"});
    EXPECT_EQ(made->calls, 1);
    const auto resolver = stack->make_resolver({.workers = 2, .max_batch = 8});
    EXPECT_EQ(resolver->start("b@example.org").get().outcome, lookup::Outcome::NotFound);
    EXPECT_EQ(made->calls, 2);
}

TEST_F(StackTest, UnknownNamesAndBadValuesNameTheirKey) {
    auto settings = base_settings(dir_);
    settings["lookup.order"] = "nosuchsource";  // "ldap" is a source now
    try {
        lookup::build_lookup_stack(lookup::MapSettings(settings), lookup::builtin_sources(), nullptr);
        FAIL() << "no error for an unknown source";
    } catch (const lookup::SettingsError& e) {
        EXPECT_NE(std::string(e.what()).find("lookup.order"), std::string::npos) << e.what();
    }
    settings = base_settings(dir_);
    settings["lookup.trust_anchors"] = dir_ + "/missing.pem";
    try {
        lookup::build_lookup_stack(lookup::MapSettings(settings), lookup::builtin_sources(), nullptr);
        FAIL() << "no error for a missing trust anchor file";
    } catch (const lookup::SettingsError& e) {
        EXPECT_NE(std::string(e.what()).find("lookup.trust_anchors"), std::string::npos) << e.what();
    }
    settings = base_settings(dir_);
    settings["directory.url"] = "https://dir.example/{email}";
    settings["directory.timeout_ms"] = "soon";
    EXPECT_THROW(lookup::directory_options(lookup::MapSettings(settings)), lookup::SettingsError);
}

}  // namespace
