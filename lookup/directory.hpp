// lookup/directory.hpp — the directory HTTP API source (SPEC §6.3), on libcurl.
//
// Purpose:   GET on a URL template with {email} (percent-encoded), {local}, {domain} (each
//            percent-encoded: an address can never change the path or the host). Answers:
//            200 with application/json {"certificates":[{"pem":"..."}]} (nlohmann-json),
//            application/pem-certificate-chain or application/x-pem-file (PEM bundle),
//            application/pkix-cert (DER) -> Found; 404 -> NotFound; 410 -> NotFound (opted
//            out); 304 (to If-None-Match) -> not_modified; everything else, a timeout, a body
//            over max_body, an unparsable body, a redirect (unless follow_redirects) ->
//            TempError. Cache-Control max-age / stale-if-error and ETag are reported.
//            Requests go through lookup/http (TLS verified with ca_file or the system store,
//            client certificate, bearer token): lookup_many runs all its requests at once,
//            multiplexed over HTTP/2 where offered, at most max_connections per host, on
//            connections kept for the next batch. Cacheable; 404/410 are authoritative;
//            vouches for its candidates only when configured as trusted.
// Ownership: the source owns its HTTP client; answers are values.
// Threads:   lookup()/lookup_many() may be called from several threads at once.
// Errors:    every failure is a TempError answer with the reason; never throws for network
//            or content problems.
#pragma once

#include "lookup/source.hpp"

#include <map>
#include <memory>
#include <string>

namespace sealmilter::lookup {

struct DirectoryOptions {
    std::string url_template;    // directory.url
    long timeout_ms = 5000;      // directory.timeout_ms (whole request)
    std::string bearer_token;    // read from directory.token_file by the caller
    std::string ca_file;         // directory.ca_file; empty = system store
    long long max_body = 1 << 20;  // directory.max_body
    bool follow_redirects = false;
    bool trusted = false;        // directory.trusted: skip the chain check for its answers
    std::string client_cert_file;  // optional TLS client certificate (PEM) ...
    std::string client_key_file;   // ... and its key
    long max_connections = 4;      // directory.max_connections: per host, at once
};

// Expands the template for one address; percent-encodes every byte outside RFC 3986
// unreserved characters in each substituted part.
std::string expand_url(const std::string& url_template, const std::string& email);

// Turns one HTTP exchange into an answer (pure: used by the source and by the fuzzer).
// `headers` holds lower-case header names.
SourceAnswer parse_directory_response(long status, const std::map<std::string, std::string>& headers,
                                      const std::string& body, long long max_body);

class DirectorySource final : public CertificateSource {
public:
    explicit DirectorySource(DirectoryOptions options);
    ~DirectorySource() override;
    std::string name() const override { return "directory"; }
    SourceProperties properties() const override;
    bool vouches_for(const crypto::Certificate& candidate) const override;
    SourceAnswer lookup(const Query& query) override;
    std::vector<SourceAnswer> lookup_many(const std::vector<Query>& queries) override;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace sealmilter::lookup
