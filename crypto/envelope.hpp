// crypto/envelope.hpp — CMS EnvelopedData / AuthEnvelopedData, streamed, and decryption.
//
// Purpose:   EnvelopeWriter turns plaintext pushed in chunks into a BER CMS structure
//            (RFC 5652 EnvelopedData with AES-CBC, RFC 5083/5084 AuthEnvelopedData with
//            AES-GCM) for RSA recipients (key transport, PKCS#1 v1.5 or OAEP, RFC 8017/3560)
//            and EC recipients (ECDH key agreement, RFC 5753). Memory stays bounded: the CMS
//            BIO chain encrypts on the fly (BIO_new_CMS), nothing holds the whole message.
// Ownership: the writer borrows its output ByteSink; recipients are copied (ref-counted).
// Threads:   one writer per message; independent writers may run on different threads.
// Errors:    CryptoError (with the drained OpenSSL queue) when OpenSSL fails; the sink's own
//            exception propagates unchanged. decrypt_envelope() reports expected failures
//            (not CMS, wrong key) as a DecryptStatus value.
#pragma once

#include "crypto/base64.hpp"
#include "crypto/certificate.hpp"
#include "crypto/cms_stream.hpp"
#include "crypto/private_key.hpp"
#include "crypto/recipient_id.hpp"

#include <memory>
#include <string>
#include <vector>

namespace sealmilter::crypto {

enum class Cipher { Aes128Cbc, Aes256Cbc, Aes256Gcm };
enum class RsaPadding { Pkcs1, Oaep };

struct EnvelopeOptions {
    Cipher cipher = Cipher::Aes256Cbc;
    RsaPadding rsa_padding = RsaPadding::Pkcs1;
};

bool is_authenticated(Cipher c) noexcept;     // AuthEnvelopedData (GCM)
const char* cipher_name(Cipher c) noexcept;   // "aes-256-cbc", ...

class EnvelopeWriter {
public:
    // recipients must be non-empty and each encryption-suitable (Certificate checks).
    EnvelopeWriter(const std::vector<Certificate>& recipients, const EnvelopeOptions& options,
                   ByteSink& der_out);
    ~EnvelopeWriter();
    EnvelopeWriter(const EnvelopeWriter&) = delete;
    EnvelopeWriter& operator=(const EnvelopeWriter&) = delete;

    void write(const char* data, size_t len);
    void finish();  // completes the structure (padding, GCM tag, end-of-contents)

private:
    // Counts what reaches the caller's sink: an empty result is an error, never a "success".
    class CountingSink final : public ByteSink {
    public:
        explicit CountingSink(ByteSink& next) : next_(next) {}
        void write(const char* data, size_t len) override {
            next_.write(data, len);
            count += len;
        }
        unsigned long long count = 0;

    private:
        ByteSink& next_;
    };

    CountingSink counter_;
    CMS_ptr cms_;
    std::unique_ptr<CmsStream> stream_;
    bool finished_ = false;
};

enum class DecryptStatus { Ok, NotCms, NotEncrypted, NoMatchingRecipient, Failed };

struct DecryptOutcome {
    DecryptStatus status = DecryptStatus::Failed;
    std::string detail;
};

// der_in: the BER/DER CMS bytes. Plaintext goes to `out`. When key.certificate is set the
// recipient is matched by issuer/serial (KTRI) or originator key (KARI) before decrypting.
DecryptOutcome decrypt_envelope(BIO* der_in, const KeyMaterial& key, ByteSink& out);

// Whether `der` is an EnvelopedData / AuthEnvelopedData (Ok; `ids` gets its recipient
// identifiers) or not (NotCms, NotEncrypted with the reason), without decrypting.
DecryptOutcome inspect_envelope(std::string_view der, std::vector<RecipientId>& ids);

}  // namespace sealmilter::crypto
