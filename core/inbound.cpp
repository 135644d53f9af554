// core/inbound.cpp — harvesting certificates from inbound mail (see inbound.hpp).
#include "core/inbound.hpp"

#include "core/harvest.hpp"
#include "core/policy.hpp"

#include <algorithm>
#include <ctime>

namespace sealmilter::core {
namespace {

std::string whole_message(const Message& m) {
    std::string raw;
    raw.reserve(static_cast<size_t>(m.body.size()) + 4096);
    for (const HeaderField& f : m.headers) raw += serialize_field(f, "\r\n");
    raw += "\r\n";
    m.body.for_each_chunk([&](std::string_view c) { raw.append(c); });
    return raw;
}

void keep(const HarvestReport& report, const InboundSettings& s, const base::Logger& log) {
    const std::time_t now = std::time(nullptr);
    for (const HarvestedCertificate& h : report.certificates) {
        std::string caps;
        for (const std::string& c : h.capabilities) caps += (caps.empty() ? "" : ",") + c;
        s.store->save({h.email, h.certificate, now, now, h.capabilities, h.signer_fingerprint, h.from_key_preference});
        log.info("harvest: kept <" + h.email + "> cert=" + h.certificate.fingerprint_sha256() + " from " + h.signature +
                 " capabilities=" + (caps.empty() ? "-" : caps));
        if (s.publisher) s.publisher->enqueue(h.email, lookup::HarvestStore::pem(h.certificate));
    }
}

}  // namespace

size_t harvest_inbound(const Message& m, const std::string& sender, const std::vector<std::string>& recipients,
                       const InboundSettings& s, const base::Logger& log) noexcept {
    if (!s.enabled || !s.store || s.validator == nullptr || s.domains.empty()) return 0;
    const bool inbound =
        std::any_of(recipients.begin(), recipients.end(), [&](const std::string& r) { return in_domains(r, s.domains); });
    if (!inbound) return 0;
    if (m.body.size() > s.max_size) {
        log.info("harvest: not inspected, larger than harvest.max_size");
        return 0;
    }
    try {
        HarvestOptions o;
        o.validator = s.validator;
        o.keys = s.keys.get();
        const HarvestReport report = harvest(whole_message(m), &sender, o);
        if (!report.skipped.empty()) {
            log.info("harvest: skipped: " + report.skipped);
            return 0;
        }
        if (report.certificates.empty()) {
            for (const std::string& n : report.notes)
                if (n != "no S/MIME signature") log.info("harvest: " + n);
            return 0;
        }
        keep(report, s, log);
        return report.certificates.size();
    } catch (const std::exception& e) {
        log.error(std::string("harvest: error, the message passes unchanged: ") + e.what());
    } catch (...) {
        log.error("harvest: unknown error, the message passes unchanged");
    }
    return 0;
}

}  // namespace sealmilter::core
