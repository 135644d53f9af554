// core/decrypt.hpp — opening an S/MIME enveloped message with a private key.
//
// Ownership: borrows the Message, the key and the sink.
// Threads:   re-entrant.
// Errors:    expected failures (not S/MIME, wrong key) are a DecryptOutcome value; I/O and
//            OpenSSL allocation failures throw.
#pragma once

#include "core/message.hpp"
#include "crypto/envelope.hpp"
#include "keys/key_ring.hpp"

#include <vector>

namespace sealmilter::core {

// Feeds bytes (decrypted plaintext) straight into a MessageSplitter: a decrypted message is
// never held whole.
class SplitterSink final : public crypto::ByteSink {
public:
    explicit SplitterSink(MessageSplitter& s) : splitter_(s) {}
    void write(const char* data, size_t len) override { splitter_.feed(data, len); }

private:
    MessageSplitter& splitter_;
};

// Writes the decrypted message to `out`: the outer header fields without the S/MIME content
// headers, then the inner entity's header fields, the empty line and the inner body, all with
// line ending `eol`. When the inner entity carries RFC 9788 protected headers
// (Content-Type hp="cipher"), those replace the outer ones (HP-Outer fields dropped).
crypto::DecryptOutcome decrypt_message(const Message& m, const crypto::KeyMaterial& key,
                                       const std::string& eol, crypto::ByteSink& out);

// Which key of a ring opened a message, or why none did.
struct RingDecryptOutcome {
    crypto::DecryptOutcome outcome;
    keys::KeyEntry key;                        // set when outcome.status == Ok
    std::vector<crypto::RecipientId> unmatched;  // NoMatchingRecipient: the envelope's
                                                 // identifiers that no key of the ring has
};

// As above with the key chosen from `ring` by the envelope's RecipientIdentifiers (a hash
// lookup per identifier, never a trial of every key), whatever the key's state: retired and
// compromised keys still open old mail.
RingDecryptOutcome decrypt_message(const Message& m, const keys::KeyRing& ring, const std::string& eol,
                                   crypto::ByteSink& out);

}  // namespace sealmilter::core
