// conf/kinds.cpp — validators of the option table's value kinds (see kinds.hpp).
#include "conf/kinds.hpp"

#include "base/ascii.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <sstream>

namespace sealmilter::conf {
namespace {

using Result = std::optional<std::string>;

Result fail(std::string& why, std::string text) {
    why = std::move(text);
    return std::nullopt;
}

bool has_control(std::string_view s) {
    return std::any_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

std::vector<std::string> split_list(std::string_view v) {
    std::vector<std::string> out;
    std::istringstream items{std::string(v)};
    std::string item;
    while (std::getline(items, item, ',')) {
        const std::string t(base::trim(item));
        if (!t.empty()) out.push_back(t);
    }
    return out;
}

std::string join(const std::vector<std::string>& items) {
    std::string out;
    for (const std::string& i : items) out += (out.empty() ? "" : ",") + i;
    return out;
}

std::optional<long long> parse_integer(std::string_view digits) {
    if (digits.empty() || digits.size() > 18) return std::nullopt;
    if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) return std::nullopt;
    return std::strtoll(std::string(digits).c_str(), nullptr, 10);
}

Result in_range(long long n, const KindLimits& l, std::string& why, const char* unit) {
    if (n < l.min || n > l.max)
        return fail(why, "expected " + std::to_string(l.min) + ".." + std::to_string(l.max) + unit);
    return std::to_string(n);
}

Result validate_int(std::string_view v, const KindLimits& l, std::string& why) {
    errno = 0;
    char* end = nullptr;
    const std::string s(v);
    const long long n = std::strtoll(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || errno != 0) return fail(why, "expected an integer");
    return in_range(n, l, why, "");
}

// "N" or "N<unit>"; units map to a multiplier of the key's own unit.
struct Unit {
    std::string_view suffix;
    long long factor;
};

Result scaled(std::string_view v, const std::vector<Unit>& units, const KindLimits& l, std::string& why,
              const char* form, const char* unit_name) {
    size_t digits = 0;
    while (digits < v.size() && v[digits] >= '0' && v[digits] <= '9') ++digits;
    const std::optional<long long> n = parse_integer(v.substr(0, digits));
    const std::string suffix = base::to_lower(base::trim(v.substr(digits)));
    if (!n) return fail(why, std::string("expected ") + form);
    for (const Unit& u : units) {
        if (suffix != u.suffix) continue;
        if (*n > l.max / std::max(1LL, u.factor)) return in_range(l.max + 1, l, why, unit_name);
        return in_range(*n * u.factor, l, why, unit_name);
    }
    return fail(why, std::string("expected ") + form);
}

Result validate_host_port(std::string_view v, std::string& why) {
    const char* form = "expected HOST:PORT (or [IPv6]:PORT) with a port 1..65535";
    const size_t colon = v.rfind(':');
    if (colon == std::string_view::npos || colon == 0) return fail(why, form);
    std::string_view host = v.substr(0, colon);
    if (host.front() == '[') {
        if (host.back() != ']' || host.size() < 3) return fail(why, form);
    } else if (host.find(':') != std::string_view::npos) {
        return fail(why, "an IPv6 address needs brackets: [ADDRESS]:PORT");
    }
    if (has_control(host) || host.find(' ') != std::string_view::npos) return fail(why, form);
    const std::optional<long long> port = parse_integer(v.substr(colon + 1));
    if (!port || *port < 1 || *port > 65535) return fail(why, form);
    return std::string(v);
}

Result validate_milter_socket(std::string_view v, std::string& why) {
    const char* form = "expected inet:PORT@HOST, inet6:PORT@HOST, unix:PATH or local:PATH";
    const size_t colon = v.find(':');
    if (colon == std::string_view::npos) return fail(why, form);
    const std::string proto = base::to_lower(v.substr(0, colon));
    const std::string_view rest = v.substr(colon + 1);
    if (proto == "unix" || proto == "local") {
        if (rest.empty() || rest.front() != '/' || has_control(rest)) return fail(why, "the socket path must be absolute");
        return std::string(v);
    }
    if (proto != "inet" && proto != "inet6") return fail(why, form);
    const size_t at = rest.find('@');
    const std::optional<long long> port = parse_integer(rest.substr(0, at));
    if (!port || *port < 1 || *port > 65535) return fail(why, form);
    if (at != std::string_view::npos && (at + 1 == rest.size() || has_control(rest.substr(at + 1)))) return fail(why, form);
    return std::string(v);
}

Result validate_url_template(std::string_view v, std::string& why) {
    if (v.empty()) return std::string();
    const std::string lower = base::to_lower(v.substr(0, 8));
    if (lower.rfind("https://", 0) != 0 && lower.rfind("http://", 0) != 0)
        return fail(why, "must start with https:// (or http://)");
    if (has_control(v) || v.find(' ') != std::string_view::npos) return fail(why, "spaces and control characters are not allowed");
    for (size_t open = v.find('{'); open != std::string_view::npos; open = v.find('{', open + 1)) {
        const size_t close = v.find('}', open);
        const std::string_view name = close == std::string_view::npos ? v.substr(open) : v.substr(open, close - open + 1);
        if (name != "{email}" && name != "{local}" && name != "{domain}")
            return fail(why, "unknown placeholder " + std::string(name) + " (allowed: {email} {local} {domain})");
    }
    const size_t host_end = v.find('/', v.find("//") + 2);
    if (host_end == std::string_view::npos || host_end == v.find("//") + 2) return fail(why, "no host in the URL");
    return std::string(v);
}

// The form lookup/ldap_config's check_ldap_uris also applies to the domain map's URIs: the
// base DN and filter have their own keys, so a URI carries only scheme, host and port.
Result validate_ldap_uri(std::string_view v, std::string& why) {
    std::string out;
    std::string_view rest = v;
    while (!rest.empty()) {
        const size_t sp = rest.find_first_of(" \t");
        const std::string_view uri = rest.substr(0, sp);
        rest = sp == std::string_view::npos ? std::string_view{} : base::trim(rest.substr(sp));
        if (uri.empty()) continue;
        const std::string lower = base::to_lower(uri);
        const size_t skip = lower.rfind("ldaps://", 0) == 0 ? 8 : lower.rfind("ldap://", 0) == 0 ? 7 : 0;
        if (skip == 0) return fail(why, "only ldap:// and ldaps:// URIs");
        std::string_view hostport = uri.substr(skip);
        if (!hostport.empty() && hostport.back() == '/') hostport.remove_suffix(1);
        if (hostport.empty() || has_control(hostport) || hostport.find_first_of("/?#@") != std::string_view::npos)
            return fail(why, "expected ldap[s]://HOST[:PORT] (ldap.base and ldap.filter have their own keys)");
        out += (out.empty() ? "" : " ") + std::string(uri);
    }
    return out;
}

Result validate_path(std::string_view v, std::string& why) {
    if (has_control(v)) return fail(why, "control characters are not allowed in a path");
    return std::string(v);
}

Result validate_domains(std::string_view v, std::string& why) {
    std::vector<std::string> out;
    for (std::string d : split_list(v)) {
        if (!d.empty() && d.front() == '@') d.erase(0, 1);  // "@example.org" is a common slip
        d = base::to_lower(d);
        const bool ok = !d.empty() && d.size() <= 253 && d.front() != '.' && d.back() != '.' &&
                        std::all_of(d.begin(), d.end(), [](char c) {
                            return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
                                   static_cast<unsigned char>(c) >= 0x80;
                        });
        if (!ok) return fail(why, "'" + d + "' is not a domain name");
        out.push_back(d);
    }
    return join(out);
}

Result validate_header_name(std::string_view v, std::string& why) {
    // RFC 5322 §3.6.8: printable US-ASCII except ':'.
    const bool ok = std::all_of(v.begin(), v.end(), [](char c) { return c > 32 && c < 127 && c != ':'; });
    if (!ok) return fail(why, "expected a header field name (printable ASCII, no ':' or spaces)");
    return std::string(v);
}

Result validate_list(std::string_view v, const KindLimits& l, std::string& why) {
    std::vector<std::string> seen;
    for (const std::string& item : split_list(v)) {
        if (std::find(l.choices->begin(), l.choices->end(), item) == l.choices->end()) {
            std::string all;
            for (auto c : *l.choices) all += (all.empty() ? "" : ", ") + std::string(c);
            return fail(why, "'" + item + "' is not one of " + all);
        }
        if (std::find(seen.begin(), seen.end(), item) != seen.end()) return fail(why, "'" + item + "' is listed twice");
        seen.push_back(item);
    }
    return join(seen);
}

}  // namespace

const char* kind_description(Type t) noexcept {
    switch (t) {
    case Type::String: return "string";
    case Type::Bool: return "boolean";
    case Type::Int: return "integer";
    case Type::Enum: return "one of";
    case Type::List: return "comma list of";
    case Type::HostPort: return "HOST:PORT";
    case Type::MilterSocket: return "inet:PORT@HOST or unix:PATH";
    case Type::UrlTemplate: return "URL template";
    case Type::Path: return "path";
    case Type::PathList: return "comma list of paths";
    case Type::SecretFile: return "path of a secret file";
    case Type::Seconds: return "seconds (or with s, m, h, d)";
    case Type::Millis: return "milliseconds (or with ms, s, m)";
    case Type::Size: return "bytes (or with K, M, G)";
    case Type::DomainList: return "comma list of domains";
    case Type::HeaderName: return "header name";
    case Type::LdapUri: return "ldap[s]://HOST[:PORT] list";
    }
    return "?";
}

std::optional<std::string> validate_kind(Type t, std::string_view value, const KindLimits& l, std::string& why) {
    const std::string_view v = base::trim(value);
    switch (t) {
    case Type::String: return std::string(v);
    case Type::Bool: {
        const std::string b = base::to_lower(v);
        if (b == "true" || b == "yes" || b == "on" || b == "1") return std::string("true");
        if (b == "false" || b == "no" || b == "off" || b == "0") return std::string("false");
        return fail(why, "expected true or false");
    }
    case Type::Int: return validate_int(v, l, why);
    case Type::Enum:
        if (std::find(l.choices->begin(), l.choices->end(), v) != l.choices->end()) return std::string(v);
        return fail(why, "expected one of " + [&] {
            std::string all;
            for (auto c : *l.choices) all += (all.empty() ? "" : ", ") + std::string(c);
            return all;
        }());
    case Type::List: return validate_list(v, l, why);
    case Type::HostPort: return validate_host_port(v, why);
    case Type::MilterSocket: return validate_milter_socket(v, why);
    case Type::UrlTemplate: return validate_url_template(v, why);
    case Type::Path:
    case Type::SecretFile: return validate_path(v, why);
    case Type::PathList: {
        std::vector<std::string> items = split_list(v);
        for (const std::string& p : items)
            if (!validate_path(p, why)) return std::nullopt;
        return join(items);
    }
    case Type::Seconds:
        return scaled(v, {{"", 1}, {"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}}, l, why,
                      "a number of seconds, optionally with s, m, h or d", " seconds");
    case Type::Millis:
        return scaled(v, {{"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}}, l, why,
                      "a number of milliseconds, optionally with ms, s or m", " ms");
    case Type::Size:
        return scaled(v, {{"", 1}, {"k", 1LL << 10}, {"m", 1LL << 20}, {"g", 1LL << 30}}, l, why,
                      "a number of bytes, optionally with K, M or G", " bytes");
    case Type::DomainList: return validate_domains(v, why);
    case Type::HeaderName: return validate_header_name(v, why);
    case Type::LdapUri: return validate_ldap_uri(v, why);
    }
    return fail(why, "unknown kind");
}

}  // namespace sealmilter::conf
