// lookup/certificate_memo.cpp — see certificate_memo.hpp.
#include "lookup/certificate_memo.hpp"

#include <cstdint>

namespace sealmilter::lookup {

std::optional<crypto::Certificate> CertificateMemo::find(std::string_view der) {
    const base::MutexLock lock(mutex_);
    const auto it = index_.find(der);
    if (it == index_.end()) {
        ++misses_;
        return std::nullopt;
    }
    lru_.splice(lru_.begin(), lru_, it->second);
    ++hits_;
    return it->second->second;
}

void CertificateMemo::remember(std::string_view der, const crypto::Certificate& cert) {
    if (capacity_ == 0) return;
    const base::MutexLock lock(mutex_);
    if (index_.count(der) != 0) return;  // another thread parsed the same bytes meanwhile
    lru_.emplace_front(std::string(der), cert);
    index_.emplace(lru_.front().first, lru_.begin());
    while (lru_.size() > capacity_) {
        index_.erase(lru_.back().first);
        lru_.pop_back();
    }
}

std::optional<crypto::Certificate> CertificateMemo::get_or_parse(std::string_view der) {
    if (std::optional<crypto::Certificate> hit = find(der)) return hit;
    // Parsing is the slow part: done without the lock, so other lookups go on meanwhile.
    crypto::ParsedCertificates parsed = crypto::parse_certificates(der);
    if (parsed.certificates.size() != 1 || !parsed.error.empty()) return std::nullopt;
    remember(der, parsed.certificates.front());
    return std::move(parsed.certificates.front());
}

size_t CertificateMemo::size() const {
    const base::MutexLock lock(mutex_);
    return lru_.size();
}

size_t CertificateMemo::hits() const {
    const base::MutexLock lock(mutex_);
    return hits_;
}

size_t CertificateMemo::misses() const {
    const base::MutexLock lock(mutex_);
    return misses_;
}

// parse_certificates reads a single DER certificate, so plain concatenation would not round-trip.
std::string encode_certificates(const std::vector<crypto::Certificate>& certs) {
    std::string out;
    for (const crypto::Certificate& c : certs) {  // DER certificates are far below 4 GiB
        const std::vector<unsigned char> der = c.der();
        const auto n = static_cast<std::uint32_t>(der.size());
        for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((n >> shift) & 0xff));
        out.append(der.begin(), der.end());
    }
    return out;
}

std::vector<crypto::Certificate> decode_certificates(std::string_view blob, CertificateMemo& memo) {
    std::vector<crypto::Certificate> out;
    while (!blob.empty()) {
        if (blob.size() < 4) return {};
        std::uint32_t n = 0;
        for (int i = 0; i < 4; ++i) n = (n << 8) | static_cast<unsigned char>(blob[static_cast<size_t>(i)]);
        blob.remove_prefix(4);
        if (n == 0 || n > blob.size()) return {};
        std::optional<crypto::Certificate> cert = memo.get_or_parse(blob.substr(0, n));
        if (!cert) return {};
        out.push_back(std::move(*cert));
        blob.remove_prefix(n);
    }
    return out;
}

}  // namespace sealmilter::lookup
