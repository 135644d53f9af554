// pg/keys.hpp — the key store's bytes on PostgreSQL (database.shared = keys; issue 16).
//
// Purpose:   a keys::KeyStorage over two tables: sealmilter_key_index (one row: the store's
//            index, keys/store.cpp form 2) and sealmilter_key_texts (one row per key text:
//            the private key wrapped under the master key, or a token key's pkcs11: URI, with
//            the certificate). The store wraps before it writes, so the database never sees a
//            private key in the clear — only AES-256-GCM ciphertext under a master key it does
//            not hold, or token references. Every node reads the same rows: a key imported on
//            node A is used by node B from its next store open (SIGHUP). Writers from several
//            nodes: the index is replaced only if it is still the one the change was made from
//            (compared by SHA-256 inside the UPDATE's transaction); otherwise the change is
//            refused ("changed by another writer", nothing lost: run the command again).
//            lock() serialises the writers of one process only.
// Ownership: shares the Pool.
// Threads:   thread-safe (every call is one Pool::run).
// Errors:    as keys/storage.hpp: reads return nullopt and *error, writes throw.
#pragma once

#include "keys/storage.hpp"
#include "pg/pq.hpp"

#include <memory>

namespace sealmilter::pg {

// Bounds of one call: reading or writing the index of a large store moves ~1 KB per key.
inline constexpr long kKeyStorageTimeoutMs = 300000;

std::shared_ptr<keys::KeyStorage> key_storage(std::shared_ptr<Pool> pool);

}  // namespace sealmilter::pg
