// keys/store.hpp — the on-disk key store in keys.dir: every key the organisation ever had.
//
// Purpose:   One file per key (`<id>.g<N>.key`: id, state, origin, SHA-256, the private key
//            wrapped under the master key with AES-256-GCM bound to the key's id and
//            fingerprint (keys/wrap.hpp), the certificate and its chain as PEM; a token key's
//            file holds its pkcs11: URI instead) and one index (`index`: the generation, a
//            check value that only the right master key opens, and per key its id, state,
//            origin, file and certificate), so opening 100,000 keys reads one file and never
//            unwraps a key. Private keys are unwrapped on demand and a bounded number kept in
//            memory (StoreOptions::max_unwrapped, least recently used out first).
//            Every write goes key files first (temp file + rename; one syncfs for a batch),
//            then the index through base::write_atomically: a writer killed at any point
//            leaves the old index (the store as it was; at most an unreferenced key file) or
//            the new one with every key it names fully on disk. `rewrap` writes generation
//            N+1 of every key file before the index that names it, then removes generation N.
//            The store never deletes a key by itself; states change only by a command.
// Ownership: open() returns a shared KeyStore; entries are shared (KeyRing contract).
// Threads:   the KeyRing methods are safe concurrently on a const store (the unwrapped-key
//            cache is behind a base::Mutex). Writers (import, set_state, remove_key, rewrap)
//            are for the single-threaded CLI and for keys::Issuer (one writer at a time under its
//            own lock, on its own instance); they hold an flock on keys.dir/lock against other
//            writers and re-read the index under it.
// Errors:    open() returns nullptr and one sentence in *error (bad master key, a master key
//            that does not open the store, a damaged index); writers return false / nullopt
//            with *error; private_key() returns nullptr with *error.
#pragma once

#include "base/clock.hpp"
#include "base/mutex.hpp"
#include "keys/key_ring.hpp"
#include "keys/master_key.hpp"
#include "keys/storage.hpp"

#include <list>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

namespace sealmilter::keys {

inline constexpr const char* kDefaultKeysDir = "/var/lib/sealmilter/keys";

struct StoreOptions {
    std::string dir = kDefaultKeysDir;  // keys.dir
    std::string master_key_file;        // keys.master_key_file
    std::string pkcs11_module;          // keys.pkcs11_module (token keys; empty = p11-kit proxy)
    std::string pkcs11_pin_file;        // keys.pkcs11_pin_file
    const base::Clock* clock = nullptr;  // for effective states; nullptr = system time
    size_t max_unwrapped = 256;         // private keys kept unwrapped in memory
    // Where the bytes live: nullptr = the files of `dir` (keys/storage.hpp); pg/keys gives
    // PostgreSQL (database.shared = keys).
    std::shared_ptr<KeyStorage> storage;
};

class KeyStore final : public KeyRing {
public:
    // Reads the master key (keys/master_key checks) and the index; an absent index is an
    // empty store (written on the first import). `dir` need not exist until then.
    static std::shared_ptr<KeyStore> open(const StoreOptions& options, std::string* error);

    std::vector<KeyEntry> find(const crypto::RecipientId& id) const override { return index_.find(id); }
    std::vector<KeyEntry> for_address(std::string_view address) const override { return index_.for_address(address); }
    PrivateKey private_key(const KeyInfo& key, std::string* error) const override;
    void for_each(const std::function<void(const KeyEntry&)>& fn) const override;
    size_t size() const override { return index_.all().size(); }

    bool has_index() const noexcept { return generation_ > 0; }
    std::time_t now() const { return base::now_from(options_.clock); }
    const StoreOptions& options() const noexcept { return options_; }
    // The entry whose id or SHA-256 fingerprint (hex, colons optional, any case) is `id`.
    KeyEntry resolve(std::string_view id) const;

    struct ImportReport {
        std::vector<KeyEntry> added;
        std::vector<KeyEntry> already;  // the same certificate was in the store: left as it was
    };
    // Each key needs its certificate (it is indexed by it). All or nothing: on failure the
    // index is unchanged.
    std::optional<ImportReport> import_keys(std::vector<crypto::KeyMaterial> keys, std::string* error);
    // The same with the state every new key is recorded in (the issuing CA imports the keys it
    // escrows for recipients as KeyState::Escrowed, keys/issuer.hpp).
    std::optional<ImportReport> import_keys(std::vector<crypto::KeyMaterial> keys, KeyState state, std::string* error);
    // A key that stays on its PKCS#11 token, named by `uri`, with its certificate.
    std::optional<ImportReport> import_token_key(const std::string& uri, const crypto::Certificate& certificate,
                                                 const std::vector<crypto::Certificate>& chain, std::string* error);
    bool set_state(const std::string& id, KeyState state, std::string* error);
    // Removes an escrowed key (index entry and key file): the one deletion the store knows.
    // issue.keep_escrow = false asks that the key our CA escrowed for a recipient is held by
    // the recipient alone once they picked it up (keys/issuer.hpp); every other key stays
    // forever, so this refuses any key whose recorded state is not `escrowed`.
    bool remove_key(const std::string& id, std::string* error);
    // Re-wraps every file key under `new_key` (a new generation of files), then the index.
    bool rewrap(const MasterKey& new_key, std::string* error);

    // Test hook of the crash tests: called after the key files are on disk and before the
    // index is replaced; throwing there models a crash between the two.
    void set_before_index_hook(std::function<void()> hook) { before_index_ = std::move(hook); }

    struct Record;  // one index line (defined in store.cpp)
    KeyStore(StoreOptions options, const MasterKey& master);
    const KeyStorage& storage() const noexcept { return *storage_; }
    ~KeyStore() override;

private:
    bool load_index(std::string* error);
    std::optional<Record> parse_record(std::istringstream& line,
                                       std::unordered_map<std::string, crypto::Certificate>& chain_certs) const;
    std::optional<Record> parse_record_v1(std::istringstream& line,
                                          std::unordered_map<std::string, crypto::Certificate>& chain_certs) const;
    bool commit(std::vector<Record> records, unsigned generation, const MasterKey& key, std::string* error);
    void rebuild();
    PrivateKey cached(const std::string& id) const;
    void remember(const std::string& id, const PrivateKey& key) const;

    StoreOptions options_;
    std::shared_ptr<KeyStorage> storage_;
    std::optional<std::string> index_text_;  // as loaded (writers: the `previous` of replace_index)
    MasterKey master_;
    unsigned generation_ = 0;  // 0 = no index yet
    std::vector<Record> records_;
    KeyIndex index_;
    std::function<void()> before_index_;

    mutable base::Mutex mu_;
    mutable std::list<std::pair<std::string, PrivateKey>> lru_ SEALMILTER_GUARDED_BY(mu_);  // front = newest
};

// The daemon's and `decrypt`'s view: the store as a read-only ring (see KeyStore::open).
std::shared_ptr<const KeyRing> open_store(const StoreOptions& options, std::string* error);

}  // namespace sealmilter::keys
