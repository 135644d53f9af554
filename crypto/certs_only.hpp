// crypto/certs_only.hpp — the certificates inside a CMS SignedData "certs-only" bundle.
//
// Purpose:   directories publish S/MIME certificates as a degenerate SignedData (RFC 5751
//            §3.8 / RFC 8551 §3.8 "certs-only"; LDAP's userSMIMECertificate, RFC 2798 §2.8):
//            no signers, or (Outlook's form) one signer whose signed attributes carry the
//            SMIMECapabilities the holder advertises. read_certs_only returns every
//            certificate of the bundle (end-entity and intermediates: the validator builds
//            chains from the candidate set) and the capabilities when a signer states them.
//            Nothing is verified here: the certificates are unvalidated candidates.
// Ownership: returned certificates are independent ref-counted values.
// Threads:   pure function, reentrant.
// Errors:    bad input is a value: `error` set and no certificates.
#pragma once

#include "crypto/certificate.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace sealmilter::crypto {

struct CertsOnlyBundle {
    std::vector<Certificate> certificates;
    std::vector<std::string> capabilities;  // capability_name() names, sender's order; empty = none stated
    std::string error;                      // set when the bytes are not a SignedData with certificates
};

// `der`: the DER/BER ContentInfo. At most `max_certificates` are returned (error set beyond).
CertsOnlyBundle read_certs_only(std::string_view der, size_t max_certificates = 100);

}  // namespace sealmilter::crypto
