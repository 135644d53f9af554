// cli/issuing.cpp — the daemon's issuer and notice worker (see issuing.hpp).
#include "cli/issuing.hpp"

#include "base/file.hpp"
#include "base/mutex.hpp"
#include "cli/common.hpp"
#include "cli/key_store.hpp"
#include "cli/wiring.hpp"
#include "keys/issuer.hpp"
#include "milter/reinject.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

namespace sealmilter::cli {

// The mail path's two views of keys::Issuer; issue() wakes the notice worker.
class Issuing::Adapter final : public milter::CertificateIssuer, public lookup::IssuedCertificates {
public:
    Adapter(std::shared_ptr<keys::Issuer> issuer, base::Logger log) : issuer_(std::move(issuer)), log_(std::move(log)) {}

    std::optional<std::string> uncertifiable_reason(std::string_view address) const override {
        return keys::uncertifiable_reason(address);
    }
    bool ready() const override { return issuer_->ready(); }
    std::optional<crypto::Certificate> issue(std::string_view address, std::string* error) override {
        std::optional<crypto::Certificate> c = issuer_->issue(address, error);
        if (c) {
            if (const std::shared_ptr<milter::NoticeWorker> w = worker()) w->wake();
            publish(address, *c);
        }
        return c;
    }
    void set_publisher(std::shared_ptr<lookup::Publisher> p) { std::atomic_store(&publisher_, std::move(p)); }
    std::optional<crypto::Certificate> current(std::string_view address) const override {
        return issuer_->current(address);
    }
    bool withdrawn(std::string_view address, const crypto::Certificate& candidate) const override {
        return issuer_->withdrawn(address, candidate);
    }
    void superseded(std::string_view address, const std::string& reason) override {
        log_.info("<" + std::string(address) + ">: issued certificate retired: " + reason);
        issuer_->retire(address, reason);
    }
    void set_worker(std::weak_ptr<milter::NoticeWorker> w) {
        const base::MutexLock lock(worker_mu_);
        worker_ = std::move(w);
    }

private:
    // Queued, never waited for (lookup/publisher: a file, then a background POST); a queue that
    // cannot be written loses the publication, never the message.
    void publish(std::string_view address, const crypto::Certificate& c) const {
        const std::shared_ptr<lookup::Publisher> p = std::atomic_load(&publisher_);
        if (!p) return;
        try {
            p->enqueue(std::string(address), c.pem());
        } catch (const std::exception& e) {
            log_.warning("<" + std::string(address) + ">: issued certificate not queued for publishing: " + e.what());
        }
    }

    std::shared_ptr<milter::NoticeWorker> worker() const {
        const base::MutexLock lock(worker_mu_);
        return worker_.lock();
    }

    std::shared_ptr<keys::Issuer> issuer_;
    base::Logger log_;
    mutable base::Mutex worker_mu_;
    std::weak_ptr<milter::NoticeWorker> worker_ SEALMILTER_GUARDED_BY(worker_mu_);
    std::shared_ptr<lookup::Publisher> publisher_;  // atomic_load / atomic_store
};

namespace {

class RegistryBook final : public milter::NoticeBook {
public:
    explicit RegistryBook(std::shared_ptr<keys::Issuer> issuer) : issuer_(std::move(issuer)) {}
    std::vector<keys::IssuedRecord> list_due(size_t limit, std::string* error) override {
        return issuer_->registry().list_due(limit, error);
    }
    bool update(std::string_view address, const Change& change, std::string* error) override {
        return issuer_->registry().update(address, change, error);
    }

private:
    std::shared_ptr<keys::Issuer> issuer_;
};

// pickup.audit_log (appended, one line each, 0640) or the daemon log.
milter::AuditSink audit_sink(const conf::Config& c, const base::Logger& log) {
    const std::string& path = c.get("pickup.audit_log");
    if (path.empty()) return [log](const std::string& line) { log.info(line); };
    return [path, log](const std::string& line) {
        const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
        const std::string stamped = crypto::format_time_utc(std::time(nullptr)) + " " + line + "\n";
        if (fd < 0 || ::write(fd, stamped.data(), stamped.size()) != static_cast<ssize_t>(stamped.size())) {
            log.error("pickup.audit_log " + path + ": cannot append (" + std::strerror(errno) + "): " + line);
        }
        if (fd >= 0) ::close(fd);
    };
}

milter::NoticeOptions notice_options(const conf::Config& c) {
    milter::NoticeOptions o;
    o.notice.org_name = c.get("issue.org_name");
    o.notice.from = c.get("issue.notice_from");
    o.notice.pickup_url = c.get("pickup.url");
    if (const std::string& logo = c.get("issue.logo_file"); !logo.empty()) {
        try {
            o.notice.logo_png = base::read_file(logo, 1 << 20);
        } catch (const std::exception& e) {
            throw CliError(kConfig, c.origin("issue.logo_file") + ": issue.logo_file " + logo + ": " + e.what());
        }
    }
    o.sign = sign_settings(c);
    o.interval = c.get_int("issue.notice_interval");
    o.token_ttl = c.get_int("issue.token_ttl");
    return o;
}

}  // namespace

bool uses_issue(const conf::Config& c, const core::PolicyTable& policy) {
    return c.get("policy.default_mode") == "issue" || c.get("policy.no_cert_action") == "issue" ||
           policy.names_mode(core::Mode::Issue);
}

std::string ca_file(const conf::Config& c) { return c.get("keys.dir") + "/ca.pem"; }

void check_issuing(const conf::Config& c, const core::PolicyTable& policy, bool store_configured) {
    if (!uses_issue(c, policy)) return;
    const std::string why = "the policy issues certificates (mode issue or policy.no_cert_action = issue) but ";
    if (!store_configured)
        throw CliError(kConfig, why + "no key store is configured (keys.master_key_file) to escrow the keys in");
    struct stat st {};
    if (stat(ca_file(c).c_str(), &st) != 0)
        throw CliError(kConfig, why + "keys.dir has no issuing CA (" + ca_file(c) + "; make one with sealmilter ca init)");
    if (c.get("issue.notice_from").empty())
        throw CliError(kConfig, why + "issue.notice_from is empty (the From address of the pickup notices)");
    if (c.get("pickup.url").empty())
        throw CliError(kConfig, why + "pickup.url is empty (the base of the link in every pickup notice)");
}

std::shared_ptr<Issuing> Issuing::open(const conf::Config& c, const base::Logger& log, std::string* error) {
    struct stat st {};
    if (stat(ca_file(c).c_str(), &st) != 0) {
        *error = "keys.dir has no issuing CA (" + ca_file(c) + ")";
        return nullptr;
    }
    std::shared_ptr<keys::KeyStore> store = open_configured_store(c, false);
    if (!store) {
        *error = "no key store is configured (keys.master_key_file)";
        return nullptr;
    }
    auto registry = std::make_shared<keys::IssuedRegistry>(c.get("keys.dir"));
    std::shared_ptr<keys::Issuer> issuer = keys::Issuer::open(store, registry, issue_settings(c), error);
    if (!issuer) return nullptr;
    std::shared_ptr<Issuing> out(new Issuing());
    out->issuer_ = issuer;
    out->adapter_ = std::make_shared<Adapter>(issuer, log.child("issue"));
    const auto [host, port] = host_port(c.get("milter.reinject"));
    auto reinjector = std::make_shared<milter::SmtpReinjector>(host, port, static_cast<long>(c.get_int("milter.reinject_timeout_ms")));
    milter::NoticeOptions options = notice_options(c);
    const core::SignSettings sign = options.sign;
    const std::string from = options.notice.from;
    // The worker signs with a read-only copy of the store of its own: the Issuer's store is
    // written (its index replaced in memory) by issue() on milter threads, under the Issuer's
    // lock, and must not be read beside it. Keys imported after start are seen after a restart.
    const std::shared_ptr<const keys::KeyRing> ring = open_configured_store(c, false);
    milter::NoticeSigner signer = [ring, sign, from](std::string* why) {
        return core::choose_signer(ring.get(), from, sign, std::time(nullptr), why);
    };
    out->worker_ = std::make_shared<milter::NoticeWorker>(std::make_shared<RegistryBook>(issuer), reinjector,
                                                          std::move(options), std::move(signer), audit_sink(c, log),
                                                          log.child("notices"));
    out->adapter_->set_worker(out->worker_);
    log.info("issuing: CA " + issuer->ca().certificate().subject() + ", " + std::to_string(issuer->pool().ready()) +
             " key pair(s) ready of " + c.get("issue.pool_size"));
    return out;
}

Issuing::~Issuing() {
    if (adapter_) adapter_->set_worker({});
    if (worker_) worker_->stop();  // a wake() still in flight finds a stopped worker, not a freed one
}

std::shared_ptr<milter::CertificateIssuer> Issuing::for_mail() const { return adapter_; }
std::shared_ptr<lookup::IssuedCertificates> Issuing::for_lookup() const { return adapter_; }

void Issuing::set_publisher(std::shared_ptr<lookup::Publisher> publisher) { adapter_->set_publisher(std::move(publisher)); }

void Issuing::start_notices() {
    if (worker_) worker_->start();
}

}  // namespace sealmilter::cli
