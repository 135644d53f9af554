// lookup/source.hpp — what every certificate source answers (SPEC §6, STYLE.md).
//
// Purpose:   a CertificateSource turns an address into Found(candidates) / NotFound
//            (authoritative: "this address has no certificate here") / TempError(reason).
//            Candidates are NOT validated by the source: the Chain passes every candidate
//            through the one Validator before use and before caching.
//            A source also declares its properties (SourceProperties) and vouches, per
//            candidate, for the certificates it has authenticated itself; the Chain reads
//            those instead of the source's name.
// Ownership: answers are values; certificates are ref-counted crypto::Certificate.
// Threads:   a source must be safe to call from several threads at once.
// Errors:    expected failures are a TempError value, never an exception; exceptions only for
//            broken invariants.
#pragma once

#include "crypto/certificate.hpp"

#include <optional>
#include <string>
#include <vector>

namespace sealmilter::lookup {

enum class Outcome { Found, NotFound, TempError };
const char* to_string(Outcome o) noexcept;

struct SourceAnswer {
    Outcome outcome = Outcome::TempError;
    std::vector<crypto::Certificate> candidates;  // Found: unvalidated candidates
    std::string reason;  // TempError: why; NotFound: e.g. "HTTP 404", "HTTP 410 (opted out)"
    // HTTP caching hints (directory only): Cache-Control max-age / stale-if-error, ETag.
    std::optional<long long> max_age;
    std::optional<long long> stale_if_error;
    std::string etag;
    bool not_modified = false;  // a 304 answer to a conditional request
    // SMIMECapabilities the recipient advertised (harvest only; empty = unknown).
    std::vector<std::string> capabilities;
};

struct Query {
    std::string email;       // normalised (normalize_address): the key of lookups and the cache
    std::string as_written;  // the address as the caller wrote it (RFC 8162 §3.1 hashes this
                             // local part); empty = same as email
    std::string if_none_match;  // an ETag from the cache, for revalidation (directory only)

    const std::string& written() const { return as_written.empty() ? email : as_written; }
};

// What the Chain may do with a source's answers (SPEC §6). Declared by the source, so a new
// source (LDAP, DNS, issued) needs no name check anywhere.
struct SourceProperties {
    bool cacheable = false;               // positive answers go into the cache
    bool negative_authoritative = false;  // NotFound means "definitely none": negative-cached
    // A fallback source's Found is used only when no later step (sources, cache) yields a
    // usable answer; when one does, the Chain calls superseded() (the issued source: the
    // recipient's own certificate retires the one our CA issued).
    bool fallback = false;
};

class CertificateSource {
public:
    virtual ~CertificateSource() = default;
    virtual std::string name() const = 0;  // the lookup.order name: "store", "directory", ...
    virtual SourceProperties properties() const { return {}; }
    // True when the source vouches for this candidate itself (e.g. a TLS-authenticated
    // corporate directory configured as trusted): the Validator skips the chain check for
    // it, every other check still applies. Asked for fresh answers and for cached entries
    // this source gave.
    virtual bool vouches_for(const crypto::Certificate& /*candidate*/) const { return false; }
    // True when the source's binding also stands in for the candidate's validity period
    // (DNS SMIMEA usage 3, DANE-EE: RFC 7671 §5.1 ignores the certificate's dates); only
    // asked for candidates the source vouches for.
    virtual bool vouches_for_validity(const crypto::Certificate& /*candidate*/) const { return false; }
    virtual SourceAnswer lookup(const Query& query) = 0;
    // A fallback source's usable Found lost to `winner` (the step that answered) for `query`.
    virtual void superseded(const Query& /*query*/, const std::string& /*winner*/) {}
    // Several addresses at once, answers in the same order. Sources that can run requests
    // concurrently override this (the directory: 50 recipients cost about one round trip).
    virtual std::vector<SourceAnswer> lookup_many(const std::vector<Query>& queries);
};

// The key an address is looked up and cached under: ASCII lower case throughout. RFC 5321
// §2.4 lets a local part be case-sensitive, but no mail system in use treats Bob@ and bob@ as
// different people, and certificates and directories spell addresses inconsistently.
// Non-ASCII (UTF-8) bytes are kept as they are.
std::string normalize_address(const std::string& email);

// A query for an address as the caller wrote it.
Query make_query(const std::string& as_written);

}  // namespace sealmilter::lookup
