// keys/token.hpp — private keys that live on a PKCS#11 token (an HSM, a smart card,
// SoftHSM2), used in place and never read out.
//
// Purpose:   A key on a token is named by a `pkcs11:` URI (RFC 7512), e.g.
//            `pkcs11:token=mail;object=bob-2026;type=private` or `pkcs11:token=mail;id=%01`.
//            load_token_key() returns a KeyMaterial whose EVP_PKEY is a handle on the token
//            object: CMS_decrypt (RSA PKCS#1 v1.5, RSA-OAEP key transport, ECDH key agreement)
//            and signing (RSA PKCS#1 v1.5, RSA-PSS, ECDSA) run on the token; the key value
//            never reaches this process. list_token_keys() enumerates the private keys of the
//            tokens a URI matches (for `sealmilter keys import-token URI`).
//            token_wrap_key()/token_unwrap_key() protect a 32-byte data key (the key store's
//            master key) with a token key, so the master key can itself live on the token.
// Module:    TokenOptions::module, or the p11-kit proxy (kDefaultPkcs11Module) when empty;
//            `module-path` in the URI overrides both. The module is loaded once per process
//            (per distinct path) and stays loaded; sessions are opened once and reused.
// PIN:       `pin-value` in the URI wins; otherwise the first line of TokenOptions::pin_file
//            (a final newline is ignored); otherwise no login (public objects only). A PIN is
//            never logged nor put into an error string.
// Cost:      a call parses the URI, reads the PIN file and lists the token's objects under
//            the module lock: load a key once (e.g. when the ring is built) and keep the
//            KeyMaterial; repeated loads of one key return the same cached token handle.
// Login:     once per token per process; a later URI for that token without a PIN uses the
//            existing login, one with a different PIN is refused.
// Fork:      PKCS#11 sessions do not survive fork(); load token keys in the process that uses
//            them.
// Ownership: KeyMaterial owns an EVP_PKEY reference; the token handle behind it is shared and
//            lives until the process ends (the module is never unloaded).
// Threads:   every function is safe to call concurrently; operations on one module are
//            serialised by a base::Mutex (libp11 is not thread-safe per slot), including the
//            decrypt/sign/derive calls made through the returned EVP_PKEY.
// Errors:    std::nullopt / empty vector and a one-line reason in *error (module missing,
//            no token matches, PIN refused, no such object, mechanism not supported); never
//            throws for bad input.
#pragma once

#include "crypto/certificate.hpp"
#include "crypto/private_key.hpp"

#include <optional>
#include <string>
#include <vector>

namespace sealmilter::keys {

inline constexpr const char* kDefaultPkcs11Module = "/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so";

struct TokenOptions {
    std::string module;    // PKCS#11 module path; empty = kDefaultPkcs11Module
    std::string pin_file;  // file holding the user PIN; empty = none (unless pin-value in URI)
};

// One private key found on a token.
struct TokenObject {
    std::string uri;          // a pkcs11: URI naming exactly this key (token, id, object,
                              // type=private); never contains the PIN
    std::string token_label;  // CKA_LABEL of the token
    std::string label;        // CKA_LABEL of the key object (may be empty)
    std::string id_hex;       // CKA_ID, lower-case hex (may be empty)
    std::string key_type;     // "RSA", "EC" or "other"
    bool extractable = false;  // CKA_EXTRACTABLE as the token reports it
    bool sensitive = true;     // CKA_SENSITIVE as the token reports it
    std::optional<crypto::Certificate> certificate;  // the token certificate with the same CKA_ID
};

// The token private key named by `pkcs11_uri`, usable in place. The certificate is the token
// certificate with the key's CKA_ID (absent when the token holds none). Fails when the URI
// matches no key or more than one.
std::optional<crypto::KeyMaterial> load_token_key(const std::string& pkcs11_uri,
                                                  const TokenOptions& options,
                                                  std::string* error);

// The same, with the certificate given (e.g. kept in the key store) instead of read from the
// token. The certificate's public key must match the token key.
std::optional<crypto::KeyMaterial> load_token_key(const std::string& pkcs11_uri,
                                                  const TokenOptions& options,
                                                  const crypto::Certificate& certificate,
                                                  std::string* error);

// Every private key on the tokens `pkcs11_uri` matches (`pkcs11:` alone = every token),
// filtered by the URI's id/object/type attributes. Empty with *error set on failure; empty
// with *error empty when the tokens hold no matching key.
std::vector<TokenObject> list_token_keys(const std::string& pkcs11_uri,
                                         const TokenOptions& options, std::string* error);

// Wraps a data key (the store's 32-byte master key) with the token RSA key named by
// `pkcs11_uri`: RSA-OAEP (SHA-256) under the key's public half, opened again only by the
// token. Returns the wrapped bytes (binary) or nullopt and *error.
std::optional<std::string> token_wrap_key(const std::string& pkcs11_uri,
                                          const TokenOptions& options,
                                          const std::string& data_key, std::string* error);

// Opens what token_wrap_key() made, on the token. nullopt and *error when the token refuses
// or the bytes are damaged.
std::optional<std::string> token_unwrap_key(const std::string& pkcs11_uri,
                                            const TokenOptions& options,
                                            const std::string& wrapped, std::string* error);

}  // namespace sealmilter::keys
