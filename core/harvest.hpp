// core/harvest.hpp — finding the sender's certificate in inbound signed mail (SPEC §1, §6).
//
// Purpose:   "automatic key exchange": a partner who sent one signed message can receive
//            encrypted mail from then on. harvest() walks a raw message (any line ending) for
//            S/MIME signatures: multipart/signed with application/(x-)pkcs7-signature,
//            opaque application/(x-)pkcs7-mime signed-data, nested in other multiparts, and
//            signed data inside enveloped data when a key of `keys` (the key store, or the
//            one-off ring of harvest.keys) opens the envelope. Each
//            signature is verified over the exact signed bytes (CRLF-canonical, as RFC 8551
//            §3.1.1 requires); its signer must name the message's single From address; the
//            certificate to encrypt to is the signer's, or the one SMIMEEncryptionKeyPreference
//            names (RFC 8551 §2.5.3) when it is among the signature's certificates; that
//            certificate passes the same Validator as every lookup candidate. Bounces (null
//            sender, multipart/report) and list mail (List-Id, Precedence list/bulk/junk) are
//            skipped. SMIMECapabilities are kept (names below).
//            Forwarded messages (message/rfc822) are not entered: their signers are not the
//            sender.
// Ownership: borrows everything; the report owns its certificates.
// Threads:   re-entrant (the Validator is thread-safe).
// Errors:    never throws for content problems (they become notes); throws only on broken
//            invariants or allocation failure. Nesting deeper than max_depth, or more than
//            max_parts entities, is a note (core/entity_walk.hpp does the walking).
#pragma once

#include "crypto/certificate.hpp"
#include "crypto/private_key.hpp"
#include "crypto/signed_data.hpp"
#include "keys/key_ring.hpp"
#include "lookup/validate.hpp"

#include <ctime>
#include <string>
#include <string_view>
#include <vector>

namespace sealmilter::core {

struct HarvestOptions {
    const lookup::Validator* validator = nullptr;       // required
    // To open enveloped layers (optional): the key is found by the envelope's RecipientIdentifiers.
    const keys::KeyRing* keys = nullptr;
    int max_depth = 40;                                   // MIME / CMS nesting levels entered
    size_t max_parts = 10000;                             // entities visited in all
};

struct HarvestedCertificate {
    std::string email;                   // the From address, normalised
    crypto::Certificate certificate;     // the one to encrypt to
    std::string signer_fingerprint;      // the signing certificate (same as above unless a
                                         // SMIMEEncryptionKeyPreference named another)
    bool from_key_preference = false;
    // SMIMECapabilities, strongest first as the sender listed them: "aes256-gcm",
    // "aes128-gcm", "aes256-cbc", "aes192-cbc", "aes128-cbc", "des-ede3-cbc", "rsaes-oaep",
    // or the dotted OID of anything else. Empty: the signature carried none.
    std::vector<std::string> capabilities;
    std::string signature;               // "multipart/signed SHA-256", "opaque signed-data", ...
};

struct HarvestReport {
    std::string skipped;                 // set when the whole message is out of scope, and why
    std::vector<HarvestedCertificate> certificates;
    std::vector<std::string> notes;      // one line per signature found and what became of it
};

// `envelope_sender`: MAIL FROM without angle brackets ("" for the null sender), or nullptr
// when unknown (the CLI).
HarvestReport harvest(std::string_view raw_message, const std::string* envelope_sender, const HarvestOptions& options);

// The SMIMECapabilities name of an algorithm OID (dotted), or the dotted OID itself.
using crypto::capability_name;

}  // namespace sealmilter::core
