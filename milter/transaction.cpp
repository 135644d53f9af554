// milter/transaction.cpp — accumulate, then decide at end of message (see transaction.hpp).
#include "milter/transaction.hpp"

#include "core/harvest.hpp"

#include <algorithm>
#include <ctime>
#include <chrono>
#include <map>

namespace sealmilter::milter {

struct Transaction::Rcpt {
    std::string arg;      // as the MTA gave it (for smfi_delrcpt)
    std::string address;  // bare
    bool lookup_started = false;
    std::shared_future<lookup::LookupResult> lookup;
};

namespace {

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return c < 0x80 ? static_cast<char>(std::tolower(c)) : static_cast<char>(c); });
    return s;
}

// Removes the subject tag (case-insensitive) and the space it leaves behind.
std::string strip_tag(const std::string& value, const std::string& tag) {
    const size_t at = lower(value).find(lower(tag));
    if (tag.empty() || at == std::string::npos) return value;
    std::string out = value.substr(0, at) + value.substr(at + tag.size());
    const size_t dbl = out.find("  ");
    if (dbl != std::string::npos && dbl <= at + 1) out.erase(dbl, 1);
    if (out.size() > 1 && out[0] == ' ' && out[1] == ' ') out.erase(0, 1);
    return out;
}

void write_plain(const core::Message& m, crypto::ByteSink& out) {
    std::string head;
    for (const core::HeaderField& f : m.headers) head += core::serialize_field(f, "\r\n");
    head += "\r\n";
    out.write(head.data(), head.size());
    m.body.for_each_chunk([&](std::string_view c) { out.write(c.data(), c.size()); });
}

// The size of the encrypted message: the header section, then base64 (76 columns + CRLF per 57
// bytes) of the CMS object: the body (CRLF on the milter wire), cipher padding and
// about 1 KiB per recipient (RecipientInfo with a 4096-bit key, issuer name, algorithm ids).
unsigned long long encrypted_size_estimate(const core::Message& m, size_t recipients) {
    unsigned long long head = 200;  // the replaced Content-* fields and MIME-Version
    for (const core::HeaderField& f : m.headers) head += f.name.size() + f.value.size() + 4;
    const unsigned long long body = m.body.size();  // CRLF already on the milter wire
    const unsigned long long cms = body + 64 + 1024ULL * recipients + 256;
    return head + (cms + 56) / 57 * 78;
}

EomResult tempfail(const std::string& line, const std::string& summary) {
    EomResult r;
    r.verdict = EomResult::Verdict::Tempfail;
    r.reply = reply_from(line);
    r.summary = summary;
    return r;
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
      tag_(std::move(session_id)),
      message_(std::make_unique<core::Message>(services_->memory_threshold, services_->spool_dir)) {}

Transaction::~Transaction() = default;  // futures of unfinished lookups wait (bounded by the source timeouts)

void Transaction::log(const std::string& line) const {
    if (services_->log) services_->log(tag_ + ": " + line);
}

void Transaction::mail_from(const std::string& sender) { sender_ = bare_address(sender); }

Reply Transaction::recipient(const std::string& arg) {
    auto r = std::make_unique<Rcpt>();
    r->arg = arg;
    r->address = bare_address(arg);
    const core::RecipientDecision pre = core::classify(r->address, services_->policy, services_->policy_options, false);
    if (pre.mode != core::Mode::Never && services_->resolver != nullptr) {
        // The bounded resolver batches the message's recipients (lookup/resolver.hpp); the
        // snapshot, and so the resolver, stays alive as long as this transaction.
        r->lookup = services_->resolver->start(r->address);
        r->lookup_started = true;
    }
    if (pre.mode == core::Mode::Require && r->lookup_started) {
        // A require recipient waits for its answer so a definite miss is refused right here.
        const lookup::LookupResult& res = r->lookup.get();
        core::RecipientDecision d = pre;
        if (res.outcome != lookup::Outcome::Found) {
            const bool failed = res.outcome == lookup::Outcome::TempError;
            const std::string line =
                failed || services_->policy_options.no_cert_tempfail
                    ? "451 4.7.1 <" + r->address + ">: encryption is required but " +
                          (failed ? "the certificate lookup failed" : "no usable certificate was found") +
                          "; try again later"
                    : "550 5.7.1 <" + r->address + ">: encryption is required and no usable certificate was found";
            log("rcpt=<" + r->address + "> mode=require outcome=" + (line[0] == '5' ? "reject" : "tempfail") +
                " at RCPT: " + res.reason);
            return reply_from(line);
        }
    }
    rcpts_.push_back(std::move(r));
    return Reply{};
}

void Transaction::header(const std::string& name, const std::string& value) {
    message_->headers.push_back(core::HeaderField{name, value});
}

void Transaction::body(const char* data, size_t len) {
    if (too_big_) return;
    if (message_->body.size() + len > services_->max_message_size) {
        too_big_ = true;  // keep nothing more; the message is refused at end of data
        return;
    }
    message_->body.append(data, len);
}

std::vector<lookup::LookupResult> Transaction::collect_lookups() {
    std::vector<lookup::LookupResult> out;
    for (const auto& r : rcpts_) {
        if (r->lookup_started) {
            out.push_back(r->lookup.get());
        } else {
            lookup::LookupResult none;
            none.email = r->address;
            none.outcome = lookup::Outcome::NotFound;
            none.reason = "no lookup (policy never)";
            out.push_back(std::move(none));
        }
    }
    return out;
}

EomResult Transaction::end_of_message(const std::string& queue_id, MessageActions& actions, Reinjector& reinjector) {
    if (!queue_id.empty() && queue_id != tag_) {
        log("queue id " + queue_id);
        tag_ = queue_id;
    }
    if (too_big_) {
        EomResult r;
        r.verdict = EomResult::Verdict::Reject;
        r.reply = reply_from("552 5.3.4 message exceeds milter.max_message_size (" +
                             std::to_string(services_->max_message_size) + " bytes)");
        r.summary = "refused: too big";
        return r;
    }
    // Triggers raise the mode and are removed before delivery (SPEC §4).
    std::vector<core::HeaderEdit> trigger_edits;
    const core::PolicyOptions& po = services_->policy_options;
    std::map<std::string, int> seen;
    std::vector<core::HeaderField> cleaned;
    for (const core::HeaderField& f : message_->headers) {
        const int index = ++seen[lower(std::string(core::trim(f.name)))];
        if (!po.trigger_header.empty() && core::is_header_named(f, po.trigger_header)) {
            trigger_edits.push_back({core::HeaderEdit::Op::Delete, std::string(core::trim(f.name)), index, {}});
            continue;
        }
        if (core::is_header_named(f, "Subject") && !po.subject_tag.empty()) {
            const std::string stripped = strip_tag(f.value, po.subject_tag);
            if (stripped != f.value) trigger_edits.push_back({core::HeaderEdit::Op::Change, "Subject", index, stripped});
            cleaned.push_back({f.name, stripped});
            continue;
        }
        cleaned.push_back(f);
    }
    harvest_inbound();
    const core::Plan plan = core::plan_encryption(*message_, services_->transform);
    if (plan.kind == core::PlanKind::PassThrough) {
        EomResult r;
        r.summary = "passed unchanged: " + plan.reason;
        return r;
    }
    std::vector<std::string> addresses;
    for (const auto& r : rcpts_) addresses.push_back(r->address);
    const std::vector<lookup::LookupResult> lookups = collect_lookups();
    const core::Decision d = core::decide(*message_, addresses, services_->policy, po, lookups);
    for (const core::RecipientDecision& r : d.recipients) {
        std::string line = "rcpt=<" + r.address + "> mode=" + core::to_string(r.mode) + " outcome=" +
                           core::to_string(r.outcome) + (r.bcc ? " bcc" : "");
        for (const auto& c : r.certificates) line += " cert=" + c.fingerprint_sha256();
        if (!r.reason.empty()) line += " (" + r.reason + ")";
        log((services_->dry_run ? "dry-run: " : "") + line);
    }
    // Recipients cannot be refused one by one after DATA, so one failing recipient decides for
    // the message. A lookup failure (or no_cert_action = tempfail) tempfails it: the retry meets
    // the then-cached answer at RCPT time, per recipient. A definite miss (a trigger raised the
    // message to require, or a certificate vanished since RCPT) refuses it: retrying cannot help.
    const core::RecipientDecision* failing = nullptr;
    for (const core::RecipientDecision& r : d.recipients) {
        if (r.outcome == core::Outcome::Tempfail) {
            failing = &r;
            break;
        }
        if (r.outcome == core::Outcome::Reject && failing == nullptr) failing = &r;
    }
    if (failing != nullptr) {
        const std::string why = failing->reply.size() > 10 ? failing->reply.substr(10) : failing->reason;
        const bool definite = failing->outcome == core::Outcome::Reject;
        if (services_->dry_run)
            return EomResult{EomResult::Verdict::Accept, {}, std::string("dry-run: would ") +
                                                                 (definite ? "refuse: " : "tempfail: ") + why};
        if (!definite) return tempfail("451 4.7.1 " + why, "tempfailed: " + why);
        EomResult r;
        r.verdict = EomResult::Verdict::Reject;
        r.reply = reply_from("550 5.7.1 " + why + "; the message was not delivered to any recipient");
        r.summary = "refused: " + why;
        return r;
    }
    if (services_->dry_run) return EomResult{EomResult::Verdict::Accept, {}, "dry-run: message left unchanged"};
    message_->headers = std::move(cleaned);
    for (const core::HeaderEdit& e : trigger_edits) {
        if (e.op == core::HeaderEdit::Op::Delete) actions.delete_header(e.name, e.index);
        else actions.change_header(e.name, e.index, e.value);
    }
    return apply(d, actions, reinjector);
}

core::TransformOptions Transaction::options_for(const core::Decision& d, const core::EnvelopeGroup& g) const {
    core::TransformOptions o = services_->transform;
    if (!services_->cipher_auto) return o;
    std::vector<const std::vector<std::string>*> caps;
    for (size_t i : g.recipients) caps.push_back(&d.recipients[i].capabilities);
    o.envelope = core::choose_envelope(caps, o.envelope);
    return o;
}

void Transaction::harvest_inbound() {
    const Services& s = *services_;
    if (!s.harvest_enabled || !s.harvest_store || s.harvest_validator == nullptr || s.harvest_domains.empty()) return;
    const bool inbound = std::any_of(rcpts_.begin(), rcpts_.end(),
                                     [&](const auto& r) { return core::in_domains(r->address, s.harvest_domains); });
    if (!inbound) return;
    if (message_->body.size() > s.harvest_max_size) {
        log("harvest: not inspected, larger than harvest.max_size");
        return;
    }
    try {
        std::string raw;
        raw.reserve(static_cast<size_t>(message_->body.size()) + 4096);
        for (const core::HeaderField& f : message_->headers) raw += core::serialize_field(f, "\r\n");
        raw += "\r\n";
        message_->body.for_each_chunk([&](std::string_view c) { raw.append(c); });
        std::string sender = sender_;
        if (sender.size() >= 2 && sender.front() == '<' && sender.back() == '>') sender = sender.substr(1, sender.size() - 2);
        core::HarvestOptions o;
        o.validator = s.harvest_validator;
        for (const crypto::KeyMaterial& k : s.harvest_keys) o.keys.push_back(&k);
        const core::HarvestReport report = core::harvest(raw, &sender, o);
        if (!report.skipped.empty()) {
            log("harvest: skipped: " + report.skipped);
            return;
        }
        if (report.certificates.empty()) {
            for (const std::string& n : report.notes)
                if (n != "no S/MIME signature") log("harvest: " + n);
            return;
        }
        const std::time_t now = std::time(nullptr);
        for (const core::HarvestedCertificate& h : report.certificates) {
            std::string caps;
            for (const std::string& c : h.capabilities) caps += (caps.empty() ? "" : ",") + c;
            s.harvest_store->save({h.email, h.certificate, now, now, h.capabilities, h.signer_fingerprint, h.from_key_preference});
            log("harvest: kept <" + h.email + "> cert=" + h.certificate.fingerprint_sha256() + " from " + h.signature +
                " capabilities=" + (caps.empty() ? "-" : caps));
            if (s.publisher) s.publisher->enqueue(h.email, lookup::HarvestStore::pem(h.certificate));
        }
    } catch (const std::exception& e) {
        log(std::string("harvest: error, the message passes unchanged: ") + e.what());
    }
}

EomResult Transaction::apply(const core::Decision& d, MessageActions& actions, Reinjector& reinjector) {
    const auto rcpts_of = [&](const core::EnvelopeGroup& g) {
        std::vector<std::string> out;
        for (size_t i : g.recipients) out.push_back(d.recipients[i].address);
        return out;
    };
    if (services_->mta_size_limit != 0) {
        for (const core::EnvelopeGroup& g : d.groups) {
            if (!g.encrypted) continue;
            const unsigned long long size = encrypted_size_estimate(*message_, g.certificates.size());
            if (size <= services_->mta_size_limit) continue;
            EomResult r;
            r.verdict = EomResult::Verdict::Reject;
            r.reply = reply_from("552 5.3.4 the message is too big once encrypted: encryption makes a message about "
                                 "1.4 times larger (" + std::to_string(message_->body.size()) + " bytes would become "
                                 "about " + std::to_string(size) + ", the limit is " +
                                 std::to_string(services_->mta_size_limit) + ")");
            r.summary = "refused: too big once encrypted (about " + std::to_string(size) + " bytes)";
            return r;
        }
    }
    // Copies first: if one cannot be handed over, nothing in this transaction has changed yet.
    for (size_t gi = 1; gi < d.groups.size(); ++gi) {
        const core::EnvelopeGroup& g = d.groups[gi];
        const core::TransformOptions opts = options_for(d, g);
        // A retry of a message whose copies went out before its verdict was lost: that copy
        // is not sent twice (milter/journal.hpp).
        const std::string key = services_->journal ? Journal::key(*message_, sender_, rcpts_of(g)) : std::string();
        if (services_->journal && services_->journal->contains(key)) {
            log("copy for " + std::to_string(g.recipients.size()) + " recipient(s) was handed over by an earlier attempt; not sent again");
            continue;
        }
        const std::string err = reinjector.send(sender_, rcpts_of(g), [&](crypto::ByteSink& out) {
            if (g.encrypted) {
                core::write_transformed(*message_, core::plan_encryption(*message_, opts), g.certificates, opts, out);
            } else {
                write_plain(*message_, out);
            }
        });
        if (!err.empty())
            return tempfail("451 4.7.0 the message could not be split for its recipients (re-injection failed); try again later",
                            "tempfailed: re-injection failed: " + err);
        if (services_->journal && !services_->journal->record(key))
            log("cannot write the re-injection journal in milter.spool_dir: a retry of this message may duplicate this copy");
    }
    for (size_t gi = 1; gi < d.groups.size(); ++gi)
        for (size_t i : d.groups[gi].recipients) actions.delete_recipient(rcpts_[i]->arg);
    EomResult r;
    if (d.groups.empty() || !d.groups[0].encrypted) {
        r.summary = "delivered plain to " + std::to_string(d.groups.empty() ? 0 : d.groups[0].recipients.size()) +
                    " recipient(s), " + std::to_string(d.groups.size() > 0 ? d.groups.size() - 1 : 0) + " copies split off";
        return r;
    }
    const core::TransformOptions opts = options_for(d, d.groups[0]);
    const core::Plan plan = core::plan_encryption(*message_, opts);
    for (const core::HeaderEdit& e : plan.edits) {
        switch (e.op) {
        case core::HeaderEdit::Op::Change: actions.change_header(e.name, e.index, e.value); break;
        case core::HeaderEdit::Op::Delete: actions.delete_header(e.name, e.index); break;
        case core::HeaderEdit::Op::Append: actions.add_header(e.name, e.value); break;
        }
    }
    core::write_encrypted_body(*message_, d.groups[0].certificates, opts, actions.replace_body());
    r.summary = std::string("encrypted (") + crypto::cipher_name(opts.envelope.cipher) +
                (opts.envelope.rsa_padding == crypto::RsaPadding::Oaep ? ", RSA-OAEP" : "") + ") for " +
                std::to_string(d.groups[0].recipients.size()) + " recipient(s) (" +
                std::to_string(d.groups[0].certificates.size()) + " certificate(s)), " +
                std::to_string(d.groups.size() - 1) + " copies split off";
    return r;
}

}  // namespace sealmilter::milter
