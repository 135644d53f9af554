// pickup/guard.cpp — codes, CSRF, rate limits, trusted proxies (see guard.hpp).
#include "pickup/guard.hpp"

#include "base/encoding.hpp"
#include "crypto/ossl.hpp"
#include "keys/issued.hpp"

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstring>

namespace sealmilter::pickup {

namespace {

std::string random_bytes(size_t n) {
    std::string out(n, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1)
        crypto::throw_openssl("RAND_bytes");
    return out;
}

bool base64url_char(char c) noexcept {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

std::string trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return std::string(s);
}

}  // namespace

std::string random_token(size_t n) {
    const std::string raw = random_bytes(n);
    std::string b64(4 * ((n + 2) / 3) + 1, '\0');
    const int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()),
                                    reinterpret_cast<const unsigned char*>(raw.data()), static_cast<int>(n));
    b64.resize(static_cast<size_t>(len));
    while (!b64.empty() && b64.back() == '=') b64.pop_back();
    std::replace(b64.begin(), b64.end(), '+', '-');
    std::replace(b64.begin(), b64.end(), '/', '_');
    return b64;
}

bool well_formed_token(std::string_view s) noexcept {
    return s.size() == 43 && std::all_of(s.begin(), s.end(), base64url_char);
}

std::string make_code() {
    // Rejection sampling: bytes >= 248 (8 * 31) are drawn again, so every symbol is equally likely.
    constexpr unsigned kLimit = 256 - (256 % kCodeAlphabet.size());
    std::string code;
    while (code.size() < kCodeLength) {
        for (const char b : random_bytes(16)) {
            const auto v = static_cast<unsigned char>(b);
            if (v >= kLimit) continue;
            code.push_back(kCodeAlphabet[v % kCodeAlphabet.size()]);
            if (code.size() == kCodeLength) break;
        }
    }
    return code;
}

std::string normalise_code(std::string_view typed) {
    std::string code;
    for (const char c : typed) {
        if (c == ' ' || c == '-' || c == '\t') continue;
        const char u = (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
        if (kCodeAlphabet.find(u) == std::string_view::npos && u != 'O' && u != '0' && u != 'I' && u != 'L' &&
            u != '1')
            return {};
        code.push_back(u);
        if (code.size() > 64) return {};
    }
    return code;
}

std::string code_hash(std::string_view code, std::string_view token_hash) {
    std::string input(code);
    input.append(token_hash);
    return keys::sha256_hex(input);
}

Csrf::Csrf() : secret_(random_bytes(32)) {}

std::string Csrf::mac(std::string_view token_hash, std::string_view form, std::time_t at) const {
    std::string input = "csrf\n";
    input.append(token_hash).append("\n").append(form).append("\n").append(std::to_string(at));
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    if (HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
             reinterpret_cast<const unsigned char*>(input.data()), input.size(), out, &len) == nullptr)
        crypto::throw_openssl("HMAC");
    return base::to_hex(std::string_view(reinterpret_cast<const char*>(out), len));
}

std::string Csrf::issue(std::string_view token_hash, std::string_view form, std::time_t now) const {
    return std::to_string(now) + "." + mac(token_hash, form, now);
}

bool Csrf::check(std::string_view presented, std::string_view token_hash, std::string_view form,
                 std::time_t now) const {
    const size_t dot = presented.find('.');
    if (dot == std::string_view::npos || dot == 0 || dot > 12) return false;
    std::time_t at = 0;
    for (const char c : presented.substr(0, dot)) {
        if (c < '0' || c > '9') return false;
        at = at * 10 + (c - '0');
    }
    if (at > now + 60 || now - at > kLifetime) return false;
    const std::string expected = mac(token_hash, form, at);
    const std::string_view given = presented.substr(dot + 1);
    return given.size() == expected.size() && CRYPTO_memcmp(given.data(), expected.data(), expected.size()) == 0;
}

std::string ClientLimiter::bucket_key(const std::string& client) {
    unsigned char b[16] = {};
    if (client.find(':') == std::string::npos || inet_pton(AF_INET6, client.c_str(), b) != 1) return client;
    char text[INET6_ADDRSTRLEN] = {};
    std::memset(b + 8, 0, 8);
    if (inet_ntop(AF_INET6, b, text, sizeof text) == nullptr) return client;
    return std::string(text) + "/64";
}

bool ClientLimiter::allow(const std::string& client, std::time_t now) {
    const std::string key = bucket_key(client);
    const base::MutexLock lock(mu_);
    auto it = buckets_.find(key);
    if (it == buckets_.end()) {
        if (buckets_.size() >= max_clients_ && !make_room(now)) return false;
        it = buckets_.emplace(key, Bucket{burst_, now}).first;
    }
    Bucket& b = it->second;
    if (now > b.at) {
        b.tokens = std::min(burst_, b.tokens + per_second_ * static_cast<double>(now - b.at));
        b.at = now;
    }
    if (b.tokens < 1.0) return false;
    b.tokens -= 1.0;
    return true;
}

bool ClientLimiter::make_room(std::time_t now) {
    // A sweep that found nothing to drop is not repeated within the same second (nothing refills
    // meanwhile), so a flood of new clients against a full table costs no full scan per request.
    if (swept_at_ == now) return false;
    for (auto it = buckets_.begin(); it != buckets_.end();) {
        const double refilled = it->second.tokens + per_second_ * static_cast<double>(now - it->second.at);
        it = refilled >= burst_ ? buckets_.erase(it) : std::next(it);
    }
    if (buckets_.size() < max_clients_) return true;
    swept_at_ = now;
    return false;
}

std::optional<TrustedProxies> TrustedProxies::parse(std::string_view list, std::string* error) {
    TrustedProxies t;
    while (!list.empty()) {
        const size_t comma = list.find(',');
        const std::string item = trim(list.substr(0, comma));
        list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
        if (item.empty()) continue;
        const size_t slash = item.find('/');
        const std::string ip = item.substr(0, slash);
        Net n{};
        if (inet_pton(AF_INET, ip.c_str(), n.bytes) == 1) {
            n.family = AF_INET;
            n.prefix = 32;
        } else if (inet_pton(AF_INET6, ip.c_str(), n.bytes) == 1) {
            n.family = AF_INET6;
            n.prefix = 128;
        } else {
            *error = "pickup.trusted_proxies: '" + item + "' is not an IP address (or address/prefix)";
            return std::nullopt;
        }
        if (slash != std::string::npos) {
            const std::string p = item.substr(slash + 1);
            const unsigned max = n.prefix;
            if (p.empty() || p.size() > 3 || !std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
                static_cast<unsigned>(std::stoi(p)) > max) {
                *error = "pickup.trusted_proxies: '" + item + "' has a bad prefix length";
                return std::nullopt;
            }
            n.prefix = static_cast<unsigned>(std::stoi(p));
        }
        t.nets_.push_back(n);
    }
    return t;
}

bool TrustedProxies::trusted(std::string_view ip) const {
    unsigned char b[16] = {};
    int family = 0;
    const std::string s(ip);
    if (inet_pton(AF_INET, s.c_str(), b) == 1) family = AF_INET;
    else if (inet_pton(AF_INET6, s.c_str(), b) == 1) family = AF_INET6;
    else return false;
    for (const Net& n : nets_) {
        if (n.family != family) continue;
        const unsigned whole = n.prefix / 8;
        const unsigned rest = n.prefix % 8;
        if (std::memcmp(n.bytes, b, whole) != 0) continue;
        if (rest != 0) {
            const auto mask = static_cast<unsigned char>(0xFF << (8 - rest));
            if ((n.bytes[whole] & mask) != (b[whole] & mask)) continue;
        }
        return true;
    }
    return false;
}

std::string TrustedProxies::client(const std::string& peer, std::string_view forwarded_for) const {
    if (forwarded_for.empty() || !trusted(peer)) return peer;
    const size_t comma = forwarded_for.rfind(',');
    std::string last = trim(comma == std::string_view::npos ? forwarded_for : forwarded_for.substr(comma + 1));
    unsigned char b[16];
    if (inet_pton(AF_INET, last.c_str(), b) == 1 || inet_pton(AF_INET6, last.c_str(), b) == 1) return last;
    return peer;
}

}  // namespace sealmilter::pickup
