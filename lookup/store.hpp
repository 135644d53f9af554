// lookup/store.hpp — the local certificate store (SPEC §6.1): a directory of PEM/DER files
// the administrator pins (subdirectories such as `harvested/` are not part of it).
//
// Purpose:   answers Found with every certificate naming the address (rfc822Name SAN, or the
//            subject emailAddress when there is no SAN; domain case-insensitive) or NotFound.
//            A store miss is not authoritative: the Chain goes on to the next source. Not
//            cacheable (it is local already) and vouches for nothing: pinned certificates
//            must still chain to the trust anchors.
// Ownership: the index is built at construction (and rebuilt by a new StoreSource on reload).
// Threads:   lookup() is const over an immutable index; safe from any thread.
// Errors:    an unreadable directory yields TempError answers (the admin configured it);
//            unparsable files are skipped and listed in problems().
#pragma once

#include "lookup/source.hpp"

#include <map>
#include <string>
#include <vector>

namespace sealmilter::lookup {

class StoreSource final : public CertificateSource {
public:
    explicit StoreSource(std::string dir);
    std::string name() const override { return "store"; }
    SourceAnswer lookup(const Query& query) override;
    const std::vector<std::string>& problems() const { return problems_; }  // "FILE: why"
    const std::string& error() const { return error_; }  // the directory itself is unusable
    size_t size() const { return count_; }

private:
    void index_file(const std::string& path);

    std::string dir_;
    std::string error_;  // set when the directory itself cannot be read
    std::multimap<std::string, crypto::Certificate> by_address_;  // normalised address
    std::vector<std::string> problems_;
    size_t count_ = 0;
};

}  // namespace sealmilter::lookup
