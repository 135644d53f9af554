// conf/config.hpp — the one option table and the immutable Config built from it.
//
// Purpose:   every configuration key is declared once (name, value kind, default, allowed
//            values, help); the INI file (SPEC §3) and `--section.key=value` command-line
//            overrides are both checked against it by the kind's validator (conf/kinds.hpp),
//            then keys that only make sense together are checked together. Unknown keys and bad values are errors that name
//            the file and line (or the command-line option).
// Ownership: load_config() returns shared_ptr<const Config>; a snapshot never changes.
// Threads:   a Config is immutable and may be read from any thread.
// Errors:    ConfigError (derived from std::runtime_error) with a "file:line: ..." message.
#pragma once

#include "conf/kinds.hpp"

#include <boost/program_options/options_description.hpp>
#include <boost/program_options/variables_map.hpp>

#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace sealmilter::conf {


struct OptionSpec {
    std::string_view key;  // "section.key"
    Type type;
    std::string_view default_value;
    std::string_view help;
    std::vector<std::string_view> choices = {};  // Type::Enum, Type::List
    long long min = 0;                            // Type::Int, Seconds, Millis, Size
    long long max = 0;
};

const std::vector<OptionSpec>& option_table();

class ConfigError : public std::runtime_error {
public:
    explicit ConfigError(const std::string& what) : std::runtime_error(what) {}
};

class Config {
public:
    const std::string& get(std::string_view key) const;  // throws std::out_of_range for undeclared keys
    bool get_bool(std::string_view key) const;
    long long get_int(std::string_view key) const;
    std::vector<std::string> get_list(std::string_view key) const;  // comma-separated, trimmed, no empties
    // Where the value came from: "default", "FILE:LINE" or "command line".
    const std::string& origin(std::string_view key) const;

private:
    friend class ConfigBuilder;
    std::map<std::string, std::string, std::less<>> values_;
    std::map<std::string, std::string, std::less<>> origins_;
};

inline constexpr const char* kDefaultConfigPath = "/etc/sealmilter/sealmilter.conf";

// Registers `--section.key` for every table entry (strings; validated by load_config).
void add_override_options(boost::program_options::options_description& desc);

// path: the file to read. When `explicit_path` is false and the file does not exist, the
// embedded defaults are used. Overrides come from the parsed command line.
std::shared_ptr<const Config> load_config(const std::string& path, bool explicit_path,
                                          const boost::program_options::variables_map& vm);

// Parses INI text (for tests and check-config); `name` appears in error messages.
std::shared_ptr<const Config> parse_config_text(std::string_view text, const std::string& name,
                                                const std::map<std::string, std::string>& overrides = {});

}  // namespace sealmilter::conf
