// milter/issuing.hpp — what a transaction needs of the issuer (issue 13, docs/issuing.md).
//
// Purpose:   CertificateIssuer is the transaction's view of keys::Issuer (cli/wiring adapts
//            the real one; protocol tests use a fake): whether an address fits a certificate
//            (the RCPT-time 550 5.7.1 sentence), whether a pre-generated key pair is ready now
//            (the RCPT-time 451 4.7.1 when the pool is empty), and issuing at end of message.
//            Nothing here generates keys in the caller's thread: ready() and
//            uncertifiable_reason() are cheap, issue() takes a pooled pair.
// Ownership: shared by every Services snapshot (SIGHUP keeps the issuer and its pool).
// Threads:   every method is safe concurrently.
// Errors:    values: nullopt / *error with one sentence.
#pragma once

#include "crypto/certificate.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace sealmilter::milter {

class CertificateIssuer {
public:
    virtual ~CertificateIssuer() = default;
    // nullopt when `address` can be put into an rfc822Name SAN; else the sentence why not.
    virtual std::optional<std::string> uncertifiable_reason(std::string_view address) const = 0;
    // True when a certificate can be issued right now (a key pair is ready).
    virtual bool ready() const = 0;
    // The address's certificate: newly issued (key escrowed, notice due) or the current one
    // when another message issued it first. nullopt + *error when it cannot be issued now.
    virtual std::optional<crypto::Certificate> issue(std::string_view address, std::string* error) = 0;
};

}  // namespace sealmilter::milter
