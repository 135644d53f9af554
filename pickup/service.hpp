// pickup/service.hpp — the HTTPS pickup service (issue 13 part 4/5, docs/issuing.md).
//
// Purpose:   the recipient of a notice opens <pickup.url>/p/<token> (GET: a page, nothing is
//            used up or sent), asks for a one-time code (POST .../code: CSRF, token, lock and
//            rate limits checked, the code's hash stored, the code mailed to the address), enters
//            it with a password (POST .../download: code checked in constant time, 5 wrong codes
//            lock the link, a right one is used up) and gets a PKCS#12 (AES-256-CBC/PBKDF2, or
//            3DES when asked for) through a one-time link /d/<id> valid for 5 minutes; /ca.pem,
//            /help and its illustrations, /style.css and /logo.png are static. Every response
//            carries the security headers (CSP, HSTS, Referrer-Policy, nosniff, X-Frame-Options),
//            every event one audit line. HTTP and TLS are libmicrohttpd's (GnuTLS inside MHD):
//            a bounded pool of polling threads, a connection limit, a connection timeout, bounded
//            POST bodies through MHD's post processor.
// Ownership: start() binds the socket itself (so "port in use" is a sentence and port 0 works
//            for tests) and hands it to MHD; the destructor stops MHD and joins its threads.
// Threads:   MHD's pool threads run the handlers; everything they share is locked or immutable.
// Errors:    start() returns nullptr and one sentence in *error; a request that fails inside
//            gets a 500/503 page and a log line, never a crash.
#pragma once

#include "base/logger.hpp"
#include "milter/transaction.hpp"
#include "pickup/audit.hpp"
#include "pickup/backend.hpp"
#include "pickup/code_mail.hpp"
#include "pickup/guard.hpp"

#include <cstddef>
#include <memory>
#include <string>

namespace sealmilter::pickup {

struct PickupSettings {
    std::string listen;    // HOST:PORT or [IPv6]:PORT; port 0 = any free port (tests)
    std::string cert_pem;  // pickup.cert_file's contents
    std::string key_pem;   // pickup.key_file's contents (wiped when the service stops)
    std::string org_name = "Example Bank";  // issue.org_name
    std::string notice_from;                // issue.notice_from: From of the code mails
    std::string logo_png;                   // issue.logo_file's bytes; "" = no logo
    TrustedProxies proxies;                 // pickup.trusted_proxies
    unsigned threads = 4;                   // MHD_OPTION_THREAD_POOL_SIZE
    unsigned max_connections = 64;          // MHD_OPTION_CONNECTION_LIMIT
    unsigned connection_timeout_s = 30;     // MHD_OPTION_CONNECTION_TIMEOUT
    size_t max_post_bytes = 8192;           // a larger body gets 413, nothing is done
    double client_per_minute = 20;          // per client address, requests to /p/ and /d/
    double client_burst = 20;
    unsigned code_mails_per_hour = 3;       // per address (record.code_mails)
    unsigned max_wrong_codes = 5;           // then the link is locked
    long code_ttl_s = 900;
};

struct PickupDeps {
    std::shared_ptr<PickupBackend> backend;  // nullptr: every link is "not valid"
    std::shared_ptr<milter::Reinjector> mail;  // the code mails leave here (milter.reinject)
    SignerFor signer_for;                    // may be empty: code mails go unsigned
    std::shared_ptr<const AuditLog> audit;   // required
    base::Logger log;
};

class PickupService {
public:
    static std::unique_ptr<PickupService> start(PickupSettings settings, PickupDeps deps, std::string* error);
    ~PickupService();
    PickupService(const PickupService&) = delete;
    PickupService& operator=(const PickupService&) = delete;

    int port() const noexcept;  // the bound port (the one chosen when listen asked for 0)

    struct Impl;
    explicit PickupService(std::unique_ptr<Impl> impl);

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace sealmilter::pickup
