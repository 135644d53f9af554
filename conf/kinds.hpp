// conf/kinds.hpp — the value kinds of the option table and their validators.
//
// Purpose:   each option declares what its value is (a host:port, a milter socket, a URL
//            template, a path, a secret file, a duration, a size, a list of domains, ...);
//            the validator for that kind runs when the INI file or a --section.key override is
//            read, so `sealmilter run` and `sealmilter check-config` reject exactly the same
//            values with the same "file:line: bad value 'V' for KEY: why" message.
//            Validators check form only (a file that does not exist yet is judged when the
//            daemon builds its services, which run and check-config also share).
// Ownership: plain values.
// Threads:   pure functions.
// Errors:    a validator returns the normalised value, or nullopt with `why` set.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sealmilter::conf {

enum class Type {
    String,        // free text
    Bool,          // true/false/yes/no/on/off/1/0 -> true|false
    Int,           // integer in [min, max]
    Enum,          // one of choices
    List,          // comma list of choices, no repeats
    HostPort,      // HOST:PORT or [IPv6]:PORT, port 1..65535
    MilterSocket,  // inet:PORT@HOST, inet6:PORT@HOST, unix:PATH, local:PATH
    UrlTemplate,   // empty, or http(s)://... with only {email} {local} {domain}
    Path,          // a file system path (no control characters); empty allowed
    PathList,      // comma list of paths
    SecretFile,    // path of a file holding a secret (token, password); empty = none
    Seconds,       // duration: N or N with s/m/h/d, normalised to seconds, in [min, max]
    Millis,        // duration: N (ms) or N with ms/s/m, normalised to milliseconds, in [min, max]
    Size,          // bytes: N or N with K/M/G (1024-based), normalised to bytes, in [min, max]
    DomainList,    // comma list of DNS domain names, lower-cased
    HeaderName,    // RFC 5322 field name, or empty = off
    LdapUri,       // empty, or space-separated ldap://HOST[:PORT] / ldaps://HOST[:PORT] (tried in order)
};

// A short description of the kind for --help and the reference ("HOST:PORT", "seconds").
const char* kind_description(Type t) noexcept;

struct KindLimits {
    long long min = 0;
    long long max = 0;
    const std::vector<std::string_view>* choices = nullptr;
};

// The normalised value, or nullopt with `why` explaining the expected form.
std::optional<std::string> validate_kind(Type t, std::string_view value, const KindLimits& limits, std::string& why);

}  // namespace sealmilter::conf
