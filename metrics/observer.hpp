// metrics/observer.hpp — what the milter reports as mail goes through, and who listens.
//
// Purpose:   the milter calls one Observer at a few points of a transaction: a message starts
//            and ends (in flight), a `require` recipient is refused at RCPT, the message is
//            decided (core's structured MessageSummary with every recipient's decision), a
//            split copy is re-injected, certificates are harvested; the lookup layer reports
//            each finished lookup (lookup::ResolverOptions::observe). Listeners: Metrics
//            (Prometheus counters, metrics/metrics.hpp), DecisionLog (log.decisions, one JSON
//            line per recipient decision), ExpiryNudge (lookup.expiry_warn_days); Observers
//            fans out to several.
//            effective_outcome() is the one place that says what happened to a recipient once
//            the message's verdict is known (a message tempfailed for one recipient tempfails
//            them all; in dry run: what would have happened).
// Ownership: plain values; Observers shares its listeners.
// Threads:   every method may be called from any milter or resolver thread at once;
//            implementations are thread-safe.
// Errors:    observers never throw (noexcept): a failing listener drops its record, mail flows.
#pragma once

#include "core/summary.hpp"
#include "lookup/chain.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace sealmilter::metrics {

// What one recipient got: encrypted, plain, refused, tempfailed (the label values of
// sealmilter_recipients_total and the report's columns).
enum class RecipientOutcome { Encrypted, Plain, Refused, Tempfailed };
const char* to_string(RecipientOutcome o) noexcept;

// The recipient's outcome given the message's action (in dry run: what would have happened).
RecipientOutcome effective_outcome(const core::MessageSummary& s, const core::RecipientDecision& d) noexcept;

// The recipient lies in policy.internal_domains (core::classify says so in its reason):
// internal recipients are outside the encryption coverage.
bool is_internal(const core::RecipientDecision& d) noexcept;

// One decided message (end of data).
struct MessageReport {
    std::string queue_id;                      // the tag the log lines carry
    const core::MessageSummary* summary = nullptr;  // never null when reported
    unsigned long long body_bytes = 0;         // the body as received
    bool spooled = false;                      // the body went past milter.memory_threshold
    std::chrono::microseconds transform{0};    // applying the plan (encrypting groups[0]); 0 = none
};

class Observer {
public:
    virtual ~Observer() = default;
    virtual void message_started() noexcept {}
    virtual void message_ended() noexcept {}
    // A `require` recipient answered 550/451 at RCPT time (tag: the session or queue id).
    virtual void recipient_refused(const std::string& /*tag*/, const core::RecipientDecision& /*d*/,
                                   bool /*dry_run*/) noexcept {}
    virtual void message_decided(const MessageReport& /*r*/) noexcept {}
    virtual void reinjection(bool /*ok*/) noexcept {}
    virtual void harvested(size_t /*certificates*/) noexcept {}
    virtual void lookup_done(const lookup::LookupResult& /*r*/) noexcept {}
    // Our CA issued a certificate for a recipient who had none (issue 13).
    virtual void certificate_issued() noexcept {}
};

// Fans every call out to its listeners, in order.
class Observers final : public Observer {
public:
    void add(std::shared_ptr<Observer> o) {
        if (o) all_.push_back(std::move(o));
    }
    bool empty() const noexcept { return all_.empty(); }

    void message_started() noexcept override;
    void message_ended() noexcept override;
    void recipient_refused(const std::string& tag, const core::RecipientDecision& d, bool dry_run) noexcept override;
    void message_decided(const MessageReport& r) noexcept override;
    void reinjection(bool ok) noexcept override;
    void harvested(size_t certificates) noexcept override;
    void lookup_done(const lookup::LookupResult& r) noexcept override;
    void certificate_issued() noexcept override;

private:
    std::vector<std::shared_ptr<Observer>> all_;  // fixed once the snapshot is built
};

}  // namespace sealmilter::metrics
