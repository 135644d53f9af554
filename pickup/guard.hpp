// pickup/guard.hpp — the security primitives of the pickup service (issue 13, docs/issuing.md
// "Security of the pickup"): link tokens and one-time codes, CSRF tokens, per-client rate
// limits, and which peer may name the client in X-Forwarded-For.
//
// Purpose:   make_code() draws an 8-character code from a 31-symbol alphabet without look-alikes
//            (A-Z2-9 minus 0/O/1/I/L: about 40 bits); code_hash() is what the registry keeps.
//            Csrf binds a form to one link token: "<issued-at>.<HMAC-SHA256(secret, token hash,
//            form, issued-at)>", valid for an hour, compared in constant time; the secret is
//            random per process (a restart only means reloading the page). ClientLimiter is a
//            token bucket per client address with a bounded table. TrustedProxies parses
//            pickup.trusted_proxies (IP addresses, optionally /prefix) and picks the client
//            address: the peer, or X-Forwarded-For's last hop when the peer is a trusted proxy.
// Ownership: values.
// Threads:   Csrf and TrustedProxies are immutable after construction; ClientLimiter locks.
// Errors:    TrustedProxies::parse returns nullopt and one sentence; nothing else fails
//            (RAND_bytes failing throws crypto::CryptoError: the request gets a 500).
#pragma once

#include "base/mutex.hpp"

#include <cstddef>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sealmilter::pickup {

// `n` random bytes as base64url without padding (32 bytes -> 43 characters).
std::string random_token(size_t n = 32);
// True when `s` looks like a link token: exactly 43 characters of base64url.
bool well_formed_token(std::string_view s) noexcept;

inline constexpr std::string_view kCodeAlphabet = "ABCDEFGHJKMNPQRSTUVWXYZ23456789";
inline constexpr size_t kCodeLength = 8;
std::string make_code();
// What the recipient typed, as a code: upper-cased, spaces and hyphens dropped; "" when
// anything else is left that cannot be part of a code.
std::string normalise_code(std::string_view typed);
// sha256_hex(code + token_hash): the registry's code_hash (shared design, docs/issuing.md).
std::string code_hash(std::string_view code, std::string_view token_hash);

class Csrf {
public:
    Csrf();                                              // a fresh random secret
    explicit Csrf(std::string secret) : secret_(std::move(secret)) {}
    static constexpr std::time_t kLifetime = 3600;

    std::string issue(std::string_view token_hash, std::string_view form, std::time_t now) const;
    bool check(std::string_view presented, std::string_view token_hash, std::string_view form, std::time_t now) const;

private:
    std::string mac(std::string_view token_hash, std::string_view form, std::time_t at) const;
    std::string secret_;
};

// A token bucket per client: `burst` requests at once, refilled at `per_minute` per minute.
// An IPv6 client is its /64 (one subscriber's network: its interface ids are free to choose).
// The table keeps at most `max_clients` entries; when it is full, entries that have refilled
// completely are dropped, and if none has, a new client is refused (counted as limited) rather
// than evicting anybody: a flood of distinct addresses can neither grow memory nor reset the
// bucket of a client that is being limited.
class ClientLimiter {
public:
    ClientLimiter(double per_minute, double burst, size_t max_clients = 10000)
        : per_second_(per_minute / 60.0), burst_(burst), max_clients_(max_clients) {}
    // Takes one token for `client`; false when its bucket is empty or the table is full.
    bool allow(const std::string& client, std::time_t now);
    // The bucket `client` counts against: an IPv6 address -> "<first 64 bits>::/64", else itself.
    static std::string bucket_key(const std::string& client);

private:
    struct Bucket {
        double tokens;
        std::time_t at;
    };
    bool make_room(std::time_t now) SEALMILTER_REQUIRES(mu_);

    double per_second_;
    double burst_;
    size_t max_clients_;
    base::Mutex mu_;
    std::unordered_map<std::string, Bucket> buckets_ SEALMILTER_GUARDED_BY(mu_);
    std::time_t swept_at_ SEALMILTER_GUARDED_BY(mu_) = 0;  // the last full sweep found nothing to drop
};

class TrustedProxies {
public:
    // "10.0.0.1, 192.0.2.0/24, ::1"; "" = none.
    static std::optional<TrustedProxies> parse(std::string_view list, std::string* error);
    bool trusted(std::string_view ip) const;
    // The client: `peer`, or the last hop of `forwarded_for` (X-Forwarded-For) when the peer is
    // trusted and that hop is an IP address.
    std::string client(const std::string& peer, std::string_view forwarded_for) const;

private:
    struct Net {
        int family;
        unsigned char bytes[16];
        unsigned prefix;
    };
    std::vector<Net> nets_;
};

}  // namespace sealmilter::pickup
