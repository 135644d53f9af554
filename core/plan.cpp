// core/plan.cpp — the message plan (see plan.hpp).
#include "core/plan.hpp"

#include "base/ascii.hpp"

#include <algorithm>
#include <ctime>
#include <map>

namespace sealmilter::core {
namespace {

// Removes the subject tag (ASCII case-insensitive) and the space it leaves behind.
std::string strip_tag(const std::string& value, const std::string& tag) {
    const size_t at = base::ifind(value, tag);
    if (tag.empty() || at == std::string::npos) return value;
    std::string out = value.substr(0, at) + value.substr(at + tag.size());
    const size_t dbl = out.find("  ");
    if (dbl != std::string::npos && dbl <= at + 1) out.erase(dbl, 1);
    if (out.size() > 1 && out[0] == ' ' && out[1] == ' ') out.erase(0, 1);
    return out;
}

// The triggers raise the mode and are removed before delivery (SPEC §4): the edits for the
// MTA's copy, and the header section without them for every form this plan writes.
struct Stripped {
    std::vector<HeaderEdit> edits;
    std::vector<HeaderField> headers;
};

Stripped strip_triggers(const std::vector<HeaderField>& headers, const PolicyOptions& po) {
    Stripped out;
    std::map<std::string, int> seen;
    for (const HeaderField& f : headers) {
        const std::string name(base::trim(f.name));
        const int index = ++seen[base::to_lower(name)];
        if (!po.trigger_header.empty() && is_header_named(f, po.trigger_header)) {
            out.edits.push_back({HeaderEdit::Op::Delete, name, index, {}});
            continue;
        }
        if (is_header_named(f, "Subject") && !po.subject_tag.empty()) {
            const std::string stripped = strip_tag(f.value, po.subject_tag);
            if (stripped != f.value) out.edits.push_back({HeaderEdit::Op::Change, "Subject", index, stripped});
            out.headers.push_back({f.name, stripped});
            continue;
        }
        out.headers.push_back(f);
    }
    return out;
}

void write_plain(const Message& m, crypto::ByteSink& out) {
    std::string head;
    for (const HeaderField& f : m.headers) head += serialize_field(f, "\r\n");
    head += "\r\n";
    out.write(head.data(), head.size());
    m.body.for_each_chunk([&](std::string_view c) { out.write(c.data(), c.size()); });
}

// The size of the encrypted message: the header section, then base64 (76 columns + CRLF per 57
// bytes) of the CMS object: the body (CRLF on the milter wire), cipher padding and
// about 1 KiB per recipient (RecipientInfo with a 4096-bit key, issuer name, algorithm ids).
unsigned long long encrypted_size_estimate(const Message& m, size_t recipients) {
    unsigned long long head = 200;  // the replaced Content-* fields and MIME-Version
    for (const HeaderField& f : m.headers) head += f.name.size() + f.value.size() + 4;
    const unsigned long long body = m.body.size();  // CRLF already on the milter wire
    const unsigned long long cms = body + 64 + 1024ULL * recipients + 256;
    return head + (cms + 56) / 57 * 78;
}

MessagePlan ending(Verdict::Kind kind, std::string reply, Action action, std::string reason, MessageSummary summary = {}) {
    MessagePlan p;
    p.verdict = {kind, std::move(reply)};
    p.summary = std::move(summary);
    p.summary.action = action;
    p.summary.reason = std::move(reason);
    return p;
}

// Recipients cannot be refused one by one after DATA, so one failing recipient decides for
// the message. A lookup failure (or no_cert_action = tempfail) tempfails it: the retry meets
// the then-cached answer at RCPT time, per recipient. A definite miss (a trigger raised the
// message to require, or a certificate vanished since RCPT) refuses it: retrying cannot help.
std::optional<MessagePlan> aggregate_failures(const Decision& d, MessageSummary summary) {
    const RecipientDecision* failing = nullptr;
    RecipientDecision not_issued;  // an Issue outcome nobody resolved: never plaintext
    for (const RecipientDecision& r : d.recipients) {
        if (r.outcome == Outcome::Issue && !summary.dry_run) {  // dry run: "would issue", unchanged
            not_issued = r;
            not_issued.outcome = Outcome::Tempfail;
            not_issued.reply = "451 4.7.1 <" + r.address + ">: a certificate is to be issued but none was; try again later";
            failing = &not_issued;
            break;
        }
        if (r.outcome == Outcome::Tempfail) {
            failing = &r;
            break;
        }
        if (r.outcome == Outcome::Reject && failing == nullptr) failing = &r;
    }
    if (failing == nullptr) return std::nullopt;
    const std::string why = failing->reply.size() > 10 ? failing->reply.substr(10) : failing->reason;
    const bool definite = failing->outcome == Outcome::Reject;
    if (summary.dry_run)
        return ending(Verdict::Kind::Accept, {}, Action::DryRun, (definite ? "would refuse: " : "would tempfail: ") + why,
                      std::move(summary));
    if (!definite) return ending(Verdict::Kind::Tempfail, "451 4.7.1 " + why, Action::Tempfailed, why, std::move(summary));
    return ending(Verdict::Kind::Reject, "550 5.7.1 " + why + "; the message was not delivered to any recipient",
                  Action::Refused, why, std::move(summary));
}

TransformOptions options_for(const Decision& d, const EnvelopeGroup& g, const PlanSettings& s) {
    TransformOptions o = s.transform;
    if (!s.cipher_auto) return o;
    std::vector<const std::vector<std::string>*> caps;
    for (size_t i : g.recipients) caps.push_back(&d.recipients[i].capabilities);
    o.envelope = choose_envelope(caps, o.envelope);
    return o;
}

// A group whose recipients get signed mail: sign only, or the signed entity in the envelope.
PlannedGroup plan_signed_group(const Decision& d, const EnvelopeGroup& g, const Message& m, const PlanSettings& s,
                               bool in_place, const std::shared_ptr<const Signer>& signer) {
    PlannedGroup p;
    p.kind = g.encrypted ? GroupKind::SignEncrypt : GroupKind::Sign;
    p.recipients = g.recipients;
    for (size_t i : g.recipients) p.addresses.push_back(d.recipients[i].address);
    p.certificates = g.certificates;
    p.options = options_for(d, g, s);
    p.signer = signer;
    p.sign_options = entity_options(*signer, s.sign);
    if (g.encrypted && s.archive) add_certificates(p.certificates, {*s.archive});
    const Message* msg = &m;
    if (g.encrypted) {
        p.write = [msg, in_place, signer, so = p.sign_options, certs = p.certificates, opts = p.options](crypto::ByteSink& out) {
            if (in_place) write_signed_encrypted_body(*msg, *signer, so, certs, opts, out);
            else write_signed_encrypted(*msg, *signer, so, certs, opts, out);
        };
    } else {
        p.write = [msg, in_place, signer, so = p.sign_options](crypto::ByteSink& out) {
            if (in_place) write_signed_body(*msg, *signer, so, "\r\n", out);
            else write_signed_message(*msg, *signer, so, "\r\n", out);
        };
    }
    return p;
}

PlannedGroup plan_group(const Decision& d, const EnvelopeGroup& g, const Message& m, const PlanSettings& s,
                        bool in_place, const std::shared_ptr<const Signer>& signer) {
    PlannedGroup p;
    p.kind = g.encrypted ? GroupKind::Encrypt : GroupKind::Plain;
    if (signer) return plan_signed_group(d, g, m, s, in_place, signer);
    p.recipients = g.recipients;
    for (size_t i : g.recipients) p.addresses.push_back(d.recipients[i].address);
    p.certificates = g.certificates;
    p.options = options_for(d, g, s);
    if (g.encrypted && s.archive) add_certificates(p.certificates, {*s.archive});
    const Message* msg = &m;
    if (in_place && g.encrypted) {
        p.write = [msg, certs = p.certificates, opts = p.options](crypto::ByteSink& out) {
            write_encrypted_body(*msg, certs, opts, out);
        };
    } else if (g.encrypted) {
        p.write = [msg, certs = p.certificates, opts = p.options](crypto::ByteSink& out) {
            write_transformed(*msg, plan_encryption(*msg, opts), certs, opts, out);
        };
    } else if (!in_place) {
        p.write = [msg](crypto::ByteSink& out) { write_plain(*msg, out); };
    }
    return p;
}

// The refusal when an encrypted envelope would exceed the MTA's message_size_limit.
std::optional<MessagePlan> too_big_once_encrypted(const MessagePlan& p, const Message& m, const PlanSettings& s) {
    if (s.mta_size_limit == 0) return std::nullopt;
    for (const PlannedGroup& g : p.groups) {
        if (!encrypts(g.kind)) continue;
        const unsigned long long size = encrypted_size_estimate(m, g.certificates.size());
        if (size <= s.mta_size_limit) continue;
        return ending(Verdict::Kind::Reject,
                      "552 5.3.4 the message is too big once encrypted: encryption makes a message about 1.4 times "
                      "larger (" + std::to_string(m.body.size()) + " bytes would become about " + std::to_string(size) +
                          ", the limit is " + std::to_string(s.mta_size_limit) + ")",
                      Action::Refused, "too big once encrypted (about " + std::to_string(size) + " bytes)", p.summary);
    }
    return std::nullopt;
}

void summarise_groups(MessagePlan& p, const Decision& d) {
    MessageSummary& s = p.summary;
    s.copies = p.groups.empty() ? 0 : p.groups.size() - 1;
    s.recipients = p.groups.empty() ? 0 : p.groups[0].recipients.size();
    if (p.groups.empty() || !encrypts(p.groups[0].kind)) {
        s.action = Action::DeliveredPlain;
        return;
    }
    const PlannedGroup& g = p.groups[0];
    s.action = Action::Encrypted;
    s.cipher = crypto::cipher_name(g.options.envelope.cipher);
    s.oaep = g.options.envelope.rsa_padding == crypto::RsaPadding::Oaep;
    // The recipients' own certificates: the archive is counted apart (s.archived), and is not
    // subtracted when it was already one of them.
    s.certificates = d.groups[0].certificates.size();
}

MessageSummary start_summary(const TransactionFacts& f, const PlanSettings& s) {
    MessageSummary sum;
    sum.dry_run = s.dry_run;
    sum.lookup_wait = f.lookup_wait;
    for (const lookup::LookupResult& r : f.lookups)
        if (r.outcome == lookup::Outcome::Found && !r.source.empty() &&
            std::find(sum.sources.begin(), sum.sources.end(), r.source) == sum.sources.end())
            sum.sources.push_back(r.source);
    return sum;
}

// Whether each recipient's mail is signed: its policy entry's +sign / +nosign, else the sender
// domain's default, else crypto.sign.
std::vector<bool> signing_wanted(const Decision& d, const std::string& from, const PlanSettings& s) {
    std::vector<bool> out;
    const bool sender_default = sender_signs(from, s.sign);
    for (const RecipientDecision& r : d.recipients) out.push_back(r.sign.value_or(sender_default));
    return out;
}

// Splits every group whose recipients differ in signing into a signed and an unsigned one
// (the first keeps the group's place); returns the groups with their signing flag.
std::vector<std::pair<EnvelopeGroup, bool>> split_by_signing(const Decision& d, const std::vector<bool>& sign) {
    std::vector<std::pair<EnvelopeGroup, bool>> out;
    std::vector<std::pair<EnvelopeGroup, bool>> extra;
    for (const EnvelopeGroup& g : d.groups) {
        EnvelopeGroup yes{g.encrypted, {}, {}};
        EnvelopeGroup no{g.encrypted, {}, {}};
        for (size_t i : g.recipients) {
            EnvelopeGroup& to = sign[i] ? yes : no;
            to.recipients.push_back(i);
            add_certificates(to.certificates, d.recipients[i].certificates);
        }
        if (yes.recipients.empty() || no.recipients.empty()) {
            out.emplace_back(g, !yes.recipients.empty());
            continue;
        }
        out.emplace_back(std::move(yes), true);
        extra.emplace_back(std::move(no), false);
    }
    out.insert(out.end(), extra.begin(), extra.end());
    return out;
}

MessagePlan plan_delivery(const Decision& d, Message& m, Stripped stripped, const TransactionFacts& f,
                          const PlanSettings& s, MessageSummary sum) {
    m.headers = std::move(stripped.headers);
    std::string from = from_address(m);
    if (from.empty()) from = base::to_lower(f.sender);
    std::vector<bool> sign = signing_wanted(d, from, s);
    std::shared_ptr<const Signer> signer;
    if (std::any_of(sign.begin(), sign.end(), [](bool b) { return b; })) {
        std::string why;
        if (std::optional<Signer> chosen = choose_signer(f.keys, from, s.sign, std::time(nullptr), &why)) {
            signer = std::make_shared<const Signer>(std::move(*chosen));
        } else if (s.sign.missing_tempfail) {
            return ending(Verdict::Kind::Tempfail, "451 4.7.0 the message cannot be signed now; try again later",
                          Action::Tempfailed, "no usable signing key for <" + from + ">: " + why, std::move(sum));
        } else {
            sum.signing = "not signed (crypto.sign_missing = send_unsigned): no usable signing key for <" + from + ">: " + why;
            sum.signing_failed = true;
            sign.assign(sign.size(), false);
        }
    }
    MessagePlan p;
    p.summary = std::move(sum);
    const auto groups = split_by_signing(d, sign);
    for (size_t gi = 0; gi < groups.size(); ++gi)
        p.groups.push_back(plan_group(d, groups[gi].first, m, s, gi == 0, groups[gi].second ? signer : nullptr));
    for (size_t gi = 1; gi < p.groups.size(); ++gi)
        p.remove.insert(p.remove.end(), p.groups[gi].recipients.begin(), p.groups[gi].recipients.end());
    p.summary.archived = s.archive.has_value() && std::any_of(p.groups.begin(), p.groups.end(), [](const PlannedGroup& g) {
        return encrypts(g.kind);
    });
    Decision regrouped = d;
    regrouped.groups.clear();
    for (const auto& g : groups) regrouped.groups.push_back(g.first);
    summarise_groups(p, regrouped);
    if (signer) {
        const size_t n = static_cast<size_t>(std::count_if(p.groups.begin(), p.groups.end(), [](const PlannedGroup& g) {
            return g.signer != nullptr;
        }));
        p.summary.signing = "signed by <" + signer->address + "> (" + signer->rule + ", key " + signer->entry->id + ", " +
                            crypto::micalg(s.sign.digest) + ", " +
                            (s.sign.format == SignFormat::Detached ? "multipart/signed" : "opaque") + ") for " +
                            std::to_string(n) + " envelope(s)";
    }
    if (auto refused = too_big_once_encrypted(p, m, s)) return std::move(*refused);
    p.header_edits = std::move(stripped.edits);
    if (!p.groups.empty() && encrypts(p.groups[0].kind)) {
        const Plan outer = plan_encryption(m, p.groups[0].options);
        p.header_edits.insert(p.header_edits.end(), outer.edits.begin(), outer.edits.end());
    } else if (!p.groups.empty() && p.groups[0].kind == GroupKind::Sign) {
        const Plan outer = plan_signing(m, p.groups[0].sign_options);
        p.header_edits.insert(p.header_edits.end(), outer.edits.begin(), outer.edits.end());
    }
    return p;
}

// Inbound S/MIME to local recipients (keys.decrypt_domains): their copy is decrypted in
// place (groups[0]); the others are split off with the message as it was sent. nullopt: not
// this path (decryption off, no local recipient, or no envelope in the message).
std::optional<MessagePlan> plan_decryption(const TransactionFacts& f, const Message& m, const PlanSettings& s,
                                           MessageSummary& sum) {
    if (!s.decrypt.enabled || !may_be_encrypted(m)) return std::nullopt;
    PlannedGroup local{GroupKind::Decrypt, {}, {}, {}, s.transform, {}, {}, {}};
    PlannedGroup external{GroupKind::Plain, {}, {}, {}, s.transform, {}, {}, {}};
    for (size_t i = 0; i < f.recipients.size(); ++i) {
        PlannedGroup& g = decrypts_for(f.recipients[i], s.decrypt) ? local : external;
        g.recipients.push_back(i);
        g.addresses.push_back(f.recipients[i]);
    }
    if (local.recipients.empty()) return std::nullopt;
    auto opened = std::make_shared<OpenedMessage>(open_inbound(m, f.keys, s.decrypt));
    if (opened->result == OpenedMessage::Result::NotEncrypted) return std::nullopt;
    const bool ok = opened->result == OpenedMessage::Result::Decrypted;
    sum.decryption = std::string(base::trim(opened->trace_value()));
    if (s.dry_run)
        return ending(Verdict::Kind::Accept, {}, Action::DryRun,
                      (ok ? "would decrypt for " : "would mark as not decrypted for ") +
                          std::to_string(local.recipients.size()) + " local recipient(s) (" + sum.decryption + ")" +
                          (ok ? std::string() : ": " + opened->detail),
                      std::move(sum));
    MessagePlan p;
    p.summary = std::move(sum);
    p.summary.action = ok ? Action::Decrypted : Action::DecryptFailed;
    p.summary.reason = opened->detail;
    p.summary.recipients = local.recipients.size();
    p.header_edits = decryption_edits(m, *opened);
    if (ok) local.write = [opened](crypto::ByteSink& out) { write_opened_body(*opened, out); };
    const Message* msg = &m;
    if (!external.recipients.empty()) external.write = [msg](crypto::ByteSink& out) { write_plain(*msg, out); };
    p.groups.push_back(std::move(local));
    if (!external.recipients.empty()) {
        p.remove = external.recipients;
        p.groups.push_back(std::move(external));
    }
    p.summary.copies = p.groups.size() - 1;
    p.decrypted = std::move(opened);
    return p;
}

}  // namespace

const char* to_string(GroupKind k) noexcept {
    switch (k) {
    case GroupKind::Plain: return "plain";
    case GroupKind::Encrypt: return "encrypt";
    case GroupKind::Decrypt: return "decrypt";
    case GroupKind::Sign: return "sign";
    case GroupKind::SignEncrypt: return "sign+encrypt";
    }
    return "?";
}

bool encrypts(GroupKind k) noexcept { return k == GroupKind::Encrypt || k == GroupKind::SignEncrypt; }

MessagePlan plan_message(TransactionFacts& f, const PlanSettings& s) {
    const auto started = std::chrono::steady_clock::now();
    MessageSummary sum = start_summary(f, s);
    Message& m = *f.message;
    // Forged trace headers go first, from every form of every message (core/inbound_decrypt.hpp).
    std::vector<HeaderEdit> unforged = s.decrypt.enabled ? strip_decryption_headers(m.headers) : std::vector<HeaderEdit>{};
    MessagePlan p;
    if (f.too_big) {
        p = ending(Verdict::Kind::Reject,
                   "552 5.3.4 message exceeds milter.max_message_size (" + std::to_string(s.max_message_size) + " bytes)",
                   Action::Refused, "too big", std::move(sum));
    } else if (std::optional<MessagePlan> inbound = plan_decryption(f, m, s, sum)) {
        p = std::move(*inbound);
    } else if (const Plan outer = plan_encryption(m, s.transform); outer.kind == PlanKind::PassThrough) {
        p = ending(Verdict::Kind::Accept, {}, Action::PassedUnchanged, outer.reason, std::move(sum));
    } else {
        const Decision d = decide(m, f.recipients, s.policy, s.policy_options, f.lookups);
        sum.decisions = d.recipients;
        if (auto failed = aggregate_failures(d, sum)) {
            p = std::move(*failed);
        } else if (s.dry_run) {
            p = ending(Verdict::Kind::Accept, {}, Action::DryRun, "message left unchanged", std::move(sum));
        } else {
            p = plan_delivery(d, m, strip_triggers(m.headers, s.policy_options), f, s, std::move(sum));
        }
    }
    if (!unforged.empty() && p.changes_message()) p.header_edits.insert(p.header_edits.begin(), unforged.begin(), unforged.end());
    p.summary.planning =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
    return p;
}

MessagePlan reinjection_failed(MessagePlan plan, const std::string& why) {
    return ending(Verdict::Kind::Tempfail,
                  "451 4.7.0 the message could not be split for its recipients (re-injection failed); try again later",
                  Action::Tempfailed, "re-injection failed: " + why, std::move(plan.summary));
}

}  // namespace sealmilter::core
