// crypto/recipient_id.hpp — CMS RecipientIdentifiers: how an envelope names the key that opens it.
//
// Purpose:   An EnvelopedData / AuthEnvelopedData names each recipient's key by
//            issuerAndSerialNumber or subjectKeyIdentifier (RFC 5652 §6.2.1 KTRI, §6.2.2 KARI
//            rKeyId). recipient_ids() lists them for a CMS structure; certificate_ids() gives the
//            identifiers a certificate answers to. Both reduce to the same index keys, so a key
//            store finds the key for a message by hash lookup, never by trying every key.
// Ownership: values.
// Threads:   re-entrant.
// Errors:    malformed structures yield fewer identifiers, never an exception.
#pragma once

#include "crypto/certificate.hpp"
#include "crypto/ossl.hpp"

#include <string>
#include <vector>

namespace sealmilter::crypto {

struct RecipientId {
    enum class Kind { IssuerSerial, SubjectKeyId };
    Kind kind = Kind::IssuerSerial;
    std::string issuer_der;  // IssuerSerial: the DER of the issuer Name
    std::string serial;      // IssuerSerial: the serial number's big-endian magnitude bytes
    std::string ski;         // SubjectKeyId: the identifier's raw bytes
    std::string issuer_hash; // IssuerSerial: the canonical issuer name's hash, computed once
                             // when the identifier is made (index_key() needs no re-parsing)

    // The index key: "is:<hex sha256(issuer DER)>:<hex serial>" or "ski:<hex>". Equal for the
    // certificate and every envelope that names it.
    std::string index_key() const;
    // For logs and the archive summary: "issuer=CN=...,O=...; serial=0A1B" or "ski=9F:..."
    std::string describe() const;
};

// Every recipient identifier of an enveloped CMS structure (KTRI and each KARI's recipient
// encrypted keys; other recipient kinds — KEK, password — have none and are skipped).
std::vector<RecipientId> recipient_ids(CMS_ContentInfo* cms);

// The identifiers `cert` answers to: issuer+serial always, subjectKeyIdentifier when present.
std::vector<RecipientId> certificate_ids(const Certificate& cert);

}  // namespace sealmilter::crypto
