// core/decrypt.hpp — opening an S/MIME enveloped message with a private key.
//
// Ownership: borrows the Message, the key and the sink.
// Threads:   re-entrant.
// Errors:    expected failures (not S/MIME, wrong key) are a DecryptOutcome value; I/O and
//            OpenSSL allocation failures throw.
#pragma once

#include "core/message.hpp"
#include "crypto/envelope.hpp"

namespace sealmilter::core {

// Writes the decrypted message to `out`: the outer header fields without the S/MIME content
// headers, then the inner entity's header fields, the empty line and the inner body, all with
// line ending `eol`. When the inner entity carries RFC 9788 protected headers
// (Content-Type hp="cipher"), those replace the outer ones (HP-Outer fields dropped).
crypto::DecryptOutcome decrypt_message(const Message& m, const crypto::KeyMaterial& key,
                                       const std::string& eol, crypto::ByteSink& out);

}  // namespace sealmilter::core
