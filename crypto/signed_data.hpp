// crypto/signed_data.hpp — CMS SignedData (RFC 5652 §5): reading and verifying signatures,
// their S/MIME signed attributes, and a streaming writer.
//
// Purpose:   SignedData::parse + verify_detached / verify_opaque check a signature over the
//            exact bytes (the signer's certificate is NOT path-validated here: that is
//            lookup::Validator's job); signers() reads what harvesting needs: the signer's
//            certificate, the digest, SMIMECapabilities (RFC 8551 §2.5.2) and the certificate
//            SMIMEEncryptionKeyPreference names (RFC 8551 §2.5.3). SignedDataWriter signs
//            content pushed in chunks (BIO_new_CMS streaming, as apps/cms.c -stream): detached
//            for multipart/signed, or opaque (encapsulated) for application/pkcs7-mime; memory
//            stays bounded whatever the content size.
// Ownership: SignedData owns its parsed CMS; Certificates returned are independent values.
//            The writer borrows its signer KeyMaterial and its ByteSink; both must outlive it.
// Threads:   a SignedData / writer is one thread's; distinct ones may run concurrently.
// Errors:    bad input is a value (parse error string, verify false + detail); CryptoError
//            for OpenSSL failures while writing; the sink's own exception propagates unchanged.
#pragma once

#include "crypto/base64.hpp"
#include "crypto/certificate.hpp"
#include "crypto/cms_stream.hpp"
#include "crypto/digest.hpp"
#include "crypto/private_key.hpp"

#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sealmilter::crypto {

// What a ContentInfo holds (RFC 5652 §3), from its DER/BER.
enum class CmsKind { NotCms, Signed, Enveloped, Other };  // Enveloped: also AuthEnvelopedData
struct CmsType {
    CmsKind kind = CmsKind::NotCms;
    std::string oid;    // the contentType, dotted
    std::string error;  // NotCms: the parser's complaint
};
CmsType cms_type(std::string_view der);

// One SignerInfo, as read from the SignedData.
struct SignerDetails {
    std::optional<Certificate> certificate;  // the signer's, when the SignedData carries it
    std::string digest;                      // "SHA256", or the dotted OID of an unknown one
    // SMIMECapabilities in the sender's order, named as capability_name() names them; empty
    // when the attribute is absent.
    std::vector<std::string> capabilities{};
    // The certificate SMIMEEncryptionKeyPreference names, when it is among the SignedData's
    // certificates; key_preference_note says why not when the attribute is present but
    // unusable ("" otherwise).
    std::optional<Certificate> key_preference;
    std::string key_preference_note;
    std::optional<std::time_t> signing_time{};  // the signingTime attribute, when present
};

class SignedData {
public:
    // The DER/BER ContentInfo; std::nullopt (and *error) when it is not CMS SignedData.
    static std::optional<SignedData> parse(std::string_view der, std::string* error);

    // Signature over `content` (CMS_BINARY: the bytes as they are). False + *detail on failure.
    bool verify_detached(std::string_view content, std::string* detail = nullptr) const;
    // Signature over the encapsulated content; returns that content when it verifies.
    std::optional<std::string> verify_opaque(std::string* detail = nullptr) const;
    // The encapsulated content WITHOUT verification (to find what a signature wraps);
    // std::nullopt for a detached signature.
    std::optional<std::string> content() const;
    // The signature AND each signer's chain to `anchors` (S/MIME signing purpose, at the
    // current time); empty `anchors`: OpenSSL's default paths (the system bundle).
    // `detached`: the signed bytes of a detached signature (std::nullopt: opaque).
    bool verify_chain(std::optional<std::string_view> detached, const std::vector<Certificate>& anchors,
                      std::string* detail = nullptr) const;

    std::vector<SignerDetails> signers() const;

private:
    explicit SignedData(CMS_ptr cms) : cms_(std::move(cms)) {}
    CMS_ptr cms_;
};

// The SMIMECapabilities name of an algorithm OID (dotted), or the dotted OID itself:
// "aes256-gcm", "aes128-gcm", "aes256-cbc", "aes192-cbc", "aes128-cbc", "des-ede3-cbc",
// "rsaes-oaep".
std::string capability_name(const std::string& dotted_oid);

struct SignOptions {
    Digest digest = Digest::Sha256;
    bool detached = true;  // false: opaque, the content is encapsulated
    // signingTime (RFC 5652 §11.3); std::nullopt: the time of signing.
    std::optional<std::time_t> signing_time{};
    // SMIMECapabilities to announce, strongest first: names as capability_name() gives them
    // or dotted OIDs. Empty: no SMIMECapabilities attribute.
    std::vector<std::string> capabilities{};
    // SMIMEEncryptionKeyPreference (RFC 8551 §2.5.3, the issuerAndSerialNumber choice) naming
    // this certificate, which also goes into the SignedData's certificates so a receiver can
    // encrypt its answer to it; std::nullopt: no attribute.
    std::optional<Certificate> encryption_key_preference{};
};

// The signature algorithm follows the key: RSA PKCS#1 v1.5 for an rsaEncryption key, RSA-PSS
// (salt = digest length, MGF1 with the same digest, RFC 8702 / RFC 4056) for an id-RSASSA-PSS key,
// ECDSA for an EC key.
class SignedDataWriter {
public:
    // signer.key and signer.certificate are required; signer.chain is included as well.
    SignedDataWriter(const KeyMaterial& signer, const SignOptions& options, ByteSink& der_out);
    ~SignedDataWriter();
    SignedDataWriter(const SignedDataWriter&) = delete;
    SignedDataWriter& operator=(const SignedDataWriter&) = delete;

    void write(const char* data, size_t len);  // content bytes, exactly as they are to be signed
    void finish();  // signs and writes the rest of the structure (for detached: all of it)

private:
    CMS_ptr cms_;
    std::unique_ptr<CmsStream> stream_;
};

}  // namespace sealmilter::crypto
