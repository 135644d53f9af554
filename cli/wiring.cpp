// cli/wiring.cpp — Config -> lookup stack (see wiring.hpp).
#include "cli/wiring.hpp"

#include "cli/common.hpp"
#include "lookup/directory.hpp"
#include "lookup/harvest_store.hpp"
#include "lookup/store.hpp"


namespace sealmilter::cli {
namespace {

lookup::DirectoryOptions directory_options(const conf::Config& c) {
    lookup::DirectoryOptions o;
    o.url_template = c.get("directory.url");
    o.timeout_ms = static_cast<long>(c.get_int("directory.timeout_ms"));
    if (const std::string& f = c.get("directory.token_file"); !f.empty()) {
        try {
            o.bearer_token = read_secret_file(f);
        } catch (const CliError& e) {
            throw CliError(kConfig, std::string("directory.token_file: ") + e.what());
        }
    }
    o.ca_file = c.get("directory.ca_file");
    o.max_body = c.get_int("directory.max_body");
    o.trusted = c.get_bool("directory.trusted");
    o.follow_redirects = c.get_bool("directory.follow_redirects");
    o.client_cert_file = c.get("directory.client_cert");
    o.client_key_file = c.get("directory.client_key");
    return o;
}

}  // namespace

std::unique_ptr<lookup::Cache> open_cache(const conf::Config& c,
                                          const std::function<void(const std::string&)>& on_error) {
    if (c.get("cache.path").empty()) return nullptr;
    lookup::CacheOptions o;
    o.path = c.get("cache.path");
    o.min_ttl = c.get_int("cache.min_ttl");
    o.max_ttl = c.get_int("cache.max_ttl");
    o.negative_ttl = c.get_int("cache.negative_ttl");
    o.max_stale = c.get_int("cache.max_stale");
    o.on_error = on_error;
    return std::make_unique<lookup::Cache>(std::move(o));
}

std::shared_ptr<lookup::Publisher> make_publisher(const conf::Config& c, bool background,
                                                  const std::function<void(const std::string&)>& log) {
    if (c.get("directory.publish_url").empty()) return nullptr;
    const lookup::DirectoryOptions d = directory_options(c);
    lookup::PublishOptions o;
    o.url_template = c.get("directory.publish_url");
    o.bearer_token = d.bearer_token;
    o.ca_file = d.ca_file;
    o.timeout_ms = d.timeout_ms;
    o.queue_dir = c.get("harvest.dir") + "/.publish";
    try {
        if (background) return std::make_shared<lookup::Publisher>(o, log);
        return std::shared_ptr<lookup::Publisher>(lookup::Publisher::without_thread(o, log));
    } catch (const std::runtime_error& e) {
        throw CliError(kConfig, std::string("directory.publish_url: ") + e.what());
    }
}

std::vector<crypto::KeyMaterial> load_harvest_keys(const std::vector<std::string>& files) {
    std::vector<crypto::KeyMaterial> out;
    for (const std::string& f : files) {
        crypto::KeyLoad load = crypto::load_key_material(f, "");
        if (!load.material) throw CliError(load.unreadable ? kNoInput : kConfig, "harvest key " + f + ": " + load.error);
        out.push_back(std::move(*load.material));
    }
    return out;
}

std::unique_ptr<LookupStack> build_lookup(const conf::Config& c,
                                          const std::function<void(const std::string&)>& on_error) {
    auto stack = std::make_unique<LookupStack>();
    lookup::ValidatorOptions vo;
    vo.trust_anchor_files = c.get_list("lookup.trust_anchors");
    vo.crl_files = c.get_list("lookup.crl_files");
    vo.allow_expired = c.get_bool("lookup.allow_expired");
    try {
        stack->validator = std::make_unique<lookup::Validator>(std::move(vo));
    } catch (const lookup::ValidatorError& e) {
        throw CliError(kConfig, std::string("lookup.trust_anchors / lookup.crl_files: ") + e.what());
    }
    std::vector<std::string> order;
    std::vector<lookup::CertificateSource*> sources;
    for (const std::string& step : c.get_list("lookup.order")) {
        if (step == "cache") {
            stack->cache = open_cache(c, on_error);
            if (!stack->cache) {
                stack->notes.push_back("cache: off (cache.path is empty)");
                continue;
            }
        } else if (step == "store") {
            auto store = std::make_unique<lookup::StoreSource>(c.get("store.dir"));
            for (const std::string& p : store->problems()) stack->notes.push_back("store: skipped " + p);
            if (!store->error().empty()) stack->errors.push_back(store->error());
            sources.push_back(store.get());
            stack->sources.push_back(std::move(store));
        } else if (step == "harvest") {
            auto h = std::make_unique<lookup::HarvestSource>(c.get("harvest.dir"));
            sources.push_back(h.get());
            stack->sources.push_back(std::move(h));
        } else if (step == "directory") {
            if (c.get("directory.url").empty()) {
                stack->notes.push_back("directory: off (directory.url is empty)");
                continue;
            }
            auto dir = std::make_unique<lookup::DirectorySource>(directory_options(c));
            sources.push_back(dir.get());
            stack->sources.push_back(std::move(dir));
        }
        order.push_back(step);
    }
    const lookup::EncryptTo to =
        c.get("crypto.encrypt_to") == "newest" ? lookup::EncryptTo::Newest : lookup::EncryptTo::AllValid;
    stack->chain = std::make_unique<lookup::Chain>(std::move(order), std::move(sources), *stack->validator,
                                                   stack->cache.get(), to);
    return stack;
}

core::TransformOptions transform_options(const conf::Config& cfg, const std::string& eol) {
    core::TransformOptions o;
    const std::string& cipher = cfg.get("crypto.cipher");
    o.envelope.cipher = cipher == "aes-128-cbc"   ? crypto::Cipher::Aes128Cbc
                        : cipher == "aes-256-gcm" ? crypto::Cipher::Aes256Gcm
                                                  : crypto::Cipher::Aes256Cbc;
    o.envelope.rsa_padding = cfg.get("crypto.rsa_padding") == "oaep" ? crypto::RsaPadding::Oaep : crypto::RsaPadding::Pkcs1;
    o.protect_headers = cfg.get_bool("crypto.protect_headers");
    o.protected_subject = cfg.get("crypto.protected_subject");
    o.eol = eol;
    return o;
}

}  // namespace sealmilter::cli
