// lookup/validate.cpp — the one validation step every candidate certificate passes (SPEC §6).
//
// Every check runs and every failure is reported, joined with "; ", so one log line says all
// that is wrong with a candidate ("expired ...; address ... not in certificate ...").
// The leaf's validity period is checked here (with the date in the reason, and allow_expired);
// OpenSSL's verifier therefore ignores only the leaf's own time errors and still checks the
// time of every CA certificate and CRL in the chain.
#include "lookup/validate.hpp"

#include "base/ascii.hpp"
#include "base/file.hpp"
#include "crypto/ossl.hpp"

#include <openssl/pem.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <set>
#include <string_view>
#include <system_error>

namespace sealmilter::lookup {
namespace {

using X509_STORE_ptr = std::unique_ptr<X509_STORE, crypto::Deleter<X509_STORE_free>>;
using X509_STORE_CTX_ptr = std::unique_ptr<X509_STORE_CTX, crypto::Deleter<X509_STORE_CTX_free>>;
using X509_CRL_ptr = std::unique_ptr<X509_CRL, crypto::Deleter<X509_CRL_free>>;

// PEM (one or many "X509 CRL" blocks) or a single DER CRL; adds each to the store.
void add_crl_file(X509_STORE* store, const std::string& path) {
    std::string bytes;
    try {
        bytes = base::read_file(path);
    } catch (const std::system_error& e) {
        throw ValidatorError("cannot read CRL file " + path + ": " + e.code().message());
    }
    std::vector<X509_CRL_ptr> crls;
    if (bytes.find("-----BEGIN") != std::string::npos) {
        crypto::BIO_ptr mem(BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())));
        if (!mem) crypto::throw_openssl("BIO_new_mem_buf");
        // Bounded by the input size: each iteration consumes one PEM block.
        while (X509_CRL* crl = PEM_read_bio_X509_CRL(mem.get(), nullptr, nullptr, nullptr)) crls.emplace_back(crl);
    } else {
        const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
        if (X509_CRL* crl = d2i_X509_CRL(nullptr, &p, static_cast<long>(bytes.size()))) crls.emplace_back(crl);
    }
    const std::string err = crypto::drain_errors();  // the final PEM "no start line" is expected
    if (crls.empty())
        throw ValidatorError("CRL file " + path + ": no PEM or DER CRL could be parsed" +
                             (err.empty() ? "" : " (" + err + ")"));
    for (const X509_CRL_ptr& crl : crls) {
        // add_crl takes its own reference; ours is released by the unique_ptr.
        if (X509_STORE_add_crl(store, crl.get()) != 1)
            throw ValidatorError("CRL file " + path + ": cannot add CRL (" + crypto::drain_errors() + ")");
    }
}

X509_STORE_ptr make_store(const ValidatorOptions& options) {
    X509_STORE_ptr store(X509_STORE_new());
    if (!store) crypto::throw_openssl("X509_STORE_new");
    if (options.trust_anchor_files.empty() && X509_STORE_set_default_paths(store.get()) != 1)
        throw ValidatorError("cannot load the system trust store: " + crypto::drain_errors());
    for (const std::string& file : options.trust_anchor_files) {
        // Fails on an unreadable file, a PEM syntax error, or a file without any certificate.
        if (X509_STORE_load_file(store.get(), file.c_str()) != 1)
            throw ValidatorError("cannot load trust anchor file " + file + ": " + crypto::drain_errors());
    }
    for (const std::string& file : options.crl_files) add_crl_file(store.get(), file);
    // PARTIAL_CHAIN: a configured anchor need not be a self-signed root, so an admin may pin
    // an issuing CA (or a recipient certificate itself) without trusting its whole hierarchy.
    // CRL_CHECK (leaf only) when CRLs are configured: a leaf whose issuer has no CRL in the
    // store then fails with "unable to get certificate CRL" (fail closed).
    unsigned long flags = X509_V_FLAG_PARTIAL_CHAIN;
    if (!options.crl_files.empty()) flags |= X509_V_FLAG_CRL_CHECK;
    X509_STORE_set_flags(store.get(), flags);
    return store;
}

// The leaf's notBefore/notAfter are judged by leaf_time_reason() (allow_expired, dated reason);
// every other verification error, including CA and CRL times, stands.
int ignore_leaf_time_errors(int ok, X509_STORE_CTX* ctx) {
    if (ok == 0 && X509_STORE_CTX_get_error_depth(ctx) == 0) {
        const int err = X509_STORE_CTX_get_error(ctx);
        if (err == X509_V_ERR_CERT_HAS_EXPIRED || err == X509_V_ERR_CERT_NOT_YET_VALID) return 1;
    }
    return ok;
}

std::string chain_reason(X509_STORE* store, X509* leaf, STACK_OF(X509) * untrusted, std::time_t now) {
    X509_STORE_CTX_ptr ctx(X509_STORE_CTX_new());
    if (!ctx) crypto::throw_openssl("X509_STORE_CTX_new");
    if (X509_STORE_CTX_init(ctx.get(), store, leaf, untrusted) != 1) crypto::throw_openssl("X509_STORE_CTX_init");
    // A neutral purpose (SPEC §6 trap): X509_PURPOSE_SMIME_ENCRYPT demands keyEncipherment and
    // would reject every EC (keyAgreement) certificate; key usage is checked per key type below.
    X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_ANY);
    X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx.get()), now);
    X509_STORE_CTX_set_verify_cb(ctx.get(), ignore_leaf_time_errors);
    const int rc = X509_verify_cert(ctx.get());
    crypto::drain_errors();  // the verify error below says it all; keep this thread's queue clean
    if (rc == 1) return {};
    const int err = X509_STORE_CTX_get_error(ctx.get());
    if (err == X509_V_ERR_CERT_REVOKED) return "revoked (CRL)";
    std::string reason = std::string("chain: ") + X509_verify_cert_error_string(err);
    const int depth = X509_STORE_CTX_get_error_depth(ctx.get());
    X509* at = X509_STORE_CTX_get_current_cert(ctx.get());  // borrowed
    if (depth > 0 && at != nullptr) {
        X509_up_ref(at);
        reason +=
            " at depth " + std::to_string(depth) + " (" + crypto::Certificate(crypto::X509_ptr(at)).subject() + ")";
    }
    return reason;
}

// The domain is case-insensitive (RFC 5321 §2.4). The local part is case-sensitive by the
// letter of RFC 5321 §2.4, but no real mailbox provider or directory treats "Alice" and
// "alice" as different people, and certificates routinely carry another case than RCPT TO
// (NSS's own test CA issues "Alice@example.com"). Refusing to encrypt over a case difference
// only means not encrypting, so ASCII letters compare case-insensitively in the local part
// too; non-ASCII bytes (SMTPUTF8, RFC 6531) compare exactly.
bool same_address(std::string_view a, std::string_view b) {
    return a.find('@') != std::string_view::npos && base::iequals(a, b);
}

std::string address_reason(const std::string& email, const crypto::Certificate& cert) {
    const std::vector<std::string> addresses = cert.email_addresses();
    std::string has;
    for (const std::string& a : addresses) {
        if (same_address(email, a)) return {};
        has += (has.empty() ? "" : ", ") + a;
    }
    return "address " + email + " not in certificate (has: " + (has.empty() ? "none" : has) + ")";
}

std::string leaf_time_reason(const crypto::Certificate& cert, std::time_t now, bool allow_expired) {
    if (now < cert.not_before()) return "not yet valid (notBefore " + crypto::format_time_utc(cert.not_before()) + ")";
    if (now > cert.not_after() && !allow_expired) return "expired " + crypto::format_time_utc(cert.not_after());
    return {};
}

std::string eku_reason(X509* x) {
    if ((X509_get_extension_flags(x) & EXFLAG_XKUSAGE) == 0) return {};  // no EKU: any use
    if ((X509_get_extended_key_usage(x) & (XKU_SMIME | XKU_ANYEKU)) != 0) return {};
    return "EKU lacks emailProtection";
}

// Everything but the chain; cheap, no I/O.
// check_dates false: a DANE-EE binding (RFC 7671 §5.1) stands in for the validity period.
std::vector<std::string> local_reasons(const std::string& email, const crypto::Certificate& cert, std::time_t now,
                                       bool allow_expired, bool check_dates) {
    X509* x = cert.native();
    std::vector<std::string> reasons;
    const uint32_t flags = X509_get_extension_flags(x);
    if ((flags & EXFLAG_INVALID) != 0) reasons.emplace_back("malformed certificate extension");
    if ((flags & EXFLAG_CA) != 0)
        reasons.emplace_back("a CA certificate (basicConstraints CA:TRUE) is not a recipient");
    for (std::string r : {address_reason(email, cert),
                          check_dates ? leaf_time_reason(cert, now, allow_expired) : std::string(),
                          cert.encryption_unsuitability(), eku_reason(x)}) {
        if (!r.empty()) reasons.push_back(std::move(r));
    }
    return reasons;
}

std::string join(const std::vector<std::string>& parts) {
    std::string out;
    for (const std::string& p : parts) out += (out.empty() ? "" : "; ") + p;
    return out;
}

}  // namespace

struct Validator::Impl {
    ValidatorOptions options;
    base::SystemClock system_clock;
    const base::Clock* clock = nullptr;
    X509_STORE_ptr store;  // built once; X509_STORE lookups are locked, so shared by all calls
};

Validator::Validator(ValidatorOptions options) : impl_(std::make_unique<Impl>()) {
    impl_->options = std::move(options);
    impl_->clock = impl_->options.clock != nullptr ? impl_->options.clock : &impl_->system_clock;
    impl_->store = make_store(impl_->options);
}

Validator::~Validator() = default;

std::vector<Verdict> Validator::validate(const std::string& email, const std::vector<crypto::Certificate>& candidates,
                                         bool trust_source) const {
    return validate(email, candidates, std::vector<bool>(candidates.size(), trust_source));
}

std::vector<Verdict> Validator::validate(const std::string& email, const std::vector<crypto::Certificate>& candidates,
                                         const std::vector<bool>& vouched,
                                         const std::vector<bool>& dates_vouched) const {
    const std::time_t now = impl_->clock->now();  // one instant for the whole candidate set
    // Intermediates come from the candidate set itself (a directory answers with a chain).
    crypto::X509_STACK_ptr untrusted(sk_X509_new_null());
    if (!untrusted) crypto::throw_openssl("sk_X509_new_null");
    for (const crypto::Certificate& c : candidates) {
        if (X509_add_cert(untrusted.get(), c.native(), X509_ADD_FLAG_UP_REF | X509_ADD_FLAG_NO_DUP) != 1)
            crypto::throw_openssl("X509_add_cert");
    }
    std::vector<Verdict> verdicts;
    verdicts.reserve(candidates.size());
    for (size_t i = 0; i < candidates.size(); ++i) {
        const crypto::Certificate& cert = candidates[i];
        // A key OpenSSL cannot decode (unknown algorithm) leaves no public key: nothing to
        // encrypt to, and nothing the other checks could say about it.
        if (X509_get0_pubkey(cert.native()) == nullptr) {
            crypto::drain_errors();
            verdicts.push_back(Verdict{cert, false, "no usable public key"});
            continue;
        }
        const bool is_vouched = i < vouched.size() && vouched[i];
        const bool dates_ok = is_vouched && i < dates_vouched.size() && dates_vouched[i];
        std::vector<std::string> reasons = local_reasons(email, cert, now, impl_->options.allow_expired, !dates_ok);
        if (!is_vouched) {
            std::string chain = chain_reason(impl_->store.get(), cert.native(), untrusted.get(), now);
            if (!chain.empty()) reasons.push_back(std::move(chain));
        }
        verdicts.push_back(Verdict{cert, reasons.empty(), join(reasons)});
    }
    return verdicts;
}

std::vector<crypto::Certificate> select(const std::vector<Verdict>& verdicts, EncryptTo policy) {
    std::vector<crypto::Certificate> usable;
    std::set<std::string> seen;  // fingerprints: a source may return the same certificate twice
    for (const Verdict& v : verdicts) {
        if (v.usable && seen.insert(v.cert.fingerprint_sha256()).second) usable.push_back(v.cert);
    }
    // Newest notBefore first; stable, so equal dates keep the sources' order.
    std::stable_sort(usable.begin(), usable.end(), [](const crypto::Certificate& a, const crypto::Certificate& b) {
        return a.not_before() > b.not_before();
    });
    if (policy == EncryptTo::Newest && usable.size() > 1) usable.erase(usable.begin() + 1, usable.end());
    return usable;
}

}  // namespace sealmilter::lookup
