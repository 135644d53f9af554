// cli/wiring.cpp — Config -> lookup stack (see wiring.hpp).
#include "cli/wiring.hpp"

#include "cli/common.hpp"
#include "lookup/registry.hpp"

namespace sealmilter::cli {

std::unique_ptr<lookup::CertificateCache> open_cache(const conf::Config& c,
                                                     const std::function<void(const std::string&)>& on_error) {
    return lookup::open_cache(ConfigSettings(c), on_error);
}

std::shared_ptr<lookup::Publisher> make_publisher(const conf::Config& c, bool background,
                                                  const std::function<void(const std::string&)>& log) {
    if (c.get("directory.publish_url").empty()) return nullptr;
    try {
        const lookup::PublishOptions o = lookup::publish_options(ConfigSettings(c));
        if (background) return std::make_shared<lookup::Publisher>(o, log);
        return std::shared_ptr<lookup::Publisher>(lookup::Publisher::without_thread(o, log));
    } catch (const lookup::SettingsError& e) {
        throw CliError(kConfig, e.what());
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
    try {
        return lookup::build_lookup_stack(ConfigSettings(c), lookup::builtin_sources(), on_error);
    } catch (const lookup::SettingsError& e) {
        throw CliError(kConfig, e.what());
    }
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
