// lookup/store.cpp — the admin-pinned certificate directory (see store.hpp).
#include "lookup/store.hpp"

#include <filesystem>
#include <system_error>

namespace fs = std::filesystem;

namespace sealmilter::lookup {

StoreSource::StoreSource(std::string dir) : dir_(std::move(dir)) {
    std::error_code ec;
    if (!fs::is_directory(dir_, ec)) {
        error_ = "store.dir " + dir_ + " is not a readable directory";
        return;
    }
    // Bounded by the directory listing. `harvested/` is not indexed: harvested certificates
    // are the "harvest" source's (asked last, never pinned).
    for (const auto& sub : {fs::path(dir_)}) {
        if (!fs::is_directory(sub, ec)) continue;
        for (fs::directory_iterator it(sub, ec), end; !ec && it != end; it.increment(ec)) {
            if (it->is_regular_file(ec)) index_file(it->path().string());
        }
        if (ec) error_ = "cannot list " + sub.string() + ": " + ec.message();
    }
}

void StoreSource::index_file(const std::string& path) {
    const crypto::ParsedCertificates parsed = crypto::load_certificate_file(path);
    if (!parsed.error.empty()) {
        problems_.push_back(parsed.error);
        return;
    }
    for (const crypto::Certificate& c : parsed.certificates) {
        ++count_;
        for (const std::string& addr : c.email_addresses()) by_address_.emplace(normalize_address(addr), c);
    }
}

SourceAnswer StoreSource::lookup(const Query& query) {
    SourceAnswer a;
    if (!error_.empty()) {
        a.outcome = Outcome::TempError;
        a.reason = error_;
        return a;
    }
    const auto [first, last] = by_address_.equal_range(normalize_address(query.email));
    for (auto it = first; it != last; ++it) a.candidates.push_back(it->second);
    a.outcome = a.candidates.empty() ? Outcome::NotFound : Outcome::Found;
    if (a.candidates.empty()) a.reason = "no certificate in " + dir_;
    return a;
}

}  // namespace sealmilter::lookup
