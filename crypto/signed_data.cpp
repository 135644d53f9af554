// crypto/signed_data.cpp — see signed_data.hpp. Signing follows OpenSSL apps/cms.c -sign
// -stream: CMS_sign(PARTIAL|STREAM), CMS_add1_signer, then the BIO_new_CMS chain whose flush
// computes the digest, adds the signed attributes and signs.
#include "crypto/signed_data.hpp"

#include <openssl/err.h>

#include <algorithm>
#include <map>

namespace sealmilter::crypto {
namespace {

using ASN1_OBJECT_ptr = std::unique_ptr<ASN1_OBJECT, Deleter<ASN1_OBJECT_free>>;
using ASN1_TIME_ptr = std::unique_ptr<ASN1_TIME, Deleter<ASN1_TIME_free>>;
inline void free_algor_stack(STACK_OF(X509_ALGOR) * s) noexcept { sk_X509_ALGOR_pop_free(s, X509_ALGOR_free); }
using X509_ALGORS_ptr = std::unique_ptr<STACK_OF(X509_ALGOR), Deleter<free_algor_stack>>;

constexpr const char* kOidSmimeCapabilities = "1.2.840.113549.1.9.15";
constexpr const char* kOidEncryptionKeyPreference = "1.2.840.113549.1.9.16.2.11";

const std::map<std::string, std::string>& capability_oids() {  // dotted OID -> name
    static const std::map<std::string, std::string> names = {
        {"2.16.840.1.101.3.4.1.46", "aes256-gcm"}, {"2.16.840.1.101.3.4.1.6", "aes128-gcm"},
        {"2.16.840.1.101.3.4.1.42", "aes256-cbc"}, {"2.16.840.1.101.3.4.1.22", "aes192-cbc"},
        {"2.16.840.1.101.3.4.1.2", "aes128-cbc"},  {"1.2.840.113549.3.7", "des-ede3-cbc"},
        {"1.2.840.113549.1.1.7", "rsaes-oaep"}};
    return names;
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
    const ASN1_OBJECT_ptr obj(OBJ_txt2obj(dotted, 1));
    if (!obj) return nullptr;
    const int loc = CMS_signed_get_attr_by_OBJ(si, obj.get(), -1);
    if (loc < 0) return nullptr;
    X509_ATTRIBUTE* attr = CMS_signed_get_attr(si, loc);  // borrowed
    return attr != nullptr ? X509_ATTRIBUTE_get0_type(attr, 0) : nullptr;
}

std::vector<std::string> capabilities_of(CMS_SignerInfo* si) {
    std::vector<std::string> out;
    const ASN1_TYPE* t = signed_attribute(si, kOidSmimeCapabilities);
    if (t == nullptr || t->type != V_ASN1_SEQUENCE) return out;
    const unsigned char* p = t->value.sequence->data;
    const X509_ALGORS_ptr algs(d2i_X509_ALGORS(nullptr, &p, t->value.sequence->length));
    for (int i = 0; algs && i < sk_X509_ALGOR_num(algs.get()); ++i)
        out.push_back(capability_name(oid_text(sk_X509_ALGOR_value(algs.get(), i)->algorithm)));
    return out;
}

// SMIMEEncryptionKeyPreference (RFC 8551 §2.5.3):
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

// Takes an i2d_* result: the OPENSSL_malloc'ed buffer is freed here.
std::string take_der(int len, unsigned char* der) {
    std::string out;
    if (len > 0 && der != nullptr) out.assign(reinterpret_cast<char*>(der), static_cast<size_t>(len));
    OPENSSL_free(der);
    return out;
}

std::string issuer_and_serial_contents(X509* c) {
    unsigned char* name = nullptr;
    const int name_len = i2d_X509_NAME(X509_get_issuer_name(c), &name);
    const std::string n = take_der(name_len, name);
    unsigned char* serial = nullptr;
    const int serial_len = i2d_ASN1_INTEGER(X509_get_serialNumber(c), &serial);
    const std::string s = take_der(serial_len, serial);
    return n.empty() || s.empty() ? std::string() : n + s;
}

std::string key_id(X509* c) {
    const ASN1_OCTET_STRING* ski = X509_get0_subject_key_id(c);
    return ski != nullptr ? std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(ski)),
                                        static_cast<size_t>(ASN1_STRING_length(ski)))
                          : std::string();
}

// The [1] RecipientKeyIdentifier form: SEQUENCE { subjectKeyIdentifier OCTET STRING, ... }.
std::optional<std::string> recipient_key_id(const std::string& contents) {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(contents.data());
    long len = 0;
    int tag = 0;
    int cls = 0;
    if ((ASN1_get_object(&p, &len, &tag, &cls, static_cast<long>(contents.size())) & 0x80) != 0 ||
        tag != V_ASN1_OCTET_STRING)
        return std::nullopt;
    return std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(len));
}

void read_key_preference(CMS_SignerInfo* si, CMS_ContentInfo* cms, SignerDetails& out) {
    const ASN1_TYPE* t = signed_attribute(si, kOidEncryptionKeyPreference);
    if (t == nullptr) return;
    const auto choice = read_choice(t);
    if (!choice) {
        out.key_preference_note = "SMIMEEncryptionKeyPreference present but unreadable";
        return;
    }
    std::optional<std::string> wanted = choice->first == 1 ? recipient_key_id(choice->second) : choice->second;
    if (!wanted) {
        out.key_preference_note = "SMIMEEncryptionKeyPreference recipient key id unreadable";
        return;
    }
    const X509_STACK_ptr certs(CMS_get1_certs(cms));
    for (int i = 0; certs && i < sk_X509_num(certs.get()) && !out.key_preference; ++i) {
        X509* c = sk_X509_value(certs.get(), i);  // borrowed from the stack
        if ((choice->first == 0 ? issuer_and_serial_contents(c) : key_id(c)) == *wanted) {
            X509_up_ref(c);
            out.key_preference.emplace(X509_ptr(c));
        }
    }
    if (!out.key_preference)
        out.key_preference_note = "SMIMEEncryptionKeyPreference names a certificate the signature does not carry";
}

// Detached content for CMS_verify. OpenSSL 3.0's CMS_verify copies content given as a memory
// BIO into a memory BIO of its own and leaks that copy when CMS_dataInit then fails (a damaged
// or unsupported SignedData; found by fuzz_harvest). Behind a buffer filter the content is not
// a memory BIO, so CMS_verify reads it in place and allocates nothing it could lose.
BIO_ptr detached_content(std::string_view content) {
    BIO_ptr mem(BIO_new_mem_buf(content.data(), static_cast<int>(content.size())));
    if (!mem) throw_openssl("BIO_new_mem_buf");
    BIO_ptr chain(BIO_new(BIO_f_buffer()));
    if (!chain) throw_openssl("BIO_new(BIO_f_buffer)");
    BIO_push(chain.get(), mem.release());
    return chain;
}

}  // namespace

std::string capability_name(const std::string& dotted_oid) {
    const auto it = capability_oids().find(dotted_oid);
    return it != capability_oids().end() ? it->second : dotted_oid;
}

CmsType cms_type(std::string_view der) {
    CmsType t;
    const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
    const CMS_ptr cms(d2i_CMS_ContentInfo(nullptr, &p, static_cast<long>(der.size())));
    if (!cms) {
        t.error = drain_errors();
        return t;
    }
    t.oid = oid_text(CMS_get0_type(cms.get()));
    const int nid = OBJ_obj2nid(CMS_get0_type(cms.get()));
    t.kind = nid == NID_pkcs7_signed                                                     ? CmsKind::Signed
             : nid == NID_pkcs7_enveloped || nid == NID_id_smime_ct_authEnvelopedData ? CmsKind::Enveloped
                                                                                       : CmsKind::Other;
    return t;
}

std::optional<SignedData> SignedData::parse(std::string_view der, std::string* error) {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
    CMS_ptr cms(d2i_CMS_ContentInfo(nullptr, &p, static_cast<long>(der.size())));
    if (!cms) {
        if (error != nullptr) *error = "not CMS: " + drain_errors();
        return std::nullopt;
    }
    if (OBJ_obj2nid(CMS_get0_type(cms.get())) != NID_pkcs7_signed) {
        if (error != nullptr) *error = "CMS of type " + oid_text(CMS_get0_type(cms.get())) + ", not signed-data";
        return std::nullopt;
    }
    return SignedData(std::move(cms));
}

bool SignedData::verify_detached(std::string_view content, std::string* detail) const {
    BIO_ptr bio = detached_content(content);
    const bool ok =
        CMS_verify(cms_.get(), nullptr, nullptr, bio.get(), nullptr, CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY) == 1;
    const std::string errors = drain_errors();
    if (!ok && detail != nullptr) *detail = errors;
    return ok;
}

std::optional<std::string> SignedData::verify_opaque(std::string* detail) const {
    StringSink content;
    BIO_ptr out = make_sink_bio(content);
    const bool ok =
        CMS_verify(cms_.get(), nullptr, nullptr, nullptr, out.get(), CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY) == 1;
    rethrow_pending(out.get());
    const std::string errors = drain_errors();
    if (!ok) {
        if (detail != nullptr) *detail = errors;
        return std::nullopt;
    }
    return std::move(content.out);
}

std::optional<std::string> SignedData::content() const {
    ASN1_OCTET_STRING** content = CMS_get0_content(cms_.get());  // borrowed
    if (content == nullptr || *content == nullptr) return std::nullopt;  // detached
    return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(*content)),
                       static_cast<size_t>(ASN1_STRING_length(*content)));
}

bool SignedData::verify_chain(std::optional<std::string_view> detached, const std::vector<Certificate>& anchors,
                              std::string* detail) const {
    std::unique_ptr<X509_STORE, Deleter<X509_STORE_free>> store(X509_STORE_new());
    if (!store) throw_openssl("X509_STORE_new");
    if (anchors.empty()) {
        if (X509_STORE_set_default_paths(store.get()) != 1) throw_openssl("X509_STORE_set_default_paths");
    }
    for (const Certificate& a : anchors)
        if (X509_STORE_add_cert(store.get(), a.native()) != 1) throw_openssl("X509_STORE_add_cert");
    BIO_ptr in;
    if (detached) in = detached_content(*detached);
    StringSink discard;
    BIO_ptr out = make_sink_bio(discard);
    const bool ok = CMS_verify(cms_.get(), nullptr, store.get(), in.get(), out.get(), CMS_BINARY) == 1;
    rethrow_pending(out.get());
    const std::string errors = drain_errors();
    if (!ok && detail != nullptr) *detail = errors;
    return ok;
}

std::vector<SignerDetails> SignedData::signers() const {
    std::vector<SignerDetails> out;
    STACK_OF(CMS_SignerInfo)* infos = CMS_get0_SignerInfos(cms_.get());  // borrowed
    for (int i = 0; infos != nullptr && i < sk_CMS_SignerInfo_num(infos); ++i) {
        CMS_SignerInfo* si = sk_CMS_SignerInfo_value(infos, i);
        SignerDetails d;
        X509* signer = nullptr;  // borrowed
        CMS_SignerInfo_get0_algs(si, nullptr, &signer, nullptr, nullptr);
        if (signer != nullptr) {
            X509_up_ref(signer);
            d.certificate.emplace(X509_ptr(signer));
        }
        d.digest = digest_name(si);
        d.capabilities = capabilities_of(si);
        if (const int at = CMS_signed_get_attr_by_NID(si, NID_pkcs9_signingTime, -1); at >= 0) {
            const ASN1_TYPE* t = X509_ATTRIBUTE_get0_type(CMS_signed_get_attr(si, at), 0);
            std::tm tm{};
            if (t != nullptr && (t->type == V_ASN1_UTCTIME || t->type == V_ASN1_GENERALIZEDTIME) &&
                ASN1_TIME_to_tm(t->value.utctime, &tm) == 1)
                d.signing_time = timegm(&tm);
        }
        read_key_preference(si, cms_.get(), d);
        out.push_back(std::move(d));
    }
    return out;
}

// ---- signing -----------------------------------------------------------------------------

namespace {

void add_signing_time(CMS_SignerInfo* si, std::time_t when) {
    const ASN1_TIME_ptr t(ASN1_TIME_set(nullptr, when));  // UTCTime until 2049 (RFC 5652 §11.3)
    if (!t || CMS_signed_add1_attr_by_NID(si, NID_pkcs9_signingTime, t->type, t.get(), -1) != 1)
        throw_openssl("signingTime");
}

void add_capabilities(CMS_SignerInfo* si, const std::vector<std::string>& names) {
    X509_ALGORS_ptr algs(sk_X509_ALGOR_new_null());
    if (!algs) throw_openssl("sk_X509_ALGOR_new_null");
    for (const std::string& name : names) {
        std::string dotted = name;
        for (const auto& [oid, n] : capability_oids())
            if (n == name) dotted = oid;
        ASN1_OBJECT_ptr obj(OBJ_txt2obj(dotted.c_str(), 1));
        if (!obj) throw CryptoError("unknown S/MIME capability '" + name + "'");
        std::unique_ptr<X509_ALGOR, Deleter<X509_ALGOR_free>> alg(X509_ALGOR_new());
        if (!alg || X509_ALGOR_set0(alg.get(), obj.get(), V_ASN1_UNDEF, nullptr) != 1) throw_openssl("X509_ALGOR");
        static_cast<void>(obj.release());  // set0: the ALGOR owns it now
        if (sk_X509_ALGOR_push(algs.get(), alg.get()) == 0) throw_openssl("sk_X509_ALGOR_push");
        static_cast<void>(alg.release());
    }
    if (CMS_add_smimecap(si, algs.get()) != 1) throw_openssl("CMS_add_smimecap");  // encodes a copy
}

// SMIMEEncryptionKeyPreference ::= CHOICE { issuerAndSerialNumber [0] IMPLICIT
// IssuerAndSerialNumber, ... }: the SEQUENCE's contents under a constructed context tag [0].
void add_key_preference(CMS_SignerInfo* si, const Certificate& cert) {
    const std::string contents = issuer_and_serial_contents(cert.native());
    if (contents.empty()) throw CryptoError("SMIMEEncryptionKeyPreference: cannot encode issuer and serial");
    const int len = ASN1_object_size(1, static_cast<int>(contents.size()), 0);
    if (len <= 0) throw_openssl("ASN1_object_size");
    std::string der(static_cast<size_t>(len), '\0');
    unsigned char* p = reinterpret_cast<unsigned char*>(der.data());
    ASN1_put_object(&p, 1, static_cast<int>(contents.size()), 0, V_ASN1_CONTEXT_SPECIFIC);
    std::copy(contents.begin(), contents.end(), p);
    // V_ASN1_OTHER: the value is written as the DER given (the reader above takes it the same way).
    // X509_ATTRIBUTE_set1_data cannot take it (V_ASN1_OTHER is negative, read as a string format).
    std::unique_ptr<ASN1_STRING, Deleter<ASN1_STRING_free>> value(ASN1_STRING_type_new(V_ASN1_OTHER));
    if (!value || ASN1_STRING_set(value.get(), der.data(), len) != 1) throw_openssl("ASN1_STRING_set");
    std::unique_ptr<X509_ATTRIBUTE, Deleter<X509_ATTRIBUTE_free>> attr(
        X509_ATTRIBUTE_create(NID_id_smime_aa_encrypKeyPref, V_ASN1_OTHER, value.get()));
    if (!attr) throw_openssl("SMIMEEncryptionKeyPreference");
    static_cast<void>(value.release());  // the attribute owns it now
    if (CMS_signed_add1_attr(si, attr.get()) != 1) throw_openssl("CMS_signed_add1_attr");
}

bool is_rsa_pss(EVP_PKEY* key) { return EVP_PKEY_is_a(key, "RSA-PSS") == 1; }

}  // namespace

SignedDataWriter::SignedDataWriter(const KeyMaterial& signer, const SignOptions& options, ByteSink& der_out) {
    if (!signer.key || !signer.certificate) throw CryptoError("SignedDataWriter: the signer needs a key and a certificate");
    // CMS_BINARY: the caller hands canonical bytes (RFC 8551 §3.1.1); OpenSSL must not touch them.
    const unsigned flags = CMS_BINARY | CMS_PARTIAL | CMS_STREAM | CMS_NOSMIMECAP | (options.detached ? CMS_DETACHED : 0U);
    cms_ = owned_or_throw<CMS_ptr>(CMS_sign(nullptr, nullptr, nullptr, nullptr, flags), "CMS_sign");
    // An RSA-PSS key: its context is made now (CMS_KEY_PARAM) so the signatureAlgorithm carries
    // the PSS parameters; any other key signs with its default scheme.
    const bool pss = is_rsa_pss(signer.key.get());
    CMS_SignerInfo* si = CMS_add1_signer(cms_.get(), signer.certificate->native(), signer.key.get(),
                                         evp_md(options.digest), flags | (pss ? CMS_KEY_PARAM : 0U));
    if (si == nullptr) throw_openssl("CMS_add1_signer " + signer.certificate->subject());
    if (pss) {
        EVP_PKEY_CTX* pctx = CMS_SignerInfo_get0_pkey_ctx(si);  // borrowed
        if (pctx == nullptr || EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
            EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0)
            throw_openssl("RSA-PSS parameters");
    }
    for (const Certificate& c : signer.chain)  // a PKCS#12 chain may repeat the signer's own
        if (X509_cmp(c.native(), signer.certificate->native()) != 0 && CMS_add1_cert(cms_.get(), c.native()) != 1)
            throw_openssl("CMS_add1_cert");
    if (options.signing_time) add_signing_time(si, *options.signing_time);
    if (!options.capabilities.empty()) add_capabilities(si, options.capabilities);
    if (options.encryption_key_preference) {
        add_key_preference(si, *options.encryption_key_preference);
        const Certificate& pref = *options.encryption_key_preference;
        bool carried = X509_cmp(pref.native(), signer.certificate->native()) == 0;
        for (const Certificate& c : signer.chain) carried = carried || X509_cmp(c.native(), pref.native()) == 0;
        if (!carried && CMS_add1_cert(cms_.get(), pref.native()) != 1) throw_openssl("CMS_add1_cert");
    }
    stream_ = std::make_unique<CmsStream>(cms_.get(), der_out,
                                          options.detached ? CmsStream::Layout::Detached : CmsStream::Layout::Embedded);
}

SignedDataWriter::~SignedDataWriter() = default;

void SignedDataWriter::write(const char* data, size_t len) { stream_->write(data, len); }  // throws after finish

void SignedDataWriter::finish() { stream_->finish("SignedData finalise"); }  // idempotent

}  // namespace sealmilter::crypto
