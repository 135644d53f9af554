// crypto/envelope.cpp — streamed CMS encryption and decryption (see envelope.hpp).
// The encrypt sequence follows OpenSSL apps/cms.c: CMS_encrypt(PARTIAL|STREAM), one
// CMS_add1_recipient_cert per recipient (CMS_KEY_PARAM to choose RSA padding), then the
// streaming BIO chain from BIO_new_CMS, flushed to finalise.
#include "crypto/envelope.hpp"

#include <openssl/err.h>
#include <openssl/rsa.h>

namespace sealmilter::crypto {
namespace {

const EVP_CIPHER* evp_cipher(Cipher c) {
    switch (c) {
    case Cipher::Aes128Cbc: return EVP_aes_128_cbc();
    case Cipher::Aes256Cbc: return EVP_aes_256_cbc();
    case Cipher::Aes256Gcm: return EVP_aes_256_gcm();
    }
    return EVP_aes_256_cbc();
}

void add_recipient(CMS_ContentInfo* cms, const Certificate& cert, const EnvelopeOptions& opt) {
    const bool oaep = cert.key_kind() == KeyKind::Rsa && opt.rsa_padding == RsaPadding::Oaep;
    CMS_RecipientInfo* ri = CMS_add1_recipient_cert(cms, cert.native(), oaep ? CMS_KEY_PARAM : 0);
    if (ri == nullptr) throw_openssl("cannot add recipient " + cert.subject());
    if (oaep) {
        EVP_PKEY_CTX* pctx = CMS_RecipientInfo_get0_pkey_ctx(ri);  // borrowed
        if (pctx == nullptr || EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING) <= 0)
            throw_openssl("cannot select RSA-OAEP for " + cert.subject());
    }
}

bool recipient_matches(CMS_ContentInfo* cms, X509* cert) {
    STACK_OF(CMS_RecipientInfo)* ris = CMS_get0_RecipientInfos(cms);  // borrowed
    for (int i = 0; i < sk_CMS_RecipientInfo_num(ris); ++i) {
        CMS_RecipientInfo* ri = sk_CMS_RecipientInfo_value(ris, i);
        switch (CMS_RecipientInfo_type(ri)) {
        case CMS_RECIPINFO_TRANS:
            if (CMS_RecipientInfo_ktri_cert_cmp(ri, cert) == 0) return true;
            break;
        case CMS_RECIPINFO_AGREE: {
            STACK_OF(CMS_RecipientEncryptedKey)* reks = CMS_RecipientInfo_kari_get0_reks(ri);
            for (int k = 0; k < sk_CMS_RecipientEncryptedKey_num(reks); ++k) {
                if (CMS_RecipientEncryptedKey_cert_cmp(sk_CMS_RecipientEncryptedKey_value(reks, k), cert) == 0)
                    return true;
            }
            break;
        }
        default: break;
        }
    }
    return false;
}

}  // namespace

bool is_authenticated(Cipher c) noexcept { return c == Cipher::Aes256Gcm; }

const char* cipher_name(Cipher c) noexcept {
    switch (c) {
    case Cipher::Aes128Cbc: return "aes-128-cbc";
    case Cipher::Aes256Cbc: return "aes-256-cbc";
    case Cipher::Aes256Gcm: return "aes-256-gcm";
    }
    return "?";
}

EnvelopeWriter::EnvelopeWriter(const std::vector<Certificate>& recipients, const EnvelopeOptions& options,
                               ByteSink& der_out)
    : counter_(der_out) {
    if (recipients.empty()) throw CryptoError("EnvelopeWriter: no recipients");
    // CMS_BINARY: the caller already canonicalised the entity; OpenSSL must not touch it.
    cms_ = owned_or_throw<CMS_ptr>(CMS_encrypt_ex(nullptr, nullptr, evp_cipher(options.cipher),
                                                  CMS_BINARY | CMS_PARTIAL | CMS_STREAM, nullptr, nullptr),
                                   "CMS_encrypt");
    for (const Certificate& c : recipients) add_recipient(cms_.get(), c, options);
    stream_ = std::make_unique<CmsStream>(cms_.get(), counter_);
}

EnvelopeWriter::~EnvelopeWriter() = default;

void EnvelopeWriter::write(const char* data, size_t len) {
    if (finished_) throw CryptoError("EnvelopeWriter: write after finish");
    stream_->write(data, len);
}

void EnvelopeWriter::finish() {
    if (finished_) return;
    finished_ = true;
    stream_->finish("CMS stream finalise");
    // Measured with OpenSSL 3.0.x: AES-GCM AuthEnvelopedData over empty content yields no
    // output and no error. Never let that pass as an encrypted message.
    if (counter_.count == 0) throw CryptoError("CMS stream produced no output (empty content with AES-GCM)");
}

namespace {

// Parses an envelope; `cms` stays empty and the outcome says why when it is none.
DecryptOutcome read_envelope(BIO* der_in, CMS_ptr& cms) {
    DecryptOutcome r;
    cms.reset(d2i_CMS_bio(der_in, nullptr));
    if (!cms) {
        r.status = DecryptStatus::NotCms;
        r.detail = "not a CMS structure: " + drain_errors();
        return r;
    }
    const int type = OBJ_obj2nid(CMS_get0_type(cms.get()));
    if (type != NID_pkcs7_enveloped && type != NID_id_smime_ct_authEnvelopedData) {
        cms.reset();
        r.status = DecryptStatus::NotEncrypted;
        r.detail = std::string("CMS content type is ") + OBJ_nid2ln(type) + ", not enveloped data";
        return r;
    }
    r.status = DecryptStatus::Ok;
    return r;
}

}  // namespace

DecryptOutcome inspect_envelope(std::string_view der, std::vector<RecipientId>& ids) {
    BIO_ptr in(BIO_new_mem_buf(der.data(), static_cast<int>(der.size())));
    if (!in) throw_openssl("BIO_new_mem_buf");
    CMS_ptr cms;
    DecryptOutcome r = read_envelope(in.get(), cms);
    if (r.status == DecryptStatus::Ok) ids = recipient_ids(cms.get());
    return r;
}

DecryptOutcome decrypt_envelope(BIO* der_in, const KeyMaterial& key, ByteSink& out) {
    CMS_ptr cms;
    DecryptOutcome r = read_envelope(der_in, cms);
    if (r.status != DecryptStatus::Ok) return r;
    X509* cert = key.certificate ? key.certificate->native() : nullptr;
    if (cert != nullptr && !recipient_matches(cms.get(), cert)) {
        r.status = DecryptStatus::NoMatchingRecipient;
        r.detail = "the message is not encrypted to " + key.certificate->subject();
        return r;
    }
    BIO_ptr sink = make_sink_bio(out);
    // CMS_DEBUG_DECRYPT: without a certificate, fail plainly instead of OpenSSL's
    // Bleichenbacher countermeasure (random key, garbage output).
    const unsigned flags = CMS_BINARY | (cert == nullptr ? CMS_DEBUG_DECRYPT : 0U);
    const int ok = CMS_decrypt(cms.get(), key.key.get(), cert, nullptr, sink.get(), flags);
    rethrow_pending(sink.get());
    if (ok != 1) {
        r.status = cert == nullptr ? DecryptStatus::NoMatchingRecipient : DecryptStatus::Failed;
        r.detail = "decryption failed: " + drain_errors();
        return r;
    }
    r.status = DecryptStatus::Ok;
    return r;
}

}  // namespace sealmilter::crypto
