// milter/transaction.cpp — accumulate, then apply core's plan (see transaction.hpp).
#include "milter/transaction.hpp"

#include <chrono>

namespace sealmilter::milter {

struct Transaction::Rcpt {
    std::string arg;      // as the MTA gave it (for smfi_delrcpt)
    std::string address;  // bare
    bool lookup_started = false;
    std::shared_future<lookup::LookupResult> lookup;
};

namespace {

EomResult result_of(const core::MessagePlan& plan) {
    EomResult r;
    switch (plan.verdict.kind) {
    case core::Verdict::Kind::Accept: r.verdict = EomResult::Verdict::Accept; break;
    case core::Verdict::Kind::Tempfail: r.verdict = EomResult::Verdict::Tempfail; break;
    case core::Verdict::Kind::Reject: r.verdict = EomResult::Verdict::Reject; break;
    }
    if (r.verdict != EomResult::Verdict::Accept) r.reply = reply_from(plan.verdict.reply);
    r.summary = core::format_summary(plan.summary);
    r.details = plan.summary;
    return r;
}

// "copy for 2 recipient(s) <a@x>,<b@y> handed over to 127.0.0.1:10027, queued there as 4Xyz
// (250 2.0.0 Ok: queued as 4Xyz)": where the copy went and the next hop's own queue id, so one
// grep follows it on; Postfix's "queued as ID" is the common form, other replies are quoted.
std::string handed_over_line(const std::vector<std::string>& addresses, const std::string& target,
                             const std::string& reply) {
    std::string line = "copy for " + std::to_string(addresses.size()) + " recipient(s) ";
    for (size_t i = 0; i < addresses.size(); ++i) line += (i == 0 ? "<" : ",<") + addresses[i] + ">";
    line += " handed over to " + (target.empty() ? std::string("the re-injection service") : target);
    const std::string marker = "queued as ";
    const size_t at = reply.find(marker);
    if (at != std::string::npos) {
        const size_t from = at + marker.size();
        const size_t end = reply.find_first_of(" \t\r\n;,)", from);
        line += ", queued there as " + reply.substr(from, end == std::string::npos ? std::string::npos : end - from);
    }
    if (!reply.empty()) line += " (" + reply + ")";
    return line;
}

}  // namespace

Reply reply_from(const std::string& line) {
    Reply r;
    r.accept = false;
    r.code = line.substr(0, 3);
    r.temporary = !r.code.empty() && r.code[0] == '4';
    const size_t sp1 = line.find(' ');
    const size_t sp2 = sp1 == std::string::npos ? std::string::npos : line.find(' ', sp1 + 1);
    r.xcode = sp1 == std::string::npos ? "" : line.substr(sp1 + 1, sp2 - sp1 - 1);
    r.text = sp2 == std::string::npos ? "" : line.substr(sp2 + 1);
    return r;
}

std::string bare_address(const std::string& arg) {
    std::string a = arg;
    if (a.size() >= 2 && a.front() == '<' && a.back() == '>') a = a.substr(1, a.size() - 2);
    return a;
}

Transaction::Transaction(std::shared_ptr<const Services> services, std::string session_id)
    : services_(std::move(services)),
      log_(services_->log.child(std::move(session_id))),
      message_(std::make_unique<core::Message>(services_->memory_threshold, services_->spool_dir)) {
    if (services_->observer) services_->observer->message_started();
}

// Futures of unfinished lookups wait (bounded by the source timeouts).
Transaction::~Transaction() {
    if (services_->observer) services_->observer->message_ended();
}

void Transaction::mail_from(const std::string& sender, const std::string& queue_id) {
    sender_ = bare_address(sender);
    if (!queue_id.empty() && queue_id != log_.tag()) {
        log_.info("queue id " + queue_id);
        log_ = log_.child(queue_id);
    }
}

Reply Transaction::recipient(const std::string& arg) {
    auto r = std::make_unique<Rcpt>();
    r->arg = arg;
    r->address = bare_address(arg);
    const core::PlanSettings& ps = services_->plan;
    const core::RecipientDecision pre = core::classify(r->address, ps.policy, ps.policy_options, false);
    if (pre.mode != core::Mode::Never && services_->resolver != nullptr) {
        // The bounded resolver batches the message's recipients (lookup/resolver.hpp); the
        // snapshot, and so the resolver, stays alive as long as this transaction.
        r->lookup = services_->resolver->start(r->address);
        r->lookup_started = true;
    }
    if ((pre.mode == core::Mode::Require || pre.mode == core::Mode::Issue) && r->lookup_started && !ps.dry_run) {
        // A require recipient waits for its answer so a definite miss is refused right here.
        // Not in dry run, which changes no mail: the end-of-data decision says "would refuse".
        const lookup::LookupResult& res = r->lookup.get();
        core::RecipientDecision d = core::decide_recipient(r->address, ps.policy, ps.policy_options, false, &res);
        if (d.outcome == core::Outcome::Issue) check_issuable(d);
        if (const std::optional<std::string> line = core::rcpt_reply(d)) {
            log_.info("rcpt=<" + r->address + "> mode=" + core::to_string(d.mode) +
                      " outcome=" + core::to_string(d.outcome) + " at RCPT: " + d.reason);
            if (services_->observer) services_->observer->recipient_refused(log_.tag(), d, false);
            return reply_from(*line);
        }
    }
    rcpts_.push_back(std::move(r));
    return Reply{};
}

// An issue recipient without a certificate, at RCPT time: refused when nothing can issue for
// it (no issuing CA, an address a certificate cannot name), tempfailed when no pre-generated
// key pair is ready (the pool refills in the background; the verdict never waits for one).
void Transaction::check_issuable(core::RecipientDecision& d) const {
    const CertificateIssuer* issuer = services_->issuer.get();
    std::optional<std::string> why;
    if (issuer == nullptr) {
        why = "encryption is required, no certificate was found and issuing certificates is not configured";
    } else {
        why = issuer->uncertifiable_reason(d.address);
    }
    if (why) {
        d.outcome = core::Outcome::Reject;
        d.reason = *why;
        d.reply = "550 5.7.1 <" + d.address + ">: " + *why;
        return;
    }
    if (!issuer->ready()) {
        d.outcome = core::Outcome::Tempfail;
        d.reason = "no key pair is ready to issue a certificate";
        d.reply = "451 4.7.1 <" + d.address + ">: a certificate cannot be issued right now; try again later";
    }
}

// At end of data, before the plan: each recipient decided Issue gets its certificate, and its
// lookup result becomes Found (source "issued (new)") so core encrypts to it like any other. A
// failure leaves the lookup as it was: core then tempfails the message (never plaintext).
// Nothing is issued in dry run or for a message refused as too big.
void Transaction::issue_certificates(core::TransactionFacts& f) {
    const core::PlanSettings& ps = services_->plan;
    if (ps.dry_run || too_big_) return;
    const bool raised = core::has_trigger(*message_, ps.policy_options);
    CertificateIssuer* issuer = services_->issuer.get();
    for (size_t i = 0; i < f.recipients.size() && i < f.lookups.size(); ++i) {
        const core::RecipientDecision d =
            core::decide_recipient(f.recipients[i], ps.policy, ps.policy_options, raised, &f.lookups[i]);
        if (d.outcome != core::Outcome::Issue) continue;
        std::string error;
        std::optional<crypto::Certificate> cert;
        if (issuer == nullptr) {
            error = "issuing certificates is not configured";
        } else if (std::optional<std::string> why = issuer->uncertifiable_reason(d.address)) {
            error = *why;
        } else {
            cert = issuer->issue(d.address, &error);
        }
        if (!cert) {
            log_.warning("rcpt=<" + d.address + "> no certificate issued: " + error);
            continue;
        }
        log_.info("rcpt=<" + d.address + "> certificate issued: sha256=" + cert->fingerprint_sha256() +
                  " subject=" + cert->subject() + " not_after=" + crypto::format_time_utc(cert->not_after()));
        if (services_->observer) services_->observer->certificate_issued();
        lookup::LookupResult& lr = f.lookups[i];
        lr.outcome = lookup::Outcome::Found;
        lr.source = "issued (new)";
        lr.selected = {std::move(*cert)};
        lr.reason.clear();
        lr.capabilities.clear();
    }
}

void Transaction::header(const std::string& name, const std::string& value) {
    message_->headers.push_back(core::HeaderField{name, value});
}

void Transaction::body(const char* data, size_t len) {
    if (too_big_) return;
    if (message_->body.size() + len > services_->plan.max_message_size) {
        too_big_ = true;  // keep nothing more; the message is refused at end of data
        return;
    }
    message_->body.append(data, len);
}

core::TransactionFacts Transaction::facts() {
    const auto started = std::chrono::steady_clock::now();
    core::TransactionFacts f;
    f.sender = sender_;
    f.message = message_.get();
    f.too_big = too_big_;
    for (const auto& r : rcpts_) {
        f.recipients.push_back(r->address);
        if (r->lookup_started) {
            f.lookups.push_back(r->lookup.get());
            continue;
        }
        lookup::LookupResult none;
        none.email = r->address;
        none.outcome = lookup::Outcome::NotFound;
        none.reason = "no lookup (policy never)";
        f.lookups.push_back(std::move(none));
    }
    f.lookup_wait = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
    return f;
}

EomResult Transaction::end_of_message(const std::string& queue_id, MessageActions& actions, Reinjector& reinjector) {
    if (!queue_id.empty() && queue_id != log_.tag()) {
        log_.info("queue id " + queue_id);
        log_ = log_.child(queue_id);
    }
    core::TransactionFacts f = facts();
    f.keys = services_->keys.get();
    issue_certificates(f);
    core::MessagePlan plan = core::plan_message(f, services_->plan);
    if (!too_big_) {
        // After the plan: inbound mail it decrypted is harvested from the decrypted content.
        std::vector<std::string> addresses;
        for (const auto& r : rcpts_) addresses.push_back(r->address);
        const bool opened = plan.decrypted && plan.decrypted->message;
        const size_t kept = core::harvest_inbound(opened ? *plan.decrypted->message : *message_, sender_, addresses,
                                                  services_->harvest, log_);
        if (kept != 0 && services_->observer) services_->observer->harvested(kept);
    }
    if (plan.decrypted && plan.decrypted->result == core::OpenedMessage::Result::Failed)
        log_.warning("not decrypted (" + plan.decrypted->reason + "): " + plan.decrypted->detail);
    for (const core::RecipientDecision& d : plan.summary.decisions) log_.info(core::format_decision(d, plan.summary.dry_run));
    if (!plan.summary.signing.empty()) {
        if (plan.summary.signing_failed) log_.warning(plan.summary.signing);
        else log_.info(plan.summary.signing);
    }
    std::chrono::microseconds transform{0};
    if (plan.changes_message()) {
        // Copies first: if one cannot be handed over, nothing in this transaction has changed yet.
        if (const std::string err = hand_over_copies(plan, reinjector); !err.empty()) {
            plan = core::reinjection_failed(std::move(plan), err);
        } else {
            const auto started = std::chrono::steady_clock::now();
            apply(plan, actions);
            if (!plan.groups.empty() && plan.groups[0].kind != core::GroupKind::Plain)
                transform = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started);
        }
    }
    if (services_->observer)
        services_->observer->message_decided(
            {log_.tag(), &plan.summary, message_->body.size(), message_->body.on_disk(), transform});
    return result_of(plan);
}

std::string Transaction::hand_over_copies(const core::MessagePlan& plan, Reinjector& reinjector) {
    const Journal* journal = services_->journal.get();
    for (size_t gi = 1; gi < plan.groups.size(); ++gi) {
        const core::PlannedGroup& g = plan.groups[gi];
        // A retry of a message whose copies went out before its verdict was lost: that copy
        // is not sent twice (milter/journal.hpp).
        const std::string key = journal != nullptr ? Journal::key(*message_, sender_, g.addresses) : std::string();
        std::string error;
        const Journal::Seen seen = journal != nullptr ? journal->contains(key, &error) : Journal::Seen::No;
        if (seen == Journal::Seen::Yes) {
            log_.info("copy for " + std::to_string(g.recipients.size()) +
                      " recipient(s) was handed over by an earlier attempt; not sent again");
            continue;
        }
        // Not knowing whether an earlier attempt (here or on another node) sent it: sending
        // could duplicate it, so the message is tried again later.
        if (seen == Journal::Seen::Unknown) return "the re-injection journal cannot be read (" + error + ")";
        std::string reply;
        std::string err = reinjector.hand_over(sender_, g.addresses, g.write, reply);
        if (services_->observer) services_->observer->reinjection(err.empty());
        if (!err.empty()) return err;
        log_.info(handed_over_line(g.addresses, reinjector.target(), reply));
        // Right after the next hop's 250 and before the next copy: a retry must find it.
        if (journal != nullptr && !journal->record(key, &error)) {
            log_.error("copy for " + std::to_string(g.recipients.size()) +
                       " recipient(s) was handed over but could not be recorded in the re-injection journal (" + error +
                       "); a retry of this message may duplicate this copy");
            return "the re-injection journal cannot be written (" + error + ")";
        }
    }
    return {};
}

void Transaction::apply(const core::MessagePlan& plan, MessageActions& actions) {
    for (size_t i : plan.remove) actions.delete_recipient(rcpts_[i]->arg);
    for (const core::HeaderEdit& e : plan.header_edits) {
        switch (e.op) {
        case core::HeaderEdit::Op::Change: actions.change_header(e.name, e.index, e.value); break;
        case core::HeaderEdit::Op::Delete: actions.delete_header(e.name, e.index); break;
        case core::HeaderEdit::Op::Append: actions.add_header(e.name, e.value); break;
        case core::HeaderEdit::Op::Insert: actions.insert_header(e.index, e.name, e.value); break;
        }
    }
    if (!plan.groups.empty() && plan.groups[0].write) plan.groups[0].write(actions.replace_body());
}

}  // namespace sealmilter::milter
