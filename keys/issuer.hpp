// keys/issuer.hpp — certificates for recipients who have none (issue 13, docs/issuing.md): the
// issuing CA, the pool of pre-generated key pairs, and issuing one certificate.
//
// Purpose:   IssuingCa is the CA whose key lives in the key store (a file key wrapped under the
//            master key, or a token key): `sealmilter ca init` makes a self-signed root named by
//            issue.ca_subject, `ca import` takes a sub-CA (key + certificate + chain) from the
//            organisation's PKI; keys.dir/ca.pem names which store entry is the CA (its
//            certificate, then its chain). Recipient certificates (make_recipient_certificate):
//            RSA 2048 or 3072, one rfc822Name SAN, keyUsage digitalSignature + keyEncipherment,
//            EKU emailProtection, 128-bit random serial, issue.validity_days, subject CN = the
//            address, O = issue.org_name — built with the one crypto::CertificateBuilder.
//            KeyPairPool keeps up to `target` RSA key pairs ready, made by its own worker
//            threads (base::worker_thread), so taking one never waits for key generation.
//            Issuer ties them together: can_issue() (the address fits a certificate),
//            issue() (takes a pooled pair, builds the certificate, imports the private key into
//            the key store as `escrowed`, writes the IssuedRecord with notice_due, all under
//            one lock so two messages to one new address get one certificate).
// Ownership: Issuer holds the CA's key entry, the pool, a writable KeyStore and the registry.
//            The store must be the Issuer's own KeyStore instance: a writer re-reads the index
//            in place (keys/store.hpp), which readers of the same instance must not see
//            happen; the mail path's ring is another instance (or reloads).
// Threads:   every method is safe concurrently; issue() serialises writers internally.
// Errors:    values: std::nullopt / false with one sentence in *error.
#pragma once

#include "crypto/certificate.hpp"
#include "crypto/ossl.hpp"
#include "keys/issued.hpp"
#include "keys/key_ring.hpp"

#include <cstddef>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sealmilter::keys {

class KeyStore;

struct IssueSettings {
    std::string org_name = "Example Bank";  // issue.org_name (O of every issued certificate)
    std::string ca_subject;                 // issue.ca_subject; "" = "CN=<org_name> Mail Encryption CA,O=<org_name>"
    unsigned key_bits = 2048;               // issue.key_bits: 2048 or 3072
    long validity_days = 730;               // issue.validity_days
    size_t pool_size = 8;                   // issue.pool_size: key pairs kept ready
    unsigned pool_threads = 1;              // issue.pool_threads
    bool keep_escrow = true;                // issue.keep_escrow
};

// Whether `address` can be put into an rfc822Name SAN: an ASCII dot-atom local part and a
// domain (RFC 5280 §4.2.1.6, RFC 8550 §3). nullopt = yes; else the sentence why not (the
// 550 5.7.1 reply text: "the address has a quoted local part, which a certificate cannot name").
std::optional<std::string> uncertifiable_reason(std::string_view address);

class IssuingCa {
public:
    // The CA named by dir/ca.pem, with its private key from `ring`; nullopt + *error when absent.
    static std::optional<IssuingCa> load(const std::string& keys_dir, const KeyRing& ring, std::string* error);

    const crypto::Certificate& certificate() const noexcept { return entry_->certificate; }
    const std::vector<crypto::Certificate>& chain() const noexcept { return entry_->chain; }  // above the CA
    const KeyEntry& entry() const noexcept { return entry_; }

    // A recipient certificate for `address` and `public_key` (see the file comment).
    crypto::Certificate make_recipient_certificate(std::string_view address, EVP_PKEY* public_key,
                                                   const IssueSettings& s, std::time_t now) const;

    IssuingCa(KeyEntry entry, PrivateKey key) : entry_(std::move(entry)), key_(std::move(key)) {}

private:
    KeyEntry entry_;
    PrivateKey key_;
};

// `sealmilter ca init`: a new CA key (RSA 3072 in the store, or `token_uri`'s key imported as a
// token key) and a self-signed root; writes dir/ca.pem. Refuses when a CA exists.
std::optional<crypto::Certificate> init_ca(KeyStore& store, const IssueSettings& s, const std::string& token_uri,
                                           std::string* error);
// `sealmilter ca import`: a sub-CA's key, certificate and chain (a PKCS#12 or PEM) into the store,
// named by dir/ca.pem. The certificate must be a CA (basicConstraints cA) with keyCertSign.
std::optional<crypto::Certificate> import_ca(KeyStore& store, crypto::KeyMaterial material, std::string* error);

class KeyPairPool {
public:
    // `threads` = 0: no generation at all, the pool holds only what put() gives it (the
    // benchmark's pre-generated case, tests with fixed keys); the daemon always has >= 1.
    KeyPairPool(unsigned bits, size_t target, unsigned threads);
    ~KeyPairPool();  // stops and joins the workers
    KeyPairPool(const KeyPairPool&) = delete;
    KeyPairPool& operator=(const KeyPairPool&) = delete;

    // A ready key pair, or nullptr when none is ready (never generates in the caller's thread).
    crypto::EVP_PKEY_ptr take();
    size_t ready() const;
    unsigned long long generated() const;  // since start (benchmarks, metrics)
    // Key generations that failed since start; after each failure a worker waits (100 ms,
    // doubling up to 30 s, reset by a success) instead of trying again at once.
    unsigned long long failures() const;
    // Adds a key pair made elsewhere (beyond `target` too: the caller bounds what it adds).
    void put(crypto::EVP_PKEY_ptr key);

private:
    struct State;
    std::shared_ptr<State> state_;
};

class Issuer {
public:
    // Opens the CA from the store; nullptr + *error when issuing cannot work (no CA, no store).
    static std::shared_ptr<Issuer> open(std::shared_ptr<KeyStore> store, std::shared_ptr<IssuedRegistry> registry,
                                        IssueSettings settings, std::string* error);

    // The address's current issued certificate (state escrowed or picked_up), if any.
    std::optional<crypto::Certificate> current(std::string_view address) const;
    // True when `candidate` is a certificate our CA issued for `address` that was revoked or
    // retired (a withdrawn marker, or the address's record names it and is not current): the
    // lookup chain never uses it, whichever source returned it.
    bool withdrawn(std::string_view address, const crypto::Certificate& candidate) const;
    // True when a pooled key pair is ready now (the RCPT-time check: no waiting).
    bool ready() const;
    // Issues (or returns the already-issued current certificate of) `address`: certificate,
    // escrowed key in the store, record with notice_due = true. nullopt + *error when no key
    // pair is ready or a write failed (the caller tempfails 451 4.7.1).
    std::optional<crypto::Certificate> issue(std::string_view address, std::string* error);
    // The recipient's own certificate appeared: the issued one is retired (record and store).
    // `reason` is for the caller's log line; the record keeps the state and its time.
    void retire(std::string_view address, const std::string& reason);

    // For the pickup service: the escrowed private key of `address` with its certificate and
    // the CA chain (the CA certificate, then what is above it) — what the PKCS#12 holds.
    // nullopt + *error when the address has no current record or the key is gone
    // (issue.keep_escrow = false after a pickup).
    std::optional<crypto::KeyMaterial> escrowed_key(std::string_view address, std::string* error) const;
    // The recipient downloaded the key `key_id` (the store key id of the record the file was
    // made from): record -> picked_up, pickups + 1, last_pickup_at; with issue.keep_escrow =
    // false the key is then removed from the store (KeyStore::remove_key). Nothing changes when
    // the address's current record holds another key (revoked and issued anew meanwhile).
    // false + *error when the record could not be written or holds another key (the key is
    // then kept).
    bool picked_up(std::string_view address, std::string_view key_id, std::string* error);

    const IssuingCa& ca() const noexcept { return *ca_; }
    const IssueSettings& settings() const noexcept { return settings_; }
    IssuedRegistry& registry() const noexcept { return *registry_; }
    KeyStore& store() const noexcept { return *store_; }
    KeyPairPool& pool() const noexcept { return *pool_; }

    Issuer(std::shared_ptr<KeyStore> store, std::shared_ptr<IssuedRegistry> registry, IssueSettings settings,
           IssuingCa ca);
    ~Issuer();

private:
    std::shared_ptr<KeyStore> store_;
    std::shared_ptr<IssuedRegistry> registry_;
    IssueSettings settings_;
    std::optional<IssuingCa> ca_;
    std::unique_ptr<KeyPairPool> pool_;
    mutable base::Mutex write_mu_;
};

// `sealmilter issued revoke`: the record -> revoked (never used for mail again: current() and
// the `issued` source skip it; a later message to the address issues a new certificate), the
// store entry -> retired (it still opens the mail already sent; an escrowed key never signs, so
// `compromised` would add nothing but noise). Works without the CA or a pool.
bool revoke_issued(KeyStore& store, IssuedRegistry& registry, std::string_view address, std::string* error);
// `sealmilter issued resend`: notice_due = true and notice_sent_at = 0 (so the interval since
// the last notice is no obstacle: forced), notice_attempts = 0, the old link (token hash and
// expiry) removed at once, unlocked, wrong codes and the code cleared. Only for escrowed and picked_up records (the state stays; a picked_up record's
// recipient may pick the key up again). false + *error otherwise (`issued resend` also refuses
// when issue.keep_escrow = false removed the key from the store: nothing left to pick up).
bool resend_issued(IssuedRegistry& registry, std::string_view address, std::string* error);

}  // namespace sealmilter::keys
