// lookup/settings.hpp — the plain key -> value view lookup/ is built from.
//
// Purpose:   conf/ stays out of lookup/: the source factories (registry.hpp) and the stack
//            builder (stack.hpp) read settings by their configuration key ("directory.url",
//            "cache.min_ttl", ...) through this interface. cli/wiring implements it over
//            conf::Config (values already validated there); MapSettings serves tests and tools.
// Ownership: values are returned by value or borrowed from the implementation.
// Threads:   implementations are immutable after construction; read from any thread.
// Errors:    get() of an unknown key throws std::out_of_range; a value a factory cannot use
//            is reported as SettingsError naming the key.
#pragma once

#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace sealmilter::lookup {

class SettingsError : public std::runtime_error {
public:
    explicit SettingsError(const std::string& what) : std::runtime_error(what) {}
};

class Settings {
public:
    virtual ~Settings() = default;
    virtual std::string get(std::string_view key) const = 0;
    bool get_bool(std::string_view key) const { return get(key) == "true"; }
    long long get_int(std::string_view key) const;                  // SettingsError when not a number
    std::vector<std::string> get_list(std::string_view key) const;  // comma-separated, trimmed, no empties
};

class MapSettings final : public Settings {
public:
    explicit MapSettings(std::map<std::string, std::string, std::less<>> values) : values_(std::move(values)) {}
    std::string get(std::string_view key) const override;

private:
    std::map<std::string, std::string, std::less<>> values_;
};

// The first line of a secret file (a token), without its line break. SettingsError naming
// `key` when the file cannot be read.
std::string read_secret(const std::string& key, const std::string& path);

}  // namespace sealmilter::lookup
