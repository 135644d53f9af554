// lookup/smimea_source.hpp — the DNS SMIMEA source (RFC 8162, SPEC §6.5), on libunbound.
//
// Purpose:   looks up SMIMEA records at
//              hex(SHA-256(local part as written))[0..56] . _smimecert . domain   (RFC 8162 §3)
//            through libunbound, which validates DNSSEC in process from the configured trust
//            anchor (dns.trust_anchor) — forwarding to dns.forwarders, or recursing from the
//            root when none are configured. Only a *secure* answer counts:
//              bogus    -> TempError (a broken or forged signature is never "no certificate");
//              insecure -> NotFound (the zone is not signed: whatever it says proves nothing);
//              secure NXDOMAIN / NODATA -> NotFound.
//            Records used: matching type 0 (Full), selector 0 (the whole certificate), with
//              usage 3 (DANE-EE): the signed record binds the certificate to the address; the
//                source vouches for it, so the Validator skips the PKIX chain and the validity
//                dates (RFC 7671 §5.1); address, key usage, EKU and key size rules still apply;
//              usage 1 (PKIX-EE): a candidate validated exactly like a directory certificate.
//            Ignored, each with its reason in the answer: matching types 1/2 (a digest only
//            confirms a certificate found elsewhere and carries nothing to encrypt to), selector
//            1 (a bare public key: CMS needs a certificate), usages 0/2 (CA constraints), and
//            records too short or holding no parsable certificate.
//            Not cacheable in the certificate cache: libunbound keeps its own cache with the
//            records' TTLs and signature lifetimes; NotFound is therefore not negative-cached
//            either.
// Ownership: the source owns its libunbound context and one event thread that runs
//            ub_process(); answers are values.
// Threads:   lookup()/lookup_many() from any number of threads. Bounded: every lookup waits at
//            most timeout_ms; at most max_inflight DNS queries are outstanding at once (more
//            wait, within the same deadline); a timed-out query is cancelled.
// Errors:    SmimeaError (constructor) for an unusable trust anchor file or forwarder; every
//            lookup failure (timeout, SERVFAIL, bogus) is a TempError answer with the reason.
#pragma once

#include "lookup/source.hpp"

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace sealmilter::lookup {

class SmimeaError : public std::runtime_error {
public:
    explicit SmimeaError(const std::string& what) : std::runtime_error(what) {}
};

struct SmimeaOptions {
    std::string trust_anchor_file;        // dns.trust_anchor: DS/DNSKEY records, zone-file syntax
    std::vector<std::string> forwarders;  // dns.forwarders: IP or IP@PORT; empty = full recursion
    long timeout_ms = 5000;               // dns.timeout_ms: one lookup, whole
    int max_inflight = 64;                // dns.max_inflight: DNS queries outstanding at once
};

// The owner name of an address's SMIMEA records: the local part exactly as written (RFC 8162
// §3.1: no case folding), the domain lower-cased. nullopt when the address has no '@', an
// empty local part, or a domain that is not an ASCII DNS name (A-labels are required).
std::optional<std::string> smimea_owner_name(std::string_view address_as_written);

struct SmimeaRecord {
    int usage = 0;     // 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE
    int selector = 0;  // 0 full certificate, 1 SubjectPublicKeyInfo
    int matching = 0;  // 0 full, 1 SHA-256, 2 SHA-512
    std::string data;  // the association data (DER for matching type 0)
};

// One SMIMEA RDATA (RFC 8162 §2, the TLSA wire form); nullopt when shorter than 4 bytes.
std::optional<SmimeaRecord> parse_smimea_rdata(std::string_view rdata);

// What a secure answer's records mean for a recipient (pure: the source and tests use it).
struct SmimeaCandidates {
    std::vector<crypto::Certificate> certificates;  // unvalidated candidates
    std::vector<bool> dane_ee;                      // per certificate: published with usage 3
    std::vector<std::string> ignored;               // one reason per record not used
};
SmimeaCandidates smimea_candidates(const std::vector<std::string>& rdatas);

// The trust anchor file's records (DS or DNSKEY, zone-file syntax, ';' and '#' comments,
// parentheses across lines), one string each. SmimeaError naming the line for anything else.
std::vector<std::string> read_trust_anchors(const std::string& path);

class SmimeaSource final : public CertificateSource {
public:
    explicit SmimeaSource(SmimeaOptions options);
    ~SmimeaSource() override;
    SmimeaSource(const SmimeaSource&) = delete;
    SmimeaSource& operator=(const SmimeaSource&) = delete;

    std::string name() const override { return "dns"; }
    SourceProperties properties() const override { return {}; }  // libunbound caches
    // DANE-EE certificates (usage 3) of the answers this source gave.
    bool vouches_for(const crypto::Certificate& candidate) const override;
    bool vouches_for_validity(const crypto::Certificate& candidate) const override;
    SourceAnswer lookup(const Query& query) override;
    std::vector<SourceAnswer> lookup_many(const std::vector<Query>& queries) override;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace sealmilter::lookup
