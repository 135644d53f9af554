// metrics/observer.cpp — outcomes and the fan-out (see observer.hpp).
#include "metrics/observer.hpp"

namespace sealmilter::metrics {

const char* to_string(RecipientOutcome o) noexcept {
    switch (o) {
    case RecipientOutcome::Encrypted: return "encrypted";
    case RecipientOutcome::Plain: return "plain";
    case RecipientOutcome::Refused: return "refused";
    case RecipientOutcome::Tempfailed: return "tempfailed";
    }
    return "?";
}

namespace {

RecipientOutcome own_outcome(const core::RecipientDecision& d) noexcept {
    switch (d.outcome) {
    case core::Outcome::Encrypt: return RecipientOutcome::Encrypted;
    case core::Outcome::Plain: return RecipientOutcome::Plain;
    case core::Outcome::Reject: return RecipientOutcome::Refused;
    case core::Outcome::Tempfail: return RecipientOutcome::Tempfailed;
    case core::Outcome::Issue: return RecipientOutcome::Encrypted;  // dry run: would issue and encrypt
    }
    return RecipientOutcome::Plain;
}

}  // namespace

RecipientOutcome effective_outcome(const core::MessageSummary& s, const core::RecipientDecision& d) noexcept {
    switch (s.action) {
    case core::Action::Tempfailed: return RecipientOutcome::Tempfailed;
    case core::Action::Refused: return RecipientOutcome::Refused;
    case core::Action::DryRun:
        // core::plan_message aggregates one failing recipient into the message's verdict
        // (recipients cannot be refused one by one after DATA); in dry run the summary says
        // what that verdict would have been.
        if (s.reason.rfind("would refuse", 0) == 0) return RecipientOutcome::Refused;
        if (s.reason.rfind("would tempfail", 0) == 0) return RecipientOutcome::Tempfailed;
        return own_outcome(d);
    case core::Action::Encrypted:
    case core::Action::DeliveredPlain:
    case core::Action::PassedUnchanged:
    case core::Action::Decrypted:       // inbound: the local recipients' copy opened
    case core::Action::DecryptFailed: return own_outcome(d);
    }
    return own_outcome(d);
}

bool is_internal(const core::RecipientDecision& d) noexcept {
    return d.mode == core::Mode::Never && d.reason == "internal domain";  // core::classify's wording
}

void Observers::message_started() noexcept {
    for (const auto& o : all_) o->message_started();
}
void Observers::message_ended() noexcept {
    for (const auto& o : all_) o->message_ended();
}
void Observers::recipient_refused(const std::string& tag, const core::RecipientDecision& d, bool dry_run) noexcept {
    for (const auto& o : all_) o->recipient_refused(tag, d, dry_run);
}
void Observers::message_decided(const MessageReport& r) noexcept {
    for (const auto& o : all_) o->message_decided(r);
}
void Observers::reinjection(bool ok) noexcept {
    for (const auto& o : all_) o->reinjection(ok);
}
void Observers::certificate_issued() noexcept {
    for (const auto& o : all_) o->certificate_issued();
}
void Observers::harvested(size_t certificates) noexcept {
    for (const auto& o : all_) o->harvested(certificates);
}
void Observers::lookup_done(const lookup::LookupResult& r) noexcept {
    for (const auto& o : all_) o->lookup_done(r);
}

}  // namespace sealmilter::metrics
