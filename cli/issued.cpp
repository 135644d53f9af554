// cli/issued.cpp — `sealmilter issued list|revoke|resend|new`: the certificates our CA issued for
// recipients who had none, and their pickups (issue 13, docs/issuing.md). Works on the files
// the daemon shares (keys.dir/issued/, under the registry's lock), so it runs beside `run`.
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/key_store.hpp"
#include "keys/issued.hpp"
#include "keys/issuer.hpp"
#include "crypto/certificate_builder.hpp"

#include <nlohmann/json.hpp>
#include <openssl/pem.h>

#include <algorithm>
#include <iostream>

namespace po = boost::program_options;

namespace sealmilter::cli {
namespace {

constexpr const char* kIssuedUsage =
    "sealmilter issued COMMAND [ARGS] [-c FILE]\n"
    "  list [--json]                  every issued certificate: address, state, issued, SHA-256,\n"
    "                                 notice sent, pickups, link expiry, locked\n"
    "  revoke ADDRESS                 never use the address's issued certificate again (record\n"
    "                                 revoked; the key is kept, state retired: old mail still opens)\n"
    "  resend ADDRESS                 send a new pickup notice now (also within\n"
    "                                 issue.notice_interval); unlocks a locked link\n"
    "  new ADDRESS                    issue a certificate now, as a first message would (the key\n"
    "                                 escrowed, the notice due); prints it (PEM)\n"
    "Exit: 0 ok, 1 no issued certificate for the address (or nothing left to pick up), 64 usage,\n"
    "65 the address cannot be put into a certificate, 74 the record could not be written,\n"
    "78 bad key store, no CA, or bad configuration";

std::string when(std::time_t t) { return t == 0 ? std::string("-") : crypto::format_time_utc(t); }

nlohmann::json describe(const keys::IssuedRecord& r) {
    return {{"address", r.address},
            {"state", keys::issued_state_name(r.state)},
            {"issued", when(r.issued_at)},
            {"sha256", r.sha256},
            {"key_id", r.key_id},
            {"notice_due", r.notice_due},
            {"notice_sent", when(r.notice_sent_at)},
            {"pickups", r.pickups},
            {"last_pickup", when(r.last_pickup_at)},
            {"token_expires", r.token_hash.empty() ? std::string("-") : when(r.token_expires)},
            {"locked", r.locked}};
}

int list(const keys::IssuedRegistry& registry, bool json) {
    std::string error;
    std::vector<keys::IssuedRecord> all = registry.list(&error);
    if (!error.empty()) note(error);
    std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.address < b.address; });
    nlohmann::json out = nlohmann::json::array();
    for (const keys::IssuedRecord& r : all) out.push_back(describe(r));
    if (json) {
        std::cout << out.dump(2) << "\n";
        return kOk;
    }
    for (const nlohmann::json& r : out) {
        std::cout << r["address"].get<std::string>() << "  " << r["state"].get<std::string>()
                  << (r["locked"].get<bool>() ? "  LOCKED (5 wrong codes: resend)" : "") << "\n    issued "
                  << r["issued"].get<std::string>() << "  sha256 " << r["sha256"].get<std::string>() << "\n    notice sent "
                  << r["notice_sent"].get<std::string>() << (r["notice_due"].get<bool>() ? " (due)" : "") << "  link expires "
                  << r["token_expires"].get<std::string>() << "  pickups " << r["pickups"].get<unsigned>() << "\n";
    }
    std::cout << all.size() << " issued certificate(s) in " << registry.dir() << "/issued\n";
    return kOk;
}

// 1 when the address has no record, else 74 (the write failed).
int failure_code(const std::string& error) {
    return error.find("no issued certificate") != std::string::npos || error.find("nothing to pick up") != std::string::npos
               ? 1
               : kIoErr;
}

int resend(const keys::KeyStore& store, keys::IssuedRegistry& registry, const std::string& address) {
    std::string error;
    const std::optional<keys::IssuedRecord> r = registry.get(address, &error);
    if (!r) throw CliError(error.empty() ? 1 : kIoErr, "issued resend: " + (error.empty() ? "no issued certificate for " + address : error));
    const keys::KeyEntry key = store.resolve(r->key_id);
    if (!key || key->state != keys::KeyState::Escrowed)
        throw CliError(1, "issued resend: the key of " + r->address +
                              " is no longer held (issue.keep_escrow = false removed it after the pickup, or it was "
                              "revoked): nothing to pick up");
    if (!keys::resend_issued(registry, address, &error)) throw CliError(failure_code(error), "issued resend: " + error);
    std::cout << "a new pickup notice for " << r->address << " is due; the daemon sends it within seconds\n";
    return kOk;
}

// One certificate now: an Issuer whose pool generates nothing, given one fresh key pair.
int issue_now(const conf::Config& config, const std::shared_ptr<keys::KeyStore>& store, const std::string& address) {
    if (const std::optional<std::string> why = keys::uncertifiable_reason(address))
        throw CliError(kDataErr, "issued new " + address + ": " + *why);
    keys::IssueSettings s = issue_settings(config);
    s.pool_threads = 0;
    std::string error;
    const std::shared_ptr<keys::Issuer> issuer =
        keys::Issuer::open(store, std::make_shared<keys::IssuedRegistry>(config.get("keys.dir")), s, &error);
    if (!issuer) throw CliError(kConfig, "issued new: " + error);
    issuer->pool().put(crypto::generate_rsa_key(s.key_bits));
    const std::optional<crypto::Certificate> c = issuer->issue(address, &error);
    if (!c) throw CliError(kIoErr, "issued new " + address + ": " + error);
    note("certificate of " + address + " sha256 " + c->fingerprint_sha256() + "; the pickup notice is due");
    crypto::BIO_ptr mem(BIO_new(BIO_s_mem()));
    if (!mem || PEM_write_bio_X509(mem.get(), c->native()) != 1) crypto::throw_openssl("PEM_write_bio_X509");
    char* data = nullptr;
    const long n = BIO_get_mem_data(mem.get(), &data);
    std::cout.write(data, n);
    return std::cout.flush() ? kOk : kIoErr;
}

}  // namespace

int cmd_issued(int argc, char** argv) {
    po::options_description desc(kIssuedUsage);
    desc.add_options()("command", po::value<std::string>(), "")("args", po::value<std::vector<std::string>>(), "")(
        "json", "list: JSON array");
    po::positional_options_description pos;
    pos.add("command", 1).add("args", -1);
    Parsed p = parse_command(argc, argv, desc, &pos);
    if (p.help) return kOk;
    if (p.vm.count("command") == 0U) throw CliError(kUsage, std::string("issued: a command is required\n") + kIssuedUsage);
    const std::string cmd = p.vm["command"].as<std::string>();
    const std::vector<std::string> args =
        p.vm.count("args") != 0U ? p.vm["args"].as<std::vector<std::string>>() : std::vector<std::string>{};
    if (cmd != "list" && cmd != "revoke" && cmd != "resend" && cmd != "new")
        throw CliError(kUsage, "issued: unknown command '" + cmd + "'\n" + kIssuedUsage);
    if (args.size() != (cmd == "list" ? 0U : 1U))
        throw CliError(kUsage, "issued " + cmd + (cmd == "list" ? ": takes no arguments" : ": expects ADDRESS"));
    keys::IssuedRegistry registry(p.config->get("keys.dir"));
    if (cmd == "list") return list(registry, p.vm.count("json") != 0U);
    const std::shared_ptr<keys::KeyStore> store = open_configured_store(*p.config, true, nullptr, true);
    std::string error;
    if (cmd == "resend") return resend(*store, registry, args.front());
    if (cmd == "new") return issue_now(*p.config, store, args.front());
    if (!keys::revoke_issued(*store, registry, args.front(), &error)) throw CliError(failure_code(error), "issued revoke: " + error);
    std::cout << "the issued certificate of " << args.front()
              << " is revoked: never used for mail again (its key stays, retired, so sent mail still opens)\n";
    return kOk;
}

}  // namespace sealmilter::cli
