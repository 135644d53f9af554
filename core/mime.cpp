// core/mime.cpp — Content-Type parsing via GMime, canonicalisation, encryption detection.
#include "core/mime.hpp"

#include "base/ascii.hpp"
#include "crypto/base64.hpp"

#include <gmime/gmime.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <memory>
#include <mutex>

namespace sealmilter::core {
namespace {

struct GObjectUnref {
    void operator()(void* p) const noexcept { g_object_unref(p); }
};
using ContentTypePtr = std::unique_ptr<GMimeContentType, GObjectUnref>;

using base::to_lower;

std::string unfold(std::string_view v) {
    std::string out;
    out.reserve(v.size());
    for (char c : v)
        if (c != '\r' && c != '\n') out += c;
    return out;
}

// DER prefixes of the ContentInfo contentType OIDs (RFC 5652 §3, RFC 5083 §1.1).
constexpr unsigned char kOidEnveloped[] = {0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x03};
constexpr unsigned char kOidAuthEnveloped[] = {0x06, 0x0B, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D,
                                               0x01, 0x09, 0x10, 0x01, 0x17};

// Decodes the first bytes of a base64 body (enough for the ContentInfo's OID).
std::string decode_base64_head(const std::string& text) {
    crypto::Base64Decoder d;
    std::string out;
    d.feed(text, out);
    return out;
}

// ContentInfo ::= SEQUENCE { contentType OID, ... }: the OID follows the SEQUENCE header.
bool content_info_is(const std::string& der, const unsigned char* oid, size_t oid_len) {
    if (der.size() < 2 || static_cast<unsigned char>(der[0]) != 0x30) return false;
    size_t off = 2;
    const auto len0 = static_cast<unsigned char>(der[1]);
    if (len0 > 0x80) off += len0 & 0x7F;  // long form; 0x80 = indefinite (BER)
    return der.size() >= off + oid_len && std::memcmp(der.data() + off, oid, oid_len) == 0;
}

EncryptedForm detect_pkcs7(const Message& m, const ContentType& ct) {
    const std::string der = decode_base64_head(m.body.head(256));
    if (content_info_is(der, kOidEnveloped, sizeof kOidEnveloped)) return EncryptedForm::SmimeEnveloped;
    if (content_info_is(der, kOidAuthEnveloped, sizeof kOidAuthEnveloped)) return EncryptedForm::SmimeAuthEnveloped;
    // Anything else — a signed CMS, or a body that is not CMS at all whatever its label says —
    // is not encrypted and gets encrypted: a label never lets plaintext through.
    (void)ct;
    return EncryptedForm::None;
}

// True when some line of the body starts with the OpenPGP armor header (RFC 4880 §6.2).
// Inline PGP: the whole text body is one armored PGP message, with nothing but whitespace
// around it. A text that merely contains or quotes an armored block is plaintext.
bool is_pgp_armor_only(const Message& m) {
    static constexpr std::string_view kBegin = "-----BEGIN PGP MESSAGE-----";
    static constexpr std::string_view kEnd = "-----END PGP MESSAGE-----";
    enum class State { Before, Inside, After, Bad } state = State::Before;
    std::string line;
    const auto end_line = [&] {
        std::string_view l(line);
        while (!l.empty() && (l.back() == '\r' || l.back() == ' ' || l.back() == '\t')) l.remove_suffix(1);
        const bool blank = l.find_first_not_of(" \t") == std::string_view::npos;
        switch (state) {
        case State::Before: state = blank ? State::Before : (l == kBegin ? State::Inside : State::Bad); break;
        case State::Inside: if (l == kEnd) state = State::After; break;
        case State::After: if (!blank) state = State::Bad; break;
        case State::Bad: break;
        }
        line.clear();
    };
    m.body.for_each_chunk([&](std::string_view chunk) {
        for (char c : chunk) {
            if (state == State::Bad) return;
            if (c == '\n') {
                end_line();
            } else if (line.size() < 256) {
                line += c;  // armor lines are short; a longer line only needs its first bytes
            }
        }
    });
    if (!line.empty()) end_line();
    return state == State::After;
}

}  // namespace

void ensure_gmime() {
    static std::once_flag once;
    std::call_once(once, [] { g_mime_init(); });
}

std::string ContentType::param(const std::string& name) const {
    auto it = params.find(to_lower(name));
    return it == params.end() ? std::string() : it->second;
}

std::optional<ContentType> parse_content_type(std::string_view raw_value) {
    ensure_gmime();
    const std::string v = unfold(raw_value);
    ContentTypePtr ct(g_mime_content_type_parse(nullptr, v.c_str()));
    if (!ct) return std::nullopt;
    ContentType out;
    const char* type = g_mime_content_type_get_media_type(ct.get());
    const char* sub = g_mime_content_type_get_media_subtype(ct.get());
    out.type = to_lower(type != nullptr ? type : "");
    out.subtype = to_lower(sub != nullptr ? sub : "");
    GMimeParamList* params = g_mime_content_type_get_parameters(ct.get());  // borrowed
    const int n = params != nullptr ? g_mime_param_list_length(params) : 0;
    for (int i = 0; i < n; ++i) {
        GMimeParam* p = g_mime_param_list_get_parameter_at(params, i);  // borrowed
        const char* name = g_mime_param_get_name(p);
        const char* value = g_mime_param_get_value(p);
        if (name != nullptr) out.params.emplace(to_lower(name), value != nullptr ? value : "");
    }
    return out;
}

ContentType top_level_content_type(const Message& m) {
    for (const HeaderField& f : m.headers) {
        if (!is_header_named(f, "Content-Type")) continue;
        if (auto ct = parse_content_type(f.value); ct && !ct->type.empty()) return *ct;
        break;
    }
    return ContentType{"text", "plain", {{"charset", "us-ascii"}}};
}

std::string_view CrlfCanonicalizer::feed(std::string_view in, std::string& scratch) {
    if (in.empty()) return in;
    // Fast path: every LF already has its CR (the milter's bodies always do).
    bool bare = false;
    for (size_t p = 0; !bare;) {
        const void* hit = std::memchr(in.data() + p, '\n', in.size() - p);
        if (hit == nullptr) break;
        const size_t nl = static_cast<size_t>(static_cast<const char*>(hit) - in.data());
        bare = nl > 0 ? in[nl - 1] != '\r' : !prev_cr_;
        p = nl + 1;
    }
    if (!bare) {
        prev_cr_ = in.back() == '\r';
        return in;
    }
    scratch.clear();
    std::string& out = scratch;
    size_t pos = 0;
    // Copy runs between LFs wholesale; only bare LFs get a CR.
    while (pos < in.size()) {
        const void* hit = std::memchr(in.data() + pos, '\n', in.size() - pos);
        if (hit == nullptr) {
            out.append(in.substr(pos));
            prev_cr_ = in.back() == '\r';
            return out;
        }
        const size_t nl = static_cast<size_t>(static_cast<const char*>(hit) - in.data());
        out.append(in.substr(pos, nl - pos));
        const bool cr_before = nl > pos ? in[nl - 1] == '\r' : prev_cr_;
        if (!cr_before) out += '\r';
        out += '\n';
        prev_cr_ = false;
        pos = nl + 1;
    }
    return out;
}

const char* to_string(EncryptedForm f) noexcept {
    switch (f) {
    case EncryptedForm::None: return "none";
    case EncryptedForm::SmimeEnveloped: return "S/MIME enveloped-data";
    case EncryptedForm::SmimeAuthEnveloped: return "S/MIME authEnveloped-data";
    case EncryptedForm::PgpMime: return "PGP/MIME multipart/encrypted";
    case EncryptedForm::PgpInline: return "inline PGP";
    }
    return "?";
}

EncryptedForm detect_encrypted(const Message& m) {
    const ContentType ct = top_level_content_type(m);
    if (ct.type == "application" && (ct.subtype == "pkcs7-mime" || ct.subtype == "x-pkcs7-mime"))
        return detect_pkcs7(m, ct);
    // RFC 3156: PGP/MIME names its protocol; other multipart/encrypted labels are not trusted.
    if (ct.type == "multipart" && ct.subtype == "encrypted" && to_lower(ct.param("protocol")) == "application/pgp-encrypted")
        return EncryptedForm::PgpMime;
    if (ct.type == "text" && is_pgp_armor_only(m)) return EncryptedForm::PgpInline;
    return EncryptedForm::None;
}

}  // namespace sealmilter::core
