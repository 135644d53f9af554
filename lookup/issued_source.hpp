// lookup/issued_source.hpp — the `issued` certificate source: certificates the gateway's own CA
// issued for recipients who had none (issue 13, docs/issuing.md "Policy and the issued source").
//
// Purpose:   IssuedCertificates is what the lookup layer needs of the issuer (lookup/ must not
//            include keys/; cli/wiring implements it over keys::Issuer): the address's current
//            issued certificate, and `superseded` when the recipient's own certificate won.
//            IssuedSource answers Found(the issued certificate) or NotFound; it is a fallback
//            source (SourceProperties::fallback): the Chain keeps its answer aside and uses it
//            only when no later step (sources, cache) yields a usable certificate, so a cached
//            negative or a directory 404 never hides it and a certificate of the recipient's own
//            (directory, LDAP, DNS, harvest) wins and retires the issued one. It vouches for its
//            own candidates (our CA issued them: no lookup.trust_anchors change); its answers are
//            neither cached nor authoritative.
// Ownership: IssuedSource shares the IssuedCertificates (the issuer outlives reloads).
// Threads:   safe from several threads when the IssuedCertificates is (the issuer is).
// Errors:    none thrown: an address without an issued certificate is NotFound.
#pragma once

#include "lookup/registry.hpp"
#include "lookup/source.hpp"

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace sealmilter::lookup {

class IssuedCertificates {
public:
    virtual ~IssuedCertificates() = default;
    // The address's current issued certificate (not retired or revoked), if any.
    virtual std::optional<crypto::Certificate> current(std::string_view address) const = 0;
    // The recipient's own certificate won (`reason` names the step, e.g. "directory"): the
    // issued one is retired (never deleted: old mail must still open).
    virtual void superseded(std::string_view address, const std::string& reason) = 0;
    // True when `candidate` is a certificate our CA issued for `address` that is no longer
    // current (revoked, or retired): the Chain never uses it, whichever source returned it
    // (issue.publish puts issued certificates into the directory, where a revocation does not
    // reach). A provider that never withdraws a certificate keeps the default.
    virtual bool withdrawn(std::string_view /*address*/, const crypto::Certificate& /*candidate*/) const {
        return false;
    }
};

class IssuedSource : public CertificateSource {
public:
    explicit IssuedSource(std::shared_ptr<IssuedCertificates> issued) : issued_(std::move(issued)) {}

    std::string name() const override { return "issued"; }
    SourceProperties properties() const override;
    // Our CA's certificates only: the fingerprint of the current issued certificate of some
    // address (the candidate came from this source, so it is one).
    bool vouches_for(const crypto::Certificate& candidate) const override;
    SourceAnswer lookup(const Query& query) override;
    void superseded(const Query& query, const std::string& winner) override;
    // IssuedCertificates::withdrawn (the Chain asks it for every other source's candidates).
    bool withdrawn(const std::string& email, const crypto::Certificate& candidate) const;

private:
    std::shared_ptr<IssuedCertificates> issued_;
};

// Registers "issued" over `issued`; null registers it as configured off ("issued: off (no
// issuing CA in keys.dir)"), so a lookup.order naming it works without an issuer.
void add_issued_source(SourceRegistry& registry, const std::shared_ptr<IssuedCertificates>& issued);

}  // namespace sealmilter::lookup
