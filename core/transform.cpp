// core/transform.cpp — planning and streaming the S/MIME transform (see transform.hpp).
#include "core/transform.hpp"

#include "base/ascii.hpp"

#include <algorithm>
#include <map>
#include <stdexcept>

namespace sealmilter::core {
namespace {

constexpr std::string_view kCtEnveloped = " application/pkcs7-mime; smime-type=enveloped-data; name=\"smime.p7m\"";
constexpr std::string_view kCtAuthEnveloped =
    " application/pkcs7-mime; smime-type=authEnveloped-data; name=\"smime.p7m\"";
constexpr std::string_view kCte = " base64";
constexpr std::string_view kCd = " attachment; filename=\"smime.p7m\"";

bool is_trace_field(std::string_view name) {
    return base::iequals(base::trim(name), "Received") || base::iequals(base::trim(name), "Return-Path");
}

// The three fields that describe the new outer body, with their new values.
struct OuterMime {
    std::string_view name;
    std::string_view value;
    bool seen = false;
};

// Orders edits the way index-based milter calls need them: changes first, then deletes of
// each name from the highest occurrence down (so earlier deletes never shift later ones),
// then appends in order.
void order_edits(std::vector<HeaderEdit>& edits) {
    std::stable_sort(edits.begin(), edits.end(), [](const HeaderEdit& a, const HeaderEdit& b) {
        if (a.op != b.op) return static_cast<int>(a.op) < static_cast<int>(b.op);
        if (a.op == HeaderEdit::Op::Delete) return a.index > b.index;
        return false;
    });
}

std::string with_hp_cipher(std::string_view raw_value) {
    std::string v(raw_value);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t' || v.back() == ';')) v.pop_back();
    return v + "; hp=\"cipher\"";
}

void append_protected_headers(const Message& m, const TransformOptions& options, std::string& out) {
    // RFC 9788 §2: the payload carries the full header section; Content-Type marks it hp="cipher".
    bool ct_done = false;
    for (const HeaderField& f : m.headers) {
        if (is_trace_field(f.name)) continue;
        if (!ct_done && is_header_named(f, "Content-Type")) {
            out += serialize_field(HeaderField{f.name, with_hp_cipher(f.value)}, "\r\n");
            ct_done = true;
            continue;
        }
        out += serialize_field(f, "\r\n");
    }
    if (!ct_done) out += "Content-Type: text/plain; charset=us-ascii; hp=\"cipher\"\r\n";
    // RFC 9788 §2.2: HP-Outer records each non-structural field the outer message shows.
    const Plan outer = plan_encryption(m, options);
    for (const HeaderField& f : apply_edits(m.headers, outer.edits)) {
        if (is_content_header(f.name) || is_header_named(f, "MIME-Version") || is_trace_field(f.name)) continue;
        out += serialize_field(HeaderField{"HP-Outer", " " + std::string(base::trim(f.name)) + ":" + f.value}, "\r\n");
    }
}

}  // namespace

Plan plan_encryption(const Message& m, const TransformOptions& options) {
    if (const EncryptedForm form = detect_encrypted(m); form != EncryptedForm::None) {
        Plan plan;
        plan.kind = PlanKind::PassThrough;
        plan.reason = std::string("already encrypted (") + to_string(form) + ")";
        return plan;
    }
    const std::vector<HeaderField> outer = {
        {"Content-Type", std::string(is_authenticated(options.envelope.cipher) ? kCtAuthEnveloped : kCtEnveloped)},
        {"Content-Transfer-Encoding", std::string(kCte)},
        {"Content-Disposition", std::string(kCd)}};
    return plan_outer(m, outer, options.protect_headers ? options.protected_subject : std::string());
}

Plan plan_outer(const Message& m, const std::vector<HeaderField>& fields, const std::string& protected_subject) {
    Plan plan;
    plan.kind = PlanKind::Encrypt;
    std::vector<OuterMime> outer;
    outer.reserve(fields.size());
    for (const HeaderField& f : fields) outer.push_back({f.name, f.value});
    bool have_mime_version = false;
    std::map<std::string, int> occurrence;
    for (const HeaderField& f : m.headers) {
        const int index = ++occurrence[base::to_lower(base::trim(f.name))];
        if (is_header_named(f, "MIME-Version")) have_mime_version = true;
        if (!is_content_header(f.name)) {
            if (!protected_subject.empty() && index == 1 && is_header_named(f, "Subject"))
                plan.edits.push_back({HeaderEdit::Op::Change, "Subject", 1, " " + protected_subject});
            continue;
        }
        auto slot = std::find_if(outer.begin(), outer.end(),
                                 [&](const OuterMime& o) { return !o.seen && is_header_named(f, o.name); });
        if (slot != outer.end()) {
            slot->seen = true;
            plan.edits.push_back({HeaderEdit::Op::Change, std::string(slot->name), index, std::string(slot->value)});
        } else {
            plan.edits.push_back({HeaderEdit::Op::Delete, std::string(base::trim(f.name)), index, {}});
        }
    }
    if (!have_mime_version) plan.edits.push_back({HeaderEdit::Op::Append, "MIME-Version", 0, " 1.0"});
    for (const OuterMime& o : outer)
        if (!o.seen) plan.edits.push_back({HeaderEdit::Op::Append, std::string(o.name), 0, std::string(o.value)});
    order_edits(plan.edits);
    return plan;
}

std::string inner_header_section(const Message& m, const TransformOptions& options) {
    std::string out;
    if (options.protect_headers) {
        append_protected_headers(m, options, out);
    } else {
        for (const HeaderField& f : m.headers)
            if (is_content_header(f.name)) out += serialize_field(f, "\r\n");
    }
    out += "\r\n";
    return out;
}

void write_encrypted_body(const Message& m, const std::vector<crypto::Certificate>& recipients,
                          const TransformOptions& options, crypto::ByteSink& out) {
    crypto::Base64LineWriter base64(out, options.eol);
    crypto::EnvelopeWriter envelope(recipients, options.envelope, base64);
    const std::string head = inner_header_section(m, options);
    envelope.write(head.data(), head.size());
    CrlfCanonicalizer canon;
    std::string buf;
    m.body.for_each_chunk([&](std::string_view chunk) {
        const std::string_view canonical = canon.feed(chunk, buf);
        envelope.write(canonical.data(), canonical.size());
    });
    envelope.finish();
    base64.finish();
}

std::vector<HeaderField> apply_edits(const std::vector<HeaderField>& original,
                                     const std::vector<HeaderEdit>& edits) {
    std::vector<HeaderField> fields = original;
    std::vector<bool> removed(original.size(), false);
    std::vector<HeaderField> appended;
    std::vector<const HeaderEdit*> inserted;
    const auto locate = [&](const HeaderEdit& e) -> size_t {
        int seen = 0;
        for (size_t i = 0; i < original.size(); ++i)
            if (is_header_named(original[i], e.name) && ++seen == e.index) return i;
        throw std::logic_error("header edit names a field that does not exist: " + e.name);
    };
    for (const HeaderEdit& e : edits) {
        switch (e.op) {
        case HeaderEdit::Op::Change: fields[locate(e)] = HeaderField{e.name, e.value}; break;
        case HeaderEdit::Op::Delete: removed[locate(e)] = true; break;
        case HeaderEdit::Op::Append: appended.push_back(HeaderField{e.name, e.value}); break;
        case HeaderEdit::Op::Insert: inserted.push_back(&e); break;
        }
    }
    std::vector<HeaderField> out;
    for (size_t i = 0; i < fields.size(); ++i)
        if (!removed[i]) out.push_back(std::move(fields[i]));
    out.insert(out.end(), appended.begin(), appended.end());
    for (const HeaderEdit* e : inserted) {
        const size_t at = std::min(static_cast<size_t>(std::max(e->index, 0)), out.size());
        out.insert(out.begin() + static_cast<std::ptrdiff_t>(at), HeaderField{e->name, e->value});
    }
    return out;
}

void write_transformed(const Message& m, const Plan& plan, const std::vector<crypto::Certificate>& recipients,
                       const TransformOptions& options, crypto::ByteSink& out) {
    if (plan.kind != PlanKind::Encrypt) throw std::logic_error("write_transformed: plan does not encrypt");
    std::string head;
    for (const HeaderField& f : apply_edits(m.headers, plan.edits)) head += serialize_field(f, options.eol);
    head += options.eol;
    out.write(head.data(), head.size());
    write_encrypted_body(m, recipients, options, out);
}

}  // namespace sealmilter::core
