// fuzz/fuzz_harvest.cpp — the harvest path (core/harvest.hpp): inbound signed mail, parsed for
// the sender's certificate. Every input is attacker-controlled (anyone can send us mail).
//
// The raw input is the message; a hash of it picks the envelope sender (unknown, the null
// sender, or an address). Bob's key from the NSS corpus opens enveloped layers, the Validator
// trusts the NSS test CA with a frozen clock. Checked: a skipped message yields nothing; every
// harvested certificate belongs to an address, passes the same Validator again, and is
// unique; capability names are never empty.
// SEALMILTER_FUZZ_DEBUG=1 prints each report (to see which seeds reach which path).
#include "core/harvest.hpp"
#include "fuzz/fuzz_support.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>

using namespace sealmilter;

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
    fuzz::init();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view raw = fuzz::as_view(data, size);
    static const std::string kNullSender;
    static const std::string kSender = "alice@example.com";
    const std::string* sender = nullptr;
    switch (fuzz::hash_of(raw) % 8) {
        case 0:
            sender = &kNullSender;
            break;
        case 1:
        case 2:
            sender = &kSender;
            break;
        default:
            break;
    }
    core::HarvestOptions options;
    options.validator = &fuzz::nss_validator();
    options.keys = &fuzz::nss_bob_ring();
    const core::HarvestReport report = core::harvest(raw, sender, options);
    if (std::getenv("SEALMILTER_FUZZ_DEBUG") != nullptr) {  // triage: what became of this input
        std::fprintf(stderr, "harvest: skipped='%s' certificates=%zu\n", report.skipped.c_str(),
                     report.certificates.size());
        for (const std::string& n : report.notes) std::fprintf(stderr, "  %s\n", n.c_str());
    }

    if (!report.skipped.empty()) FUZZ_CHECK(report.certificates.empty(), "a skipped message yielded certificates");
    if (sender == &kNullSender) FUZZ_CHECK(!report.skipped.empty(), "a bounce was not skipped");
    std::set<std::string> seen;
    for (const core::HarvestedCertificate& h : report.certificates) {
        FUZZ_CHECK(h.email.find('@') != std::string::npos, "harvested for '" + h.email + "'");
        const std::string fp = h.certificate.fingerprint_sha256();
        FUZZ_CHECK(seen.insert(fp).second, "the same certificate harvested twice");
        const std::vector<lookup::Verdict> v = fuzz::nss_validator().validate(h.email, {h.certificate});
        FUZZ_CHECK(v.size() == 1 && v[0].usable,
                   "a harvested certificate fails validation: " + (v.empty() ? "" : v[0].reason));
        FUZZ_CHECK(!h.signer_fingerprint.empty() && !h.signature.empty(), "harvest without its provenance");
        for (const std::string& c : h.capabilities) FUZZ_CHECK(!c.empty(), "an empty capability name");
    }
    return 0;
}
