// lookup/validate.hpp — the one validation step every candidate certificate passes (SPEC §6).
//
// Checks, each with a human reason on rejection:
//   chain to the configured trust anchors (verified with a neutral purpose: OpenSSL's
//   X509_PURPOSE_SMIME_ENCRYPT demands keyEncipherment and would reject every EC encryption
//   certificate), intermediates taken from the candidate set itself; optional CRL files
//   (X509_V_FLAG_CRL_CHECK); validity period at clock.now() (expired accepted only with
//   allow_expired); not a CA; key usage per key type (RSA: keyEncipherment; EC: keyAgreement)
//   when keyUsage is present; EKU emailProtection or anyExtendedKeyUsage when EKU is present;
//   the address matches an rfc822Name SAN (domain case-insensitive; the subject emailAddress
//   only when there is no SAN extension); RSA >= 2048, EC P-256/P-384/P-521.
// Ownership: the Validator owns its X509_STORE; Verdicts hold ref-counted certificates.
// Threads:   validate() is const and thread-safe (a fresh X509_STORE_CTX per call).
// Errors:    bad trust-anchor/CRL files throw ValidatorError at construction (a config error).
#pragma once

#include "crypto/certificate.hpp"
#include "base/clock.hpp"

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace sealmilter::lookup {

struct ValidatorOptions {
    std::vector<std::string> trust_anchor_files = {};  // PEM bundles; empty = system default store
    std::vector<std::string> crl_files = {};           // PEM or DER CRLs; empty = no CRL check
    bool allow_expired = false;
    const base::Clock* clock = nullptr;  // borrowed; nullptr = system clock
};

struct Verdict {
    crypto::Certificate cert;
    bool usable = false;
    std::string reason;  // why rejected ("expired 2025-01-01T00:00:00Z", ...); "" when usable
};

class ValidatorError : public std::runtime_error {
public:
    explicit ValidatorError(const std::string& what) : std::runtime_error(what) {}
};

class Validator {
public:
    explicit Validator(ValidatorOptions options);
    ~Validator();
    Validator(const Validator&) = delete;
    Validator& operator=(const Validator&) = delete;

    // One verdict per candidate, in the given order. `trust_source` skips the chain check
    // (a source configured as trusted, e.g. a TLS-authenticated corporate directory); every
    // other check still applies.
    std::vector<Verdict> validate(const std::string& email, const std::vector<crypto::Certificate>& candidates,
                                  bool trust_source = false) const;
    // The same, trust decided per candidate: vouched[i] (the source vouches for candidate i,
    // see CertificateSource::vouches_for) skips only the chain check for that candidate.
    // Missing entries count as not vouched. dates_vouched[i] (DANE-EE) also skips the
    // validity-period check of a vouched candidate.
    std::vector<Verdict> validate(const std::string& email, const std::vector<crypto::Certificate>& candidates,
                                  const std::vector<bool>& vouched, const std::vector<bool>& dates_vouched = {}) const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

enum class EncryptTo { AllValid, Newest };

// The usable certificates to encrypt to: all of them, or the one with the latest notBefore.
std::vector<crypto::Certificate> select(const std::vector<Verdict>& verdicts, EncryptTo policy);

}  // namespace sealmilter::lookup
