// fuzz/fuzz_config.cpp — the INI configuration parser (conf/config.hpp) from arbitrary text.
//
// A config either parses or throws ConfigError naming "file:line" or "--key" (anything else
// escaping is a bug). Lines "#!section.key=value" (comments to the INI parser) become
// command-line overrides, so both paths are fuzzed. When it parses, every declared key must
// read back as its type promises: Bool "true"/"false", Int within [min, max] (get_int must not
// throw), Enum one of its choices, List distinct choices; every key names its origin.
#include "base/ascii.hpp"
#include "conf/config.hpp"
#include "fuzz/fuzz_support.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

using namespace sealmilter;

namespace {

std::map<std::string, std::string> overrides_of(std::string_view text) {
    std::map<std::string, std::string> out;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t nl = text.find('\n', pos);
        if (nl == std::string_view::npos) nl = text.size();
        const std::string_view line = text.substr(pos, nl - pos);
        pos = nl + 1;
        if (line.substr(0, 2) != "#!") continue;
        const size_t eq = line.find('=');
        if (eq == std::string_view::npos) continue;
        out[std::string(line.substr(2, eq - 2))] = std::string(line.substr(eq + 1));
    }
    return out;
}

bool is_choice(const conf::OptionSpec& spec, const std::string& v) {
    return std::find(spec.choices.begin(), spec.choices.end(), v) != spec.choices.end();
}

void check_value(const conf::Config& cfg, const conf::OptionSpec& spec) {
    const std::string key(spec.key);
    const std::string& v = cfg.get(spec.key);
    FUZZ_CHECK(!cfg.origin(spec.key).empty(), key + " has no origin");
    switch (spec.type) {
        case conf::Type::String:
            break;
        case conf::Type::Bool:
            FUZZ_CHECK(v == "true" || v == "false", key + " = '" + v + "' is not a bool");
            break;
        case conf::Type::Int:
        case conf::Type::Seconds:
        case conf::Type::Millis:
        case conf::Type::Size: {
            const long long n = cfg.get_int(spec.key);
            FUZZ_CHECK(n >= spec.min && n <= spec.max, key + " = " + v + " is out of range");
            break;
        }
        case conf::Type::Enum:
            FUZZ_CHECK(is_choice(spec, v), key + " = '" + v + "' is not a choice");
            break;
        case conf::Type::List: {
            const std::vector<std::string> items = cfg.get_list(spec.key);
            for (size_t i = 0; i < items.size(); ++i) {
                FUZZ_CHECK(is_choice(spec, items[i]), key + " lists '" + items[i] + "'");
                FUZZ_CHECK(std::find(items.begin(), items.begin() + static_cast<long>(i), items[i]) ==
                               items.begin() + static_cast<long>(i),
                           key + " lists '" + items[i] + "' twice");
            }
            break;
        }
        case conf::Type::DomainList:
            for (const std::string& d : cfg.get_list(spec.key))
                FUZZ_CHECK(d.find_first_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ ") == std::string::npos,
                           key + " keeps '" + d + "' unnormalised");
            break;
        case conf::Type::HostPort:
        case conf::Type::MilterSocket:
            FUZZ_CHECK(v.find(':') != std::string::npos, key + " = '" + v + "' has no ':'");
            break;
        case conf::Type::UrlTemplate:
            FUZZ_CHECK(v.empty() || base::to_lower(v.substr(0, 8)) == "https://" ||
                           base::to_lower(v.substr(0, 7)) == "http://",
                       key + " = '" + v + "' is no http(s) URL");
            break;
        case conf::Type::Path:
        case conf::Type::PathList:
        case conf::Type::SecretFile:
            FUZZ_CHECK(std::none_of(v.begin(), v.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; }),
                       key + " keeps a control character");
            break;
        case conf::Type::HeaderName:
            FUZZ_CHECK(v.find(':') == std::string::npos && v.find(' ') == std::string::npos, key + " = '" + v + "'");
            break;
        case conf::Type::LdapUri:  // space-separated ldap:// / ldaps:// URIs, nothing else
            for (size_t at = 0; at < v.size();) {
                const size_t end = std::min(v.find(' ', at), v.size());
                const std::string uri = base::to_lower(v.substr(at, end - at));
                FUZZ_CHECK(uri.rfind("ldap://", 0) == 0 || uri.rfind("ldaps://", 0) == 0, key + " = '" + v + "'");
                FUZZ_CHECK(std::none_of(uri.begin(), uri.end(), [](char c) { return static_cast<unsigned char>(c) < 0x21; }),
                           key + " keeps a control character");
                at = end + 1;
            }
            break;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view text = fuzz::as_view(data, size);
    std::shared_ptr<const conf::Config> cfg;
    try {
        cfg = conf::parse_config_text(text, "fuzz.conf", overrides_of(text));
    } catch (const conf::ConfigError& e) {
        const std::string what = e.what();
        FUZZ_CHECK(what.rfind("fuzz.conf:", 0) == 0 || what.rfind("--", 0) == 0, "error without its origin: " + what);
        return 0;
    }
    FUZZ_CHECK(cfg != nullptr, "parse_config_text returned null");
    for (const conf::OptionSpec& spec : conf::option_table()) check_value(*cfg, spec);
    return 0;
}
