// lookup/harvest_store.cpp — harvested certificates on disk (see harvest_store.hpp).
#include "lookup/harvest_store.hpp"

#include "base/encoding.hpp"
#include "base/file.hpp"
#include "crypto/ossl.hpp"

#include <nlohmann/json.hpp>
#include <openssl/pem.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <unistd.h>

namespace fs = std::filesystem;

namespace sealmilter::lookup {
namespace {

std::string hex_fingerprint(const crypto::Certificate& c) {
    std::string fp = c.fingerprint_sha256();
    fp.erase(std::remove(fp.begin(), fp.end(), ':'), fp.end());
    return fp;
}

}  // namespace

HarvestStore::HarvestStore(std::string dir) : dir_(std::move(dir)) {}

std::string HarvestStore::pem(const crypto::Certificate& c) { return c.pem(); }

// Names already on disk must not change: besides what base::percent_encode escapes, '~'
// and a leading '.' are escaped too (so no name is ever "." or "..").
std::string HarvestStore::encode(const std::string& email) {
    const std::string encoded = base::percent_encode(normalize_address(email), "@+");
    std::string out;
    out.reserve(encoded.size());
    for (const char c : encoded) {
        if (c == '~' || (c == '.' && out.empty())) {
            out += c == '~' ? "%7E" : "%2E";
        } else {
            out += c;
        }
    }
    return out.empty() ? "%00" : out;
}

void HarvestStore::save(HarvestRecord r) const {
    const fs::path d = fs::path(dir_) / encode(r.email);
    std::error_code ec;
    fs::create_directories(d, ec);
    if (ec) throw std::runtime_error("cannot create " + d.string() + ": " + ec.message());
    const std::string fp = hex_fingerprint(r.certificate);
    const fs::path meta = d / (fp + ".json");
    if (fs::exists(meta, ec)) {
        try {
            const auto old = nlohmann::json::parse(base::read_file(meta.string()));
            r.first_seen = std::min<std::time_t>(r.first_seen, old.value("first_seen", r.first_seen));
        } catch (const std::exception&) {  // json::exception, std::system_error
            // a damaged or unreadable sidecar is replaced
        }
    }
    nlohmann::json j = {{"email", r.email},
                        {"fingerprint_sha256", r.certificate.fingerprint_sha256()},
                        {"first_seen", r.first_seen},
                        {"last_seen", r.last_seen},
                        {"capabilities", r.capabilities},
                        {"signer_fingerprint_sha256", r.signer_fingerprint},
                        {"from_key_preference", r.from_key_preference}};
    base::write_atomically((d / (fp + ".pem")).string(), r.certificate.pem());
    base::write_atomically(meta.string(), j.dump(2) + "\n");
}

std::vector<HarvestRecord> HarvestStore::read_records(const std::string& email, std::string* error) const {
    std::vector<HarvestRecord> out;
    const fs::path d = fs::path(dir_) / encode(email);
    std::error_code ec;
    if (!fs::is_directory(d, ec)) return out;
    for (fs::directory_iterator it(d, ec), end; !ec && it != end; it.increment(ec)) {
        if (it->path().extension() != ".pem") continue;
        const crypto::ParsedCertificates parsed = crypto::load_certificate_file(it->path().string());
        if (!parsed.error.empty() || parsed.certificates.size() != 1) continue;
        HarvestRecord r{normalize_address(email), parsed.certificates[0], 0, 0, {}, {}, false};
        fs::path meta = it->path();
        meta.replace_extension(".json");
        try {
            const auto j = nlohmann::json::parse(base::read_file(meta.string()));
            r.first_seen = j.value("first_seen", std::time_t{0});
            r.last_seen = j.value("last_seen", std::time_t{0});
            r.capabilities = j.value("capabilities", std::vector<std::string>{});
            r.signer_fingerprint = j.value("signer_fingerprint_sha256", std::string());
            r.from_key_preference = j.value("from_key_preference", false);
        } catch (const std::exception&) {  // json::exception, std::system_error
            // no or damaged metadata: the certificate still counts, capabilities unknown
        }
        out.push_back(std::move(r));
    }
    if (ec && error != nullptr) *error = "cannot list " + d.string() + ": " + ec.message();
    std::sort(out.begin(), out.end(), [](const HarvestRecord& a, const HarvestRecord& b) { return a.last_seen > b.last_seen; });
    return out;
}

SourceAnswer HarvestSource::lookup(const Query& query) {
    SourceAnswer a;
    std::string error;
    const std::vector<HarvestRecord> recs = store_->records(query.email, &error);
    if (!error.empty()) {
        a.outcome = Outcome::TempError;
        a.reason = error;
        return a;
    }
    for (const HarvestRecord& r : recs) a.candidates.push_back(r.certificate);
    if (!recs.empty()) a.capabilities = recs.front().capabilities;
    a.outcome = a.candidates.empty() ? Outcome::NotFound : Outcome::Found;
    if (a.candidates.empty()) a.reason = "nothing harvested";
    return a;
}

}  // namespace sealmilter::lookup
