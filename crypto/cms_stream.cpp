// crypto/cms_stream.cpp — see cms_stream.hpp.
#include "crypto/cms_stream.hpp"

#include <openssl/err.h>

#include <algorithm>

namespace sealmilter::crypto {

CmsStream::CmsStream(CMS_ContentInfo* cms, ByteSink& out, Layout layout) : cms_(cms), out_(out), layout_(layout) {
    if (layout_ == Layout::Embedded) {
        sink_ = make_sink_bio(out_);
        chain_ = BIO_new_CMS(sink_.get(), cms_);
    } else {
        sink_ = owned_or_throw<BIO_ptr>(BIO_new(BIO_s_null()), "BIO_new(null)");
        chain_ = CMS_dataInit(cms_, sink_.get());
    }
    if (chain_ == nullptr) throw_openssl("CMS stream init");
}

void CmsStream::release() noexcept {
    // Free the filter BIOs BIO_new_CMS pushed in front of sink_, stopping at sink_ (which
    // sink_ itself owns). Bounded by the chain length (a handful of BIOs).
    while (chain_ != nullptr && chain_ != sink_.get()) {
        BIO* next = BIO_pop(chain_);
        BIO_free(chain_);
        chain_ = next;
    }
    chain_ = nullptr;
}

void CmsStream::write(const char* data, size_t len) {
    if (chain_ == nullptr) throw CryptoError("CMS stream: write after finish");
    // BIO_write takes int; feed large buffers in slices.
    while (len > 0) {
        const int n = static_cast<int>(std::min<size_t>(len, 1 << 20));
        const int w = BIO_write(chain_, data, n);
        rethrow_pending(sink_.get());
        if (w != n) throw_openssl("CMS stream write");
        data += n;
        len -= static_cast<size_t>(n);
    }
}

void CmsStream::finish(const char* what) {
    if (chain_ == nullptr) return;
    // Like OpenSSL's own i2d_ASN1_bio_stream(), do not trust BIO_flush()'s return value: for
    // AuthEnvelopedData the filter chain reports 0 although the structure was completed.
    // Failures surface on the error queue (or from our sink) instead.
    ERR_clear_error();
    if (layout_ == Layout::Detached) {
        if (CMS_dataFinal(cms_, chain_) != 1) throw_openssl(what);
        release();
        const BIO_ptr der = make_sink_bio(out_);
        const int ok = i2d_CMS_bio(der.get(), cms_);
        rethrow_pending(der.get());
        if (ok != 1) throw_openssl(what);
        return;
    }
    const long flushed = BIO_flush(chain_);
    rethrow_pending(sink_.get());
    if (ERR_peek_error() != 0) throw_openssl(std::string(what) + " (flush returned " + std::to_string(flushed) + ")");
    release();
}

}  // namespace sealmilter::crypto
