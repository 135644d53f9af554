// lookup/harvest_store.cpp — harvested certificates on disk (see harvest_store.hpp).
#include "lookup/harvest_store.hpp"

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

std::string pem_of(const crypto::Certificate& c) {
    crypto::BIO_ptr bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_X509(bio.get(), c.native()) != 1) throw std::runtime_error("cannot write PEM");
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<size_t>(n));
}

void write_atomically(const fs::path& path, const std::string& content) {
    const fs::path tmp = path.string() + ".tmp." + std::to_string(::getpid());
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out << content;
        out.flush();
        if (!out) throw std::runtime_error("cannot write " + tmp.string());
    }
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec) {
        fs::remove(tmp, ec);
        throw std::runtime_error("cannot rename into " + path.string());
    }
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

}  // namespace

HarvestStore::HarvestStore(std::string dir) : dir_(std::move(dir)) {}

std::string HarvestStore::pem(const crypto::Certificate& c) { return pem_of(c); }

std::string HarvestStore::encode(const std::string& email) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (const char ch : normalize_address(email)) {
        const auto c = static_cast<unsigned char>(ch);
        const bool plain = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '@' || c == '-' || c == '_' ||
                           c == '+' || (c == '.' && !out.empty());
        if (plain) {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
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
            const auto old = nlohmann::json::parse(read_file(meta));
            r.first_seen = std::min<std::time_t>(r.first_seen, old.value("first_seen", r.first_seen));
        } catch (const nlohmann::json::exception&) {
            // a damaged sidecar is replaced
        }
    }
    nlohmann::json j = {{"email", r.email},
                        {"fingerprint_sha256", r.certificate.fingerprint_sha256()},
                        {"first_seen", r.first_seen},
                        {"last_seen", r.last_seen},
                        {"capabilities", r.capabilities},
                        {"signer_fingerprint_sha256", r.signer_fingerprint},
                        {"from_key_preference", r.from_key_preference}};
    write_atomically(d / (fp + ".pem"), pem_of(r.certificate));
    write_atomically(meta, j.dump(2) + "\n");
}

std::vector<HarvestRecord> HarvestStore::records(const std::string& email, std::string* error) const {
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
            const auto j = nlohmann::json::parse(read_file(meta));
            r.first_seen = j.value("first_seen", std::time_t{0});
            r.last_seen = j.value("last_seen", std::time_t{0});
            r.capabilities = j.value("capabilities", std::vector<std::string>{});
            r.signer_fingerprint = j.value("signer_fingerprint_sha256", std::string());
            r.from_key_preference = j.value("from_key_preference", false);
        } catch (const nlohmann::json::exception&) {
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
    const std::vector<HarvestRecord> recs = store_.records(query.email, &error);
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
