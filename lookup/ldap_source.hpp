// lookup/ldap_source.hpp — certificates from LDAP directories (SPEC §6 source 4), on libldap.
//
// Purpose:   asks the directory for the address's entries (ldap.filter with the address
//            escaped per RFC 4515, under ldap.base; per-domain servers from ldap.domain_map)
//            and returns the values of userCertificate;binary (DER X.509),
//            userSMIMECertificate and userSMIMECertificate;binary (a CMS certs-only bundle:
//            all its certificates, and its SMIMECapabilities when a signer states them) as
//            unvalidated candidates. No entry, or entries without certificates -> NotFound
//            (authoritative). A server that does not answer, a failed TLS verification or
//            StartTLS, a refused bind, a timeout, a search error -> TempError: never
//            "no certificate", never a fallback to plaintext. TLS: ldaps:// or StartTLS
//            (ldap.starttls) with the server's certificate verified against ldap.ca_file (or
//            the system bundle) and its name; referrals are never followed; size and time
//            limits on every search. Connections are kept per server (at most
//            ldap.max_connections) and reused; a batch of addresses for one server is sent
//            as concurrent searches on one connection; batches for different servers run in
//            parallel. Every exchange with a server (connect, TLS, bind, searches) ends
//            within ldap.timeout_ms.
// Ownership: the source owns its connections (ldap_handles.hpp).
// Threads:   lookup()/lookup_many() from several threads at once; each call takes its own
//            connection from the pool.
// Errors:    failures are TempError answers; nothing throws for network or content problems.
//            Constructing a source sets SIGPIPE to ignored when it is at its default (a server
//            closing the connection must not end the process).
#pragma once

#include "lookup/ldap_config.hpp"
#include "lookup/settings.hpp"
#include "lookup/source.hpp"

#include <memory>
#include <string>
#include <vector>

namespace sealmilter::lookup {

// ldap.* -> options: reads ldap.bind_password_file and ldap.domain_map; SettingsError naming
// the key (or FILE:LINE of the domain map) for anything unusable.
LdapOptions ldap_options(const Settings& settings);

// The certificates in one attribute value: DER X.509 for userCertificate, a CMS certs-only
// bundle (or, tolerated, a bare DER certificate) for userSMIMECertificate. Pure: the source
// and the tests use it. `error` set when nothing parsed.
struct LdapValue {
    std::vector<crypto::Certificate> certificates;
    std::vector<std::string> capabilities;
    std::string error;
};
LdapValue parse_ldap_value(const std::string& attribute, std::string_view bytes);

class LdapSource final : public CertificateSource {
public:
    explicit LdapSource(LdapOptions options);
    ~LdapSource() override;
    LdapSource(const LdapSource&) = delete;
    LdapSource& operator=(const LdapSource&) = delete;

    std::string name() const override { return "ldap"; }
    SourceProperties properties() const override;
    bool vouches_for(const crypto::Certificate& candidate) const override;
    SourceAnswer lookup(const Query& query) override;
    std::vector<SourceAnswer> lookup_many(const std::vector<Query>& queries) override;

    // Connections opened so far (tests and the benchmark see reuse).
    long connections_opened() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace sealmilter::lookup
