// lookup/registry.cpp — the built-in source factories (see registry.hpp).
#include "lookup/registry.hpp"

#include "lookup/harvest_store.hpp"
#include "lookup/issued_source.hpp"
#include "lookup/ldap_source.hpp"
#include "lookup/smimea_source.hpp"
#include "lookup/store.hpp"

namespace sealmilter::lookup {
namespace {

BuiltSource build_store(const Settings& s) {
    BuiltSource b;
    auto store = std::make_unique<StoreSource>(s.get("store.dir"));
    for (const std::string& p : store->problems()) b.notes.push_back("store: skipped " + p);
    if (!store->error().empty()) b.errors.push_back(store->error());
    b.source = std::move(store);
    return b;
}

BuiltSource build_harvest(const Settings& s) {
    BuiltSource b;
    b.source = std::make_unique<HarvestSource>(s.get("harvest.dir"));
    return b;
}

BuiltSource build_directory(const Settings& s) {
    BuiltSource b;
    if (s.get("directory.url").empty()) {
        b.notes.emplace_back("directory: off (directory.url is empty)");
        return b;
    }
    b.source = std::make_unique<DirectorySource>(directory_options(s));
    return b;
}

BuiltSource build_ldap(const Settings& s) {
    BuiltSource b;
    if (s.get("ldap.uri").empty() && s.get("ldap.domain_map").empty()) {
        b.notes.emplace_back("ldap: off (ldap.uri and ldap.domain_map are empty)");
        return b;
    }
    b.source = std::make_unique<LdapSource>(ldap_options(s));
    return b;
}

// dns.*: a trust anchor file that cannot be used is a configuration error naming the key.
BuiltSource build_dns(const Settings& s) {
    BuiltSource b;
    SmimeaOptions o;
    o.trust_anchor_file = s.get("dns.trust_anchor");
    if (o.trust_anchor_file.empty()) throw SettingsError("dns.trust_anchor: empty, but lookup.order names dns");
    o.forwarders = s.get_list("dns.forwarders");
    o.timeout_ms = static_cast<long>(s.get_int("dns.timeout_ms"));
    o.max_inflight = static_cast<int>(s.get_int("dns.max_inflight"));
    try {
        b.source = std::make_unique<SmimeaSource>(std::move(o));
    } catch (const SmimeaError& e) {
        throw SettingsError(e.what());
    }
    return b;
}

}  // namespace

void SourceRegistry::add(std::string name, SourceFactory factory) {
    factories_[std::move(name)] = std::move(factory);
}

const SourceFactory* SourceRegistry::find(const std::string& name) const {
    const auto it = factories_.find(name);
    return it == factories_.end() ? nullptr : &it->second;
}

std::vector<std::string> SourceRegistry::names() const {
    std::vector<std::string> out;
    for (const auto& [name, factory] : factories_) out.push_back(name);
    return out;
}

SourceRegistry builtin_sources() {
    SourceRegistry r;
    r.add("store", build_store);
    r.add("harvest", build_harvest);
    r.add("directory", build_directory);
    r.add("ldap", build_ldap);
    r.add("dns", build_dns);
    add_issued_source(r, nullptr);  // off until the top registers the issuer (cli/wiring)
    return r;
}

HttpOptions directory_http_options(const Settings& s) {
    HttpOptions h;
    h.timeout_ms = static_cast<long>(s.get_int("directory.timeout_ms"));
    if (const std::string f = s.get("directory.token_file"); !f.empty())
        h.bearer_token = read_secret("directory.token_file", f);
    h.ca_file = s.get("directory.ca_file");
    h.client_cert_file = s.get("directory.client_cert");
    h.client_key_file = s.get("directory.client_key");
    h.max_body = s.get_int("directory.max_body");
    h.follow_redirects = s.get_bool("directory.follow_redirects");
    h.max_connections = static_cast<long>(s.get_int("directory.max_connections"));
    return h;
}

DirectoryOptions directory_options(const Settings& s) {
    const HttpOptions h = directory_http_options(s);
    DirectoryOptions o;
    o.url_template = s.get("directory.url");
    o.timeout_ms = h.timeout_ms;
    o.bearer_token = h.bearer_token;
    o.ca_file = h.ca_file;
    o.max_body = h.max_body;
    o.follow_redirects = h.follow_redirects;
    o.trusted = s.get_bool("directory.trusted");
    o.client_cert_file = h.client_cert_file;
    o.client_key_file = h.client_key_file;
    o.max_connections = h.max_connections;
    return o;
}

PublishOptions publish_options(const Settings& s) {
    PublishOptions o;
    o.url_template = s.get("directory.publish_url");
    o.http = directory_http_options(s);
    o.http.follow_redirects = false;  // a POST is never redirected
    o.queue_dir = s.get("harvest.dir") + "/.publish";
    return o;
}

}  // namespace sealmilter::lookup
