// core/decrypt.cpp — S/MIME decryption of a whole message (see decrypt.hpp).
#include "core/decrypt.hpp"

#include "core/mime.hpp"

#include <openssl/evp.h>

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

}  // namespace

crypto::DecryptOutcome decrypt_message(const Message& m, const crypto::KeyMaterial& key,
                                       const std::string& eol, crypto::ByteSink& out) {
    const ContentType ct = top_level_content_type(m);
    if (ct.type != "application" || (ct.subtype != "pkcs7-mime" && ct.subtype != "x-pkcs7-mime"))
        return {crypto::DecryptStatus::NotEncrypted,
                "not an S/MIME message (Content-Type is " + ct.type + "/" + ct.subtype + ")"};
    bool ok = false;
    const std::string der = decode_base64_body(m.body, &ok);
    if (!ok || der.empty()) return {crypto::DecryptStatus::NotCms, "the S/MIME body is not valid base64"};
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

}  // namespace sealmilter::core
