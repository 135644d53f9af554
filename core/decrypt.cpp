// core/decrypt.cpp — S/MIME decryption of a whole message (see decrypt.hpp).
#include "core/decrypt.hpp"

#include "core/entity_walk.hpp"
#include "core/mime.hpp"
#include "crypto/signed_data.hpp"

#include <optional>

namespace sealmilter::core {
namespace {

// Rewrites CRLF to `eol` across chunk boundaries (a lone CR stays).
class EolWriter {
public:
    EolWriter(crypto::ByteSink& out, std::string eol) : out_(out), eol_(std::move(eol)) {}
    void write(std::string_view in) {
        std::string buf;
        for (char c : in) {
            if (pending_cr_) {
                pending_cr_ = false;
                if (c == '\n') { buf += eol_; continue; }
                buf += '\r';
            }
            if (c == '\r') { pending_cr_ = true; continue; }
            if (c == '\n') { buf += eol_; continue; }
            buf += c;
        }
        out_.write(buf.data(), buf.size());
    }
    void finish() {
        if (pending_cr_) out_.write("\r", 1);
        pending_cr_ = false;
    }

private:
    crypto::ByteSink& out_;
    std::string eol_;
    bool pending_cr_ = false;
};

bool has_protected_headers(const Message& inner) {
    const ContentType ct = top_level_content_type(inner);
    return ct.param("hp") == "cipher";
}

// The innermost CMS envelope, after peeling signature layers that wrap it (NSS and Outlook
// send "signed outside, encrypted inside" variants). Signatures are not verified here: this
// only finds the envelope; verification belongs to the harvest path.
struct Envelope {
    std::string der;
    crypto::DecryptOutcome problem{crypto::DecryptStatus::NotEncrypted, "more than 8 nested signature layers"};
};

// The message as one CRLF entity, the form core/entity_walk reads (one copy of the message:
// the envelope's DER is held whole for d2i anyway).
std::string crlf_text(const Message& m) {
    std::string text;
    for (const HeaderField& f : m.headers) text += serialize_field(f, "\r\n");
    text += "\r\n";
    CrlfCanonicalizer canon;
    std::string scratch;
    m.body.for_each_chunk([&](std::string_view c) { text.append(canon.feed(c, scratch)); });
    return text;
}

// One layer: a multipart/signed leads to its first part, an opaque signature to its content,
// an envelope ends the walk; anything else is not an S/MIME encrypted message.
Next peel(const MimeEntity& e, Envelope& env) {
    const std::optional<ContentType>& ct = e.content_type();
    const std::string type = ct && !ct->type.empty() ? e.media_type() : "text/plain";
    if (type == "multipart/signed") {
        std::vector<std::string_view> parts = Next::children(e).parts;
        if (!parts.empty()) return Next::into_parts({parts[0]});
        env.problem = {crypto::DecryptStatus::NotEncrypted, "a signed layer without content"};
    } else if (type == "application/pkcs7-mime" || type == "application/x-pkcs7-mime") {
        bool clean = false;
        std::string der = e.decoded_body(&clean);
        if (!clean || der.empty()) {
            env.problem = {crypto::DecryptStatus::NotCms, "the S/MIME body is not valid base64"};
            return Next::stop();
        }
        const std::optional<crypto::SignedData> sd = crypto::SignedData::parse(der, nullptr);
        const std::optional<std::string> inner = sd ? sd->content() : std::nullopt;
        if (inner) return Next::into(to_crlf(*inner));
        env.der = std::move(der);  // decrypt_envelope says what it is when it is no envelope
        env.problem = {crypto::DecryptStatus::Ok, {}};
    } else {
        env.problem = {crypto::DecryptStatus::NotEncrypted, "not an S/MIME message (Content-Type is " + type + ")"};
    }
    return Next::stop();
}

Envelope find_envelope(const Message& outer) {
    Envelope env;
    constexpr int kMaxLayers = 8;  // bounded: hostile nesting cannot loop
    walk_entities(crlf_text(outer), {kMaxLayers - 1, kMaxLayers}, [&](const MimeEntity& e, int) { return peel(e, env); });
    return env;
}

}  // namespace

namespace {

// Opens the envelope `der` of message `m` with `key` and writes the decrypted message.
crypto::DecryptOutcome write_decrypted(const Message& m, const std::string& der, const crypto::KeyMaterial& key,
                                       const std::string& eol, crypto::ByteSink& out) {
    crypto::BIO_ptr in(BIO_new_mem_buf(der.data(), static_cast<int>(der.size())));
    if (!in) crypto::throw_openssl("BIO_new_mem_buf");

    Message inner(m.body.on_disk() ? 0 : 1 << 20);
    MessageSplitter splitter(inner);
    SplitterSink sink(splitter);
    crypto::DecryptOutcome r = crypto::decrypt_envelope(in.get(), key, sink);
    if (r.status != crypto::DecryptStatus::Ok) return r;
    splitter.finish();

    const bool protected_headers = has_protected_headers(inner);
    std::string head;
    if (!protected_headers) {
        for (const HeaderField& f : m.headers)
            if (!is_content_header(f.name)) head += serialize_field(f, eol);
    }
    for (const HeaderField& f : inner.headers)
        if (!protected_headers || !is_header_named(f, "HP-Outer")) head += serialize_field(f, eol);
    head += eol;
    out.write(head.data(), head.size());
    EolWriter body(out, eol);
    inner.body.for_each_chunk([&](std::string_view c) { body.write(c); });
    body.finish();
    return r;
}

}  // namespace

crypto::DecryptOutcome decrypt_message(const Message& m, const crypto::KeyMaterial& key,
                                       const std::string& eol, crypto::ByteSink& out) {
    const Envelope env = find_envelope(m);
    if (env.problem.status != crypto::DecryptStatus::Ok) return env.problem;
    return write_decrypted(m, env.der, key, eol, out);
}

RingDecryptOutcome decrypt_message(const Message& m, const keys::KeyRing& ring, const std::string& eol,
                                   crypto::ByteSink& out) {
    RingDecryptOutcome r;
    const Envelope env = find_envelope(m);
    if (env.problem.status != crypto::DecryptStatus::Ok) {
        r.outcome = env.problem;
        return r;
    }
    std::vector<crypto::RecipientId> ids;
    r.outcome = crypto::inspect_envelope(env.der, ids);
    if (r.outcome.status != crypto::DecryptStatus::Ok) return r;
    std::string key_errors;
    for (const crypto::RecipientId& id : ids) {
        for (const keys::KeyEntry& entry : ring.find(id)) {
            std::string error;
            const keys::PrivateKey key = ring.private_key(*entry, &error);
            if (!key) {
                key_errors += "; key " + entry->id + ": " + error;
                continue;
            }
            // With the certificate set, decrypt_envelope matches the identifier before it writes
            // a byte: a name-hash collision is NoMatchingRecipient and the next candidate is tried.
            r.outcome = write_decrypted(m, env.der, *key, eol, out);
            if (r.outcome.status == crypto::DecryptStatus::NoMatchingRecipient) continue;
            if (r.outcome.status == crypto::DecryptStatus::Ok) r.key = entry;
            return r;
        }
    }
    r.outcome.status = crypto::DecryptStatus::NoMatchingRecipient;
    r.outcome.detail = "no key in the store matches";
    for (const crypto::RecipientId& id : ids) r.outcome.detail += (&id == ids.data() ? ": " : ", ") + id.describe();
    r.outcome.detail += key_errors;
    r.unmatched = ids;
    return r;
}

}  // namespace sealmilter::core
