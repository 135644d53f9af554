// lookup/ldap_config.hpp — what the LDAP source asks, and where (pure parts of ldap_source).
//
// Purpose:   the LDAP source's options; RFC 4515 escaping of an address into a search filter
//            (ldap.filter, every %s replaced: the address can never widen the filter or
//            match another entry); the ldap.domain_map file (one `DOMAIN URI BASE [FILTER]`
//            line per domain, `#` comments, a field with spaces in double quotes) and the
//            choice of server for an address. Also the form checks check-config shares:
//            an LDAP URI list, a filter template.
// Ownership: plain values.
// Threads:   pure functions, reentrant.
// Errors:    parse_domain_map throws SettingsError naming FILE:LINE; the check functions
//            return false with `why`.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sealmilter::lookup {

// One directory to ask: a server (URI list, as ldap_initialize takes it), the search base
// and the filter template.
struct LdapServer {
    std::string uri;
    std::string base;
    std::string filter = "(mail=%s)";
};

struct LdapOptions {
    LdapServer defaults;                            // ldap.uri / ldap.base / ldap.filter; uri empty = none
    std::map<std::string, LdapServer> domain_map;  // lower-case domain -> server (ldap.domain_map)
    std::string bind_dn;        // ldap.bind_dn; empty = anonymous. Used only with ldap.uri's server.
    std::string bind_password;  // read from ldap.bind_password_file by the caller
    std::string ca_file;        // ldap.ca_file; empty = the system bundle
    bool starttls = true;       // ldap.starttls: StartTLS on ldap:// URIs (ldaps:// is TLS anyway)
    long timeout_ms = 5000;     // ldap.timeout_ms: connect + TLS + bind + search
    int size_limit = 10;        // ldap.size_limit: entries per search
    int max_connections = 4;    // ldap.max_connections: per server, at once
    bool trusted = false;       // ldap.trusted: vouch for the answers (TLS-authenticated server only)
};

// RFC 4515 §3: `*`, `(`, `)`, `\` and NUL become \2a \28 \29 \5c \00; so does every byte
// outside printable ASCII (always valid, whatever the server's idea of UTF-8).
std::string escape_filter_value(std::string_view value);
// The filter template with every %s replaced by the escaped address.
std::string expand_filter(const std::string& filter_template, std::string_view address);

// ldap:// or ldaps:// URIs, space-separated (tried in order), each HOST[:PORT] with at most
// a trailing "/": the base and filter come from their own keys.
bool check_ldap_uris(std::string_view uris, std::string& why);
// Balanced parentheses around the whole filter and at least one %s.
bool check_filter_template(std::string_view filter, std::string& why);
// True when every URI of the list is ldaps://.
bool all_ldaps(std::string_view uris);

// Parses the domain map text; `defaults` supplies the filter when a line has none. `name`
// (the file's path) prefixes errors: "NAME:LINE: ...".
std::map<std::string, LdapServer> parse_domain_map(std::string_view text, const std::string& name,
                                                   const LdapServer& defaults);

// The server for an address (its domain after the last '@', case-insensitive): the domain
// map's line, else the defaults when ldap.uri is set, else nothing.
std::optional<LdapServer> server_for(const LdapOptions& options, std::string_view address);

}  // namespace sealmilter::lookup
