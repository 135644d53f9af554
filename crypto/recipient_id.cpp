// crypto/recipient_id.cpp — CMS RecipientIdentifiers (see recipient_id.hpp).
#include "crypto/recipient_id.hpp"

#include "base/encoding.hpp"

#include <openssl/cms.h>
#include <openssl/x509v3.h>

#include <cstdio>

namespace sealmilter::crypto {
namespace {

std::string asn1_bytes(const ASN1_STRING* s) {
    if (s == nullptr) return {};
    return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), static_cast<size_t>(ASN1_STRING_length(s)));
}

// The serial's magnitude, "-" first when negative (hostile, but then it must not equal the
// positive one).
std::string serial_bytes(const ASN1_INTEGER* serial) {
    std::string bytes = asn1_bytes(serial);
    const size_t first = bytes.find_first_not_of('\0');
    bytes.erase(0, first == std::string::npos ? bytes.size() : first);
    if (serial != nullptr && ASN1_STRING_type(serial) == V_ASN1_NEG_INTEGER) bytes.insert(0, "-");
    return bytes;
}

std::string name_der(const X509_NAME* name) {
    if (name == nullptr) return {};
    unsigned char* der = nullptr;
    const int len = i2d_X509_NAME(name, &der);
    if (len <= 0) return {};
    std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
    OPENSSL_free(der);
    return out;
}

// The canonical form: X509_NAME_hash_ex hashes OpenSSL's canonical encoding (case-folded,
// whitespace-normalised strings), so an envelope that re-encoded the issuer name still finds
// the key. 32 bits: names that collide only give a second candidate; decrypt_envelope compares
// the full identifier before it uses a key.
std::string canonical_name_hash(const X509_NAME* name, const std::string& der) {
    int ok = 0;
    const unsigned long h = X509_NAME_hash_ex(name, nullptr, nullptr, &ok);
    char buf[17];
    std::snprintf(buf, sizeof buf, "%08lx", h);
    return ok == 1 ? std::string(buf) : base::to_hex(der);
}

void add(std::vector<RecipientId>& out, const ASN1_OCTET_STRING* keyid, const X509_NAME* issuer,
         const ASN1_INTEGER* serial) {
    RecipientId id;
    if (keyid != nullptr) {
        id.kind = RecipientId::Kind::SubjectKeyId;
        id.ski = asn1_bytes(keyid);
    } else if (issuer != nullptr && serial != nullptr) {
        id.kind = RecipientId::Kind::IssuerSerial;
        id.issuer_der = name_der(issuer);
        id.issuer_hash = canonical_name_hash(issuer, id.issuer_der);
        id.serial = serial_bytes(serial);
    } else {
        return;
    }
    out.push_back(std::move(id));
}

}  // namespace

std::string RecipientId::index_key() const {
    if (kind == Kind::SubjectKeyId) return "ski:" + base::to_hex(ski);
    return "is:" + issuer_hash + ":" + base::to_hex(serial);
}

std::string RecipientId::describe() const {
    if (kind == Kind::SubjectKeyId) return "ski=" + base::to_hex_colons(ski);
    const auto* p = reinterpret_cast<const unsigned char*>(issuer_der.data());
    X509_NAME* name = d2i_X509_NAME(nullptr, &p, static_cast<long>(issuer_der.size()));
    std::string issuer = name != nullptr ? name_to_string(name) : "(unreadable issuer)";
    X509_NAME_free(name);
    return "issuer=" + issuer + "; serial=" + base::to_hex(serial);
}

std::vector<RecipientId> recipient_ids(CMS_ContentInfo* cms) {
    std::vector<RecipientId> out;
    if (cms == nullptr) return out;
    STACK_OF(CMS_RecipientInfo)* ris = CMS_get0_RecipientInfos(cms);  // borrowed
    for (int i = 0; i < sk_CMS_RecipientInfo_num(ris); ++i) {
        CMS_RecipientInfo* ri = sk_CMS_RecipientInfo_value(ris, i);
        switch (CMS_RecipientInfo_type(ri)) {
        case CMS_RECIPINFO_TRANS: {
            ASN1_OCTET_STRING* keyid = nullptr;
            X509_NAME* issuer = nullptr;
            ASN1_INTEGER* serial = nullptr;
            if (CMS_RecipientInfo_ktri_get0_signer_id(ri, &keyid, &issuer, &serial) == 1) add(out, keyid, issuer, serial);
            break;
        }
        case CMS_RECIPINFO_AGREE: {
            STACK_OF(CMS_RecipientEncryptedKey)* reks = CMS_RecipientInfo_kari_get0_reks(ri);
            for (int k = 0; k < sk_CMS_RecipientEncryptedKey_num(reks); ++k) {
                ASN1_OCTET_STRING* keyid = nullptr;
                ASN1_GENERALIZEDTIME* date = nullptr;
                CMS_OtherKeyAttribute* other = nullptr;
                X509_NAME* issuer = nullptr;
                ASN1_INTEGER* serial = nullptr;
                if (CMS_RecipientEncryptedKey_get0_id(sk_CMS_RecipientEncryptedKey_value(reks, k), &keyid, &date,
                                                      &other, &issuer, &serial) == 1) {
                    add(out, keyid, issuer, serial);
                }
            }
            break;
        }
        default: break;
        }
    }
    return out;
}

std::vector<RecipientId> certificate_ids(const Certificate& cert) {
    std::vector<RecipientId> out;
    X509* x = cert.native();
    add(out, nullptr, X509_get_issuer_name(x), X509_get0_serialNumber(x));
    const ASN1_OCTET_STRING* ski = X509_get0_subject_key_id(x);
    if (ski != nullptr) add(out, ski, nullptr, nullptr);
    return out;
}

}  // namespace sealmilter::crypto
