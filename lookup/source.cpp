// lookup/source.cpp — shared pieces of the source interface (see source.hpp).
#include "lookup/source.hpp"

#include <algorithm>
#include <cctype>

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
    std::string out = email;
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) {
        return c < 0x80 ? static_cast<char>(std::tolower(c)) : static_cast<char>(c);
    });
    return out;
}

}  // namespace sealmilter::lookup
