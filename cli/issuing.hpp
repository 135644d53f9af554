// cli/issuing.hpp — the daemon's issuer (issue 13, docs/issuing.md): keys::Issuer over the key
// store and the registry in keys.dir, adapted to what the mail path needs (the transaction's
// milter::CertificateIssuer, the issued source's lookup::IssuedCertificates), and the notice
// worker sending through milter.reinject.
//
// Purpose:   Issuing::open() opens it when keys.dir holds a CA (keys.dir/ca.pem) and a key
//            store is configured; `run` does that once at start and keeps it over SIGHUP (the
//            pool of pre-generated key pairs survives reloads). check_issuing() is the one
//            refusal (exit 78, one sentence) of `run` and `check-config` when the policy or
//            policy.no_cert_action uses issue but there is no CA, no key store, no
//            issue.notice_from or no pickup.url.
// Ownership: Issuing owns the issuer, the adapters and the worker; Services snapshots share
//            the adapters.
// Threads:   the adapters are safe from every milter thread; the worker has its own thread.
// Errors:    CliError(kConfig) from check_issuing; open() returns null + *error.
#pragma once

#include "base/logger.hpp"
#include "conf/config.hpp"
#include "core/policy.hpp"
#include "lookup/issued_source.hpp"
#include "lookup/publisher.hpp"
#include "milter/issuing.hpp"
#include "milter/notices.hpp"

#include <memory>
#include <string>

namespace sealmilter::keys {
class Issuer;
}

namespace sealmilter::cli {

// Whether this configuration issues: policy.default_mode or policy.no_cert_action = issue, or
// a policy line with mode issue.
bool uses_issue(const conf::Config& config, const core::PolicyTable& policy);

// keys.dir/ca.pem: where `sealmilter ca init|import` names the CA.
std::string ca_file(const conf::Config& config);

// Throws CliError(kConfig) naming what is missing when `config` issues; `store_configured`:
// a key store is configured (keys.master_key_file).
void check_issuing(const conf::Config& config, const core::PolicyTable& policy, bool store_configured);

class Issuing {
public:
    // nullptr + *error when keys.dir has no CA or no key store is configured, or the issuer
    // cannot open (the CA's key does not open).
    static std::shared_ptr<Issuing> open(const conf::Config& config, const base::Logger& log, std::string* error);
    ~Issuing();

    std::shared_ptr<milter::CertificateIssuer> for_mail() const;
    std::shared_ptr<lookup::IssuedCertificates> for_lookup() const;
    // The issuer itself: the pickup service of the same daemon uses it (one pool, one store writer).
    std::shared_ptr<keys::Issuer> issuer() const { return issuer_; }
    // issue.publish: every certificate issued from now on is queued here (null: none). Set by
    // each snapshot (the publisher is the snapshot's).
    void set_publisher(std::shared_ptr<lookup::Publisher> publisher);
    void start_notices();  // the worker's thread (run only; check-config never opens an Issuing)

    class Adapter;

private:
    Issuing() = default;
    std::shared_ptr<keys::Issuer> issuer_;
    std::shared_ptr<Adapter> adapter_;
    // Shared: the Adapter holds it weakly, so a milter thread inside issue() at shutdown keeps
    // the worker alive for its wake() instead of touching a freed one.
    std::shared_ptr<milter::NoticeWorker> worker_;
};

}  // namespace sealmilter::cli
