// core/policy.hpp — the recipient policy table (SPEC §4).
//
// Purpose:   a Postfix-lookup-table-style text file, one "recipient mode" per line:
//              alice@partner.example     never        (exact address)
//              @customers.bank.example   require      (that domain)
//              .gov.example              require      (every subdomain of gov.example)
//              *                         opportunistic
//            First match wins in the order exact address, @domain, .parent.domain (the
//            closest parent first), then *; no match = the configured default mode.
//            Matching is ASCII case-insensitive.
//            Signing (docs/signing.md): a mode may carry "+sign" (sign what this recipient
//            gets) or "+nosign" (never sign it), overriding crypto.sign and the sender domain;
//            "sign" alone is "never+sign" (sign only, no encryption). Anything else after the
//            mode ("+sign+sign", "require+maybe", "sign+nosign") is an error.
// Ownership: PolicyTable is an immutable value after parsing; share it by shared_ptr.
// Threads:   lookups are const and thread-safe.
// Errors:    parse errors throw PolicyError naming "file:line: ..."; duplicate keys are
//            errors (a table whose meaning depends on line order within one key is a trap).
#pragma once

#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace sealmilter::core {

// Issue (issue 13, docs/issuing.md): like Require, but a definite miss issues a certificate
// from the gateway's own CA instead of refusing the recipient.
enum class Mode { Require, Opportunistic, Never, Issue };
const char* to_string(Mode m) noexcept;
std::optional<Mode> parse_mode(std::string_view s) noexcept;

class PolicyError : public std::runtime_error {
public:
    explicit PolicyError(const std::string& what) : std::runtime_error(what) {}
};

struct PolicyMatch {
    Mode mode;
    std::optional<bool> sign;  // the entry's +sign / +nosign; nullopt: crypto.sign decides
    std::string key;  // the matching table key ("@partner.example"), "" for the default
    int line = 0;     // its line in the file, 0 for the default
};

class PolicyTable {
public:
    // `name` is used in error messages (the file path).
    static PolicyTable parse(std::string_view text, const std::string& name);
    static PolicyTable load(const std::string& path);  // PolicyError when unreadable

    PolicyMatch lookup(std::string_view address, Mode default_mode) const;
    size_t size() const noexcept { return entries_.size(); }
    // True when some line names mode `m` (e.g. issue: the daemon then needs an issuer).
    bool names_mode(Mode m) const noexcept;

private:
    struct Entry {
        Mode mode;
        std::optional<bool> sign;
        int line;
    };
    std::map<std::string, Entry, std::less<>> entries_;  // lower-case keys
};

// True when the address's domain is one of `domains` or a subdomain of one (case-insensitive).
bool in_domains(std::string_view address, const std::vector<std::string>& domains);

}  // namespace sealmilter::core
