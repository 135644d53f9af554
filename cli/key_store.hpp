// cli/key_store.hpp — the key store of a configuration (keys.*), and the keys of key
// files (PKCS#12: every key of the file), for `run`, `check-config`, `decrypt` and `keys`.
//
// Ownership: returns shared rings; the caller keeps them as long as it uses their entries.
// Threads:   the CLI's thread; the rings themselves are thread-safe for readers.
// Errors:    CliError(kConfig = 78) for a bad master key or store (the sentence names the file
//            and what is wrong); CliError(kNoInput / kDataErr) for unreadable or bad key files.
#pragma once

#include "conf/config.hpp"
#include "keys/issuer.hpp"
#include "keys/key_ring.hpp"
#include "keys/store.hpp"

#include <memory>
#include <string>
#include <vector>

namespace sealmilter::cli {

keys::StoreOptions store_options(const conf::Config& config);
// issue.* -> the issuer's settings (`ca init`, `run` when anything issues).
keys::IssueSettings issue_settings(const conf::Config& config);

struct SharedState;  // cli/wiring.hpp

// The store under keys.master_key_file: in keys.dir, or in PostgreSQL when database.shared
// names `keys` (pg/keys.hpp; `shared` is the caller's pool, else one is made; with `migrate`
// the schema is brought up to date first, as `run` does at start — the `keys` commands).
// nullptr when no key store is configured: keys.master_key_file is empty and keys.dir holds no
// index (the embedded defaults); with `required` that is an error too (the `keys` commands).
std::shared_ptr<keys::KeyStore> open_configured_store(const conf::Config& config, bool required,
                                                      const SharedState* shared = nullptr, bool migrate = false);

// Every key of a PKCS#12 or PEM key file (the PEM's certificate beside its key).
std::vector<crypto::KeyMaterial> read_key_file(const std::string& path, const std::string& passphrase,
                                               const std::string& what, int bad_file_code);

// A one-off ring of key files (harvest.keys, `harvest --key`): PEM or PKCS#12 without
// password, every key of each file, found by the RecipientIdentifiers of its certificate. A key
// without its certificate cannot be indexed: CliError(kConfig) naming `what` and the file.
std::shared_ptr<keys::MemoryKeyRing> one_off_ring(const std::vector<std::string>& files, const std::string& what);

// The keys that open enveloped layers for harvest (item 6 of issue 11: one way to hold private
// keys): `store` when a key store is configured, else the one-off ring of harvest.keys plus
// `extra` files; nullptr when there is neither.
std::shared_ptr<const keys::KeyRing> harvest_ring(const conf::Config& config, const std::shared_ptr<const keys::KeyRing>& store,
                                                  const std::vector<std::string>& extra = {});

}  // namespace sealmilter::cli
