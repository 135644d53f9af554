// cli/pickup.cpp — pickup.* and issue.* for the pickup service, and its start in `run` (see
// cli/pickup.hpp, docs/issuing.md).
#include "cli/pickup.hpp"

#include "base/file.hpp"
#include "cli/common.hpp"
#include "cli/key_store.hpp"
#include "conf/kinds.hpp"
#include "core/sign.hpp"
#include "crypto/certificate.hpp"
#include "crypto/private_key.hpp"
#include "milter/reinject.hpp"

#include <openssl/x509.h>
#include <unistd.h>

#include <exception>
#include <filesystem>

namespace sealmilter::cli {

namespace {

constexpr size_t kMaxLogo = 1 << 20;

[[noreturn]] void bad(const conf::Config& c, const std::string& key, const std::string& why) {
    throw CliError(kConfig, c.origin(key) + ": " + key + ": " + why);
}

bool loopback_host(const std::string& host) {
    return host == "localhost" || host.rfind("127.", 0) == 0 || host == "[::1]";
}

// https://HOST[:PORT][/PATH] without query or fragment; http:// only for a loopback host (tests,
// or a proxy on the same machine that terminates TLS and serves pickup.url itself).
void check_url(const conf::Config& c) {
    const std::string& url = c.get("pickup.url");
    if (url.empty()) bad(c, "pickup.url", "required with pickup.listen (the base URL of the links in notices)");
    const bool https = url.rfind("https://", 0) == 0;
    const bool http = url.rfind("http://", 0) == 0;
    if (!https && !http) bad(c, "pickup.url", "'" + url + "' must start with https://");
    const std::string rest = url.substr(https ? 8 : 7);
    const std::string host_port = rest.substr(0, rest.find('/'));
    const std::string host = host_port.front() == '[' ? host_port.substr(0, host_port.find(']') + 1)
                                                      : host_port.substr(0, host_port.find(':'));
    if (host.empty() || url.find_first_of("?# \t\"<>") != std::string::npos)
        bad(c, "pickup.url", "'" + url + "' is not a base URL (https://host[:port][/path], no query)");
    if (http && !loopback_host(host))
        bad(c, "pickup.url", "'" + url + "' must use https:// (plain http only for a loopback host)");
}

std::string read_secret(const conf::Config& c, const std::string& key) {
    const std::string& path = c.get(key);
    if (path.empty()) bad(c, key, "required with pickup.listen");
    try {
        return base::read_file(path, 1 << 20);
    } catch (const std::exception& e) {
        bad(c, key, e.what());
    }
}

// The certificate chain parses and the key belongs to its first certificate (what GnuTLS will
// refuse later with a less helpful message).
void check_pair(const conf::Config& c) {
    const crypto::ParsedCertificates certs = crypto::load_certificate_file(c.get("pickup.cert_file"));
    if (certs.certificates.empty())
        bad(c, "pickup.cert_file", certs.error.empty() ? "no certificate in the file" : certs.error);
    const crypto::KeyLoad key = crypto::load_key_material(c.get("pickup.key_file"), "");
    if (!key.material) bad(c, "pickup.key_file", key.error.empty() ? "no private key in the file" : key.error);
    if (X509_check_private_key(certs.certificates.front().native(), key.material->key.get()) != 1)
        bad(c, "pickup.key_file", "the key does not belong to the certificate in pickup.cert_file");
}

std::string read_logo(const conf::Config& c) {
    const std::string& path = c.get("issue.logo_file");
    if (path.empty()) return {};
    std::string png;
    try {
        png = base::read_file(path, kMaxLogo + 1);
    } catch (const std::exception& e) {
        bad(c, "issue.logo_file", e.what());
    }
    if (png.size() > kMaxLogo) bad(c, "issue.logo_file", path + " is larger than 1 MiB");
    if (png.rfind(std::string("\x89PNG\r\n\x1a\n", 8), 0) != 0) bad(c, "issue.logo_file", path + " is not a PNG file");
    return png;
}

void check_audit_log(const conf::Config& c) {
    const std::string& path = c.get("pickup.audit_log");
    if (path.empty()) return;
    const std::filesystem::path p(path);
    const std::string dir = p.has_parent_path() ? p.parent_path().string() : ".";
    if (access(path.c_str(), W_OK) != 0 && access(dir.c_str(), W_OK | X_OK) != 0)
        bad(c, "pickup.audit_log", "cannot append to " + path + " (nor create it in " + dir + ")");
}

// The code mails leave through the snapshot's milter.reinject (a SIGHUP may change it).
class SnapshotReinjector final : public milter::Reinjector {
public:
    explicit SnapshotReinjector(const milter::ServicesHolder& holder) : holder_(holder) {}
    std::string send(const std::string& sender, const std::vector<std::string>& recipients,
                     const std::function<void(crypto::ByteSink&)>& write_message) override {
        const std::shared_ptr<const milter::Services> s = holder_.get();
        milter::SmtpReinjector out(s->reinject_host, s->reinject_port, s->reinject_timeout_ms);
        return out.send(sender, recipients, write_message);
    }

private:
    const milter::ServicesHolder& holder_;
};

}  // namespace

std::optional<pickup::PickupSettings> pickup_settings(const conf::Config& c) {
    const std::string& listen = c.get("pickup.listen");
    if (listen.empty()) return std::nullopt;
    std::string why;
    if (!conf::validate_kind(conf::Type::HostPort, listen, {}, why)) bad(c, "pickup.listen", why);
    check_url(c);
    if (c.get("issue.notice_from").find('@') == std::string::npos)
        bad(c, "issue.notice_from", "required with pickup.listen (the From of the code mails)");
    pickup::PickupSettings s;
    s.listen = listen;
    s.cert_pem = read_secret(c, "pickup.cert_file");
    s.key_pem = read_secret(c, "pickup.key_file");
    check_pair(c);
    s.org_name = c.get("issue.org_name");
    s.notice_from = c.get("issue.notice_from");
    s.logo_png = read_logo(c);
    std::string error;
    std::optional<pickup::TrustedProxies> proxies = pickup::TrustedProxies::parse(c.get("pickup.trusted_proxies"), &error);
    if (!proxies) bad(c, "pickup.trusted_proxies", error);
    s.proxies = std::move(*proxies);
    check_audit_log(c);
    return s;
}

void check_pickup(const conf::Config& c) {
    if (!pickup_settings(c)) return;
    if (c.get("keys.master_key_file").empty())
        note("warning: pickup.listen is set but no key store is configured (keys.master_key_file): every pickup "
             "link will answer \"not valid\"");
    else if (access((c.get("keys.dir") + "/ca.pem").c_str(), R_OK) != 0)
        note("warning: pickup.listen is set but " + c.get("keys.dir") +
             " holds no issuing CA (sealmilter ca init): every pickup link will answer \"not valid\"");
}

std::shared_ptr<keys::Issuer> open_pickup_issuer(const conf::Config& c, const base::Logger& log) {
    const std::shared_ptr<keys::KeyStore> store = open_configured_store(c, false);
    if (!store) {
        log.warning("pickup: no key store (keys.master_key_file is not set): every pickup link answers \"not valid\"");
        return nullptr;
    }
    std::string error;
    auto registry = std::make_shared<keys::IssuedRegistry>(c.get("keys.dir"));
    keys::IssueSettings settings = issue_settings(c);
    settings.pool_threads = 0;  // the pickup never issues: no key pairs made ahead
    std::shared_ptr<keys::Issuer> issuer = keys::Issuer::open(store, registry, settings, &error);
    if (!issuer) log.warning("pickup: no issuing CA (" + error + "): every pickup link answers \"not valid\"");
    return issuer;
}

std::unique_ptr<pickup::PickupService> start_pickup(const conf::Config& c, const milter::ServicesHolder& holder,
                                                    std::function<std::shared_ptr<keys::Issuer>()> issuer,
                                                    const base::Logger& log) {
    std::optional<pickup::PickupSettings> settings = pickup_settings(c);
    if (!settings) return nullptr;
    std::string error;
    std::shared_ptr<const pickup::AuditLog> audit = pickup::AuditLog::open(c.get("pickup.audit_log"), log, &error);
    if (!audit) throw CliError(kConfig, error);
    pickup::PickupDeps deps;
    deps.backend = std::make_shared<pickup::IssuerBackend>(std::move(issuer));
    deps.mail = std::make_shared<SnapshotReinjector>(holder);
    deps.signer_for = [&holder](std::string_view from, std::string* why) -> std::optional<pickup::MailSigner> {
        const std::shared_ptr<const milter::Services> s = holder.get();
        std::optional<core::Signer> signer =
            core::choose_signer(s->keys.get(), from, s->plan.sign, std::time(nullptr), why);
        if (!signer) return std::nullopt;
        core::SignedEntityOptions o = core::entity_options(*signer, s->plan.sign);
        return pickup::MailSigner{std::move(*signer), std::move(o)};
    };
    deps.audit = audit;
    deps.log = log;
    const std::string listen = settings->listen;
    std::unique_ptr<pickup::PickupService> service = pickup::PickupService::start(std::move(*settings), deps, &error);
    if (!service) throw CliError(kConfig, error + "; the daemon does not start");
    log.info("pickup service on https://" + listen + " (links: " + c.get("pickup.url") + "/p/...)");
    return service;
}

}  // namespace sealmilter::cli
