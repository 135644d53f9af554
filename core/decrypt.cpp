// core/decrypt.cpp — S/MIME decryption of a whole message (see decrypt.hpp).
#include "core/decrypt.hpp"

#include "core/mime.hpp"

#include <openssl/evp.h>

#include <optional>

namespace sealmilter::core {
namespace {

// Decodes a base64 body chunk by chunk (EVP_DecodeUpdate skips line breaks).
std::string decode_base64_body(const BodySpool& body, bool* ok) {
    std::string der;
    std::unique_ptr<EVP_ENCODE_CTX, crypto::Deleter<EVP_ENCODE_CTX_free>> ctx(EVP_ENCODE_CTX_new());
    if (!ctx) crypto::throw_openssl("EVP_ENCODE_CTX_new");
    EVP_DecodeInit(ctx.get());
    *ok = true;
    body.for_each_chunk([&](std::string_view chunk) {
        if (!*ok) return;
        const size_t old = der.size();
        der.resize(old + chunk.size() / 4 * 3 + 80);
        int n = 0;
        if (EVP_DecodeUpdate(ctx.get(), reinterpret_cast<unsigned char*>(der.data() + old), &n,
                             reinterpret_cast<const unsigned char*>(chunk.data()), static_cast<int>(chunk.size())) < 0)
            *ok = false;
        der.resize(old + static_cast<size_t>(std::max(n, 0)));
    });
    int n = 0;
    unsigned char tail[80];
    if (*ok && EVP_DecodeFinal(ctx.get(), tail, &n) < 0) *ok = false;
    if (*ok) der.append(reinterpret_cast<char*>(tail), static_cast<size_t>(n));
    crypto::drain_errors();
    return der;
}

// Feeds decrypted bytes straight into a MessageSplitter: the plaintext is never held whole.
class SplitterSink final : public crypto::ByteSink {
public:
    explicit SplitterSink(MessageSplitter& s) : splitter_(s) {}
    void write(const char* data, size_t len) override { splitter_.feed(data, len); }

private:
    MessageSplitter& splitter_;
};

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
    crypto::DecryptOutcome problem;  // status Ok when der is set
};

std::string body_string(const Message& m) {
    std::string out;
    m.body.for_each_chunk([&](std::string_view c) { out.append(c); });
    return out;
}

std::unique_ptr<Message> parse_entity(std::string_view bytes) {
    auto m = std::make_unique<Message>();
    MessageSplitter s(*m);
    s.feed(bytes.data(), bytes.size());
    s.finish();
    return m;
}

// RFC 2046 §5.1.1: the first body part of a multipart, without the line break that belongs
// to the following delimiter.
std::optional<std::string> first_part(const std::string& body, const std::string& boundary) {
    const std::string delim = "--" + boundary;
    const auto find_delim = [&](size_t from) {
        for (size_t p = body.find(delim, from); p != std::string::npos; p = body.find(delim, p + 1))
            if (p == 0 || body[p - 1] == '\n') return p;
        return std::string::npos;
    };
    const size_t open = find_delim(0);
    if (open == std::string::npos) return std::nullopt;
    const size_t start = body.find('\n', open);
    if (start == std::string::npos) return std::nullopt;
    const size_t next = find_delim(start + 1);
    if (next == std::string::npos) return std::nullopt;
    size_t end = next;
    if (end > start + 1 && body[end - 1] == '\n') --end;
    if (end > start + 1 && body[end - 1] == '\r') --end;
    return body.substr(start + 1, end - start - 1);
}

std::optional<std::string> signed_content(const std::string& der) {
    crypto::BIO_ptr in(BIO_new_mem_buf(der.data(), static_cast<int>(der.size())));
    crypto::CMS_ptr cms(in ? d2i_CMS_bio(in.get(), nullptr) : nullptr);
    crypto::drain_errors();
    if (!cms || OBJ_obj2nid(CMS_get0_type(cms.get())) != NID_pkcs7_signed) return std::nullopt;
    ASN1_OCTET_STRING** content = CMS_get0_content(cms.get());  // borrowed
    if (content == nullptr || *content == nullptr) return std::nullopt;  // detached
    return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(*content)),
                       static_cast<size_t>(ASN1_STRING_length(*content)));
}

Envelope find_envelope(const Message& outer) {
    const Message* cur = &outer;
    std::unique_ptr<Message> owned;
    constexpr int kMaxLayers = 8;  // bounded: hostile nesting cannot loop
    for (int layer = 0; layer < kMaxLayers; ++layer) {
        const ContentType ct = top_level_content_type(*cur);
        std::optional<std::string> inner;
        if (ct.type == "multipart" && ct.subtype == "signed") {
            inner = first_part(body_string(*cur), ct.param("boundary"));
        } else if (ct.type == "application" && (ct.subtype == "pkcs7-mime" || ct.subtype == "x-pkcs7-mime")) {
            bool ok = false;
            std::string der = decode_base64_body(cur->body, &ok);
            if (!ok || der.empty()) return {{}, {crypto::DecryptStatus::NotCms, "the S/MIME body is not valid base64"}};
            inner = signed_content(der);
            if (!inner) return {std::move(der), {crypto::DecryptStatus::Ok, {}}};
        } else {
            return {{}, {crypto::DecryptStatus::NotEncrypted,
                         "not an S/MIME message (Content-Type is " + ct.type + "/" + ct.subtype + ")"}};
        }
        if (!inner) return {{}, {crypto::DecryptStatus::NotEncrypted, "a signed layer without content"}};
        owned = parse_entity(*inner);
        cur = owned.get();
    }
    return {{}, {crypto::DecryptStatus::NotEncrypted, "more than 8 nested signature layers"}};
}

}  // namespace

crypto::DecryptOutcome decrypt_message(const Message& m, const crypto::KeyMaterial& key,
                                       const std::string& eol, crypto::ByteSink& out) {
    const Envelope env = find_envelope(m);
    if (env.problem.status != crypto::DecryptStatus::Ok) return env.problem;
    crypto::BIO_ptr in(BIO_new_mem_buf(env.der.data(), static_cast<int>(env.der.size())));
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

}  // namespace sealmilter::core
