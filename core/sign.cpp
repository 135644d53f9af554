// core/sign.cpp — outbound signing (see sign.hpp).
#include "core/sign.hpp"

#include "base/ascii.hpp"
#include "core/mime.hpp"
#include "core/policy.hpp"

#include <gmime/gmime.h>
#include <openssl/rand.h>

#include <stdexcept>

namespace sealmilter::core {
namespace {

struct GObjectUnref {
    void operator()(void* p) const noexcept {
        if (p != nullptr) g_object_unref(p);
    }
};
struct FormatOptionsFree {
    void operator()(GMimeFormatOptions* p) const noexcept { g_mime_format_options_free(p); }
};

constexpr std::string_view kPreamble = "This is an S/MIME signed message.";
constexpr std::string_view kSignaturePart =
    "Content-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "Content-Disposition: attachment; filename=\"smime.p7s\"\r\n";

std::string domain_of(std::string_view address) {
    const size_t at = address.rfind('@');
    return at == std::string_view::npos ? std::string() : base::to_lower(address.substr(at + 1));
}

// `text` with the given line ending between lines (the fixed parts above are written CRLF).
std::string with_eol(std::string_view text, const std::string& eol) {
    if (eol == "\r\n") return std::string(text);
    std::string out;
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') continue;
        if (text[i] == '\n') {
            out += eol;
            continue;
        }
        out += text[i];
    }
    return out;
}

crypto::KeyMaterial material_for(const Signer& s) {
    crypto::KeyMaterial k;
    if (!s.key || !s.key->key) throw crypto::CryptoError("the signer has no private key");
    if (EVP_PKEY_up_ref(s.key->key.get()) != 1) crypto::throw_openssl("EVP_PKEY_up_ref");
    k.key.reset(s.key->key.get());
    k.certificate = s.entry->certificate;
    k.chain = s.entry->chain;
    return k;
}

// Every leaf part that is not already quoted-printable or base64 gets the best 7-bit encoding
// for its content (GMime's choice: QP for mostly-text, base64 otherwise). g_mime_object_encode
// alone leaves a part declared 7bit as it is, even with a line longer than 998 octets.
void force_7bit(GMimeObject* o, int depth) {
    if (o == nullptr || depth > 64) return;
    if (GMIME_IS_MULTIPART(o)) {
        GMimeMultipart* mp = GMIME_MULTIPART(o);
        for (int i = 0; i < g_mime_multipart_get_count(mp); ++i) force_7bit(g_mime_multipart_get_part(mp, i), depth + 1);
    } else if (GMIME_IS_MESSAGE_PART(o)) {
        GMimeMessage* inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));
        if (inner != nullptr) force_7bit(g_mime_message_get_mime_part(inner), depth + 1);
    } else if (GMIME_IS_PART(o)) {
        GMimePart* part = GMIME_PART(o);
        const GMimeContentEncoding e = g_mime_part_get_content_encoding(part);
        if (e != GMIME_CONTENT_ENCODING_BASE64 && e != GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE)
            g_mime_part_set_content_encoding(part, g_mime_part_get_best_content_encoding(part, GMIME_ENCODING_CONSTRAINT_7BIT));
    }
}

// The content header section + canonical body re-encoded by GMime so every part is 7-bit.
std::string reencoded_7bit(std::string_view head, const Message& m) {
    ensure_gmime();
    std::string entity(head);
    CrlfCanonicalizer canon;
    std::string scratch;
    m.body.for_each_chunk([&](std::string_view c) { entity += canon.feed(c, scratch); });
    std::unique_ptr<GMimeStream, GObjectUnref> in(g_mime_stream_mem_new_with_buffer(entity.data(), entity.size()));
    std::unique_ptr<GMimeParser, GObjectUnref> parser(g_mime_parser_new_with_stream(in.get()));
    std::unique_ptr<GMimeObject, GObjectUnref> part(g_mime_parser_construct_part(parser.get(), nullptr));
    if (!part) throw std::runtime_error("the message's MIME structure cannot be parsed for 7-bit re-encoding");
    force_7bit(part.get(), 0);
    g_mime_object_encode(part.get(), GMIME_ENCODING_CONSTRAINT_7BIT);
    std::unique_ptr<GMimeFormatOptions, FormatOptionsFree> fmt(g_mime_format_options_new());
    g_mime_format_options_set_newline_format(fmt.get(), GMIME_NEWLINE_FORMAT_DOS);
    std::unique_ptr<GMimeStream, GObjectUnref> out(g_mime_stream_mem_new());
    if (g_mime_object_write_to_stream(part.get(), fmt.get(), out.get()) < 0)
        throw std::runtime_error("GMime could not write the re-encoded entity");
    GByteArray* bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(out.get()));  // borrowed
    const std::string_view written(reinterpret_cast<const char*>(bytes->data), bytes->len);
    CrlfCanonicalizer again;
    std::string canonical;
    return std::string(again.feed(written, canonical));
}

void canonical_chunks(std::string_view head, const Message& m, const std::function<void(std::string_view)>& fn) {
    if (needs_7bit(m)) {
        fn(reencoded_7bit(head, m));
        return;
    }
    fn(head);
    CrlfCanonicalizer canon;
    std::string scratch;
    m.body.for_each_chunk([&](std::string_view c) { fn(canon.feed(c, scratch)); });
}

std::string content_head(const Message& m) {
    std::string head;
    for (const HeaderField& f : m.headers)
        if (is_content_header(f.name)) head += serialize_field(f, "\r\n");
    return head + "\r\n";
}

// Detached: preamble, the signed part (signed and sent as it is), the signature part.
void write_detached(std::string_view head, const Message& m, const Signer& signer, const SignedEntityOptions& o,
                    const std::string& eol, crypto::ByteSink& out) {
    const std::string open = std::string(kPreamble) + eol + eol + "--" + o.boundary + eol;
    out.write(open.data(), open.size());
    crypto::StringSink der;
    const crypto::KeyMaterial key = material_for(signer);
    crypto::SignOptions so = o.sign;
    so.detached = true;
    crypto::SignedDataWriter w(key, so, der);
    canonical_chunks(head, m, [&](std::string_view c) {
        w.write(c.data(), c.size());
        out.write(c.data(), c.size());
    });
    w.finish();
    const std::string sig_head = eol + "--" + o.boundary + eol + with_eol(kSignaturePart, eol) + eol;
    out.write(sig_head.data(), sig_head.size());
    crypto::Base64LineWriter b64(out, eol);
    b64.write(der.out.data(), der.out.size());
    b64.finish();
    const std::string close = "--" + o.boundary + "--" + eol;
    out.write(close.data(), close.size());
}

void write_opaque(std::string_view head, const Message& m, const Signer& signer, const SignedEntityOptions& o,
                  const std::string& eol, crypto::ByteSink& out) {
    crypto::Base64LineWriter b64(out, eol);
    const crypto::KeyMaterial key = material_for(signer);
    crypto::SignOptions so = o.sign;
    so.detached = false;
    crypto::SignedDataWriter w(key, so, b64);
    canonical_chunks(head, m, [&](std::string_view c) { w.write(c.data(), c.size()); });
    w.finish();
    b64.finish();
}

void write_body_with_head(std::string_view head, const Message& m, const Signer& signer, const SignedEntityOptions& o,
                          const std::string& eol, crypto::ByteSink& out) {
    if (o.format == SignFormat::Detached) {
        if (o.boundary.empty()) throw std::logic_error("multipart/signed without a boundary");
        write_detached(head, m, signer, o, eol, out);
    } else {
        write_opaque(head, m, signer, o, eol, out);
    }
}

struct EnvelopeSink final : crypto::ByteSink {
    explicit EnvelopeSink(crypto::EnvelopeWriter& w) : writer(w) {}
    void write(const char* data, size_t len) override { writer.write(data, len); }
    crypto::EnvelopeWriter& writer;
};

}  // namespace

const std::vector<std::string>& gateway_capabilities() {
    // RFC 8551 §2.5.2, in order of preference: what inbound decryption (core/decrypt) opens.
    static const std::vector<std::string> caps = {"aes256-gcm", "aes256-cbc", "aes128-cbc", "rsaes-oaep"};
    return caps;
}

std::map<std::string, std::string> parse_domain_keys(const std::vector<std::string>& entries) {
    std::map<std::string, std::string> out;
    for (const std::string& e : entries) {
        const size_t eq = e.find('=');
        const std::string domain = eq == std::string::npos ? std::string() : base::to_lower(base::trim(e.substr(0, eq)));
        const std::string address = eq == std::string::npos ? std::string() : base::to_lower(base::trim(e.substr(eq + 1)));
        const size_t at = address.find('@');
        if (domain.empty() || domain.find('@') != std::string::npos || at == std::string::npos || at == 0 ||
            at + 1 == address.size())
            throw std::invalid_argument("'" + e + "' is not DOMAIN=ADDRESS (e.g. bank.example=noreply@bank.example)");
        if (!out.emplace(domain, address).second) throw std::invalid_argument("domain '" + domain + "' appears twice");
    }
    return out;
}

bool sender_signs(std::string_view from, const SignSettings& s) {
    if (in_domains(from, s.nosign_domains)) return false;
    if (in_domains(from, s.sign_domains)) return true;
    return s.always;
}

std::optional<crypto::Certificate> encryption_preference(const keys::KeyRing& ring, const keys::KeyInfo& signer,
                                                          std::time_t now) {
    if (signer.certificate.encryption_unsuitability().empty()) return signer.certificate;
    for (const std::string& a : signer.addresses)
        for (const keys::KeyEntry& e : ring.for_address(a))  // newest first
            if (keys::effective_state(*e, now) == keys::KeyState::Active && e->certificate.encryption_unsuitability().empty())
                return e->certificate;
    return std::nullopt;
}

std::optional<Signer> choose_signer(const keys::KeyRing* ring, std::string_view from, const SignSettings& s,
                                    std::time_t now, std::string* why) {
    const auto fail = [&](std::string reason) -> std::optional<Signer> {
        if (why != nullptr) *why = std::move(reason);
        return std::nullopt;
    };
    if (ring == nullptr) return fail("no key store (keys.dir) is open");
    std::vector<std::pair<std::string, std::string>> candidates;  // address, rule
    if (!from.empty()) candidates.emplace_back(base::to_lower(from), "sender");
    if (const auto it = s.domain_keys.find(domain_of(from)); it != s.domain_keys.end())
        candidates.emplace_back(it->second, "crypto.sign_key_domains");
    if (!s.sign_key.empty()) candidates.emplace_back(base::to_lower(s.sign_key), "crypto.sign_key");
    std::string reasons;
    for (const auto& [address, rule] : candidates) {
        const keys::KeyEntry entry = keys::active_key_for(*ring, address, now);
        if (!entry) {
            reasons += (reasons.empty() ? "" : "; ") + address + ": no active key";
            continue;
        }
        std::string error;
        keys::PrivateKey key = ring->private_key(*entry, &error);
        if (!key || !key->key) {
            reasons += (reasons.empty() ? "" : "; ") + address + ": private key unusable (" + error + ")";
            continue;
        }
        Signer signer{entry, std::move(key), encryption_preference(*ring, *entry, now), address, rule};
        return signer;
    }
    return fail(candidates.empty() ? "no From address and no crypto.sign_key" : reasons);
}

std::string from_address(const Message& m) {
    ensure_gmime();
    for (const HeaderField& f : m.headers) {
        if (!is_header_named(f, "From")) continue;
        std::unique_ptr<InternetAddressList, GObjectUnref> list(internet_address_list_parse(nullptr, f.value.c_str()));
        for (int i = 0; list && i < internet_address_list_length(list.get()); ++i) {
            InternetAddress* a = internet_address_list_get_address(list.get(), i);  // borrowed
            if (INTERNET_ADDRESS_IS_MAILBOX(a)) {
                const char* addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a));
                if (addr != nullptr && *addr != '\0') return base::to_lower(addr);
            }
        }
        return {};
    }
    return {};
}

bool needs_7bit(const Message& m) {
    bool dirty = false;
    size_t line = 0;
    m.body.for_each_chunk([&](std::string_view c) {
        for (const char ch : c) {
            const auto u = static_cast<unsigned char>(ch);
            if (u == 0 || u >= 0x80) dirty = true;
            line = ch == '\n' ? 0 : line + 1;
            if (line > 999) dirty = true;  // 998 octets + CR
        }
    });
    return dirty;
}

void for_each_canonical_chunk(const Message& m, const std::function<void(std::string_view)>& fn) {
    canonical_chunks(content_head(m), m, fn);
}

std::string make_boundary() {
    unsigned char r[16];
    if (RAND_bytes(r, sizeof r) != 1) crypto::throw_openssl("RAND_bytes");
    static constexpr char kHex[] = "0123456789abcdef";
    std::string b = "=_sealmilter_";
    for (const unsigned char c : r) {
        b += kHex[c >> 4];
        b += kHex[c & 15];
    }
    return b;
}

std::vector<HeaderField> signed_entity_fields(const SignedEntityOptions& o) {
    if (o.format == SignFormat::Opaque)
        return {{"Content-Type", " application/pkcs7-mime; smime-type=signed-data; name=\"smime.p7m\""},
                {"Content-Transfer-Encoding", " base64"},
                {"Content-Disposition", " attachment; filename=\"smime.p7m\""}};
    return {{"Content-Type", std::string(" multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=") +
                                 crypto::micalg(o.sign.digest) + "; boundary=\"" + o.boundary + "\""}};
}

void write_signed_body(const Message& m, const Signer& signer, const SignedEntityOptions& o, const std::string& eol,
                       crypto::ByteSink& out) {
    write_body_with_head(content_head(m), m, signer, o, eol, out);
}

void write_signed_entity(const Message& m, const Signer& signer, const SignedEntityOptions& o, crypto::ByteSink& out) {
    std::string head;
    for (const HeaderField& f : signed_entity_fields(o)) head += serialize_field(f, "\r\n");
    head += "\r\n";
    out.write(head.data(), head.size());
    write_signed_body(m, signer, o, "\r\n", out);
}

Plan plan_signing(const Message& m, const SignedEntityOptions& o) { return plan_outer(m, signed_entity_fields(o)); }

void write_signed_message(const Message& m, const Signer& signer, const SignedEntityOptions& o, const std::string& eol,
                          crypto::ByteSink& out) {
    const Plan plan = plan_signing(m, o);
    std::string head;
    for (const HeaderField& f : apply_edits(m.headers, plan.edits)) head += serialize_field(f, eol);
    head += eol;
    out.write(head.data(), head.size());
    write_signed_body(m, signer, o, eol, out);
}

void write_signed_encrypted_body(const Message& m, const Signer& signer, const SignedEntityOptions& so,
                                 const std::vector<crypto::Certificate>& recipients, const TransformOptions& options,
                                 crypto::ByteSink& out) {
    crypto::Base64LineWriter base64(out, options.eol);
    crypto::EnvelopeWriter envelope(recipients, options.envelope, base64);
    EnvelopeSink inner(envelope);
    // The signed entity's own header section; with header protection the full header section
    // (RFC 9788) is what the signature covers, inside the signed part.
    std::string head;
    for (const HeaderField& f : signed_entity_fields(so)) head += serialize_field(f, "\r\n");
    head += "\r\n";
    inner.write(head.data(), head.size());
    write_body_with_head(inner_header_section(m, options), m, signer, so, "\r\n", inner);
    envelope.finish();
    base64.finish();
}

void write_signed_encrypted(const Message& m, const Signer& signer, const SignedEntityOptions& so,
                            const std::vector<crypto::Certificate>& recipients, const TransformOptions& options,
                            crypto::ByteSink& out) {
    const Plan plan = plan_encryption(m, options);
    std::string head;
    for (const HeaderField& f : apply_edits(m.headers, plan.edits)) head += serialize_field(f, options.eol);
    head += options.eol;
    out.write(head.data(), head.size());
    write_signed_encrypted_body(m, signer, so, recipients, options, out);
}

std::string dkim_before_us(std::string_view milters, std::string_view our_socket) {
    // What identifies ours in Postfix's syntax: ":PORT" of inet:PORT@HOST, or the unix path.
    std::string ours;
    if (our_socket.rfind("inet", 0) == 0) {
        const size_t colon = our_socket.find(':');
        const size_t at = our_socket.find('@');
        if (colon != std::string_view::npos && at != std::string_view::npos && at > colon)
            ours = ":" + std::string(our_socket.substr(colon + 1, at - colon - 1));
    } else if (const size_t colon = our_socket.find(':'); colon != std::string_view::npos) {
        ours = std::string(our_socket.substr(colon + 1));
    }
    if (ours.empty()) return {};
    std::vector<std::string> entries;
    std::string cur;
    for (const char c : milters) {
        if (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '{' || c == '}') {
            if (!cur.empty()) entries.push_back(cur);
            cur.clear();
        } else {
            cur += c;
        }
    }
    if (!cur.empty()) entries.push_back(cur);
    std::string dkim;
    for (const std::string& e : entries) {
        const bool is_ours = e.size() >= ours.size() && e.compare(e.size() - ours.size(), ours.size(), ours) == 0;
        if (is_ours) return dkim;
        if (dkim.empty() && base::ifind(e, "dkim") != std::string::npos) dkim = e;
    }
    return {};
}

SignedEntityOptions entity_options(const Signer& signer, const SignSettings& s) {
    SignedEntityOptions o;
    o.format = s.format;
    o.sign.digest = s.digest;
    o.sign.detached = s.format == SignFormat::Detached;
    o.sign.capabilities = gateway_capabilities();
    o.sign.encryption_key_preference = signer.encryption;
    if (o.format == SignFormat::Detached) o.boundary = make_boundary();
    return o;
}

}  // namespace sealmilter::core
