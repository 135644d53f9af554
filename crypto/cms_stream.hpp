// crypto/cms_stream.hpp — the streaming BIO chain that EnvelopeWriter and SignedDataWriter share.
//
// Purpose:   Layout::Embedded: BIO_new_CMS over a ByteSink adapter: bytes written go through
//            the CMS filter (encrypting or digesting), the BER structure comes out into the sink
//            as it grows, and finish() completes it (apps/cms.c's streaming output).
//            Layout::Detached (a detached signature): the bytes only pass the digest BIOs
//            (CMS_dataInit over a null BIO, as SMIME_write_ASN1's ASN1_OP_DETACHED_PRE does);
//            finish() signs (CMS_dataFinal) and writes the whole DER structure to the sink.
// Ownership: borrows the CMS_ContentInfo and the ByteSink; owns the filter BIOs and frees
//            them on finish() or destruction.
// Threads:   one thread's.
// Errors:    CryptoError with the drained OpenSSL queue; the sink's own exception propagates.
#pragma once

#include "crypto/base64.hpp"
#include "crypto/ossl.hpp"

namespace sealmilter::crypto {

class CmsStream {
public:
    enum class Layout { Embedded, Detached };
    CmsStream(CMS_ContentInfo* cms, ByteSink& out, Layout layout = Layout::Embedded);
    ~CmsStream() { release(); }
    CmsStream(const CmsStream&) = delete;
    CmsStream& operator=(const CmsStream&) = delete;

    void write(const char* data, size_t len);  // CryptoError after finish()
    // Idempotent. Flushes the chain, which finalises the structure; `what` names the caller in errors.
    void finish(const char* what);

private:
    void release() noexcept;

    CMS_ContentInfo* cms_;
    ByteSink& out_;
    Layout layout_;
    BIO_ptr sink_;          // the tail of the chain: our ByteSink adapter, or a null BIO
    BIO* chain_ = nullptr;  // head of the CMS chain ending in sink_ (owned until released)
};

}  // namespace sealmilter::crypto
