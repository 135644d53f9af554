// core/policy.cpp — the recipient policy table (see policy.hpp).
#include "core/policy.hpp"

#include "base/ascii.hpp"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <sstream>
#include <vector>

namespace sealmilter::core {
namespace {

std::string_view domain_of(std::string_view address) {
    const size_t at = address.rfind('@');
    return at == std::string_view::npos ? std::string_view() : address.substr(at + 1);
}

// A key is an address (local@domain), @domain, .domain or *.
bool valid_key(const std::string& k) {
    if (k == "*") return true;
    if (k.find_first_of(" \t") != std::string::npos) return false;
    if (k.front() == '@' || k.front() == '.') return k.size() > 1 && k.find('@', 1) == std::string::npos;
    const size_t at = k.rfind('@');
    return at != std::string::npos && at > 0 && at + 1 < k.size();
}

}  // namespace

const char* to_string(Mode m) noexcept {
    switch (m) {
    case Mode::Require: return "require";
    case Mode::Opportunistic: return "opportunistic";
    case Mode::Never: return "never";
    case Mode::Issue: return "issue";
    }
    return "?";
}

std::optional<Mode> parse_mode(std::string_view s) noexcept {
    if (s == "require") return Mode::Require;
    if (s == "opportunistic") return Mode::Opportunistic;
    if (s == "never") return Mode::Never;
    if (s == "issue") return Mode::Issue;
    return std::nullopt;
}

PolicyTable PolicyTable::parse(std::string_view text, const std::string& name) {
    PolicyTable t;
    std::istringstream in{std::string(text)};
    std::string line;
    int lineno = 0;
    while (std::getline(in, line)) {
        ++lineno;
        const std::string where = name + ":" + std::to_string(lineno);
        if (const size_t hash = line.find('#'); hash != std::string::npos) line.erase(hash);
        std::istringstream fields(line);
        std::string key;
        std::string mode;
        std::string extra;
        if (!(fields >> key)) continue;  // blank or comment
        if (!(fields >> mode)) throw PolicyError(where + ": '" + key + "' has no mode (require, opportunistic, never, issue)");
        if (fields >> extra) throw PolicyError(where + ": unexpected '" + extra + "' after the mode");
        std::string base_mode = base::to_lower(mode);
        std::optional<bool> sign;
        if (base_mode == "sign") {
            base_mode = "never";
            sign = true;
        } else if (const size_t plus = base_mode.find('+'); plus != std::string::npos) {
            const std::string suffix = base_mode.substr(plus + 1);
            base_mode.erase(plus);
            if (suffix == "sign") sign = true;
            else if (suffix == "nosign") sign = false;
            else
                throw PolicyError(where + ": unknown signing suffix '+" + suffix + "' in '" + mode +
                                  "' (MODE+sign or MODE+nosign, or sign alone)");
        }
        const std::optional<Mode> m = parse_mode(base_mode);
        if (!m)
            throw PolicyError(where + ": unknown mode '" + mode +
                              "' (require, opportunistic, never, issue, each optionally +sign or +nosign; or sign)");
        key = base::to_lower(key);
        if (!valid_key(key))
            throw PolicyError(where + ": '" + key + "' is not an address, @domain, .parent.domain or *");
        const auto [it, inserted] = t.entries_.emplace(key, Entry{*m, sign, lineno});
        if (!inserted)
            throw PolicyError(where + ": '" + key + "' already appears on line " + std::to_string(it->second.line));
    }
    return t;
}

PolicyTable PolicyTable::load(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw PolicyError(path + ": cannot read the policy file");
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return parse(text, path);
}

bool PolicyTable::names_mode(Mode m) const noexcept {
    return std::any_of(entries_.begin(), entries_.end(), [m](const auto& e) { return e.second.mode == m; });
}

PolicyMatch PolicyTable::lookup(std::string_view address, Mode default_mode) const {
    const std::string addr = base::to_lower(address);
    const std::string domain(domain_of(addr));
    std::vector<std::string> candidates{addr};
    if (!domain.empty()) {
        candidates.push_back("@" + domain);
        // .parent.domain: every proper parent, closest first (x.a.b -> .a.b, then .b)
        for (size_t dot = domain.find('.'); dot != std::string::npos; dot = domain.find('.', dot + 1))
            candidates.push_back(domain.substr(dot));
    }
    candidates.emplace_back("*");
    for (const std::string& k : candidates) {
        auto it = entries_.find(k);
        if (it != entries_.end()) return {it->second.mode, it->second.sign, k, it->second.line};
    }
    return {default_mode, std::nullopt, "", 0};
}

bool in_domains(std::string_view address, const std::vector<std::string>& domains) {
    const std::string domain = base::to_lower(domain_of(address));
    return std::any_of(domains.begin(), domains.end(), [&](const std::string& d) {
        const std::string ld = base::to_lower(d);
        return domain == ld || (domain.size() > ld.size() && domain.compare(domain.size() - ld.size(), ld.size(), ld) == 0 &&
                                domain[domain.size() - ld.size() - 1] == '.');
    });
}

}  // namespace sealmilter::core
