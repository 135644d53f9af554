// keys/issued.cpp — the registry of issued certificates (see issued.hpp).
//
// A record is a small text file: a magic first line, then one `key value` line per field (the
// certificate as base64 DER on one line), so a damaged or foreign file is recognised and never
// half-read. The token index file t-<sha256(token)> holds the address it names; a stale one
// (the record's token changed meanwhile) is ignored by by_token_hash().
#include "keys/issued.hpp"

#include "base/ascii.hpp"
#include "base/encoding.hpp"
#include "base/file.hpp"
#include "base/handle.hpp"
#include "crypto/base64.hpp"
#include "crypto/certificate.hpp"
#include "crypto/ossl.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <sstream>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <unordered_map>

namespace sealmilter::keys {
namespace {

constexpr const char* kRecordMagic = "sealmilter-issued 1";
constexpr size_t kMaxRecordBytes = 1 << 20;  // a record is a few KB; anything larger is not ours
constexpr size_t kMaxCodeMails = 3;          // the 3-per-hour limit needs no more

bool fail(std::string* error, const std::string& why) {
    if (error != nullptr) *error = why;
    return false;
}

std::string records_dir(const std::string& dir) { return dir + "/issued"; }
std::string record_path(const std::string& dir, std::string_view address) {
    return records_dir(dir) + "/" + sha256_hex(base::to_lower(address));
}
std::string due_dir(const std::string& dir) { return records_dir(dir) + "/due"; }
std::string due_path(const std::string& dir, std::string_view address) {
    return due_dir(dir) + "/" + sha256_hex(base::to_lower(address));
}
std::string withdrawn_path(const std::string& dir, std::string_view sha256) {
    return records_dir(dir) + "/w-" + std::string(sha256);
}
std::string token_path(const std::string& dir, std::string_view token_hash) {
    return records_dir(dir) + "/t-" + std::string(token_hash);
}

bool is_hex(std::string_view s) {
    for (const char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

std::string certificate_b64(const std::string& pem) {
    if (pem.empty()) return "-";
    crypto::BIO_ptr in(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    crypto::X509_ptr x(in ? PEM_read_bio_X509(in.get(), nullptr, nullptr, nullptr) : nullptr);
    if (!x) {
        crypto::drain_errors();
        throw std::runtime_error("the record's certificate is not PEM");
    }
    const crypto::Certificate c(std::move(x));
    const std::vector<unsigned char> der = c.der();
    std::string out(4 * ((der.size() + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), der.data(), static_cast<int>(der.size()));
    out.resize(static_cast<size_t>(n));
    return out;
}

std::string certificate_pem(std::string_view b64) {
    if (b64 == "-") return "";
    const std::string der = crypto::decode_base64(b64);
    const auto* p = reinterpret_cast<const unsigned char*>(der.data());
    crypto::X509_ptr x(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
    if (!x) {
        crypto::drain_errors();
        return "";
    }
    crypto::BIO_ptr mem(BIO_new(BIO_s_mem()));
    if (!mem || PEM_write_bio_X509(mem.get(), x.get()) != 1) crypto::throw_openssl("PEM_write_bio_X509");
    char* data = nullptr;
    const long n = BIO_get_mem_data(mem.get(), &data);
    return {data, static_cast<size_t>(n)};
}

std::string or_dash(const std::string& s) { return s.empty() ? std::string("-") : s; }

std::string format_record(const IssuedRecord& r) {
    std::string mails;
    for (const std::time_t t : r.code_mails) mails += (mails.empty() ? "" : ",") + std::to_string(t);
    std::ostringstream o;
    o << kRecordMagic << "\n"
      << "address " << r.address << "\n"
      << "key_id " << or_dash(r.key_id) << "\n"
      << "sha256 " << or_dash(r.sha256) << "\n"
      << "state " << issued_state_name(r.state) << "\n"
      << "issued_at " << r.issued_at << "\n"
      << "state_changed_at " << r.state_changed_at << "\n"
      << "notice_due " << (r.notice_due ? 1 : 0) << "\n"
      << "notice_sent_at " << r.notice_sent_at << "\n"
      << "notice_attempts " << r.notice_attempts << "\n"
      << "token_hash " << or_dash(r.token_hash) << "\n"
      << "token_expires " << r.token_expires << "\n"
      << "locked " << (r.locked ? 1 : 0) << "\n"
      << "code_hash " << or_dash(r.code_hash) << "\n"
      << "code_expires " << r.code_expires << "\n"
      << "wrong_codes " << r.wrong_codes << "\n"
      << "code_mails " << or_dash(mails) << "\n"
      << "pickups " << r.pickups << "\n"
      << "last_pickup_at " << r.last_pickup_at << "\n"
      << "certificate " << certificate_b64(r.certificate_pem) << "\n"
      << "end\n";
    return o.str();
}

bool to_number(const std::string& text, long long* out) {
    if (text.empty() || text.size() > 20) return false;
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(text.c_str(), &end, 10);
    if (errno != 0 || end == nullptr || *end != '\0' || v < 0) return false;
    *out = v;
    return true;
}

// Every field must be present exactly once and well-formed; "end" proves the file is whole.
std::optional<IssuedRecord> parse_record(const std::string& text) {
    std::istringstream in(text);
    std::string line;
    if (!std::getline(in, line) || line != kRecordMagic) return std::nullopt;
    std::unordered_map<std::string, std::string> f;
    bool ended = false;
    for (int i = 0; i < 64 && std::getline(in, line); ++i) {
        if (line == "end") {
            ended = true;
            break;
        }
        const size_t sp = line.find(' ');
        if (sp == std::string::npos || !f.emplace(line.substr(0, sp), line.substr(sp + 1)).second) return std::nullopt;
    }
    if (!ended) return std::nullopt;
    IssuedRecord r;
    const auto text_of = [&](const char* k, std::string* out) {
        const auto it = f.find(k);
        if (it == f.end()) return false;
        *out = it->second == "-" ? "" : it->second;
        return true;
    };
    const auto number = [&](const char* k, auto* out) {
        long long v = 0;
        const auto it = f.find(k);
        if (it == f.end() || !to_number(it->second, &v)) return false;
        *out = static_cast<std::remove_pointer_t<decltype(out)>>(v);
        return true;
    };
    std::string state;
    std::string mails;
    std::string cert;
    bool due = false;
    bool locked = false;
    if (!text_of("address", &r.address) || r.address.empty() || !text_of("key_id", &r.key_id) ||
        !text_of("sha256", &r.sha256) || !text_of("state", &state) || !number("issued_at", &r.issued_at) ||
        !number("state_changed_at", &r.state_changed_at) || !number("notice_due", &due) ||
        !number("notice_sent_at", &r.notice_sent_at) || !number("notice_attempts", &r.notice_attempts) ||
        !text_of("token_hash", &r.token_hash) || !number("token_expires", &r.token_expires) ||
        !number("locked", &locked) || !text_of("code_hash", &r.code_hash) || !number("code_expires", &r.code_expires) ||
        !number("wrong_codes", &r.wrong_codes) || !text_of("code_mails", &mails) || !number("pickups", &r.pickups) ||
        !number("last_pickup_at", &r.last_pickup_at) || !text_of("certificate", &cert))
        return std::nullopt;
    const std::optional<IssuedState> s = parse_issued_state(state);
    if (!s || !is_hex(r.token_hash) || !is_hex(r.code_hash) || !is_hex(r.sha256)) return std::nullopt;
    r.state = *s;
    r.notice_due = due;
    r.locked = locked;
    std::istringstream ms(mails);
    std::string one;
    while (std::getline(ms, one, ',')) {
        long long t = 0;
        if (!to_number(one, &t)) return std::nullopt;
        r.code_mails.push_back(static_cast<std::time_t>(t));
    }
    if (!cert.empty()) {
        r.certificate_pem = certificate_pem(cert);
        if (r.certificate_pem.empty()) return std::nullopt;
    }
    return r;
}

// nullopt + *error when the file exists but is not a record; nullopt and no error when absent.
std::optional<IssuedRecord> read_record(const std::string& path, std::string* error) {
    std::string text;
    try {
        text = base::read_file(path, kMaxRecordBytes);
    } catch (const std::system_error& e) {
        if (e.code().value() != ENOENT) fail(error, "issued record " + path + ": " + e.what());
        return std::nullopt;
    }
    std::optional<IssuedRecord> r = parse_record(text);
    if (!r) fail(error, "issued record " + path + " is damaged (not read; `sealmilter issued list` names it)");
    return r;
}

void ensure_dir(const std::string& path) {
    if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST)
        throw std::system_error(errno, std::generic_category(), "mkdir " + path);
}

// The cross-process half of update()'s lock (the in-process half is the registry's mutex).
class FileLock {
public:
    explicit FileLock(const std::string& path) : fd_(open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600)) {
        if (fd_.get() < 0) throw std::system_error(errno, std::generic_category(), "open " + path);
        while (flock(fd_.get(), LOCK_EX) != 0) {
            if (errno != EINTR) throw std::system_error(errno, std::generic_category(), "flock " + path);
        }
    }
    ~FileLock() { flock(fd_.get(), LOCK_UN); }
    FileLock(const FileLock&) = delete;
    FileLock& operator=(const FileLock&) = delete;

private:
    base::UniqueFd fd_;
};

}  // namespace

const char* issued_state_name(IssuedState s) noexcept {
    switch (s) {
    case IssuedState::Escrowed: return "escrowed";
    case IssuedState::PickedUp: return "picked_up";
    case IssuedState::Retired: return "retired";
    case IssuedState::Revoked: return "revoked";
    }
    return "escrowed";
}

std::optional<IssuedState> parse_issued_state(std::string_view name) noexcept {
    if (name == "escrowed") return IssuedState::Escrowed;
    if (name == "picked_up") return IssuedState::PickedUp;
    if (name == "retired") return IssuedState::Retired;
    if (name == "revoked") return IssuedState::Revoked;
    return std::nullopt;
}

std::string sha256_hex(std::string_view text) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(text.data(), text.size(), md, &len, EVP_sha256(), nullptr) != 1) crypto::throw_openssl("EVP_Digest");
    return base::to_hex(std::string_view(reinterpret_cast<const char*>(md), len));
}

bool digests_equal(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

IssuedRegistry::IssuedRegistry(std::string dir, const base::Clock* clock) : dir_(std::move(dir)), clock_(clock) {}

std::optional<IssuedRecord> IssuedRegistry::get(std::string_view address, std::string* error) const {
    try {
        std::optional<IssuedRecord> r = read_record(record_path(dir_, address), error);
        if (r && !base::iequals(r->address, address)) {
            fail(error, "issued record of " + std::string(address) + " names another address");
            return std::nullopt;
        }
        return r;
    } catch (const std::exception& e) {
        fail(error, e.what());
        return std::nullopt;
    }
}

std::optional<IssuedRecord> IssuedRegistry::by_token_hash(std::string_view token_hash, std::string* error) const {
    if (token_hash.size() != 64 || !is_hex(token_hash)) return std::nullopt;  // never a path outside issued/
    std::string address;
    try {
        address = base::read_file(token_path(dir_, token_hash), 1024);
    } catch (const std::system_error&) {
        return std::nullopt;  // no such token
    }
    std::optional<IssuedRecord> r = get(address, error);
    // A token file left behind by a crash between the record and its removal names a record
    // whose token is another one now: that is no match.
    if (!r || !digests_equal(r->token_hash, token_hash)) return std::nullopt;
    return r;
}

std::vector<IssuedRecord> IssuedRegistry::list(std::string* error) const {
    std::vector<IssuedRecord> out;
    const std::string d = records_dir(dir_);
    const std::unique_ptr<DIR, base::Deleter<closedir>> dir(opendir(d.c_str()));
    if (!dir) {
        if (errno != ENOENT) fail(error, "cannot list " + d + ": " + std::strerror(errno));
        return out;
    }
    std::vector<std::string> names;
    // Bounded by the directory's entries.
    while (const dirent* e = readdir(dir.get())) {
        const std::string name = e->d_name;
        if (name.size() == 64 && is_hex(name)) names.push_back(name);
    }
    for (const std::string& name : names) {
        std::string why;
        std::optional<IssuedRecord> r = read_record(d + "/" + name, &why);
        if (r) {
            out.push_back(std::move(*r));
        } else if (!why.empty()) {
            fail(error, why);
        }
    }
    return out;
}

bool IssuedRegistry::update(std::string_view address,
                            const std::function<std::optional<IssuedRecord>(const std::optional<IssuedRecord>&)>& change,
                            std::string* error) {
    const std::string lower = base::to_lower(address);
    if (lower.empty() || lower.find_first_of("\r\n\t ") != std::string::npos)
        return fail(error, "an address with white space cannot be recorded");
    const base::MutexLock in_process(mu_);
    try {
        ensure_dir(dir_);
        ensure_dir(records_dir(dir_));
        const FileLock across_processes(records_dir(dir_) + "/lock");
        const std::string path = record_path(dir_, lower);
        std::string why;
        const std::optional<IssuedRecord> current = read_record(path, &why);
        if (!why.empty()) return fail(error, why + "; not changed");
        std::optional<IssuedRecord> next = change(current);
        if (!next) return true;
        next->address = lower;
        if (next->code_mails.size() > kMaxCodeMails)
            next->code_mails.erase(next->code_mails.begin(),
                                   next->code_mails.end() - static_cast<std::ptrdiff_t>(kMaxCodeMails));
        if (!is_hex(next->token_hash) || !is_hex(next->code_hash) || (!next->token_hash.empty() && next->token_hash.size() != 64))
            return fail(error, "a token or code hash must be lower-case hex SHA-256");
        const std::string old_token = current ? current->token_hash : "";
        const bool was_due = current && current->notice_due;
        // The due index: the marker before the record when a notice becomes due, removed after
        // it when not (a crash leaves at most a stale marker, which list_due() drops).
        if (next->notice_due && !was_due) {
            ensure_dir(due_dir(dir_));
            base::write_atomically(due_path(dir_, lower), lower, 0600);
        }
        // New token file first, then the record, then the old token file: a crash in between
        // leaves at most a stale token file, which by_token_hash() ignores.
        if (!next->token_hash.empty() && next->token_hash != old_token)
            base::write_atomically(token_path(dir_, next->token_hash), lower, 0600);
        base::write_atomically(path, format_record(*next), 0600);
        if (!old_token.empty() && old_token != next->token_hash) unlink(token_path(dir_, old_token).c_str());
        if (!next->notice_due) unlink(due_path(dir_, lower).c_str());  // ENOENT when it was not due
        return true;
    } catch (const std::exception& e) {
        return fail(error, "issued record of " + lower + " not written: " + e.what());
    }
}

std::string IssuedRegistry::prepare_due(std::string* error) {
    const base::MutexLock in_process(mu_);
    ensure_dir(due_dir(dir_));
    if (!due_indexed_) {  // once per process: records of a version without the index
        const FileLock across_processes(records_dir(dir_) + "/lock");
        std::string why;
        struct stat st {};
        for (const IssuedRecord& r : list(&why))
            if (r.notice_due && stat(due_path(dir_, r.address).c_str(), &st) != 0)
                base::write_atomically(due_path(dir_, r.address), r.address, 0600);
        if (!why.empty()) fail(error, why);
        due_indexed_ = true;
    }
    return due_cursor_;
}

namespace {

// The names of the due markers (bounded by the due records, not by every record ever issued);
// nullopt and *error when the folder cannot be listed.
std::optional<std::vector<std::string>> due_marker_names(const std::string& dd, std::string* error) {
    const std::unique_ptr<DIR, base::Deleter<closedir>> dir(opendir(dd.c_str()));
    if (!dir) {
        fail(error, "cannot list " + dd + ": " + std::strerror(errno));
        return std::nullopt;
    }
    std::vector<std::string> names;
    while (const dirent* e = readdir(dir.get())) {
        const std::string name = e->d_name;
        if (name.size() == 64 && is_hex(name)) names.push_back(name);
    }
    return names;
}

}  // namespace

std::vector<IssuedRecord> IssuedRegistry::list_due(size_t limit, std::string* error) {
    std::vector<IssuedRecord> out;
    try {
        const std::string d = records_dir(dir_);
        struct stat st {};
        if (stat(d.c_str(), &st) != 0) return out;  // nothing issued yet
        const std::string cursor = prepare_due(error);
        std::optional<std::vector<std::string>> listed = due_marker_names(due_dir(dir_), error);
        if (!listed) return out;
        std::vector<std::string>& names = *listed;
        std::sort(names.begin(), names.end());
        // Round robin: from the first name after the cursor, wrapping around once.
        std::rotate(names.begin(), std::upper_bound(names.begin(), names.end(), cursor), names.end());
        std::string next_cursor;  // stays "" when every due record fitted
        std::string last;         // the marker of the last record taken
        for (const std::string& name : names) {
            if (out.size() == limit) {
                next_cursor = last;
                break;
            }
            std::string why;
            std::optional<IssuedRecord> r = read_record(d + "/" + name, &why);
            if (r && r->notice_due) {
                out.push_back(std::move(*r));
                last = name;
            } else if (!why.empty()) {
                fail(error, why);  // a damaged record: named, its marker kept
            } else {
                // A stale marker (a crash between the record and the marker): dropped under
                // update()'s locks, re-checked.
                const base::MutexLock in_process(mu_);
                const FileLock across_processes(d + "/lock");
                const std::optional<IssuedRecord> again = read_record(d + "/" + name, nullptr);
                if (!again || !again->notice_due) unlink((due_dir(dir_) + "/" + name).c_str());
            }
        }
        const base::MutexLock in_process(mu_);
        due_cursor_ = next_cursor;
    } catch (const std::exception& e) {
        fail(error, std::string("the due notices could not be listed: ") + e.what());
    }
    return out;
}

bool IssuedRegistry::mark_withdrawn(std::string_view sha256, std::string* error) {
    const std::string fp = base::to_lower(sha256);
    if (fp.size() != 64 || !is_hex(fp)) return fail(error, "a withdrawn certificate is named by its SHA-256 (hex)");
    try {
        ensure_dir(dir_);
        ensure_dir(records_dir(dir_));
        base::write_atomically(withdrawn_path(dir_, fp), fp, 0600);
        return true;
    } catch (const std::exception& e) {
        return fail(error, "withdrawn certificate " + fp + " not recorded: " + e.what());
    }
}

bool IssuedRegistry::is_withdrawn(std::string_view sha256) const {
    const std::string fp = base::to_lower(sha256);
    if (fp.size() != 64 || !is_hex(fp)) return false;
    struct stat st {};
    return stat(withdrawn_path(dir_, fp).c_str(), &st) == 0;
}

}  // namespace sealmilter::keys
