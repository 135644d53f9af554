// crypto/pkcs12.cpp — every SafeBag of a PKCS#12 file, in and out (see pkcs12.hpp).
#include "crypto/pkcs12.hpp"

#include <openssl/pkcs12.h>

#include <algorithm>

namespace sealmilter::crypto {
namespace {

void free_p7_stack(STACK_OF(PKCS7) * s) noexcept { sk_PKCS7_pop_free(s, PKCS7_free); }
void free_bag_stack(STACK_OF(PKCS12_SAFEBAG) * s) noexcept { sk_PKCS12_SAFEBAG_pop_free(s, PKCS12_SAFEBAG_free); }
using P7_STACK_ptr = std::unique_ptr<STACK_OF(PKCS7), Deleter<free_p7_stack>>;
using BAG_STACK_ptr = std::unique_ptr<STACK_OF(PKCS12_SAFEBAG), Deleter<free_bag_stack>>;
using PKCS8_ptr = std::unique_ptr<PKCS8_PRIV_KEY_INFO, Deleter<PKCS8_PRIV_KEY_INFO_free>>;

struct Collected {
    std::vector<EVP_PKEY_ptr> keys;
    std::vector<Certificate> certs;
};

// One bag list; bounded by the file's size (nested safeContents bags are followed one level
// per nesting, as PKCS12_parse does).
bool collect(const STACK_OF(PKCS12_SAFEBAG) * bags, const std::string& pass, Collected& out, int depth) {
    if (depth > 4) return false;
    for (int i = 0; i < sk_PKCS12_SAFEBAG_num(bags); ++i) {
        const PKCS12_SAFEBAG* bag = sk_PKCS12_SAFEBAG_value(bags, i);
        switch (PKCS12_SAFEBAG_get_nid(bag)) {
        case NID_keyBag: {
            const PKCS8_PRIV_KEY_INFO* p8 = PKCS12_SAFEBAG_get0_p8inf(bag);
            if (EVP_PKEY* k = p8 != nullptr ? EVP_PKCS82PKEY(p8) : nullptr) out.keys.emplace_back(k);
            break;
        }
        case NID_pkcs8ShroudedKeyBag: {
            const PKCS8_ptr p8(PKCS12_decrypt_skey(bag, pass.c_str(), static_cast<int>(pass.size())));
            if (!p8) return false;
            if (EVP_PKEY* k = EVP_PKCS82PKEY(p8.get())) out.keys.emplace_back(k);
            break;
        }
        case NID_certBag:
            if (PKCS12_SAFEBAG_get_bag_nid(bag) == NID_x509Certificate) {
                if (X509* x = PKCS12_SAFEBAG_get1_cert(bag)) out.certs.emplace_back(X509_ptr(x));
            }
            break;
        case NID_safeContentsBag:
            if (!collect(PKCS12_SAFEBAG_get0_safes(bag), pass, out, depth + 1)) return false;
            break;
        default: break;  // CRL and secret bags carry nothing we keep
        }
    }
    return true;
}

}  // namespace

Pkcs12Read read_pkcs12_all(const std::string& der, const std::string& password) {
    Pkcs12Read r;
    load_legacy_provider_once();
    const auto* p = reinterpret_cast<const unsigned char*>(der.data());
    const PKCS12_ptr p12(d2i_PKCS12(nullptr, &p, static_cast<long>(der.size())));
    if (!p12) {
        r.error = "not a PKCS#12 file: " + drain_errors();
        return r;
    }
    if (PKCS12_mac_present(p12.get()) == 1 &&
        PKCS12_verify_mac(p12.get(), password.c_str(), static_cast<int>(password.size())) != 1) {
        r.error = "cannot open PKCS#12 (wrong password?): " + drain_errors();
        return r;
    }
    const P7_STACK_ptr safes(PKCS12_unpack_authsafes(p12.get()));
    if (!safes) {
        r.error = "damaged PKCS#12: " + drain_errors();
        return r;
    }
    Collected c;
    for (int i = 0; i < sk_PKCS7_num(safes.get()); ++i) {
        PKCS7* p7 = sk_PKCS7_value(safes.get(), i);
        const int nid = OBJ_obj2nid(p7->type);
        BAG_STACK_ptr bags(nid == NID_pkcs7_data        ? PKCS12_unpack_p7data(p7)
                           : nid == NID_pkcs7_encrypted ? PKCS12_unpack_p7encdata(p7, password.c_str(), static_cast<int>(password.size()))
                                                        : nullptr);
        if (!bags || !collect(bags.get(), password, c, 0)) {
            r.error = "cannot open PKCS#12 contents (wrong password?): " + drain_errors();
            return r;
        }
    }
    drain_errors();
    std::vector<bool> used(c.certs.size(), false);
    for (EVP_PKEY_ptr& k : c.keys) {
        KeyMaterial m;
        for (size_t i = 0; i < c.certs.size() && !m.certificate; ++i) {
            if (!used[i] && X509_check_private_key(c.certs[i].native(), k.get()) == 1) {
                m.certificate = c.certs[i];
                used[i] = true;
            }
        }
        drain_errors();
        m.key = std::move(k);
        r.keys.push_back(std::move(m));
    }
    for (size_t i = 0; i < c.certs.size(); ++i)
        if (!used[i]) r.certificates.push_back(c.certs[i]);
    // The chain of each key: the file's other certificates, issuers only.
    for (KeyMaterial& m : r.keys) {
        if (!m.certificate) continue;
        for (const Certificate& ca : r.certificates)
            if (X509_check_issued(ca.native(), m.certificate->native()) == X509_V_OK) m.chain.push_back(ca);
    }
    if (r.keys.empty()) r.error = "the PKCS#12 file holds no private key";
    return r;
}

std::string write_pkcs12_all(const std::vector<const KeyMaterial*>& keys, const std::string& password,
                             Pkcs12Protection protection) {
    const bool legacy = protection == Pkcs12Protection::TripleDes;
    const int iterations = legacy ? 2048 : 100000;
    const int pbe = legacy ? NID_pbe_WithSHA1And3_Key_TripleDES_CBC : NID_aes_256_cbc;
    // PKCS12_add_cert/add_key grow the stack through a pointer to it: the guard owns whatever
    // it points at when this function leaves, by return or by throw.
    struct Bags {
        STACK_OF(PKCS12_SAFEBAG)* s = nullptr;
        Bags() = default;
        Bags(const Bags&) = delete;
        Bags& operator=(const Bags&) = delete;
        ~Bags() { free_bag_stack(s); }
    } bags;
    std::vector<std::string> written;  // certificate DER already in the file (chains repeat)
    int n = 0;
    for (const KeyMaterial* m : keys) {
        std::string local_id = "sealmilter-" + std::to_string(++n);
        auto* id = reinterpret_cast<unsigned char*>(local_id.data());
        const int id_len = static_cast<int>(local_id.size());
        if (m->certificate) {
            PKCS12_SAFEBAG* cb = PKCS12_add_cert(&bags.s, m->certificate->native());
            if (cb == nullptr || PKCS12_add_localkeyid(cb, id, id_len) != 1) throw_openssl("PKCS12_add_cert");
        }
        for (const Certificate& ca : m->chain) {
            const std::vector<unsigned char> der = ca.der();
            std::string key(der.begin(), der.end());
            if (std::find(written.begin(), written.end(), key) != written.end()) continue;
            written.push_back(std::move(key));
            if (PKCS12_add_cert(&bags.s, ca.native()) == nullptr) throw_openssl("PKCS12_add_cert");
        }
        PKCS12_SAFEBAG* kb = PKCS12_add_key(&bags.s, m->key.get(), 0, iterations, pbe, password.c_str());
        if (kb == nullptr || PKCS12_add_localkeyid(kb, id, id_len) != 1) throw_openssl("PKCS12_add_key");
    }
    STACK_OF(PKCS7)* raw_safes = nullptr;
    if (PKCS12_add_safe(&raw_safes, bags.s, pbe, iterations, password.c_str()) != 1) {
        free_p7_stack(raw_safes);
        throw_openssl("PKCS12_add_safe");
    }
    const P7_STACK_ptr safes(raw_safes);
    const PKCS12_ptr p12(PKCS12_add_safes(safes.get(), 0));
    const EVP_MD* mac = legacy ? EVP_sha1() : EVP_sha256();
    if (!p12 || PKCS12_set_mac(p12.get(), password.c_str(), -1, nullptr, 0, iterations, mac) != 1)
        throw_openssl("PKCS12_set_mac");
    unsigned char* der = nullptr;
    const int len = i2d_PKCS12(p12.get(), &der);
    if (len <= 0) throw_openssl("i2d_PKCS12");
    std::string out(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
    OPENSSL_free(der);
    return out;
}

}  // namespace sealmilter::crypto
