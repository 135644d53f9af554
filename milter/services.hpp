// milter/services.hpp — everything a transaction needs, as one immutable snapshot.
//
// Purpose:   the daemon builds a Services from a validated Config (policy table, lookup
//            stack, transform options, re-injection endpoint). SIGHUP builds a new one and
//            swaps it in; transactions keep the snapshot they started with.
// Ownership: shared_ptr<const Services>; the lookup stack lives as long as the snapshot.
// Threads:   immutable after construction; ServicesHolder swaps atomically.
// Errors:    none here; construction happens in the CLI (cli/run.cpp) with CliError on bad input.
#pragma once

#include "core/decide.hpp"
#include "core/policy.hpp"
#include "core/transform.hpp"
#include "lookup/chain.hpp"
#include "lookup/harvest_store.hpp"
#include "lookup/publisher.hpp"
#include "lookup/resolver.hpp"
#include "milter/journal.hpp"
#include "crypto/private_key.hpp"

#include <atomic>
#include <functional>
#include <memory>
#include <string>

namespace sealmilter::milter {

struct Services {
    std::shared_ptr<void> keepalive;  // owns the lookup stack the chain borrows from
    const lookup::Chain* chain = nullptr;
    // RCPT-time lookups (bounded workers, bursts batched); declared after keepalive so it is
    // destroyed (its workers joined) before the chain it borrows.
    std::shared_ptr<lookup::Resolver> resolver;
    core::PolicyTable policy;
    core::PolicyOptions policy_options;
    core::TransformOptions transform;  // eol is CRLF on the milter wire
    std::string reinject_host = "127.0.0.1";
    int reinject_port = 10027;
    long reinject_timeout_ms = 30000;
    bool dry_run = false;
    bool cipher_auto = false;  // crypto.cipher = auto: per envelope from the recipients' capabilities
    // Inbound harvest (harvest.*): mail to `harvest_domains` is inspected for signatures.
    bool harvest_enabled = false;
    const lookup::Validator* harvest_validator = nullptr;  // the lookup stack's, kept alive by keepalive
    std::shared_ptr<const lookup::HarvestStore> harvest_store;
    std::vector<std::string> harvest_domains;
    unsigned long long harvest_max_size = 26214400;
    std::vector<crypto::KeyMaterial> harvest_keys;
    std::shared_ptr<lookup::Publisher> publisher;  // directory.publish_url; null = off
    std::shared_ptr<const Journal> journal;  // copies already re-injected; null = none (tests)
    unsigned long long max_message_size = 104857600;
    unsigned long long mta_size_limit = 0;  // 0: not checked
    size_t memory_threshold = 1 << 20;
    std::string spool_dir = "/var/spool/sealmilter";
    std::function<void(const std::string&)> log;  // one line, already prefixed with the tag
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
