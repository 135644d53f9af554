// conf/config.cpp — option table, INI parsing with file:line errors (see config.hpp).
#include "conf/config.hpp"

#include <boost/program_options/value_semantic.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <sys/stat.h>

namespace po = boost::program_options;

namespace sealmilter::conf {

const std::vector<OptionSpec>& option_table() {
    static const std::vector<OptionSpec> table = {
        {"milter.max_message_size", Type::Int, "104857600",
         "messages larger than this (bytes) are refused with 552 5.3.4", {}, 1024, 4LL << 30},
        {"milter.spool_dir", Type::String, "/var/spool/sealmilter",
         "where message bodies beyond the in-memory threshold are spooled (temp files, unlinked at once)"},
        {"milter.memory_threshold", Type::Int, "1048576",
         "bytes of a message body held in memory before spooling to milter.spool_dir", {}, 0, 1LL << 30},
        {"crypto.cipher", Type::Enum, "aes-256-cbc",
         "content encryption: aes-256-cbc (every client), aes-128-cbc, aes-256-gcm (AuthEnvelopedData; "
         "NSS/Thunderbird cannot read it)",
         {"aes-256-cbc", "aes-128-cbc", "aes-256-gcm"}},
        {"crypto.rsa_padding", Type::Enum, "pkcs1", "RSA key transport: pkcs1 (v1.5) or oaep",
         {"pkcs1", "oaep"}},
        {"crypto.protect_headers", Type::Bool, "false",
         "RFC 9788 header protection: the full header section goes inside, outer Subject is replaced"},
        {"crypto.protected_subject", Type::String, "[...]",
         "the outer Subject when crypto.protect_headers is on"},
    };
    return table;
}

namespace {

const OptionSpec* find_spec(std::string_view key) {
    const auto& t = option_table();
    auto it = std::find_if(t.begin(), t.end(), [&](const OptionSpec& s) { return s.key == key; });
    return it == t.end() ? nullptr : &*it;
}

std::string trim_copy(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return std::string(s);
}

[[noreturn]] void bad_value(const OptionSpec& spec, const std::string& v, const std::string& where,
                            const std::string& why) {
    throw ConfigError(where + ": bad value '" + v + "' for " + std::string(spec.key) + ": " + why);
}

// Returns the normalised value or throws ConfigError(where + message).
std::string validate(const OptionSpec& spec, const std::string& raw, const std::string& where) {
    const std::string v = trim_copy(raw);
    const auto fail = [&](const std::string& why) { bad_value(spec, v, where, why); };
    switch (spec.type) {
    case Type::String: return v;
    case Type::Bool:
        if (v == "true" || v == "yes" || v == "on" || v == "1") return "true";
        if (v == "false" || v == "no" || v == "off" || v == "0") return "false";
        bad_value(spec, v, where, "expected true or false");
    case Type::Int: {
        errno = 0;
        char* end = nullptr;
        const long long n = std::strtoll(v.c_str(), &end, 10);
        if (v.empty() || *end != '\0' || errno != 0) fail("expected an integer");
        if (n < spec.min || n > spec.max)
            fail("expected " + std::to_string(spec.min) + ".." + std::to_string(spec.max));
        return std::to_string(n);
    }
    case Type::Enum: {
        if (std::find(spec.choices.begin(), spec.choices.end(), v) != spec.choices.end()) return v;
        std::string list;
        for (auto c : spec.choices) list += (list.empty() ? "" : ", ") + std::string(c);
        bad_value(spec, v, where, "expected one of " + list);
    }
    }
    bad_value(spec, v, where, "unknown type");
}

}  // namespace

class ConfigBuilder {
public:
    ConfigBuilder() : cfg_(std::make_shared<Config>()) {
        for (const OptionSpec& s : option_table()) {
            cfg_->values_[std::string(s.key)] = std::string(s.default_value);
            cfg_->origins_[std::string(s.key)] = "default";
        }
    }
    void set(const std::string& key, const std::string& value, const std::string& where) {
        const OptionSpec* spec = find_spec(key);
        if (spec == nullptr) throw ConfigError(where + ": unknown key '" + key + "'");
        cfg_->values_[key] = validate(*spec, value, where);
        cfg_->origins_[key] = where;
    }
    void parse_ini(std::string_view text, const std::string& name) {
        std::istringstream in{std::string(text)};
        std::string line;
        std::string section;
        int lineno = 0;
        while (std::getline(in, line)) {
            ++lineno;
            const std::string where = name + ":" + std::to_string(lineno);
            const std::string t = trim_copy(line);
            if (t.empty() || t[0] == '#' || t[0] == ';') continue;
            if (t.front() == '[') {
                if (t.back() != ']') throw ConfigError(where + ": malformed section header '" + t + "'");
                section = trim_copy(std::string_view(t).substr(1, t.size() - 2));
                continue;
            }
            const size_t eq = t.find('=');
            if (eq == std::string::npos) throw ConfigError(where + ": expected 'key = value', got '" + t + "'");
            if (section.empty()) throw ConfigError(where + ": key outside of any [section]");
            set(section + "." + trim_copy(std::string_view(t).substr(0, eq)), t.substr(eq + 1), where);
        }
    }
    std::shared_ptr<const Config> done() { return cfg_; }

private:
    std::shared_ptr<Config> cfg_;
};

const std::string& Config::get(std::string_view key) const {
    auto it = values_.find(key);
    if (it == values_.end()) throw std::out_of_range("undeclared config key " + std::string(key));
    return it->second;
}
bool Config::get_bool(std::string_view key) const { return get(key) == "true"; }
long long Config::get_int(std::string_view key) const { return std::stoll(get(key)); }
const std::string& Config::origin(std::string_view key) const {
    auto it = origins_.find(key);
    if (it == origins_.end()) throw std::out_of_range("undeclared config key " + std::string(key));
    return it->second;
}

void add_override_options(po::options_description& desc) {
    for (const OptionSpec& s : option_table())
        desc.add_options()(std::string(s.key).c_str(), po::value<std::string>(), std::string(s.help).c_str());
}

std::shared_ptr<const Config> parse_config_text(std::string_view text, const std::string& name,
                                                const std::map<std::string, std::string>& overrides) {
    ConfigBuilder b;
    b.parse_ini(text, name);
    for (const auto& [k, v] : overrides) b.set(k, v, "--" + k);
    return b.done();
}

std::shared_ptr<const Config> load_config(const std::string& path, bool explicit_path, const po::variables_map& vm) {
    std::string text;
    struct stat st {};
    if (explicit_path || stat(path.c_str(), &st) == 0) {
        std::ifstream in(path, std::ios::binary);
        if (!in) throw ConfigError(path + ": cannot read: " + std::strerror(errno));
        text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    std::map<std::string, std::string> overrides;
    for (const OptionSpec& s : option_table()) {
        const std::string key(s.key);
        if (vm.count(key) != 0U) overrides[key] = vm[key].as<std::string>();
    }
    return parse_config_text(text, path, overrides);
}

}  // namespace sealmilter::conf
