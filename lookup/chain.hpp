// lookup/chain.hpp — the sources in configured order, the one validation step, the cache.
//
// Purpose:   resolves addresses to the certificates to encrypt to (SPEC §6):
//            - steps run in lookup.order; "cache" is a step like the sources;
//            - every candidate of every source passes the Validator before use and before
//              caching; the usable ones are selected per crypto.encrypt_to;
//            - the first step that yields a usable certificate answers; consecutive sources
//              (not separated by "cache") are asked in parallel, their answers taken in
//              configured priority: the first usable one wins, the others are traced as
//              "not used";
//            - a fresh negative cache entry skips the source that gave it; a stale entry is
//              revalidated (If-None-Match) and served if the sources fail (stale-if-error);
//            - authoritative NotFound answers (directory 404/410) are negative-cached;
//            - all addresses of one call go to each source together (lookup_many), so the
//              directory runs one message's requests concurrently.
//            - a fallback source (SourceProperties::fallback: the issued source) answers only
//              when no later step has a usable certificate; when one has, the fallback source
//              is told (superseded) so its certificate is retired;
//            Final outcome: Found; else TempError when any source failed (and nothing stale
//            could be served); else NotFound (definite).
// Ownership: borrows the sources, the validator and the cache, which must outlive the Chain.
// Threads:   resolve() is safe from several threads when the parts are (they are).
// Errors:    never throws for source or content problems; results carry reasons.
#pragma once

#include "base/clock.hpp"
#include "lookup/certificate_cache.hpp"
#include "lookup/source.hpp"
#include "lookup/validate.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace sealmilter::lookup {

struct StepTrace {
    std::string step;  // "store", "cache", "directory"
    Outcome outcome = Outcome::NotFound;
    std::string reason;
    std::vector<Verdict> verdicts;  // every candidate with its verdict
    // A source step: how long the source took for the batch this address was part of
    // (lookup_many); 0 for the cache (metrics: sealmilter_lookup_duration_seconds).
    std::chrono::microseconds elapsed{0};
};

struct LookupResult {
    std::string email;       // normalised
    std::string as_written;  // as the caller gave it to resolve()
    Outcome outcome = Outcome::TempError;
    std::string source;  // the step that answered ("cache", "directory", "cache (stale)", ...)
    std::vector<crypto::Certificate> selected;
    std::string reason;
    std::vector<StepTrace> trace;
    // SMIMECapabilities the recipient advertised in signed mail (from the harvest source;
    // empty = unknown): crypto.cipher = auto chooses from them.
    std::vector<std::string> capabilities;
};

class Chain {
public:
    // `order` names the steps ("store", "cache", "directory"); each name except "cache" must
    // have a source in `sources`. `cache` may be null (then "cache" steps are skipped).
    Chain(std::vector<std::string> order, std::vector<CertificateSource*> sources, const Validator& validator,
          CertificateCache* cache, EncryptTo encrypt_to, const base::Clock* clock = nullptr);

    // One result per address, in order; each address is looked up by its normalised form
    // and its result keeps the form the caller wrote (LookupResult::as_written).
    std::vector<LookupResult> resolve(const std::vector<std::string>& emails) const;

private:
    struct Pending;
    struct Asked;
    void cache_step(std::vector<Pending>& pending) const;
    Asked prepare(CertificateSource& source, std::vector<Pending>& pending) const;
    void take_answers(Asked& asked) const;
    void sources_step(const std::vector<CertificateSource*>& sources, std::vector<Pending>& pending) const;
    void take_answer(CertificateSource& source, Pending& p, SourceAnswer& a, std::chrono::microseconds elapsed) const;
    void hold_fallback(CertificateSource& source, Pending& p, StepTrace& trace,
                       const std::vector<crypto::Certificate>& candidates) const;
    void finish(Pending& p) const;
    bool use_candidates(Pending& p, StepTrace& trace, const std::vector<crypto::Certificate>& candidates,
                        const CertificateSource* origin) const;
    CertificateSource* source_named(const std::string& name) const;

    std::vector<std::string> order_;
    std::vector<CertificateSource*> sources_;
    const Validator& validator_;
    CertificateCache* cache_;
    EncryptTo encrypt_to_;
    const base::Clock* clock_;
};

}  // namespace sealmilter::lookup
