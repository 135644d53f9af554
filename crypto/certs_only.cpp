// crypto/certs_only.cpp — see certs_only.hpp.
#include "crypto/certs_only.hpp"

#include "crypto/ossl.hpp"
#include "crypto/signed_data.hpp"

#include <openssl/cms.h>

#include <limits>
#include <optional>

namespace sealmilter::crypto {
CertsOnlyBundle read_certs_only(std::string_view der, size_t max_certificates) {
    CertsOnlyBundle out;
    if (der.empty() || der.size() > static_cast<size_t>(std::numeric_limits<int>::max())) {
        out.error = "empty or oversized CMS bundle";
        return out;
    }
    const CmsType type = cms_type(der);
    if (type.kind != CmsKind::Signed) {
        out.error = type.kind == CmsKind::NotCms ? "not CMS: " + type.error : "CMS " + type.oid + ", not SignedData";
        return out;
    }
    BIO_ptr in(BIO_new_mem_buf(der.data(), static_cast<int>(der.size())));
    CMS_ptr cms(in ? d2i_CMS_bio(in.get(), nullptr) : nullptr);
    if (!cms) {
        out.error = "unparsable SignedData: " + drain_errors();
        return out;
    }
    const X509_STACK_ptr certs(CMS_get1_certs(cms.get()));
    const int n = certs ? sk_X509_num(certs.get()) : 0;
    if (n <= 0) {
        out.error = "SignedData without certificates";
        return out;
    }
    if (static_cast<size_t>(n) > max_certificates) {
        out.error = "more than " + std::to_string(max_certificates) + " certificates in the bundle";
        return out;
    }
    for (int i = 0; i < n; ++i) {
        X509* x = sk_X509_value(certs.get(), i);
        X509_up_ref(x);
        out.certificates.emplace_back(X509_ptr(x));
    }
    // Capabilities (RFC 8551 §2.5.2) from the first signer that states them.
    std::string ignored;
    if (const std::optional<SignedData> sd = SignedData::parse(der, &ignored)) {
        for (const SignerDetails& s : sd->signers()) {
            if (s.capabilities.empty()) continue;
            out.capabilities = s.capabilities;
            break;
        }
    }
    drain_errors();
    return out;
}

}  // namespace sealmilter::crypto
