// lookup/issued_source.cpp — the `issued` source (see issued_source.hpp).
#include "lookup/issued_source.hpp"

namespace sealmilter::lookup {

SourceProperties IssuedSource::properties() const {
    SourceProperties p;
    p.cacheable = false;               // the registry is the record; a cached copy could outlive a retirement
    p.negative_authoritative = false;  // "none issued" says nothing about the recipient's own certificate
    p.fallback = true;
    return p;
}

// The source is never cached, so the Chain asks this only for candidates it has just returned:
// certificates our own CA issued (its trust is the CA's, not lookup.trust_anchors').
bool IssuedSource::vouches_for(const crypto::Certificate& /*candidate*/) const { return true; }

SourceAnswer IssuedSource::lookup(const Query& query) {
    SourceAnswer a;
    std::optional<crypto::Certificate> cert = issued_->current(query.email);
    if (!cert) {
        a.outcome = Outcome::NotFound;
        a.reason = "none issued";
        return a;
    }
    a.outcome = Outcome::Found;
    a.candidates.push_back(std::move(*cert));
    return a;
}

void IssuedSource::superseded(const Query& query, const std::string& winner) {
    issued_->superseded(query.email, "the recipient's own certificate was found (" + winner + ")");
}

bool IssuedSource::withdrawn(const std::string& email, const crypto::Certificate& candidate) const {
    return issued_->withdrawn(email, candidate);
}

void add_issued_source(SourceRegistry& registry, const std::shared_ptr<IssuedCertificates>& issued) {
    registry.add("issued", [issued](const Settings& /*settings*/) {
        BuiltSource b;
        if (issued == nullptr) {
            b.notes.emplace_back("issued: off (no issuing CA in keys.dir)");
            return b;
        }
        b.source = std::make_unique<IssuedSource>(issued);
        return b;
    });
}

}  // namespace sealmilter::lookup
