// keys/storage.hpp — where the key store keeps its bytes: files in keys.dir, or (pg/keys) a
// PostgreSQL table shared by every node (database.shared = keys).
//
// Purpose:   KeyStore (keys/store.hpp) owns the formats — the index text and one text per key
//            (the private key wrapped under the master key, or a token key's URI, with the
//            certificate) — and the crash rules; a KeyStorage only keeps named blobs: the
//            index, and key texts by name. Nothing given to a storage holds a private key in
//            the clear, so no backend ever sees one.
// Ownership: the store holds its storage as a shared_ptr.
// Threads:   the read methods are safe concurrently; writers are serialised by lock().
// Errors:    reads return nullopt with *error (an absent index is nullopt with *error empty);
//            writes throw std::runtime_error saying what failed.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace sealmilter::keys {

class KeyStorage {
public:
    virtual ~KeyStorage() = default;

    // "keys.dir /var/lib/sealmilter/keys", "PostgreSQL (database.shared keys)": for messages.
    virtual std::string describe() const = 0;
    // Where key text `name` lives, for KeyInfo::location (a path, or "postgresql:NAME").
    virtual std::string location(const std::string& name) const = 0;
    // The name of the key text at `location` (the inverse of location()).
    virtual std::string name_at(const std::string& location) const = 0;

    virtual std::optional<std::string> read_index(std::string* error) const = 0;
    virtual std::optional<std::string> read_key(const std::string& name, std::string* error) const = 0;

    // Held by a writer for the whole of one change; excludes other writers (other processes
    // and other nodes included, as far as the backend can).
    class Guard {
    public:
        virtual ~Guard() = default;
    };
    virtual std::unique_ptr<Guard> lock() = 0;
    // Key texts durable when this returns (before the index that names them is written).
    virtual void put_keys(const std::vector<std::pair<std::string, std::string>>& named_texts) = 0;
    // Replaces the index atomically: a crash leaves the old or the new one. `previous` is the
    // index the change was made from (nullopt: there was none); a backend that can see other
    // writers refuses when the stored index is no longer that one.
    virtual void replace_index(const std::string& text, const std::optional<std::string>& previous) = 0;
    // Superseded key texts (rewrap's old generation); a failure here loses nothing.
    virtual void remove_keys(const std::vector<std::string>& names) noexcept = 0;
};

// The files of keys.dir: `index` and one `<name>` per key (mode 0600, directory 0700), written
// through temp file + rename, one syncfs per batch, the index through base::write_atomically;
// writers take an flock on keys.dir/lock.
std::shared_ptr<KeyStorage> file_storage(const std::string& dir);

}  // namespace sealmilter::keys
