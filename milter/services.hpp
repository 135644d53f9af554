// milter/services.hpp — everything a transaction needs, as one immutable snapshot.
//
// Purpose:   the daemon builds a Services from a validated Config (policy table, lookup
//            stack, transform options, re-injection endpoint). SIGHUP builds a new one and
//            swaps it in; transactions keep the snapshot they started with.
// Ownership: shared_ptr<const Services>; the lookup stack lives as long as the snapshot.
// Threads:   immutable after construction; ServicesHolder swaps atomically.
// Errors:    none here; construction happens in the CLI (cli/run.cpp) with CliError on bad input.
#pragma once

#include "base/logger.hpp"
#include "core/inbound.hpp"
#include "core/plan.hpp"
#include "keys/key_ring.hpp"
#include "lookup/chain.hpp"
#include "lookup/stack.hpp"
#include "lookup/resolver.hpp"
#include "metrics/observer.hpp"
#include "milter/issuing.hpp"
#include "milter/journal.hpp"

#include <atomic>
#include <memory>
#include <string>

namespace sealmilter::milter {

struct Services {
    // The validator, cache, sources and chain (null in tests that script the resolver's chain).
    std::shared_ptr<const lookup::LookupStack> lookups;
    // RCPT-time lookups (bounded workers, bursts batched); declared after `lookups` so it is
    // destroyed (its workers joined) before the chain it borrows.
    std::shared_ptr<lookup::Resolver> resolver;
    core::PlanSettings plan;       // policy, transform, dry run, size limits, archive
    core::InboundSettings harvest;  // harvest.*: mail to harvest.domains is inspected
    // The key store of keys.dir (every key, current and retired), opened at start and on
    // SIGHUP; nullptr = no key store configured (decryption unavailable).
    std::shared_ptr<const keys::KeyRing> keys;
    std::string reinject_host = "127.0.0.1";
    int reinject_port = 10027;
    long reinject_timeout_ms = 30000;
    std::shared_ptr<const Journal> journal;  // copies already re-injected; null = none (tests)
    size_t memory_threshold = 1 << 20;
    std::string spool_dir = "/var/spool/sealmilter";
    base::Logger log;  // the daemon's; a transaction logs through log.child(its tag)
    // Metrics, the decision journal, expiry nudges (metrics/observer.hpp); null = none.
    std::shared_ptr<metrics::Observer> observer;
    // Issues certificates for `issue` recipients (issue 13); null = no issuing CA configured
    // (an issue recipient without a certificate is then refused as require's no_cert).
    std::shared_ptr<CertificateIssuer> issuer;
};

class ServicesHolder {
public:
    explicit ServicesHolder(std::shared_ptr<const Services> s) : current_(std::move(s)) {}
    std::shared_ptr<const Services> get() const { return std::atomic_load(&current_); }
    void set(std::shared_ptr<const Services> s) { std::atomic_store(&current_, std::move(s)); }

private:
    std::shared_ptr<const Services> current_;
};

}  // namespace sealmilter::milter
