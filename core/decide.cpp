// core/decide.cpp — recipient verdicts and envelope grouping (see decide.hpp).
#include "core/decide.hpp"

#include "base/ascii.hpp"
#include "core/mime.hpp"

#include <gmime/gmime.h>

#include <algorithm>
#include <memory>

namespace sealmilter::core {
namespace {

struct GObjectUnref {
    void operator()(void* p) const noexcept { g_object_unref(p); }
};

void collect(InternetAddressList* list, std::vector<std::string>& out, int depth) {
    if (list == nullptr || depth > 4) return;  // groups do not nest in RFC 5322; bound anyway
    const int n = internet_address_list_length(list);
    for (int i = 0; i < n; ++i) {
        InternetAddress* a = internet_address_list_get_address(list, i);  // borrowed
        if (INTERNET_ADDRESS_IS_MAILBOX(a)) {
            const char* addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a));
            if (addr != nullptr && *addr != '\0') out.push_back(base::to_lower(addr));
        } else if (INTERNET_ADDRESS_IS_GROUP(a)) {
            collect(internet_address_group_get_members(INTERNET_ADDRESS_GROUP(a)), out, depth + 1);
        }
    }
}

// The one text of a `require` recipient's refusal, at RCPT time and (prefixed to "; the
// message was not delivered to any recipient") at end of data.
std::string reply_for(Outcome o, bool lookup_failed, const std::string& address) {
    if (o == Outcome::Reject)
        return "550 5.7.1 <" + address + ">: encryption is required and no usable certificate was found";
    return "451 4.7.1 <" + address + ">: encryption is required but " +
           (lookup_failed ? "the certificate lookup failed" : "no usable certificate was found") + "; try again later";
}

void decide_one(RecipientDecision& r, const lookup::LookupResult* lr, const PolicyOptions& o) {
    if (r.mode == Mode::Never) {
        r.outcome = Outcome::Plain;
        if (r.reason.empty()) r.reason = "policy never";
        return;
    }
    const bool found = lr != nullptr && lr->outcome == lookup::Outcome::Found && !lr->selected.empty();
    const bool failed = lr == nullptr || lr->outcome == lookup::Outcome::TempError;
    if (found) {
        r.outcome = Outcome::Encrypt;
        r.certificates = lr->selected;
        r.capabilities = lr->capabilities;
        r.reason = "certificate via " + lr->source;
        return;
    }
    r.reason = lr != nullptr ? lr->reason : "no lookup result";
    if (!failed && issues_on_miss(r, o)) {  // a definite miss: our CA issues one
        r.outcome = Outcome::Issue;
        r.reason = "a certificate will be issued (" + r.reason + ")";
        return;
    }
    if (r.mode == Mode::Require || r.mode == Mode::Issue) {  // issue: a failed lookup tempfails as require
        r.outcome = failed || o.no_cert_tempfail ? Outcome::Tempfail : Outcome::Reject;
        r.reply = reply_for(r.outcome, failed, r.address);
        return;
    }
    if (failed && !o.lookup_error_pass) {  // opportunistic, source error, default tempfail
        r.outcome = Outcome::Tempfail;
        r.reply = "451 4.7.1 <" + r.address + ">: the certificate lookup failed; try again later";
        return;
    }
    r.outcome = Outcome::Plain;
}

}  // namespace

const char* to_string(Outcome o) noexcept {
    switch (o) {
    case Outcome::Encrypt: return "encrypt";
    case Outcome::Plain: return "plain";
    case Outcome::Reject: return "reject";
    case Outcome::Tempfail: return "tempfail";
    case Outcome::Issue: return "issue";
    }
    return "?";
}

std::vector<std::string> visible_recipients(const Message& m) {
    ensure_gmime();
    std::vector<std::string> out;
    for (const HeaderField& f : m.headers) {
        if (!is_header_named(f, "To") && !is_header_named(f, "Cc")) continue;
        std::unique_ptr<InternetAddressList, GObjectUnref> list(internet_address_list_parse(nullptr, f.value.c_str()));
        collect(list.get(), out, 0);
    }
    return out;
}

bool has_trigger(const Message& m, const PolicyOptions& o) {
    for (const HeaderField& f : m.headers) {
        if (!o.subject_tag.empty() && is_header_named(f, "Subject") &&
            base::ifind(f.value, o.subject_tag) != std::string::npos)
            return true;
        if (!o.trigger_header.empty() && is_header_named(f, o.trigger_header) && base::iequals(base::trim(f.value), "yes"))
            return true;
    }
    return false;
}

bool issues_on_miss(const RecipientDecision& d, const PolicyOptions& o) noexcept {
    return d.mode == Mode::Issue || (d.mode == Mode::Require && o.no_cert_issue);
}

RecipientDecision classify(const std::string& address, const PolicyTable& policy, const PolicyOptions& o, bool raised) {
    RecipientDecision r;
    r.address = address;
    if (in_domains(address, o.internal_domains)) {
        r.mode = Mode::Never;
        r.reason = "internal domain";
        return r;
    }
    const PolicyMatch match = policy.lookup(address, o.default_mode);
    r.mode = match.mode;
    r.sign = match.sign;
    r.policy_key = match.key;
    // A trigger raises opportunistic to require; an explicit `never` stays never.
    if (raised && r.mode == Mode::Opportunistic) {
        r.mode = Mode::Require;
        r.reason = "raised to require by the message's trigger";
    }
    return r;
}

RecipientDecision decide_recipient(const std::string& address, const PolicyTable& policy, const PolicyOptions& o,
                                   bool raised, const lookup::LookupResult* lookup) {
    RecipientDecision r = classify(address, policy, o, raised);
    decide_one(r, lookup, o);
    return r;
}

std::optional<std::string> rcpt_reply(const RecipientDecision& d) {
    if ((d.mode != Mode::Require && d.mode != Mode::Issue) || (d.outcome != Outcome::Reject && d.outcome != Outcome::Tempfail)) return std::nullopt;
    return d.reply;
}

Decision decide(const Message& m, const std::vector<std::string>& envelope_rcpts, const PolicyTable& policy,
                const PolicyOptions& o, const std::vector<lookup::LookupResult>& lookups) {
    Decision d;
    d.raised_to_require = has_trigger(m, o);
    const std::vector<std::string> visible = visible_recipients(m);
    for (size_t i = 0; i < envelope_rcpts.size(); ++i) {
        RecipientDecision r = decide_recipient(envelope_rcpts[i], policy, o, d.raised_to_require,
                                               i < lookups.size() ? &lookups[i] : nullptr);
        r.bcc = std::find(visible.begin(), visible.end(), base::to_lower(envelope_rcpts[i])) == visible.end();
        d.recipients.push_back(std::move(r));
    }
    // Groups: encrypted To/Cc by key type, then plain, then one per encrypted Bcc.
    EnvelopeGroup rsa{true, {}, {}};
    EnvelopeGroup ec{true, {}, {}};
    EnvelopeGroup plain{false, {}, {}};
    std::vector<EnvelopeGroup> bcc;
    const auto add_certs = [](EnvelopeGroup& g, const std::vector<crypto::Certificate>& certs) {
        add_certificates(g.certificates, certs);
    };
    for (size_t i = 0; i < d.recipients.size(); ++i) {
        RecipientDecision& r = d.recipients[i];
        if (r.outcome == Outcome::Plain) plain.recipients.push_back(i);
        if (r.outcome != Outcome::Encrypt) continue;
        const bool has_rsa = std::any_of(r.certificates.begin(), r.certificates.end(),
                                         [](const auto& c) { return c.key_kind() == crypto::KeyKind::Rsa; });
        if (has_rsa) {  // a recipient with RSA and EC certificates goes with RSA, RSA certs only
            r.certificates.erase(std::remove_if(r.certificates.begin(), r.certificates.end(),
                                                [](const auto& c) { return c.key_kind() != crypto::KeyKind::Rsa; }),
                                 r.certificates.end());
        }
        if (r.bcc) {
            EnvelopeGroup g{true, {i}, {}};
            add_certs(g, r.certificates);
            bcc.push_back(std::move(g));
            continue;
        }
        EnvelopeGroup& g = has_rsa ? rsa : ec;
        g.recipients.push_back(i);
        add_certs(g, r.certificates);
    }
    for (EnvelopeGroup* g : {&rsa, &ec, &plain})
        if (!g->recipients.empty()) d.groups.push_back(std::move(*g));
    for (EnvelopeGroup& g : bcc) d.groups.push_back(std::move(g));
    return d;
}

size_t add_certificates(std::vector<crypto::Certificate>& to, const std::vector<crypto::Certificate>& certs) {
    size_t added = 0;
    for (const crypto::Certificate& c : certs) {
        const bool dup = std::any_of(to.begin(), to.end(), [&](const crypto::Certificate& h) {
            return h.fingerprint_sha256() == c.fingerprint_sha256();
        });
        if (dup) continue;
        to.push_back(c);
        ++added;
    }
    return added;
}

crypto::EnvelopeOptions choose_envelope(const std::vector<const std::vector<std::string>*>& capabilities,
                                        crypto::EnvelopeOptions base) {
    static const std::vector<std::string> unknown = {"aes256-cbc", "aes128-cbc"};  // what every client reads
    const auto all_have = [&](const char* name) {
        return !capabilities.empty() && std::all_of(capabilities.begin(), capabilities.end(), [&](const auto* caps) {
            const std::vector<std::string>& c = caps == nullptr || caps->empty() ? unknown : *caps;
            return std::find(c.begin(), c.end(), name) != c.end();
        });
    };
    if (all_have("aes256-gcm")) {
        base.cipher = crypto::Cipher::Aes256Gcm;
    } else if (all_have("aes256-cbc")) {
        base.cipher = crypto::Cipher::Aes256Cbc;
    } else {
        base.cipher = crypto::Cipher::Aes128Cbc;  // every S/MIME receiver must read it (RFC 8551 §2.7)
    }
    base.rsa_padding = all_have("rsaes-oaep") ? crypto::RsaPadding::Oaep : crypto::RsaPadding::Pkcs1;
    return base;
}

}  // namespace sealmilter::core
