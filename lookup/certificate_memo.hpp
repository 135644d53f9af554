// lookup/certificate_memo.hpp — parsed certificates kept in memory, keyed by their DER.
//
// Purpose:   a warm lookup used to spend most of its time re-decoding the DER the cache
//            stores (d2i_X509 plus OpenSSL's extension caching on first use). The memo hands
//            back the Certificate parsed the first time the same DER bytes were seen, so a
//            warm hit does not parse again. Bounded: at most `capacity` certificates, the
//            least recently used is dropped first. Keyed by the DER bytes themselves (not a
//            digest), so two different certificates can never be confused.
// Ownership: holds a reference (crypto::Certificate is ref-counted) to each kept certificate;
//            what it returns is a further reference, valid after eviction.
// Threads:   every method is thread-safe (one base::Mutex; parsing runs outside it).
// Errors:    get_or_parse returns nullopt when the bytes are not exactly one DER certificate;
//            nothing unparsable is remembered.
#pragma once

#include "base/mutex.hpp"
#include "crypto/certificate.hpp"

#include <cstddef>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace sealmilter::lookup {

class CertificateMemo {
public:
    explicit CertificateMemo(size_t capacity) : capacity_(capacity) {}
    CertificateMemo(const CertificateMemo&) = delete;
    CertificateMemo& operator=(const CertificateMemo&) = delete;

    std::optional<crypto::Certificate> get_or_parse(std::string_view der);

    size_t size() const;
    size_t hits() const;    // answers served without parsing
    size_t misses() const;  // answers that parsed

private:
    using Entry = std::pair<std::string, crypto::Certificate>;  // DER, parsed
    std::optional<crypto::Certificate> find(std::string_view der);
    void remember(std::string_view der, const crypto::Certificate& cert);

    const size_t capacity_;
    mutable base::Mutex mutex_;
    std::list<Entry> lru_ SEALMILTER_GUARDED_BY(mutex_);  // most recently used first
    // Views into the keys held by lru_ (list nodes never move).
    std::unordered_map<std::string_view, std::list<Entry>::iterator> index_ SEALMILTER_GUARDED_BY(mutex_);
    size_t hits_ SEALMILTER_GUARDED_BY(mutex_) = 0;
    size_t misses_ SEALMILTER_GUARDED_BY(mutex_) = 0;
};

// The stored form of a positive cache entry's certificates, shared by every cache backend:
// each certificate as a 4-byte big-endian length followed by its DER.
std::string encode_certificates(const std::vector<crypto::Certificate>& certs);
// Empty result = unreadable blob (never a positive entry without certificates). Each DER goes
// through the memo: a certificate read before is not parsed again.
std::vector<crypto::Certificate> decode_certificates(std::string_view blob, CertificateMemo& memo);

}  // namespace sealmilter::lookup
