// conf/config.cpp — option table, INI parsing with file:line errors (see config.hpp).
#include "conf/config.hpp"

#include "base/ascii.hpp"

#include <boost/program_options/value_semantic.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <sys/stat.h>

namespace po = boost::program_options;

namespace sealmilter::conf {

const std::vector<OptionSpec>& option_table() {
    static const std::vector<OptionSpec> table = {
        {"milter.socket", Type::MilterSocket, "inet:8891@127.0.0.1",
         "where the MTA connects: inet:PORT@HOST or unix:PATH"},
        {"milter.dry_run", Type::Bool, "false", "log every decision, change no mail"},
        {"milter.reinject", Type::HostPort, "127.0.0.1:10027",
         "HOST:PORT of the MTA's milter-bypassing SMTP service for split copies"},
        {"milter.reinject_timeout_ms", Type::Millis, "30000", "timeout of each re-injection step", {}, 100, 600000},
        {"policy.file", Type::Path, "/etc/sealmilter/policy",
         "the recipient policy table; when the default file is absent, policy.default_mode applies to all"},
        {"policy.default_mode", Type::Enum, "opportunistic", "mode when no policy line matches",
         {"require", "opportunistic", "never", "issue"}},
        {"policy.no_cert_action", Type::Enum, "reject",
         "require recipient without a certificate: reject (550 5.7.1), tempfail (451 4.7.1) or issue (our CA issues "
         "one, docs/issuing.md)",
         {"reject", "tempfail", "issue"}},
        {"policy.on_lookup_error", Type::Enum, "tempfail",
         "opportunistic recipient whose lookup failed: tempfail (451 4.7.1) or pass (deliver plain)",
         {"tempfail", "pass"}},
        {"policy.internal_domains", Type::DomainList, "", "comma list of domains (and subdomains) never encrypted"},
        {"policy.subject_tag", Type::String, "[secure]",
         "a Subject containing this raises the message to require (the tag is removed); empty = off"},
        {"policy.trigger_header", Type::HeaderName, "X-Sealmilter-Encrypt",
         "a header with value yes raises the message to require (the header is removed); empty = off"},
        {"milter.max_message_size", Type::Size, "104857600",
         "messages larger than this (bytes) are refused with 552 5.3.4", {}, 1024, 4LL << 30},
        {"milter.mta_size_limit", Type::Size, "0",
         "the MTA's own limit (Postfix message_size_limit); a message that would exceed it once encrypted is "
         "refused with 552 5.3.4 and a sentence saying why; 0 = not checked (the MTA refuses it itself)",
         {}, 0, 8LL << 30},
        {"milter.spool_dir", Type::Path, "/var/spool/sealmilter",
         "where message bodies beyond the in-memory threshold are spooled (temp files, unlinked at once)"},
        {"milter.memory_threshold", Type::Size, "1048576",
         "bytes of a message body held in memory before spooling to milter.spool_dir", {}, 0, 1LL << 30},
        {"lookup.order", Type::List, "store,issued,cache,directory,harvest",
         "comma list of certificate sources in priority order: store, issued, cache, directory, ldap, dns, harvest",
         {"store", "issued", "cache", "directory", "harvest", "ldap", "dns"}},
        {"lookup.trust_anchors", Type::PathList, "",
         "comma list of PEM files with the trusted roots; empty = the system bundle"},
        {"lookup.crl_files", Type::PathList, "", "comma list of CRL files (PEM or DER) to check certificates against"},
        {"lookup.allow_expired", Type::Bool, "false", "use expired (otherwise valid) certificates"},
        {"directory.publish_url", Type::UrlTemplate, "",
         "harvested certificates are POSTed here (PEM, bearer token, retried from a persistent queue); empty = off"},
        {"harvest.enabled", Type::Bool, "true",
         "harvest sender certificates from signed mail to harvest.domains (the milter)"},
        {"harvest.dir", Type::Path, "/var/lib/sealmilter/certs/harvested",
         "where harvested certificates are kept (one directory per address)"},
        {"harvest.domains", Type::DomainList, "",
         "comma list: mail to these domains (and subdomains) is inbound and harvested; empty = policy.internal_domains"},
        {"harvest.max_size", Type::Size, "26214400", "larger messages are not inspected for signatures", {}, 0, 1LL << 32},
        {"harvest.keys", Type::PathList, "",
         "comma list of the organisation's private keys (PEM, or PKCS#12 without password) that open enveloped "
         "inbound mail to look for signatures inside; empty = signatures inside envelopes are not seen"},
        {"store.dir", Type::Path, "/var/lib/sealmilter/certs",
         "admin-pinned certificates (PEM/DER files; harvested ones in harvested/)"},
        {"directory.url", Type::UrlTemplate, "",
         "URL template with {email} {local} {domain}, e.g. https://dir.example/v1/certs/{email}; empty = off"},
        {"directory.timeout_ms", Type::Millis, "5000", "whole-request timeout of a directory lookup", {}, 100, 120000},
        {"directory.token_file", Type::SecretFile, "", "file holding the bearer token (never the token itself)"},
        {"directory.ca_file", Type::Path, "", "PEM CA bundle to verify the directory's TLS certificate; empty = system"},
        {"directory.max_body", Type::Size, "1048576", "largest directory answer accepted (bytes)", {}, 1024, 67108864},
        {"directory.trusted", Type::Bool, "false",
         "trust certificates from the directory without a chain to lookup.trust_anchors (other checks apply)"},
        {"directory.client_cert", Type::Path, "", "PEM client certificate for TLS client authentication; empty = none"},
        {"directory.client_key", Type::SecretFile, "", "PEM private key of directory.client_cert"},
        {"directory.follow_redirects", Type::Bool, "false", "follow HTTP redirects (at most 3, https/http only)"},
        {"cache.path", Type::Path, "/var/lib/sealmilter/cache.db", "SQLite cache file (WAL); empty = no cache"},
        {"cache.min_ttl", Type::Seconds, "3600", "shortest life of a positive entry (s)", {}, 0, 31536000},
        {"cache.max_ttl", Type::Seconds, "86400", "longest life of a positive entry (s)", {}, 0, 31536000},
        {"cache.negative_ttl", Type::Seconds, "3600", "life of an authoritative 'no certificate' entry (s)", {}, 0, 31536000},
        {"cache.max_stale", Type::Seconds, "604800", "how long an expired entry may be served while sources fail (s)", {},
         0, 31536000},
        {"crypto.encrypt_to", Type::Enum, "all_valid",
         "all_valid: every usable certificate of a recipient; newest: the one with the latest notBefore",
         {"all_valid", "newest"}},
        {"crypto.cipher", Type::Enum, "aes-256-cbc",
         "content encryption: aes-256-cbc (every client), aes-128-cbc, aes-256-gcm (AuthEnvelopedData; "
         "NSS/Thunderbird cannot read it)",
         {"aes-256-cbc", "aes-128-cbc", "aes-256-gcm", "auto"}},
        {"crypto.rsa_padding", Type::Enum, "pkcs1", "RSA key transport: pkcs1 (v1.5) or oaep",
         {"pkcs1", "oaep"}},
        {"crypto.protect_headers", Type::Bool, "false",
         "RFC 9788 header protection: the full header section goes inside, outer Subject is replaced"},
        {"crypto.protected_subject", Type::String, "[...]",
         "the outer Subject when crypto.protect_headers is on"},
        {"crypto.archive_cert", Type::Path, "",
         "PEM certificate every encrypted envelope is also encrypted to (archive/escrow); validated like a "
         "recipient's at start and reload; empty = off"},
        {"crypto.sign", Type::Enum, "never",
         "sign outgoing mail: never or always (the default; the policy table's +sign / +nosign and "
         "crypto.sign_sender_domains / crypto.nosign_sender_domains override it)",
         {"never", "always"}},
        {"crypto.sign_format", Type::Enum, "detached",
         "detached: multipart/signed (readable without S/MIME); opaque: application/pkcs7-mime signed-data",
         {"detached", "opaque"}},
        {"crypto.sign_digest", Type::Enum, "sha256", "the signature's digest", {"sha256", "sha384", "sha512"}},
        {"crypto.sign_key", Type::String, "",
         "the address whose active key in the key store signs for senders without a key of their own "
         "(e.g. noreply@bank.example); empty = only senders' own keys sign"},
        {"crypto.sign_key_domains", Type::String, "",
         "comma list of DOMAIN=ADDRESS: per sender domain, the address whose key signs instead of crypto.sign_key"},
        {"crypto.sign_sender_domains", Type::DomainList, "",
         "comma list: mail from these sender domains (and subdomains) is signed even when crypto.sign = never"},
        {"crypto.nosign_sender_domains", Type::DomainList, "",
         "comma list: mail from these sender domains (and subdomains) is not signed even when crypto.sign = always"},
        {"crypto.sign_missing", Type::Enum, "send_unsigned",
         "when mail should be signed and no usable signing key exists: send_unsigned (logged) or tempfail",
         {"send_unsigned", "tempfail"}},
        {"keys.decrypt_inbound", Type::Bool, "false",
         "decrypt inbound S/MIME mail for recipients in keys.decrypt_domains with any key of the store (the milter)"},
        {"keys.decrypt_domains", Type::DomainList, "",
         "comma list: recipients in these domains (and subdomains) get inbound mail decrypted; "
         "empty = policy.internal_domains"},
        {"directory.max_connections", Type::Int, "4",
         "most concurrent connections to one directory host (requests beyond share them, HTTP/2 multiplexed)",
         {}, 1, 256},
        {"ldap.uri", Type::LdapUri, "",
         "LDAP server(s) for every domain not in ldap.domain_map: ldaps://HOST[:PORT] or ldap://HOST[:PORT] "
         "(space-separated, tried in order); empty (and no ldap.domain_map) = off"},
        {"ldap.base", Type::String, "", "search base DN of ldap.uri, e.g. ou=people,dc=example,dc=com"},
        {"ldap.filter", Type::String, "(mail=%s)",
         "search filter; every %s becomes the address, escaped per RFC 4515 (it can never widen the filter)"},
        {"ldap.bind_dn", Type::String, "", "DN for a simple bind to ldap.uri's server; empty = anonymous"},
        {"ldap.bind_password_file", Type::SecretFile, "",
         "file holding the bind password (first line; never the password itself); required with ldap.bind_dn"},
        {"ldap.ca_file", Type::Path, "", "PEM CA bundle to verify the LDAP servers' TLS certificates; empty = system"},
        {"ldap.starttls", Type::Bool, "true",
         "StartTLS on ldap:// servers (a failure is a lookup error, never plaintext); false = plaintext ldap://"},
        {"ldap.timeout_ms", Type::Millis, "5000", "bounds each exchange with a server: connect, TLS, bind, search",
         {}, 100, 120000},
        {"ldap.domain_map", Type::Path, "",
         "file of 'DOMAIN URI BASE [FILTER]' lines: that domain's own LDAP server (anonymous bind); empty = none"},
        {"ldap.size_limit", Type::Int, "10", "most entries one search may return", {}, 1, 1000},
        {"ldap.max_connections", Type::Int, "4", "most connections to one LDAP server at once (kept for reuse)",
         {}, 1, 64},
        {"ldap.trusted", Type::Bool, "false",
         "trust LDAP certificates without a chain to lookup.trust_anchors (TLS servers only; other checks apply)"},
        {"dns.trust_anchor", Type::Path, "/usr/share/dns/root.key",
         "DNSSEC trust anchor: a file of DS or DNSKEY records (zone-file syntax) for the root or any zone"},
        {"dns.forwarders", Type::String, "",
         "comma list of IP[@PORT] the SMIMEA queries are forwarded to (loopback allowed); empty = full recursion"},
        {"dns.timeout_ms", Type::Millis, "5000", "whole-lookup timeout of a DNS SMIMEA lookup", {}, 100, 120000},
        {"dns.max_inflight", Type::Int, "64", "most DNS SMIMEA queries outstanding at once (more wait)", {}, 1, 4096},
        {"database.dsn_file", Type::SecretFile, "",
         "file holding the libpq connection string of the shared PostgreSQL (key=value or URI; sslmode, "
         "sslrootcert, password there, never in this file); used when database.shared is set"},
        {"database.shared", Type::List, "",
         "comma list of the state kept in PostgreSQL for several nodes: cache, harvest, journal, keys (the key "
         "store's index and wrapped keys), publish (the publish queue); empty = all local (SQLite, files)",
         {"cache", "harvest", "keys", "journal", "publish"}},
        {"database.max_connections", Type::Int, "4",
         "most PostgreSQL connections of one node (a call waits for a free one, within directory.timeout_ms)", {}, 1,
         64},
        {"log.level", Type::Enum, "info", "least severe level logged: error, warning, info or debug",
         {"error", "warning", "info", "debug"}},
        {"log.target", Type::Enum, "stderr", "stderr (journald) or syslog (facility mail, like Postfix)",
         {"stderr", "syslog"}},
        // Operations (issue 15): the decision journal, metrics, expiry nudges.
        {"log.decisions", Type::Path, "",
         "append one JSON line per recipient decision here (what `sealmilter report` reads); empty = off"},
        {"metrics.listen", Type::String, "",
         "HOST:PORT of the Prometheus exposition (GET /metrics), e.g. 127.0.0.1:9133; empty = off"},
        {"lookup.expiry_warn_days", Type::Int, "0",
         "warn (one log line, a metric) when a recipient's only certificate expires within this many days; 0 = off",
         {}, 0, 3650},
        {"keys.dir", Type::Path, "/var/lib/sealmilter/keys",
         "the key store: the organisation's private keys (wrapped under the master key) and their history"},
        {"keys.master_key_file", Type::Path, "",
         "64 hex characters (mode 0600) that wrap every key in keys.dir; empty = no key store (refused when "
         "keys.dir holds one)"},
        {"keys.pkcs11_module", Type::Path, "",
         "PKCS#11 module of token keys; empty = the p11-kit proxy"},
        {"keys.pkcs11_pin_file", Type::SecretFile, "", "file holding the token PIN (unless the URI has pin-value)"},
        // Certificates for anyone (issue 13, docs/issuing.md): the issuing CA, the pickup notice and service.
        {"issue.org_name", Type::String, "Example Bank",
         "the organisation named in issued certificates (O), the notices and the pickup pages"},
        {"issue.ca_subject", Type::String, "",
         "subject of the root `sealmilter ca init` makes, e.g. CN=Example Bank Mail CA,O=Example Bank; empty = "
         "CN=<org_name> Mail Encryption CA,O=<org_name>"},
        {"issue.key_bits", Type::Enum, "2048", "RSA key size of issued certificates", {"2048", "3072"}},
        {"issue.validity_days", Type::Int, "730", "validity of an issued certificate (days)", {}, 1, 3650},
        {"issue.pool_size", Type::Int, "8", "key pairs kept generated ahead, so issuing never waits", {}, 1, 1024},
        {"issue.pool_threads", Type::Int, "1", "threads generating key pairs for the pool", {}, 1, 16},
        {"issue.keep_escrow", Type::Bool, "true",
         "keep the escrowed key after the recipient picked it up (false: deleted after the first pickup)"},
        {"issue.notice_from", Type::String, "",
         "From address of pickup notices and code mails (required when anything issues), e.g. "
         "secure-mail@bank.example"},
        {"issue.publish", Type::Bool, "false",
         "POST every issued certificate to directory.publish_url, so the directory grows with every first message"},
        {"issue.logo_file", Type::Path, "", "PNG logo shown in notices and on the pickup pages; empty = none"},
        {"issue.notice_interval", Type::Seconds, "86400", "at most one notice per address per this long (s)", {}, 60,
         31536000},
        {"issue.token_ttl", Type::Seconds, "1209600", "life of the link in a notice (s)", {}, 300, 31536000},
        {"pickup.listen", Type::String, "",
         "HOST:PORT of the HTTPS pickup service that `run` starts, e.g. 127.0.0.1:8443; empty = off"},
        {"pickup.url", Type::String, "",
         "public base URL of the pickup service used in links, e.g. https://secure.bank.example (required with "
         "pickup.listen)"},
        {"pickup.cert_file", Type::Path, "", "TLS certificate chain (PEM) of the pickup service"},
        {"pickup.key_file", Type::SecretFile, "", "TLS private key (PEM) of the pickup service"},
        {"pickup.trusted_proxies", Type::String, "",
         "comma list of reverse-proxy addresses whose X-Forwarded-For names the client; empty = none"},
        {"pickup.audit_log", Type::Path, "",
         "append one line per pickup event (notice, code sent, wrong code, lock, pickup) here; empty = the daemon log"},
    };
    return table;
}

namespace {

const OptionSpec* find_spec(std::string_view key) {
    const auto& t = option_table();
    auto it = std::find_if(t.begin(), t.end(), [&](const OptionSpec& s) { return s.key == key; });
    return it == t.end() ? nullptr : &*it;
}

std::string trim_copy(std::string_view s) { return std::string(base::trim(s)); }

// Returns the normalised value or throws ConfigError naming `where`.
std::string validate(const OptionSpec& spec, const std::string& raw, const std::string& where) {
    std::string why;
    const KindLimits limits{spec.min, spec.max, &spec.choices};
    if (std::optional<std::string> v = validate_kind(spec.type, raw, limits, why)) return *v;
    throw ConfigError(where + ": bad value '" + trim_copy(raw) + "' for " + std::string(spec.key) + ": " + why);
}

// Keys that only make sense together. The error names where the configuration set one of
// them (the first of `keys` that is not a default: defaults alone never conflict).
void check_together(const Config& c) {
    const auto fail = [&](std::initializer_list<const char*> keys, const std::string& why) {
        for (const char* key : keys)
            if (c.origin(key) != "default") throw ConfigError(c.origin(key) + ": " + key + ": " + why);
        throw ConfigError(std::string("built-in defaults: ") + *keys.begin() + ": " + why);
    };
    const bool cert = !c.get("directory.client_cert").empty();
    if (cert != !c.get("directory.client_key").empty())
        fail({cert ? "directory.client_cert" : "directory.client_key"},
             "directory.client_cert and directory.client_key must be set together");
    const std::string& url = c.get("directory.url");
    if (!url.empty() && url.find("{email}") == std::string::npos && url.find("{local}") == std::string::npos)
        fail({"directory.url"}, "neither {email} nor {local} in the template: every address would ask the same URL");
    if (c.get_int("cache.min_ttl") > c.get_int("cache.max_ttl"))
        fail({"cache.min_ttl", "cache.max_ttl"}, "cache.min_ttl (" + c.get("cache.min_ttl") +
                                                     ") is larger than cache.max_ttl (" + c.get("cache.max_ttl") + ")");
}

}  // namespace

class ConfigBuilder {
public:
    ConfigBuilder() : cfg_(std::make_shared<Config>()) {
        for (const OptionSpec& s : option_table()) {
            cfg_->values_[std::string(s.key)] = std::string(s.default_value);
            cfg_->origins_[std::string(s.key)] = "default";
        }
    }
    void set(const std::string& key, const std::string& value, const std::string& where) {
        const OptionSpec* spec = find_spec(key);
        if (spec == nullptr) throw ConfigError(where + ": unknown key '" + key + "'");
        cfg_->values_[key] = validate(*spec, value, where);
        cfg_->origins_[key] = where;
    }
    void parse_ini(std::string_view text, const std::string& name) {
        std::istringstream in{std::string(text)};
        std::string line;
        std::string section;
        int lineno = 0;
        while (std::getline(in, line)) {
            ++lineno;
            const std::string where = name + ":" + std::to_string(lineno);
            const std::string t = trim_copy(line);
            if (t.empty() || t[0] == '#' || t[0] == ';') continue;
            if (t.front() == '[') {
                if (t.back() != ']') throw ConfigError(where + ": malformed section header '" + t + "'");
                section = trim_copy(std::string_view(t).substr(1, t.size() - 2));
                continue;
            }
            const size_t eq = t.find('=');
            if (eq == std::string::npos) throw ConfigError(where + ": expected 'key = value', got '" + t + "'");
            if (section.empty()) throw ConfigError(where + ": key outside of any [section]");
            set(section + "." + trim_copy(std::string_view(t).substr(0, eq)), t.substr(eq + 1), where);
        }
    }
    std::shared_ptr<const Config> done() {
        check_together(*cfg_);
        return cfg_;
    }

private:
    std::shared_ptr<Config> cfg_;
};

const std::string& Config::get(std::string_view key) const {
    auto it = values_.find(key);
    if (it == values_.end()) throw std::out_of_range("undeclared config key " + std::string(key));
    return it->second;
}
bool Config::get_bool(std::string_view key) const { return get(key) == "true"; }
long long Config::get_int(std::string_view key) const { return std::stoll(get(key)); }
std::vector<std::string> Config::get_list(std::string_view key) const {
    std::vector<std::string> out;
    std::istringstream items(get(key));
    std::string item;
    while (std::getline(items, item, ',')) {
        item = trim_copy(item);
        if (!item.empty()) out.push_back(item);
    }
    return out;
}
const std::string& Config::origin(std::string_view key) const {
    auto it = origins_.find(key);
    if (it == origins_.end()) throw std::out_of_range("undeclared config key " + std::string(key));
    return it->second;
}

void add_override_options(po::options_description& desc) {
    for (const OptionSpec& s : option_table())
        desc.add_options()(std::string(s.key).c_str(), po::value<std::string>(), std::string(s.help).c_str());
}

std::shared_ptr<const Config> parse_config_text(std::string_view text, const std::string& name,
                                                const std::map<std::string, std::string>& overrides) {
    ConfigBuilder b;
    b.parse_ini(text, name);
    for (const auto& [k, v] : overrides) b.set(k, v, "--" + k);
    return b.done();
}

std::shared_ptr<const Config> load_config(const std::string& path, bool explicit_path, const po::variables_map& vm) {
    std::string text;
    struct stat st {};
    if (explicit_path || stat(path.c_str(), &st) == 0) {
        std::ifstream in(path, std::ios::binary);
        if (!in) throw ConfigError(path + ": cannot read: " + std::strerror(errno));
        text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    std::map<std::string, std::string> overrides;
    for (const OptionSpec& s : option_table()) {
        const std::string key(s.key);
        if (vm.count(key) != 0U) overrides[key] = vm[key].as<std::string>();
    }
    return parse_config_text(text, path, overrides);
}

}  // namespace sealmilter::conf
