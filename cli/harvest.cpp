// cli/harvest.cpp — `sealmilter harvest [--key FILE]... [--sender ADDR] [--dry-run] < msg.eml`:
// what the milter does with inbound mail, offline: finds the sender's certificate in the
// message's S/MIME signatures, validates it and keeps it in harvest.dir.
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/key_store.hpp"
#include "cli/wiring.hpp"
#include "core/harvest.hpp"
#include "lookup/harvest_store.hpp"

#include <ctime>
#include <iostream>

namespace po = boost::program_options;

namespace sealmilter::cli {

int cmd_harvest(int argc, char** argv) {
    po::options_description desc(
        "sealmilter harvest [-c FILE] [--key FILE]... [--sender ADDR] [--dry-run] < msg.eml\n"
        "Finds S/MIME signatures in the message, verifies them, validates the signer's certificate\n"
        "(or the one its SMIMEEncryptionKeyPreference names) and keeps it in harvest.dir with its\n"
        "SMIMECapabilities. The message must have one From address, which the certificate names.\n"
        "Exit: 0 a certificate harvested, 1 none (the lines say why), 64 usage, 65 bad input,\n"
        "66 unreadable key, 74 harvest.dir not writable, 78 bad key file, key store or master key");
    desc.add_options()("key", po::value<std::vector<std::string>>(), "a private key (PEM or PKCS#12) that may open "
                                                                     "enveloped layers; repeatable (a one-off ring with harvest.keys "
                                                                     "instead of the key store)")(
        "sender", po::value<std::string>(), "the envelope sender (\"\" = a bounce)")(
        "dry-run", "report only, keep nothing");
    Parsed p = parse_command(argc, argv, desc);
    if (p.help) return kOk;
    // The key store of the configuration, or a one-off ring of harvest.keys and --key files.
    std::vector<std::string> extra;
    if (p.vm.count("key") != 0U) extra = p.vm["key"].as<std::vector<std::string>>();
    std::shared_ptr<const keys::KeyRing> key_store;
    if (extra.empty()) key_store = open_configured_store(*p.config, false);
    const std::shared_ptr<const keys::KeyRing> ring = harvest_ring(*p.config, key_store, extra);
    std::unique_ptr<LookupStack> stack = build_lookup(*p.config, [](const std::string& e) { note(e); });
    core::HarvestOptions options;
    options.validator = stack->validator.get();
    options.keys = ring.get();

    const std::unique_ptr<Input> input = read_input(*p.config);
    std::string raw;
    raw.reserve(static_cast<size_t>(input->raw.size()));
    input->raw.for_each_chunk([&](std::string_view c) { raw.append(c); });
    std::string sender;
    if (p.vm.count("sender") != 0U) {
        sender = p.vm["sender"].as<std::string>();
        if (sender.size() >= 2 && sender.front() == '<' && sender.back() == '>') sender = sender.substr(1, sender.size() - 2);
    }
    const core::HarvestReport report = core::harvest(raw, p.vm.count("sender") != 0U ? &sender : nullptr, options);
    if (!report.skipped.empty()) {
        std::cout << "skipped: " << report.skipped << "\n";
        return 1;
    }
    for (const std::string& n : report.notes) std::cout << n << "\n";
    const std::shared_ptr<const lookup::HarvestStorage> storage = harvest_storage(*p.config, shared_state(*p.config));
    const lookup::HarvestStorage& store = *storage;
    for (const core::HarvestedCertificate& h : report.certificates) {
        std::string caps;
        for (const std::string& c : h.capabilities) caps += (caps.empty() ? "" : ",") + c;
        std::cout << "harvested " << h.email << " " << h.certificate.fingerprint_sha256() << " " << h.certificate.subject()
                  << " capabilities=" << (caps.empty() ? "-" : caps) << "\n";
        if (p.vm.count("dry-run") != 0U) continue;
        const std::time_t now = std::time(nullptr);
        try {
            store.save({h.email, h.certificate, now, now, h.capabilities, h.signer_fingerprint, h.from_key_preference});
        } catch (const std::exception& e) {
            throw CliError(kIoErr, std::string("harvest.dir: ") + e.what());
        }
    }
    if (p.vm.count("dry-run") == 0U && !report.certificates.empty()) {
        // Queued first (nothing is lost), then one attempt now; the daemon retries the rest.
        if (std::shared_ptr<lookup::Publisher> pub = make_publisher(*p.config, false, [](const std::string& l) { note(l); })) {
            for (const core::HarvestedCertificate& h : report.certificates) pub->enqueue(h.email, lookup::HarvestStore::pem(h.certificate));
            const size_t left = pub->flush_once();
            if (left != 0U) note(std::to_string(left) + " publication(s) queued for retry by the daemon");
        }
    }
    return report.certificates.empty() ? 1 : 0;
}

}  // namespace sealmilter::cli
