// crypto/cms_stream.hpp — the streaming BIO chain that EnvelopeWriter and SignedDataWriter share.
//
// Purpose:   BIO_new_CMS over a ByteSink adapter: bytes written go through the CMS filter
//            (encrypting or digesting), the BER structure comes out into the sink as it grows,
//            and finish() completes it (apps/cms.c's streaming output, without SMIME_write).
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
    CmsStream(CMS_ContentInfo* cms, ByteSink& out);
    ~CmsStream() { release(); }
    CmsStream(const CmsStream&) = delete;
    CmsStream& operator=(const CmsStream&) = delete;

    void write(const char* data, size_t len);
    // Flushes the chain, which finalises the structure; `what` names the caller in errors.
    void finish(const char* what);

private:
    void release() noexcept;

    BIO_ptr sink_;          // our ByteSink adapter, the tail of the chain
    BIO* chain_ = nullptr;  // head of the CMS chain ending in sink_ (owned until released)
};

}  // namespace sealmilter::crypto
