// crypto/certificate_builder.cpp — see certificate_builder.hpp. Extensions go through
// X509V3_EXT_conf_nid with openssl.cnf syntax, the path `openssl x509 -extfile` takes, so the
// encoding is OpenSSL's own.
#include "crypto/certificate_builder.hpp"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/rsa.h>

#include <array>
#include <utility>

namespace sealmilter::crypto {
namespace {

using X509_EXTENSION_ptr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;
using BIGNUM_ptr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;

constexpr std::array<std::pair<uint32_t, const char*>, 7> kUsageNames = {{
    {kDigitalSignature, "digitalSignature"},
    {kNonRepudiation, "nonRepudiation"},
    {kKeyEncipherment, "keyEncipherment"},
    {kDataEncipherment, "dataEncipherment"},
    {kKeyAgreement, "keyAgreement"},
    {kKeyCertSign, "keyCertSign"},
    {kCrlSign, "cRLSign"},
}};

std::string join(const std::vector<std::string>& parts, const std::string& prefix) {
    std::string out;
    for (const std::string& p : parts) out += (out.empty() ? "" : ",") + prefix + p;
    return out;
}

void add_ext(X509* x, X509* issuer, int nid, const std::string& value) {
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, x, nullptr, nullptr, 0);
    X509_EXTENSION_ptr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
    if (!ext) throw_openssl("certificate extension " + std::string(OBJ_nid2sn(nid)) + "=" + value);
    if (X509_add_ext(x, ext.get(), -1) != 1) throw_openssl("X509_add_ext");  // copies
}

void add_name(X509_NAME* name, const char* field, const std::string& value) {
    if (value.empty()) return;
    if (X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(value.c_str()),
                                   -1, -1, 0) != 1)
        throw_openssl(std::string("subject ") + field);
}

void set_serial(X509* x, const std::optional<uint64_t>& fixed) {
    BIGNUM_ptr bn(BN_new());
    if (!bn) throw_openssl("BN_new");
    if (fixed) {
        if (BN_set_word(bn.get(), *fixed) != 1) throw_openssl("BN_set_word");
    } else if (BN_rand(bn.get(), 128, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) != 1) {  // never zero
        throw_openssl("BN_rand");
    }
    if (BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(x)) == nullptr) throw_openssl("BN_to_ASN1_INTEGER");
}

EVP_PKEY_ptr up_ref(EVP_PKEY* key) {
    if (key == nullptr) throw CryptoError("CertificateBuilder: null key");
    EVP_PKEY_up_ref(key);
    return EVP_PKEY_ptr(key);
}

}  // namespace

EVP_PKEY_ptr generate_rsa_key(unsigned bits) { return owned_or_throw<EVP_PKEY_ptr>(EVP_RSA_gen(bits), "EVP_RSA_gen"); }

EVP_PKEY_ptr generate_ec_key(const std::string& curve) {
    return owned_or_throw<EVP_PKEY_ptr>(EVP_EC_gen(curve.c_str()), ("EVP_EC_gen " + curve).c_str());
}

uint32_t key_usage_from_names(std::string_view comma_list) {
    uint32_t bits = 0;
    size_t start = 0;
    while (start <= comma_list.size()) {
        const size_t comma = std::min(comma_list.find(',', start), comma_list.size());
        const std::string_view name = comma_list.substr(start, comma - start);
        bool known = false;
        for (const auto& [bit, n] : kUsageNames) {
            if (name == n) {
                bits |= bit;
                known = true;
            }
        }
        if (!known && !name.empty()) throw CryptoError("unknown key usage '" + std::string(name) + "'");
        start = comma + 1;
    }
    return bits;
}

CertificateBuilder::CertificateBuilder() { valid_days(365); }

CertificateBuilder& CertificateBuilder::common_name(std::string cn) {
    spec_.cn = std::move(cn);
    return *this;
}
CertificateBuilder& CertificateBuilder::organization(std::string o) {
    spec_.o = std::move(o);
    return *this;
}
CertificateBuilder& CertificateBuilder::subject_attribute(std::string field, std::string value) {
    spec_.extra_subject.emplace_back(std::move(field), std::move(value));
    return *this;
}

CertificateBuilder& CertificateBuilder::subject_email(std::string email) {
    spec_.email = std::move(email);
    return *this;
}
CertificateBuilder& CertificateBuilder::add_email_san(std::string email) {
    spec_.sans.push_back(std::move(email));
    return *this;
}
CertificateBuilder& CertificateBuilder::public_key(EVP_PKEY* key) {
    key_ = up_ref(key);
    return *this;
}
CertificateBuilder& CertificateBuilder::issuer(const Certificate& issuer, EVP_PKEY* issuer_key) {
    issuer_ = issuer;
    issuer_key_ = up_ref(issuer_key);
    return *this;
}
CertificateBuilder& CertificateBuilder::validity(std::time_t not_before, std::time_t not_after) {
    spec_.not_before = not_before;
    spec_.not_after = not_after;
    return *this;
}
CertificateBuilder& CertificateBuilder::valid_days(long days) {
    const std::time_t now = std::time(nullptr);
    return validity(now - 60, now + days * 86400L);
}
CertificateBuilder& CertificateBuilder::serial(uint64_t serial) {
    spec_.serial = serial;
    return *this;
}
CertificateBuilder& CertificateBuilder::key_usage(uint32_t bits) {
    spec_.key_usage = bits;
    return *this;
}
CertificateBuilder& CertificateBuilder::extended_key_usage(std::vector<std::string> purposes) {
    spec_.eku = std::move(purposes);
    return *this;
}
CertificateBuilder& CertificateBuilder::basic_constraints(bool ca, std::optional<int> path_length) {
    spec_.basic_constraints = std::make_pair(ca, path_length);
    return *this;
}
CertificateBuilder& CertificateBuilder::subject_key_identifier() {
    spec_.ski = true;
    return *this;
}
CertificateBuilder& CertificateBuilder::authority_key_identifier() {
    spec_.aki = true;
    return *this;
}
CertificateBuilder& CertificateBuilder::digest(Digest d) {
    spec_.digest = d;
    return *this;
}

void CertificateBuilder::add_extensions(X509* x, X509* issuer) const {
    // Order as `openssl req -x509` writes them; SKI first so a self-signed AKI can use it.
    if (spec_.basic_constraints) {
        const auto& [ca, pathlen] = *spec_.basic_constraints;
        add_ext(x, issuer, NID_basic_constraints,
                std::string("critical,CA:") + (ca ? "TRUE" : "FALSE") + (pathlen ? ",pathlen:" + std::to_string(*pathlen) : ""));
    }
    if (spec_.key_usage) {
        std::vector<std::string> names;
        for (const auto& [bit, n] : kUsageNames)
            if ((*spec_.key_usage & bit) != 0) names.emplace_back(n);
        if (names.empty()) throw CryptoError("CertificateBuilder: keyUsage without any bit");
        add_ext(x, issuer, NID_key_usage, "critical," + join(names, ""));
    }
    if (!spec_.eku.empty()) add_ext(x, issuer, NID_ext_key_usage, join(spec_.eku, ""));
    if (!spec_.sans.empty()) add_ext(x, issuer, NID_subject_alt_name, join(spec_.sans, "email:"));
    if (spec_.ski) add_ext(x, issuer, NID_subject_key_identifier, "hash");
    if (spec_.aki) add_ext(x, issuer, NID_authority_key_identifier, "keyid:always");
}

Certificate CertificateBuilder::build() const {
    if (!key_) throw CryptoError("CertificateBuilder: no public key");
    X509_ptr x = owned_or_throw<X509_ptr>(X509_new(), "X509_new");
    if (X509_set_version(x.get(), X509_VERSION_3) != 1) throw_openssl("X509_set_version");
    set_serial(x.get(), spec_.serial);
    if (ASN1_TIME_set(X509_getm_notBefore(x.get()), spec_.not_before) == nullptr ||
        ASN1_TIME_set(X509_getm_notAfter(x.get()), spec_.not_after) == nullptr)
        throw_openssl("certificate validity");
    X509_NAME* name = X509_get_subject_name(x.get());  // borrowed
    add_name(name, "O", spec_.o);
    add_name(name, "CN", spec_.cn);
    add_name(name, "emailAddress", spec_.email);
    for (const auto& [field, value] : spec_.extra_subject) add_name(name, field.c_str(), value);
    X509* issuer = issuer_ ? issuer_->native() : x.get();
    if (X509_set_issuer_name(x.get(), X509_get_subject_name(issuer)) != 1) throw_openssl("X509_set_issuer_name");
    if (X509_set_pubkey(x.get(), key_.get()) != 1) throw_openssl("X509_set_pubkey");
    add_extensions(x.get(), issuer);
    EVP_PKEY* signer = issuer_key_ ? issuer_key_.get() : key_.get();
    if (X509_sign(x.get(), signer, evp_md(spec_.digest)) == 0) throw_openssl("X509_sign");
    return Certificate(std::move(x));
}

}  // namespace sealmilter::crypto
