// pg/harvest.cpp — harvested certificates on PostgreSQL (see harvest.hpp).
#include "pg/harvest.hpp"

#include "base/ascii.hpp"
#include "lookup/source.hpp"

#include <algorithm>
#include <sstream>
#include <stdexcept>

namespace sealmilter::pg {
namespace {

std::string join(const std::vector<std::string>& v) {
    std::string out;
    for (const std::string& s : v) out += (out.empty() ? "" : ",") + s;
    return out;
}

std::vector<std::string> split(const std::string& s) {
    std::vector<std::string> out;
    std::istringstream in(s);
    for (std::string item; std::getline(in, item, ',');)
        if (!item.empty()) out.push_back(item);
    return out;
}

std::string hex_fingerprint(const crypto::Certificate& c) {
    std::string fp = c.fingerprint_sha256();
    fp.erase(std::remove(fp.begin(), fp.end(), ':'), fp.end());
    return base::to_lower(fp);
}

}  // namespace

void PgHarvestStore::save(lookup::HarvestRecord r) const {
    const std::vector<unsigned char> der = r.certificate.der();
    const std::vector<Param> params = {Param::text(lookup::normalize_address(r.email)),
                                       Param::text(hex_fingerprint(r.certificate)),
                                       Param::bytes(std::string(der.begin(), der.end())),
                                       Param::integer(r.first_seen),
                                       Param::integer(r.last_seen),
                                       Param::text(join(r.capabilities)),
                                       Param::text(r.signer_fingerprint),
                                       Param::text(r.from_key_preference ? "true" : "false")};
    const std::string error = pool_->run([&](Conn& c) {
        c.exec("INSERT INTO sealmilter_harvest (email, fingerprint, der, first_seen, last_seen, capabilities,"
               " signer_fingerprint, from_key_preference) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
               " ON CONFLICT (email, fingerprint) DO UPDATE SET"
               " first_seen = LEAST(sealmilter_harvest.first_seen, EXCLUDED.first_seen),"
               " last_seen = GREATEST(sealmilter_harvest.last_seen, EXCLUDED.last_seen),"
               " capabilities = EXCLUDED.capabilities, signer_fingerprint = EXCLUDED.signer_fingerprint,"
               " from_key_preference = EXCLUDED.from_key_preference",
               params);
    });
    if (!error.empty()) throw std::runtime_error("harvest store (PostgreSQL): cannot store <" + r.email + ">: " + error);
}

std::vector<lookup::HarvestRecord> PgHarvestStore::read_records(const std::string& email, std::string* error) const {
    std::vector<lookup::HarvestRecord> out;
    const std::string key = lookup::normalize_address(email);
    const std::string failure = pool_->run([&](Conn& c) {
        const Rows r = c.exec("SELECT der, first_seen, last_seen, capabilities, signer_fingerprint, from_key_preference"
                              " FROM sealmilter_harvest WHERE email = $1 ORDER BY last_seen DESC, fingerprint",
                              {Param::text(key)});
        for (int i = 0; i < r.size(); ++i) {
            const std::string der = r.bytes(i, 0);
            crypto::ParsedCertificates parsed = crypto::parse_certificates(der);
            if (!parsed.error.empty() || parsed.certificates.size() != 1) continue;
            out.push_back({key, parsed.certificates[0], static_cast<std::time_t>(r.integer(i, 1)),
                           static_cast<std::time_t>(r.integer(i, 2)), split(r.text(i, 3)), r.text(i, 4),
                           r.text(i, 5) == "t"});
        }
    });
    if (!failure.empty()) {
        out.clear();
        if (error != nullptr) *error = "harvest store (PostgreSQL): " + failure;
    }
    return out;
}

}  // namespace sealmilter::pg
