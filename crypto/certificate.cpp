// crypto/certificate.cpp — X.509 inspection for recipient certificates (see certificate.hpp).
#include "crypto/certificate.hpp"

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>

#include "base/encoding.hpp"
#include "base/file.hpp"

#include <mutex>
#include <system_error>

namespace sealmilter::crypto {

std::string name_to_string(const X509_NAME* name) {
    BIO_ptr mem(BIO_new(BIO_s_mem()));
    if (!mem) throw_openssl("BIO_new");
    X509_NAME_print_ex(mem.get(), name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
    char* data = nullptr;
    const long len = BIO_get_mem_data(mem.get(), &data);
    return std::string(data, static_cast<size_t>(len));
}

namespace {

std::time_t asn1_to_time(const ASN1_TIME* t) {
    std::tm tm{};
    if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
    return timegm(&tm);
}

std::string asn1_string_to_utf8(const ASN1_STRING* s) {
    unsigned char* out = nullptr;
    const int len = ASN1_STRING_to_UTF8(&out, s);
    if (len < 0) return {};
    std::string result(reinterpret_cast<char*>(out), static_cast<size_t>(len));
    OPENSSL_free(out);
    return result;
}

// keyUsage bits as OpenSSL caches them; UINT32_MAX when the extension is absent.
uint32_t key_usage(X509* x) {
    if ((X509_get_extension_flags(x) & EXFLAG_KUSAGE) == 0) return UINT32_MAX;
    return X509_get_key_usage(x);
}

}  // namespace

Certificate::Certificate(X509_ptr x509) : x509_(std::move(x509)) {
    if (!x509_) throw CryptoError("Certificate: null X509");
}

struct Certificate::Lazy {
    std::string der;
    std::once_flag once;
    X509_ptr x509;
};

Certificate Certificate::from_der_lazily(std::string der) {
    Certificate c;
    c.lazy_ = std::make_shared<Lazy>();
    c.lazy_->der = std::move(der);
    return c;
}

X509* Certificate::parse_lazily() const {
    if (!lazy_) throw CryptoError("Certificate: moved-from");
    Lazy& l = *lazy_;
    std::call_once(l.once, [&l] {
        const auto* p = reinterpret_cast<const unsigned char*>(l.der.data());
        l.x509.reset(d2i_X509(nullptr, &p, static_cast<long>(l.der.size())));
        ERR_clear_error();
    });
    if (!l.x509) throw CryptoError("Certificate: stored DER does not parse");
    return l.x509.get();
}

Certificate::Certificate(const Certificate& other) : x509_(nullptr), lazy_(other.lazy_) {
    if (other.x509_) {
        X509_up_ref(other.x509_.get());
        x509_.reset(other.x509_.get());
    }
}

Certificate& Certificate::operator=(const Certificate& other) {
    if (this != &other) {
        if (other.x509_) X509_up_ref(other.x509_.get());
        x509_.reset(other.x509_.get());
        lazy_ = other.lazy_;
    }
    return *this;
}

KeyKind Certificate::key_kind() const {
    const EVP_PKEY* key = X509_get0_pubkey(native());
    if (key == nullptr) return KeyKind::Other;
    if (EVP_PKEY_is_a(key, "RSA") != 0) return KeyKind::Rsa;
    if (EVP_PKEY_is_a(key, "EC") != 0) return KeyKind::Ec;
    return KeyKind::Other;
}

int Certificate::key_bits() const {
    const EVP_PKEY* key = X509_get0_pubkey(native());
    return key == nullptr ? 0 : EVP_PKEY_get_bits(key);
}

std::string Certificate::key_description() const {
    const EVP_PKEY* key = X509_get0_pubkey(native());
    switch (key_kind()) {
    case KeyKind::Rsa: return "RSA-" + std::to_string(key_bits());
    case KeyKind::Ec: {
        char group[80] = {0};
        size_t len = 0;
        if (EVP_PKEY_get_group_name(key, group, sizeof group, &len) != 1) return "EC (unknown curve)";
        return std::string("EC ") + group;
    }
    case KeyKind::Other: break;
    }
    return key == nullptr ? "no public key" : std::string(EVP_PKEY_get0_type_name(key));
}

std::string Certificate::subject() const { return name_to_string(X509_get_subject_name(native())); }
std::string Certificate::issuer() const { return name_to_string(X509_get_issuer_name(native())); }

std::string Certificate::fingerprint_sha256() const {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (X509_digest(native(), EVP_sha256(), md, &len) != 1) throw_openssl("X509_digest");
    return base::to_hex_colons(std::string_view(reinterpret_cast<const char*>(md), len));
}

std::time_t Certificate::not_before() const { return asn1_to_time(X509_get0_notBefore(native())); }
std::time_t Certificate::not_after() const { return asn1_to_time(X509_get0_notAfter(native())); }

std::vector<std::string> Certificate::email_addresses() const {
    std::vector<std::string> out;
    int crit = 0;
    GENERAL_NAMES_ptr sans(static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(native(), NID_subject_alt_name, &crit, nullptr)));
    if (sans) {
        for (int i = 0; i < sk_GENERAL_NAME_num(sans.get()); ++i) {
            const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans.get(), i);
            if (gn->type == GEN_EMAIL) out.push_back(asn1_string_to_utf8(gn->d.rfc822Name));
        }
        return out;
    }
    if (crit == -1) {  // no SAN extension at all: fall back to subject emailAddress
        const X509_NAME* subj = X509_get_subject_name(native());
        for (int pos = X509_NAME_get_index_by_NID(subj, NID_pkcs9_emailAddress, -1); pos >= 0;
             pos = X509_NAME_get_index_by_NID(subj, NID_pkcs9_emailAddress, pos)) {
            const X509_NAME_ENTRY* e = X509_NAME_get_entry(subj, pos);
            out.push_back(asn1_string_to_utf8(X509_NAME_ENTRY_get_data(e)));
        }
    }
    return out;
}

std::string Certificate::encryption_unsuitability() const {
    const uint32_t ku = key_usage(native());
    switch (key_kind()) {
    case KeyKind::Rsa:
        if (ku != UINT32_MAX && (ku & KU_KEY_ENCIPHERMENT) == 0)
            return "keyUsage lacks keyEncipherment (RSA key transport needs it)";
        if (key_bits() < 2048) return "RSA key of " + std::to_string(key_bits()) + " bits is below 2048";
        return {};
    case KeyKind::Ec: {
        if (ku != UINT32_MAX && (ku & KU_KEY_AGREEMENT) == 0)
            return "keyUsage lacks keyAgreement (ECDH key agreement needs it)";
        char group[80] = {0};
        size_t len = 0;
        EVP_PKEY_get_group_name(X509_get0_pubkey(native()), group, sizeof group, &len);
        const std::string g(group);
        if (g != "prime256v1" && g != "secp384r1" && g != "secp521r1")
            return "EC curve '" + g + "' is not P-256, P-384 or P-521";
        return {};
    }
    case KeyKind::Other: break;
    }
    return "unsupported public key type " + key_description() + " (need RSA or EC)";
}

std::vector<unsigned char> Certificate::der() const {
    if (!x509_ && lazy_) return {lazy_->der.begin(), lazy_->der.end()};  // no parse needed
    unsigned char* buf = nullptr;
    const int len = i2d_X509(native(), &buf);
    if (len < 0) throw_openssl("i2d_X509");
    std::vector<unsigned char> out(buf, buf + len);
    OPENSSL_free(buf);
    return out;
}

std::string Certificate::pem() const {
    const BIO_ptr mem(BIO_new(BIO_s_mem()));
    if (!mem || PEM_write_bio_X509(mem.get(), native()) != 1) throw_openssl("PEM_write_bio_X509");
    char* data = nullptr;
    const long n = BIO_get_mem_data(mem.get(), &data);
    return {data, static_cast<size_t>(n)};
}

ParsedCertificates parse_certificates(std::string_view bytes) {
    ParsedCertificates result;
    // One DER certificate that is the whole input comes first: its bytes may contain the PEM
    // marker text (a SAN, a subject, by chance the signature) — found by fuzz/.
    if (!bytes.empty() && static_cast<unsigned char>(bytes[0]) == 0x30) {
        const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
        X509_ptr x(d2i_X509(nullptr, &p, static_cast<long>(bytes.size())));
        if (x && p == reinterpret_cast<const unsigned char*>(bytes.data()) + bytes.size()) {
            result.certificates.emplace_back(std::move(x));
            return result;
        }
        ERR_clear_error();
    }
    if (bytes.find("-----BEGIN") != std::string_view::npos) {
        BIO_ptr mem(BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())));
        if (!mem) throw_openssl("BIO_new_mem_buf");
        // Bounded by the input size: each iteration consumes one PEM block.
        while (X509* x = PEM_read_bio_X509(mem.get(), nullptr, nullptr, nullptr)) {
            result.certificates.emplace_back(X509_ptr(x));
        }
        const std::string err = drain_errors();  // the final "no start line" is expected
        if (result.certificates.empty()) result.error = "no PEM certificate could be parsed" +
                                                         (err.empty() ? "" : " (" + err + ")");
        return result;
    }
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
    X509_ptr x(d2i_X509(nullptr, &p, static_cast<long>(bytes.size())));
    if (!x) {
        result.error = "not a PEM or DER certificate (" + drain_errors() + ")";
        return result;
    }
    result.certificates.emplace_back(std::move(x));
    return result;
}

std::optional<std::string> read_crypto_file(const std::string& path, std::string* error) {
    try {
        return base::read_file(path);
    } catch (const std::system_error& e) {
        if (error != nullptr) *error = "cannot read " + path + ": " + e.code().message();
        return std::nullopt;
    }
}

ParsedCertificates load_certificate_file(const std::string& path, bool* unreadable) {
    ParsedCertificates r;
    const std::optional<std::string> bytes = read_crypto_file(path, &r.error);
    if (!bytes) {
        if (unreadable != nullptr) *unreadable = true;
        return r;
    }
    r = parse_certificates(*bytes);
    if (!r.error.empty()) r.error = path + ": " + r.error;
    return r;
}

std::string format_time_utc(std::time_t t) {
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

}  // namespace sealmilter::crypto
