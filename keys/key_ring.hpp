// keys/key_ring.hpp — the organisation's private keys as the mail path sees them.
//
// Purpose:   A KeyRing answers three questions, each without scanning every key: which key
//            opens an envelope (by CMS RecipientIdentifier: issuer+serial or
//            subjectKeyIdentifier, a hash lookup), which keys an address has (signing, the
//            encryption-key preference, export), and the private half of one key (a file key
//            unwrapped in memory on demand, or a handle on a PKCS#11 token key that never
//            leaves the token). The on-disk store (keys/store) and the one-off ring of
//            `decrypt --key` (MemoryKeyRing) both implement it.
// Ownership: entries are shared_ptr<const KeyInfo>: a ring swapped by SIGHUP stays valid for a
//            transaction that holds its entries.
// Threads:   every method is safe to call concurrently on a const ring.
// Errors:    private_key() returns nullptr and says why in *error (token absent, PIN refused,
//            wrapped key damaged); lookups have no errors (a miss is an empty vector).
#pragma once

#include "crypto/certificate.hpp"
#include "crypto/private_key.hpp"
#include "crypto/recipient_id.hpp"

#include <ctime>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sealmilter::keys {

// active: signs and decrypts. retired: decrypt only (also what an expired certificate makes
// of an active key, see effective_state). compromised: decrypt only, never signs, flagged in
// every listing. escrowed: issued by our CA for a recipient, held until picked up.
enum class KeyState { Active, Retired, Compromised, Escrowed };
enum class KeyOrigin { File, Token };

const char* state_name(KeyState s) noexcept;  // "active", "retired", ...
std::optional<KeyState> parse_state(std::string_view name) noexcept;
const char* origin_name(KeyOrigin o) noexcept;  // "file", "token"

// What is known about one key without touching its private half.
struct KeyInfo {
    std::string id;                        // stable and unique within its ring
    std::vector<std::string> addresses;    // the certificate's addresses, lower-cased
    crypto::Certificate certificate;
    std::vector<crypto::Certificate> chain;  // issuer certificates, nearest first
    KeyState state = KeyState::Active;     // as recorded; see effective_state()
    KeyOrigin origin = KeyOrigin::File;
    std::string location;                  // the file inside keys.dir, or the pkcs11: URI

    // What a store's index records of the certificate, so that opening, lookups and states
    // never parse it (the certificate may be held lazily, see Certificate::from_der_lazily).
    // Empty / 0 = not recorded: the accessors below read the certificate.
    std::vector<std::string> index_keys{};  // RecipientId::index_key() of every id it answers to
    std::time_t recorded_not_before = 0;
    std::time_t recorded_not_after = 0;
    std::string recorded_sha256{};          // lower-case hex

    std::string sha256() const;            // the certificate's SHA-256 fingerprint, lower-case hex
    std::time_t not_before() const;        // the certificate's validity
    std::time_t not_after() const;
};

// A KeyInfo for `certificate` with everything the index records filled in from it (parses it).
KeyInfo describe_key(std::string id, const crypto::Certificate& certificate, std::vector<crypto::Certificate> chain,
                     KeyState state, KeyOrigin origin, std::string location);

// The recorded state, with an active key whose certificate has expired at `now` read as
// retired (the store never rewrites a key by itself).
KeyState effective_state(const KeyInfo& key, std::time_t now) noexcept;

using PrivateKey = std::shared_ptr<const crypto::KeyMaterial>;
using KeyEntry = std::shared_ptr<const KeyInfo>;

class KeyRing {
public:
    virtual ~KeyRing() = default;

    // Keys whose certificate answers to `id` (normally one). A hash lookup.
    virtual std::vector<KeyEntry> find(const crypto::RecipientId& id) const = 0;
    // Every key of `address` (ASCII case-insensitive), newest certificate (notBefore) first.
    virtual std::vector<KeyEntry> for_address(std::string_view address) const = 0;
    // The usable private key of an entry of this ring; nullptr and *error on failure.
    virtual PrivateKey private_key(const KeyInfo& key, std::string* error) const = 0;
    // Every entry, in no particular order.
    virtual void for_each(const std::function<void(const KeyEntry&)>& fn) const = 0;
    virtual size_t size() const = 0;
};

// The entry of `address` to sign with at `now`: its newest effectively active key, never a
// retired, compromised or escrowed one; nullptr when it has none.
KeyEntry active_key_for(const KeyRing& ring, std::string_view address, std::time_t now);

// Indexes KeyInfo entries by every RecipientId their certificate answers to and by address;
// the building block of both rings.
class KeyIndex {
public:
    void add(const KeyEntry& entry);
    std::vector<KeyEntry> find(const crypto::RecipientId& id) const;
    std::vector<KeyEntry> for_address(std::string_view address) const;
    const std::vector<KeyEntry>& all() const noexcept { return all_; }

private:
    std::vector<KeyEntry> all_;
    std::unordered_map<std::string, std::vector<KeyEntry>> by_id_;       // RecipientId::index_key()
    std::unordered_map<std::string, std::vector<KeyEntry>> by_address_;  // lower-cased
};

// A ring held in memory from loaded key material: `decrypt --key FILE`, `harvest --key`, tests.
// Every key is Active and of origin File (location = where it was loaded from).
class MemoryKeyRing final : public KeyRing {
public:
    // Keys without a certificate cannot be indexed: they are refused (false).
    bool add(crypto::KeyMaterial material, std::string location);

    std::vector<KeyEntry> find(const crypto::RecipientId& id) const override { return index_.find(id); }
    std::vector<KeyEntry> for_address(std::string_view address) const override { return index_.for_address(address); }
    PrivateKey private_key(const KeyInfo& key, std::string* error) const override;
    void for_each(const std::function<void(const KeyEntry&)>& fn) const override;
    size_t size() const override { return index_.all().size(); }

private:
    KeyIndex index_;
    std::unordered_map<std::string, PrivateKey> keys_;  // by KeyInfo::id
};

}  // namespace sealmilter::keys
