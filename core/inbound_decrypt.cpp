// core/inbound_decrypt.cpp — inbound decryption for local users (see inbound_decrypt.hpp).
#include "core/inbound_decrypt.hpp"

#include "base/ascii.hpp"
#include "core/decrypt.hpp"
#include "core/entity_walk.hpp"
#include "core/mime.hpp"
#include "core/policy.hpp"
#include "crypto/signed_data.hpp"

#include <algorithm>
#include <map>

namespace sealmilter::core {
namespace {

// A value that goes into our own header field: printable ASCII, no parameter separator.
std::string header_safe(std::string_view v) {
    std::string out;
    for (char c : v)
        if (c > 0x20 && c < 0x7f && c != ';' && c != '"') out += c;
    return out;
}

std::string failure_reason(const RingDecryptOutcome& r, const keys::KeyRing& ring) {
    // NotCms (bad base64, not CMS) and Failed (the right key, undecryptable content): damaged.
    if (r.outcome.status != crypto::DecryptStatus::NoMatchingRecipient) return "damaged";
    // A key the ring has but could not hand out (token absent, wrapped key damaged).
    const bool known = std::any_of(r.unmatched.begin(), r.unmatched.end(),
                                   [&](const crypto::RecipientId& id) { return !ring.find(id).empty(); });
    return known ? "key-unavailable" : "no-key";
}

// The inner entity (the fields that came from inside, the body) as one CRLF text.
std::string inner_text(const OpenedMessage& o) {
    std::string text;
    for (size_t i = o.inner_begin; i < o.message->headers.size(); ++i)
        text += serialize_field(o.message->headers[i], "\r\n");
    text += "\r\n";
    o.message->body.for_each_chunk([&](std::string_view c) { text.append(c); });
    return text;
}

std::optional<crypto::SignedData> signature_of(const MimeEntity& e, bool& verified) {
    const std::string type = e.media_type();
    if (type == "multipart/signed") {
        const std::vector<std::string_view> parts = split_multipart(e.body(), e.content_type()->param("boundary"));
        if (parts.size() != 2) return std::nullopt;
        const MimeEntity sig = MimeEntity::parse(parts[1]);
        const std::string st = sig.media_type();
        if (st != "application/pkcs7-signature" && st != "application/x-pkcs7-signature") return std::nullopt;
        std::optional<crypto::SignedData> sd = crypto::SignedData::parse(sig.decoded_body(), nullptr);
        verified = sd && sd->verify_detached(parts[0]);
        return sd;
    }
    if (type == "application/pkcs7-mime" || type == "application/x-pkcs7-mime") {
        const std::string der = e.decoded_body();
        if (crypto::cms_type(der).kind != crypto::CmsKind::Signed) return std::nullopt;
        std::optional<crypto::SignedData> sd = crypto::SignedData::parse(der, nullptr);
        verified = sd && sd->verify_opaque().has_value();
        return sd;
    }
    return std::nullopt;
}

// A signature directly inside the envelope: verified over the decrypted bytes, its signer
// validated like a recipient's certificate. Invalid when it does not verify (or names no
// certificate), untrusted when it verifies but the signer's certificate does not validate.
void check_signature(OpenedMessage& o, const DecryptSettings& s) {
    if (o.message->body.size() > s.max_signature_size) return;
    // Only a signed entity is copied and parsed (a plain body of megabytes is not).
    const auto ct = std::find_if(o.message->headers.begin() + static_cast<std::ptrdiff_t>(o.inner_begin),
                                 o.message->headers.end(), [](const HeaderField& f) { return is_header_named(f, "Content-Type"); });
    if (ct == o.message->headers.end()) return;
    const std::string type = base::to_lower(ct->value);
    if (type.find("multipart/signed") == std::string::npos && type.find("pkcs7-mime") == std::string::npos) return;
    const std::string text = inner_text(o);
    const MimeEntity e = MimeEntity::parse(text);
    if (!e.content_type()) return;
    bool verified = false;
    const std::optional<crypto::SignedData> sd = signature_of(e, verified);
    if (!sd) return;
    const std::vector<crypto::SignerDetails> signers = sd->signers();
    const crypto::SignerDetails* first = signers.empty() ? nullptr : &signers.front();
    std::vector<std::string> names;
    if (first != nullptr && first->certificate) names = first->certificate->email_addresses();
    o.signer = names.empty() ? "" : header_safe(base::to_lower(names.front()));
    if (!verified || first == nullptr || !first->certificate) {
        o.signature = "invalid";
        return;
    }
    bool trusted = false;
    if (s.validator != nullptr && !o.signer.empty()) {
        const std::vector<lookup::Verdict> v = s.validator->validate(o.signer, {*first->certificate});
        trusted = !v.empty() && v.front().usable;
    }
    o.signature = trusted ? "valid" : "untrusted";
}

bool has_protected_headers(const Message& m) { return top_level_content_type(m).param("hp") == "cipher"; }

}  // namespace

bool decrypts_for(const std::string& address, const DecryptSettings& s) {
    return s.enabled && in_domains(address, s.domains);
}

bool may_be_encrypted(const Message& m) {
    const ContentType ct = top_level_content_type(m);
    const std::string type = ct.type + "/" + ct.subtype;
    return type == "application/pkcs7-mime" || type == "application/x-pkcs7-mime" || type == "multipart/signed";
}

std::string OpenedMessage::trace_value() const {
    if (result == Result::Failed) return " result=failed; reason=" + reason;
    std::string v = " result=decrypted; key=" + (key ? key->sha256() : std::string("?"));
    if (!signature.empty()) v += "; signature=" + signature + "; signer=" + (signer.empty() ? "unknown" : signer);
    return v;
}

OpenedMessage open_inbound(const Message& m, const keys::KeyRing* ring, const DecryptSettings& s) {
    OpenedMessage o;
    if (ring == nullptr) {
        o.result = OpenedMessage::Result::Failed;
        o.reason = "unavailable";
        o.detail = "no key store is configured";
        return o;
    }
    o.message = std::make_unique<Message>(s.memory_threshold, s.spool_dir);
    MessageSplitter splitter(*o.message);
    SplitterSink sink(splitter);
    const RingDecryptOutcome r = decrypt_message(m, *ring, "\r\n", sink);
    if (r.outcome.status == crypto::DecryptStatus::NotEncrypted) {
        o.message.reset();
        return o;
    }
    if (r.outcome.status != crypto::DecryptStatus::Ok) {
        o.result = OpenedMessage::Result::Failed;
        o.reason = failure_reason(r, *ring);
        o.detail = r.outcome.detail;
        o.message.reset();
        return o;
    }
    splitter.finish();
    o.result = OpenedMessage::Result::Decrypted;
    o.key = r.key;
    // decrypt_message writes the outer fields without the content headers, then the inner
    // entity's; with RFC 9788 protected headers only the inner ones (core/decrypt.hpp).
    o.protected_headers = has_protected_headers(*o.message);
    if (!o.protected_headers)
        o.inner_begin = static_cast<size_t>(
            std::count_if(m.headers.begin(), m.headers.end(), [](const HeaderField& f) { return !is_content_header(f.name); }));
    o.inner_begin = std::min(o.inner_begin, o.message->headers.size());
    check_signature(o, s);
    return o;
}

std::vector<HeaderEdit> decryption_edits(const Message& outer, const OpenedMessage& o) {
    std::vector<HeaderEdit> edits;
    edits.push_back({HeaderEdit::Op::Insert, kDecryptionHeader, 0, o.trace_value()});
    if (o.result != OpenedMessage::Result::Decrypted) return edits;
    // Outer content headers go, highest occurrence first per name.
    std::map<std::string, int> count;
    std::vector<HeaderEdit> deletes;
    for (const HeaderField& f : outer.headers) {
        const std::string name(base::trim(f.name));
        const int index = ++count[base::to_lower(name)];
        if (is_content_header(f.name)) deletes.push_back({HeaderEdit::Op::Delete, name, index, {}});
    }
    edits.insert(edits.end(), deletes.rbegin(), deletes.rend());
    std::map<std::string, bool> changed;
    for (size_t i = o.inner_begin; i < o.message->headers.size(); ++i) {
        const HeaderField& f = o.message->headers[i];
        const std::string lower = base::to_lower(base::trim(f.name));
        if (o.protected_headers && !is_content_header(f.name) && count.count(lower) != 0 && !changed[lower]) {
            // A protected field replaces the first outer one of its name (RFC 9788 §4.10).
            changed[lower] = true;
            const auto outer_first = std::find_if(outer.headers.begin(), outer.headers.end(),
                                                  [&](const HeaderField& h) { return is_header_named(h, lower); });
            if (outer_first->value != f.value) edits.push_back({HeaderEdit::Op::Change, std::string(base::trim(f.name)), 1, f.value});
            continue;
        }
        edits.push_back({HeaderEdit::Op::Append, std::string(base::trim(f.name)), 0, f.value});
    }
    return edits;
}

void write_opened_body(const OpenedMessage& o, crypto::ByteSink& out) {
    if (!o.message) return;
    o.message->body.for_each_chunk([&](std::string_view c) { out.write(c.data(), c.size()); });
}

std::vector<HeaderEdit> strip_decryption_headers(std::vector<HeaderField>& headers) {
    std::vector<HeaderEdit> edits;
    int index = 0;
    std::vector<HeaderField> kept;
    for (HeaderField& f : headers) {
        if (is_header_named(f, kDecryptionHeader)) {
            edits.push_back({HeaderEdit::Op::Delete, std::string(base::trim(f.name)), ++index, {}});
            continue;
        }
        kept.push_back(std::move(f));
    }
    headers = std::move(kept);
    std::reverse(edits.begin(), edits.end());
    return edits;
}

}  // namespace sealmilter::core
