// keys/issued.hpp — the certificates our CA issued for recipients who had none, and the state of
// each one's pickup (issue 13, docs/issuing.md).
//
// Purpose:   one record per address in keys.dir/issued/ (a file named by the SHA-256 of the
//            lower-cased address; the private key itself lives in the key store, state
//            `escrowed`, found by `key_id`): the issued certificate, whether the notice is due,
//            the pickup link's token (only its SHA-256 kept), the current one-time code (only
//            its SHA-256 kept), wrong-code count and lock, the times code mails were sent (for
//            the 3-per-hour limit) and pickups. A second file per live token,
//            keys.dir/issued/t-<sha256(token)>, names the address, so a link finds its record
//            without scanning. Everything survives a restart.
//            update() is the only writer: it takes the in-process mutex and an flock on
//            keys.dir/issued/lock (the CLI's `issued revoke|resend` and the daemon share the
//            files), re-reads the record, applies the change and writes it atomically
//            (base::write_atomically): a crash leaves the old record or the new one.
// Ownership: records are values.
// Threads:   every method is safe concurrently (daemon: milter threads, the notice worker and
//            the pickup service's threads).
// Errors:    reads return std::nullopt for "no such record"; a damaged record file is also
//            nullopt with *error set; writers return false with *error.
#pragma once

#include "base/clock.hpp"
#include "base/mutex.hpp"

#include <ctime>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sealmilter::keys {

// escrowed: issued, key held for pickup (the key store entry is `escrowed`); picked_up: the
// recipient downloaded the key at least once (the store keeps it, state `escrowed`, unless
// issue.keep_escrow = false removed it); retired: the recipient's own certificate appeared,
// mail goes to that one now (the key stays: old mail must open); revoked: `issued revoke`.
enum class IssuedState { Escrowed, PickedUp, Retired, Revoked };
const char* issued_state_name(IssuedState s) noexcept;
std::optional<IssuedState> parse_issued_state(std::string_view name) noexcept;

struct IssuedRecord {
    std::string address;          // lower-cased addr-spec, the record's key
    std::string key_id;           // the key store entry of the escrowed private key
    std::string sha256;           // the issued certificate's SHA-256 fingerprint, lower-case hex
    std::string certificate_pem;  // the issued certificate
    IssuedState state = IssuedState::Escrowed;
    std::time_t issued_at = 0;
    std::time_t state_changed_at = 0;

    // The notice (issue.notice_interval): due = a notice should go out; sent_at = the last one.
    bool notice_due = false;
    std::time_t notice_sent_at = 0;
    unsigned notice_attempts = 0;  // failed sends since the last success (back-off)

    // The pickup link: SHA-256 (hex) of the 256-bit token in the last notice; "" = none.
    std::string token_hash;
    std::time_t token_expires = 0;  // issue.token_ttl after the notice
    bool locked = false;            // 5 wrong codes: the token is dead until a new notice

    // The one-time code (proof of the mailbox): SHA-256 (hex) of code + token hash; "" = none.
    std::string code_hash;
    std::time_t code_expires = 0;
    unsigned wrong_codes = 0;                 // since the code was sent
    std::vector<std::time_t> code_mails;      // send times within the last hour (at most 3 kept)

    unsigned pickups = 0;
    std::time_t last_pickup_at = 0;
};

class IssuedRegistry {
public:
    // `dir` is keys.dir; the records live in dir/issued/ (created 0700 on first write).
    explicit IssuedRegistry(std::string dir, const base::Clock* clock = nullptr);

    std::time_t now() const { return base::now_from(clock_); }

    // The record of `address` (any case); nullopt when none (or damaged: *error says so).
    std::optional<IssuedRecord> get(std::string_view address, std::string* error = nullptr) const;
    // The record whose live token hashes to `token_hash` (hex SHA-256); nullopt when none.
    std::optional<IssuedRecord> by_token_hash(std::string_view token_hash, std::string* error = nullptr) const;
    // Every record (for `issued list`), in no order.
    std::vector<IssuedRecord> list(std::string* error = nullptr) const;
    // At most `limit` records whose notice is due (the notice worker's pass), read through the
    // due index keys.dir/issued/due/<sha256(address)> (a marker that update() writes while a
    // record's notice_due is true and removes when it becomes false), so a pass never reads
    // the records whose notice went out. Markers are taken in name order from where the last
    // call that hit `limit` stopped (round robin: a due record is never starved). The first
    // call in a process indexes records written without a marker (an older version).
    std::vector<IssuedRecord> list_due(size_t limit, std::string* error = nullptr);

    // Certificates our CA issued and that were revoked or retired (by SHA-256 fingerprint,
    // lower-case hex): a marker keys.dir/issued/w-<fingerprint> that outlives the record being
    // replaced by a new issuance, so the chain can refuse such a certificate from any source.
    bool mark_withdrawn(std::string_view sha256, std::string* error);
    bool is_withdrawn(std::string_view sha256) const;

    // Read-modify-write of one record under the lock. `change` gets the current record
    // (nullopt when none) and returns the new one, or nullopt to leave it as it is (then
    // update() returns true and writes nothing). The token file is rewritten when the token
    // hash changes (the old one removed). false and *error when the write failed.
    bool update(std::string_view address,
                const std::function<std::optional<IssuedRecord>(const std::optional<IssuedRecord>&)>& change,
                std::string* error);

    const std::string& dir() const noexcept { return dir_; }

private:
    // list_due()'s first part: the due/ folder exists, records of a version without the index
    // are indexed once per process; returns the round-robin cursor.
    std::string prepare_due(std::string* error);
    std::string dir_;
    const base::Clock* clock_;
    mutable base::Mutex mu_;
    bool due_indexed_ SEALMILTER_GUARDED_BY(mu_) = false;  // list_due() indexed older records
    std::string due_cursor_ SEALMILTER_GUARDED_BY(mu_);    // list_due()'s round-robin position
};

// SHA-256 of `text` as lower-case hex (token and code hashes).
std::string sha256_hex(std::string_view text);
// Constant-time comparison of two hex digests of equal length (CRYPTO_memcmp); false when the
// lengths differ.
bool digests_equal(std::string_view a, std::string_view b) noexcept;

}  // namespace sealmilter::keys
