// core/harvest.cpp — certificate harvesting from signed mail (see harvest.hpp).
#include "core/harvest.hpp"

#include "core/mime.hpp"
#include "crypto/ossl.hpp"
#include "lookup/source.hpp"

#include <gmime/gmime.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>

namespace sealmilter::core {
namespace {

using crypto::BIO_ptr;
using crypto::CMS_ptr;

constexpr const char* kOidSmimeCapabilities = "1.2.840.113549.1.9.15";
constexpr const char* kOidEncryptionKeyPreference = "1.2.840.113549.1.9.16.2.11";

struct Field {
    std::string name;   // lower case
    std::string value;  // unfolded, trimmed
};

struct Entity {
    std::vector<Field> fields;
    std::string_view raw;   // header section + body, CRLF (what a multipart/signed signs)
    std::string_view body;  // after the empty line
    const std::string* value(const char* name) const {
        for (const Field& f : fields)
            if (f.name == name) return &f.value;
        return nullptr;
    }
    size_t count(const char* name) const {
        return static_cast<size_t>(std::count_if(fields.begin(), fields.end(), [&](const Field& f) { return f.name == name; }));
    }
};

std::string lower(std::string s) {
    for (char& c : s)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return s;
}

std::string trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) s.remove_suffix(1);
    return std::string(s);
}

// Bare LF becomes CRLF; everything else stays (RFC 8551 §3.1.1 canonical form).
std::string to_crlf(std::string_view in) {
    std::string out;
    out.reserve(in.size() + in.size() / 32);
    for (size_t i = 0; i < in.size(); ++i) {
        if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r')) out += '\r';
        out += in[i];
    }
    return out;
}

// A CRLF entity: header fields up to the first empty line, then the body.
Entity parse_entity(std::string_view raw) {
    Entity e;
    e.raw = raw;
    size_t pos = 0;
    if (raw.substr(0, 2) == "\r\n") {  // no header fields at all
        e.body = raw.substr(2);
        return e;
    }
    while (pos < raw.size()) {
        size_t eol = raw.find("\r\n", pos);
        if (eol == std::string_view::npos) eol = raw.size();
        const std::string_view line = raw.substr(pos, eol - pos);
        pos = eol + 2;
        if (line.empty()) break;
        if ((line[0] == ' ' || line[0] == '\t') && !e.fields.empty()) {
            e.fields.back().value += " " + trim(line);
            continue;
        }
        const size_t colon = line.find(':');
        if (colon == std::string_view::npos) continue;  // not a field: ignored, as MUAs do
        e.fields.push_back({lower(trim(line.substr(0, colon))), trim(line.substr(colon + 1))});
    }
    e.body = pos < raw.size() ? raw.substr(pos) : std::string_view();
    return e;
}

// The body parts of a multipart body, each exactly as it stands between its delimiter line and
// the CRLF that precedes the next delimiter (RFC 2046 §5.1.1).
std::vector<std::string_view> split_multipart(std::string_view body, const std::string& boundary) {
    std::vector<std::string_view> parts;
    if (boundary.empty()) return parts;
    const std::string delim = "--" + boundary;
    size_t search = 0;
    std::optional<size_t> part_start;
    for (;;) {
        size_t at;
        if (search == 0 && body.substr(0, delim.size()) == delim) {
            at = 0;
        } else {
            const size_t hit = body.find("\r\n" + delim, search);
            if (hit == std::string_view::npos) break;
            at = hit + 2;
        }
        const size_t after = at + delim.size();
        const bool closing = body.substr(after, 2) == "--";
        size_t line_end = body.find("\r\n", after);
        // A delimiter line may carry transport padding only; anything else is body text.
        const std::string_view rest = body.substr(after, (line_end == std::string_view::npos ? body.size() : line_end) - after);
        if (!closing && rest.find_first_not_of(" \t") != std::string_view::npos) {
            search = after;
            continue;
        }
        if (part_start) parts.push_back(body.substr(*part_start, (at >= 2 ? at - 2 : 0) - *part_start));
        if (closing || line_end == std::string_view::npos) return parts;
        part_start = line_end + 2;
        search = line_end;
    }
    return parts;  // no closing delimiter: the parts seen so far
}

std::string decode_transfer(const Entity& e) {
    const std::string* cte = e.value("content-transfer-encoding");
    if (cte == nullptr || lower(*cte) != "base64") return std::string(e.body);
    std::string clean;
    clean.reserve(e.body.size());
    for (char c : e.body)
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '=')
            clean += c;
    std::string out(clean.size() / 4 * 3 + 3, '\0');
    EVP_ENCODE_CTX* ctx = EVP_ENCODE_CTX_new();
    if (ctx == nullptr) throw std::bad_alloc();
    EVP_DecodeInit(ctx);
    int n = 0;
    int total = 0;
    if (EVP_DecodeUpdate(ctx, reinterpret_cast<unsigned char*>(out.data()), &n,
                         reinterpret_cast<const unsigned char*>(clean.data()), static_cast<int>(clean.size())) < 0) {
        EVP_ENCODE_CTX_free(ctx);
        return {};
    }
    total = n;
    if (EVP_DecodeFinal(ctx, reinterpret_cast<unsigned char*>(out.data()) + total, &n) < 0) n = 0;
    EVP_ENCODE_CTX_free(ctx);
    out.resize(static_cast<size_t>(total + n));
    return out;
}

std::string openssl_error() {
    const unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e == 0) return "unknown OpenSSL error";
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    return buf;
}

std::string oid_text(const ASN1_OBJECT* o) {
    char buf[128];
    OBJ_obj2txt(buf, sizeof buf, o, 1);
    return buf;
}

std::string digest_name(CMS_SignerInfo* si) {
    X509_ALGOR* dig = nullptr;
    CMS_SignerInfo_get0_algs(si, nullptr, nullptr, &dig, nullptr);
    if (dig == nullptr) return "?";
    const int nid = OBJ_obj2nid(dig->algorithm);
    return nid != NID_undef ? OBJ_nid2sn(nid) : oid_text(dig->algorithm);
}

const ASN1_TYPE* signed_attribute(CMS_SignerInfo* si, const char* dotted) {
    ASN1_OBJECT* obj = OBJ_txt2obj(dotted, 1);
    if (obj == nullptr) return nullptr;
    const int loc = CMS_signed_get_attr_by_OBJ(si, obj, -1);
    ASN1_OBJECT_free(obj);
    if (loc < 0) return nullptr;
    X509_ATTRIBUTE* attr = CMS_signed_get_attr(si, loc);
    return attr != nullptr ? X509_ATTRIBUTE_get0_type(attr, 0) : nullptr;
}

std::vector<std::string> capabilities_of(CMS_SignerInfo* si) {
    std::vector<std::string> out;
    const ASN1_TYPE* t = signed_attribute(si, kOidSmimeCapabilities);
    if (t == nullptr || t->type != V_ASN1_SEQUENCE) return out;
    const unsigned char* p = t->value.sequence->data;
    X509_ALGORS* algs = d2i_X509_ALGORS(nullptr, &p, t->value.sequence->length);
    if (algs == nullptr) return out;
    for (int i = 0; i < sk_X509_ALGOR_num(algs); ++i)
        out.push_back(capability_name(oid_text(sk_X509_ALGOR_value(algs, i)->algorithm)));
    sk_X509_ALGOR_pop_free(algs, X509_ALGOR_free);
    return out;
}

// DER helpers for SMIMEEncryptionKeyPreference (RFC 8551 §2.5.3):
//   CHOICE { issuerAndSerialNumber [0] IMPLICIT, receipentKeyId [1] IMPLICIT,
//            subjectAltKeyIdentifier [2] IMPLICIT SubjectKeyIdentifier }
// Returns the tag number and the contents of the outer element.
std::optional<std::pair<int, std::string>> read_choice(const ASN1_TYPE* t) {
    // OpenSSL keeps a context-tagged attribute value as V_ASN1_OTHER holding its whole DER.
    if (t == nullptr || t->type != V_ASN1_OTHER || t->value.asn1_string == nullptr) return std::nullopt;
    const unsigned char* p = t->value.asn1_string->data;
    long len = 0;
    int tag = 0;
    int cls = 0;
    const long avail = t->value.asn1_string->length;
    const int rc = ASN1_get_object(&p, &len, &tag, &cls, avail);
    if ((rc & 0x80) != 0 || cls != V_ASN1_CONTEXT_SPECIFIC || len < 0 || len > avail) return std::nullopt;
    return std::make_pair(tag, std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(len)));
}

std::string issuer_and_serial_contents(X509* c) {
    unsigned char* name = nullptr;
    const int nl = i2d_X509_NAME(X509_get_issuer_name(c), &name);
    unsigned char* serial = nullptr;
    const int sl = i2d_ASN1_INTEGER(X509_get_serialNumber(c), &serial);
    std::string out;
    if (nl > 0 && sl > 0) {
        out.assign(reinterpret_cast<char*>(name), static_cast<size_t>(nl));
        out.append(reinterpret_cast<char*>(serial), static_cast<size_t>(sl));
    }
    OPENSSL_free(name);
    OPENSSL_free(serial);
    return out;
}

std::string key_id(X509* c) {
    const ASN1_OCTET_STRING* ski = X509_get0_subject_key_id(c);
    return ski != nullptr ? std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(ski)),
                                        static_cast<size_t>(ASN1_STRING_length(ski)))
                          : std::string();
}

// The certificate SMIMEEncryptionKeyPreference names, among the signature's certificates.
std::optional<crypto::Certificate> preferred_certificate(CMS_SignerInfo* si, CMS_ContentInfo* cms, std::string& note) {
    const ASN1_TYPE* t = signed_attribute(si, kOidEncryptionKeyPreference);
    if (t == nullptr) return std::nullopt;
    const auto choice = read_choice(t);
    if (!choice) {
        note = "SMIMEEncryptionKeyPreference present but unreadable";
        return std::nullopt;
    }
    std::string wanted = choice->second;
    if (choice->first == 1) {  // RecipientKeyIdentifier: SEQUENCE { subjectKeyIdentifier, ... }
        const unsigned char* p = reinterpret_cast<const unsigned char*>(wanted.data());
        long len = 0;
        int tag = 0;
        int cls = 0;
        if ((ASN1_get_object(&p, &len, &tag, &cls, static_cast<long>(wanted.size())) & 0x80) != 0 || tag != V_ASN1_OCTET_STRING) {
            note = "SMIMEEncryptionKeyPreference recipient key id unreadable";
            return std::nullopt;
        }
        wanted.assign(reinterpret_cast<const char*>(p), static_cast<size_t>(len));
    }
    STACK_OF(X509)* certs = CMS_get1_certs(cms);
    std::optional<crypto::Certificate> found;
    for (int i = 0; certs != nullptr && i < sk_X509_num(certs) && !found; ++i) {
        X509* c = sk_X509_value(certs, i);
        const bool match = choice->first == 0 ? issuer_and_serial_contents(c) == wanted : key_id(c) == wanted;
        if (match) {
            X509_up_ref(c);
            found.emplace(crypto::X509_ptr(c));
        }
    }
    if (certs != nullptr) sk_X509_pop_free(certs, X509_free);
    if (!found) note = "SMIMEEncryptionKeyPreference names a certificate the signature does not carry";
    return found;
}

class Walker {
public:
    Walker(const std::string& from, const HarvestOptions& o, HarvestReport& r) : from_(from), options_(o), report_(r) {}

    void entity(std::string_view raw, int depth) {
        if (depth > options_.max_depth) {
            note("nesting deeper than " + std::to_string(options_.max_depth) + " levels: not entered");
            return;
        }
        const Entity e = parse_entity(raw);
        const std::string* ctv = e.value("content-type");
        const std::optional<ContentType> ct = ctv != nullptr ? parse_content_type(*ctv) : std::nullopt;
        if (!ct) return;  // text/plain by default: nothing to find
        const std::string type = ct->type + "/" + ct->subtype;
        if (type == "multipart/signed") {
            multipart_signed(e, *ct, depth);
        } else if (ct->type == "multipart") {
            for (std::string_view part : split_multipart(e.body, ct->param("boundary"))) entity(part, depth + 1);
        } else if (type == "application/pkcs7-mime" || type == "application/x-pkcs7-mime") {
            pkcs7_mime(e, depth);
        }
    }

private:
    void note(const std::string& n) { report_.notes.push_back(n); }

    void multipart_signed(const Entity& e, const ContentType& ct, int depth) {
        const std::vector<std::string_view> parts = split_multipart(e.body, ct.param("boundary"));
        if (parts.size() != 2) {
            note("multipart/signed with " + std::to_string(parts.size()) + " parts: ignored");
            return;
        }
        const Entity sig = parse_entity(parts[1]);
        const std::string* sct = sig.value("content-type");
        const std::optional<ContentType> sig_ct = sct != nullptr ? parse_content_type(*sct) : std::nullopt;
        const std::string st = sig_ct ? sig_ct->type + "/" + sig_ct->subtype : "";
        if (st == "application/pkcs7-signature" || st == "application/x-pkcs7-signature") {
            const std::string der = decode_transfer(sig);
            const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
            CMS_ptr cms(d2i_CMS_ContentInfo(nullptr, &p, static_cast<long>(der.size())));
            if (!cms) {
                note("multipart/signed: the signature is not CMS: " + openssl_error());
            } else if (verify_detached(cms.get(), parts[0])) {
                signers(cms.get(), "multipart/signed");
            } else if (const std::string lf = to_lf(parts[0]); lf.size() != parts[0].size() && verify_detached(cms.get(), lf)) {
                // Some signers hash their local (LF) form of the part; it is the same text.
                signers(cms.get(), "multipart/signed (signed with LF line ends)");
            } else {
                note("multipart/signed: signature does not verify over the signed part");
            }
        } else {
            note("multipart/signed with protocol " + (st.empty() ? std::string("?") : st) + ": not S/MIME");
        }
        entity(parts[0], depth + 1);  // the signed content may hold more signatures
    }

    static bool verify_detached(CMS_ContentInfo* cms, std::string_view content) {
        BIO_ptr bio(BIO_new_mem_buf(content.data(), static_cast<int>(content.size())));
        const bool ok = bio && CMS_verify(cms, nullptr, nullptr, bio.get(), nullptr, CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY) == 1;
        ERR_clear_error();
        return ok;
    }

    static std::string to_lf(std::string_view crlf) {
        std::string out;
        out.reserve(crlf.size());
        for (size_t i = 0; i < crlf.size(); ++i)
            if (!(crlf[i] == '\r' && i + 1 < crlf.size() && crlf[i + 1] == '\n')) out += crlf[i];
        return out;
    }

    void pkcs7_mime(const Entity& e, int depth) {
        const std::string der = decode_transfer(e);
        const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
        CMS_ptr cms(d2i_CMS_ContentInfo(nullptr, &p, static_cast<long>(der.size())));
        if (!cms) {
            note("application/pkcs7-mime that is not CMS: " + openssl_error());
            return;
        }
        const int kind = OBJ_obj2nid(CMS_get0_type(cms.get()));
        BIO_ptr out(BIO_new(BIO_s_mem()));
        if (kind == NID_pkcs7_signed) {
            if (CMS_verify(cms.get(), nullptr, nullptr, nullptr, out.get(), CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY) != 1) {
                note("opaque signed-data: signature does not verify: " + openssl_error());
                return;
            }
            signers(cms.get(), "opaque signed-data");
        } else if (kind == NID_pkcs7_enveloped || kind == NID_id_smime_ct_authEnvelopedData) {
            bool opened = false;
            for (const crypto::KeyMaterial* k : options_.keys) {
                X509* cert = k->certificate ? k->certificate->native() : nullptr;
                if (CMS_decrypt(cms.get(), k->key.get(), cert, nullptr, out.get(), CMS_BINARY) == 1) {
                    opened = true;
                    break;
                }
                ERR_clear_error();
                (void)BIO_reset(out.get());
            }
            if (!opened) {
                note("enveloped data: no configured key opens it, not entered");
                return;
            }
        } else {
            note("application/pkcs7-mime of type " + oid_text(CMS_get0_type(cms.get())) + ": ignored");
            return;
        }
        char* data = nullptr;
        const long len = BIO_get_mem_data(out.get(), &data);
        if (len <= 0) return;
        const std::string inner = to_crlf(std::string_view(data, static_cast<size_t>(len)));
        entity(inner, depth + 1);
    }

    void signers(CMS_ContentInfo* cms, const std::string& how) {
        STACK_OF(CMS_SignerInfo)* infos = CMS_get0_SignerInfos(cms);
        for (int i = 0; infos != nullptr && i < sk_CMS_SignerInfo_num(infos); ++i) {
            CMS_SignerInfo* si = sk_CMS_SignerInfo_value(infos, i);
            X509* signer = nullptr;
            CMS_SignerInfo_get0_algs(si, nullptr, &signer, nullptr, nullptr);
            const std::string what = how + " " + digest_name(si);
            if (signer == nullptr) {
                note(what + ": the signer's certificate is not in the message");
                continue;
            }
            X509_up_ref(signer);
            const crypto::Certificate signer_cert{crypto::X509_ptr(signer)};
            const std::vector<std::string> names = signer_cert.email_addresses();
            const bool names_from = std::any_of(names.begin(), names.end(), [&](const std::string& a) {
                return lookup::normalize_address(a) == from_;
            });
            if (!names_from) {
                note(what + " by " + signer_cert.subject() + ": does not name the From address " + from_ + ", not harvested");
                continue;
            }
            std::string pref_note;
            std::optional<crypto::Certificate> preferred = preferred_certificate(si, cms, pref_note);
            if (!pref_note.empty()) note(what + ": " + pref_note);
            const crypto::Certificate chosen = preferred ? *preferred : signer_cert;
            const std::vector<lookup::Verdict> v = options_.validator->validate(from_, {chosen});
            if (v.empty() || !v[0].usable) {
                note(what + " by " + signer_cert.subject() + ": certificate " + chosen.fingerprint_sha256() + " not usable: " +
                     (v.empty() ? std::string("no verdict") : v[0].reason));
                continue;
            }
            const bool other_key = chosen.fingerprint_sha256() != signer_cert.fingerprint_sha256();
            HarvestedCertificate h{from_, chosen, signer_cert.fingerprint_sha256(), other_key, capabilities_of(si), what};
            note(what + " by " + signer_cert.subject() + ": harvested " + chosen.fingerprint_sha256() +
                 (other_key ? " (the separate encryption certificate its SMIMEEncryptionKeyPreference names)" : ""));
            const bool dup = std::any_of(report_.certificates.begin(), report_.certificates.end(), [&](const HarvestedCertificate& x) {
                return x.certificate.fingerprint_sha256() == h.certificate.fingerprint_sha256();
            });
            if (!dup) report_.certificates.push_back(std::move(h));
        }
    }

    const std::string& from_;
    const HarvestOptions& options_;
    HarvestReport& report_;
};

std::optional<std::string> single_from(const Entity& top, std::string& why) {
    if (top.count("from") != 1) {
        why = top.count("from") == 0 ? "no From field" : "more than one From field";
        return std::nullopt;
    }
    ensure_gmime();
    InternetAddressList* list = internet_address_list_parse(nullptr, top.value("from")->c_str());
    std::optional<std::string> out;
    if (list == nullptr || internet_address_list_length(list) != 1) {
        why = "From does not name exactly one address";
    } else {
        InternetAddress* a = internet_address_list_get_address(list, 0);
        if (!INTERNET_ADDRESS_IS_MAILBOX(a)) {
            why = "From is a group";
        } else {
            const char* addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a));
            if (addr != nullptr && std::strchr(addr, '@') != nullptr) out = lookup::normalize_address(addr);
            else why = "From has no usable address";
        }
    }
    if (list != nullptr) g_object_unref(list);
    return out;
}

}  // namespace

std::string capability_name(const std::string& dotted_oid) {
    static const std::map<std::string, std::string> names = {
        {"2.16.840.1.101.3.4.1.46", "aes256-gcm"}, {"2.16.840.1.101.3.4.1.6", "aes128-gcm"},
        {"2.16.840.1.101.3.4.1.42", "aes256-cbc"}, {"2.16.840.1.101.3.4.1.22", "aes192-cbc"},
        {"2.16.840.1.101.3.4.1.2", "aes128-cbc"},  {"1.2.840.113549.3.7", "des-ede3-cbc"},
        {"1.2.840.113549.1.1.7", "rsaes-oaep"}};
    const auto it = names.find(dotted_oid);
    return it != names.end() ? it->second : dotted_oid;
}

HarvestReport harvest(std::string_view raw_message, const std::string* envelope_sender, const HarvestOptions& options) {
    if (options.validator == nullptr) throw std::logic_error("harvest without a validator");
    HarvestReport report;
    const std::string crlf = to_crlf(raw_message);
    const Entity top = parse_entity(crlf);
    if (envelope_sender != nullptr && envelope_sender->empty()) {
        report.skipped = "bounce (null envelope sender)";
        return report;
    }
    const std::string* ctv = top.value("content-type");
    const std::optional<ContentType> ct = ctv != nullptr ? parse_content_type(*ctv) : std::nullopt;
    if (ct && ct->type == "multipart" && ct->subtype == "report") {
        report.skipped = "bounce (multipart/report)";
        return report;
    }
    if (top.value("list-id") != nullptr) {
        report.skipped = "list mail (List-Id)";
        return report;
    }
    if (const std::string* prec = top.value("precedence")) {
        const std::string p = lower(*prec);
        if (p == "list" || p == "bulk" || p == "junk") {
            report.skipped = "list mail (Precedence: " + p + ")";
            return report;
        }
    }
    std::string why;
    const std::optional<std::string> from = single_from(top, why);
    if (!from) {
        report.skipped = why;
        return report;
    }
    Walker(*from, options, report).entity(crlf, 0);
    if (report.notes.empty()) report.notes.push_back("no S/MIME signature");
    return report;
}

}  // namespace sealmilter::core
