// lookup/ldap_config.cpp — see ldap_config.hpp.
#include "lookup/ldap_config.hpp"

#include "base/ascii.hpp"
#include "lookup/settings.hpp"

#include <cstdio>

namespace sealmilter::lookup {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

// One whitespace-separated field of `rest` (a double-quoted field may hold spaces); advances
// `rest`. nullopt at the end of the line; `why` set for an unclosed quote.
std::optional<std::string> next_field(std::string_view& rest, std::string& why) {
    while (!rest.empty() && is_space(rest.front())) rest.remove_prefix(1);
    if (rest.empty()) return std::nullopt;
    if (rest.front() == '"') {
        const size_t close = rest.find('"', 1);
        if (close == std::string_view::npos) {
            why = "unclosed double quote";
            return std::nullopt;
        }
        std::string field(rest.substr(1, close - 1));
        rest.remove_prefix(close + 1);
        return field;
    }
    size_t end = 0;
    while (end < rest.size() && !is_space(rest[end])) ++end;
    std::string field(rest.substr(0, end));
    rest.remove_prefix(end);
    return field;
}

bool is_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }  // after to_lower

bool valid_domain(std::string_view d) {
    if (d.empty() || d.size() > 253 || d.front() == '.' || d.back() == '.') return false;
    for (const char c : d)
        if (!(is_alnum(c) || c == '-' || c == '.')) return false;
    return d.find("..") == std::string_view::npos;
}

}  // namespace

std::string escape_filter_value(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (const char ch : value) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == '*' || c == '(' || c == ')' || c == '\\' || c < 0x20 || c >= 0x7f) {
            char buf[4];
            std::snprintf(buf, sizeof buf, "\\%02x", c);
            out += buf;
        } else {
            out.push_back(ch);
        }
    }
    return out;
}

std::string expand_filter(const std::string& filter_template, std::string_view address) {
    const std::string escaped = escape_filter_value(address);
    std::string out;
    out.reserve(filter_template.size() + escaped.size());
    for (size_t i = 0; i < filter_template.size(); ++i) {
        if (filter_template[i] == '%' && i + 1 < filter_template.size() && filter_template[i + 1] == 's') {
            out += escaped;
            ++i;
        } else {
            out.push_back(filter_template[i]);
        }
    }
    return out;
}

bool check_ldap_uris(std::string_view uris, std::string& why) {
    std::string_view rest = uris;
    int count = 0;
    while (!rest.empty()) {
        std::string ignored;
        const std::optional<std::string> uri = next_field(rest, ignored);
        if (!uri) break;
        ++count;
        const std::string lower = base::to_lower(*uri);
        size_t skip = 0;
        if (lower.rfind("ldaps://", 0) == 0) skip = 8;
        else if (lower.rfind("ldap://", 0) == 0) skip = 7;
        else {
            why = "'" + uri->substr(0, 80) + "': only ldap:// and ldaps:// URIs";
            return false;
        }
        std::string_view hostport = std::string_view(*uri).substr(skip);
        if (!hostport.empty() && hostport.back() == '/') hostport.remove_suffix(1);
        if (hostport.empty() || hostport.find_first_of("/?#@ ") != std::string_view::npos) {
            why = "'" + uri->substr(0, 80) + "': expected ldap[s]://HOST[:PORT] (base and filter have their own keys)";
            return false;
        }
        for (const char c : hostport)
            if (static_cast<unsigned char>(c) < 0x21 || static_cast<unsigned char>(c) > 0x7e) {
                why = "control or non-ASCII character in '" + uri->substr(0, 80) + "'";
                return false;
            }
    }
    if (count == 0) {
        why = "no URI";
        return false;
    }
    return true;
}

bool all_ldaps(std::string_view uris) {
    std::string_view rest = uris;
    std::string ignored;
    bool any = false;
    while (const std::optional<std::string> uri = next_field(rest, ignored)) {
        if (base::to_lower(*uri).rfind("ldaps://", 0) != 0) return false;
        any = true;
    }
    return any;
}

bool check_filter_template(std::string_view filter, std::string& why) {
    if (filter.size() < 2 || filter.front() != '(' || filter.back() != ')') {
        why = "a filter is enclosed in parentheses, e.g. (mail=%s)";
        return false;
    }
    int depth = 0;
    for (size_t i = 0; i < filter.size(); ++i) {
        const char c = filter[i];
        if (c == '\\') ++i;  // an escaped byte (\2a) in the template is literal
        else if (c == '(') ++depth;
        else if (c == ')' && --depth < 0) break;
        else if (static_cast<unsigned char>(c) < 0x20) {
            why = "control character in the filter";
            return false;
        }
        if (depth == 0 && i + 1 < filter.size()) {
            why = "unbalanced parentheses";
            return false;
        }
    }
    if (depth != 0) {
        why = "unbalanced parentheses";
        return false;
    }
    if (filter.find("%s") == std::string_view::npos) {
        why = "no %s in the filter: every address would match the same entries";
        return false;
    }
    return true;
}

std::map<std::string, LdapServer> parse_domain_map(std::string_view text, const std::string& name,
                                                   const LdapServer& defaults) {
    std::map<std::string, LdapServer> out;
    int lineno = 0;
    while (!text.empty()) {
        ++lineno;
        const size_t nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
        const auto fail = [&](const std::string& why) {
            throw SettingsError(name + ":" + std::to_string(lineno) + ": " + why);
        };
        line = base::trim(line);
        if (line.empty() || line.front() == '#') continue;
        std::string why;
        const std::optional<std::string> domain = next_field(line, why);
        const std::optional<std::string> uri = next_field(line, why);
        const std::optional<std::string> base_dn = next_field(line, why);
        if (!why.empty()) fail(why);
        if (!domain || !uri || !base_dn) fail("expected DOMAIN URI BASE [FILTER]");
        const std::string d = base::to_lower(*domain);
        if (!valid_domain(d)) fail("'" + domain->substr(0, 80) + "' is not a domain name");
        if (!check_ldap_uris(*uri, why)) fail(why);
        LdapServer server{*uri, *base_dn, defaults.filter};
        std::string_view rest = base::trim(line);
        if (!rest.empty()) {
            if (rest.size() >= 2 && rest.front() == '"' && rest.back() == '"') rest = rest.substr(1, rest.size() - 2);
            server.filter = std::string(rest);
            if (!check_filter_template(server.filter, why)) fail("filter: " + why);
        }
        if (!out.emplace(d, std::move(server)).second) fail("domain " + d + " is listed twice");
    }
    return out;
}

std::optional<LdapServer> server_for(const LdapOptions& options, std::string_view address) {
    const size_t at = address.rfind('@');
    if (at != std::string_view::npos) {
        const auto it = options.domain_map.find(base::to_lower(address.substr(at + 1)));
        if (it != options.domain_map.end()) return it->second;
    }
    if (options.defaults.uri.empty()) return std::nullopt;
    return options.defaults;
}

}  // namespace sealmilter::lookup
