// lookup/source.cpp — shared pieces of the source interface (see source.hpp).
#include "lookup/source.hpp"

#include "base/ascii.hpp"

namespace sealmilter::lookup {

const char* to_string(Outcome o) noexcept {
    switch (o) {
    case Outcome::Found: return "found";
    case Outcome::NotFound: return "not-found";
    case Outcome::TempError: return "temp-error";
    }
    return "?";
}

std::vector<SourceAnswer> CertificateSource::lookup_many(const std::vector<Query>& queries) {
    std::vector<SourceAnswer> out;
    out.reserve(queries.size());
    for (const Query& q : queries) out.push_back(lookup(q));
    return out;
}

std::string normalize_address(const std::string& email) {
    return base::to_lower(email);
}

Query make_query(const std::string& as_written) {
    Query q;
    q.email = normalize_address(as_written);
    if (q.email != as_written) q.as_written = as_written;
    return q;
}

}  // namespace sealmilter::lookup
