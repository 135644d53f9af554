// milter/journal.cpp — the re-injection journal (see journal.hpp).
#include "milter/journal.hpp"

#include "base/ascii.hpp"
#include "base/encoding.hpp"
#include "core/mime.hpp"
#include "crypto/ossl.hpp"

#include <openssl/evp.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <system_error>

namespace fs = std::filesystem;

namespace sealmilter::milter {
namespace {

// The fields that identify a message across a retry. Not Date, Received or anything else the
// MTA may add or regenerate on the second attempt (Postfix adds a missing Date with the time
// of each attempt).
bool identifies(const std::string& name) {
    const std::string n = base::to_lower(base::trim(name));
    return n == "message-id" || n == "from" || n == "to" || n == "cc" || n == "subject" || n == "content-type";
}

}  // namespace

FileJournal::FileJournal(std::string dir, long long max_age_s) : dir_(std::move(dir)), max_age_s_(max_age_s) {
    std::error_code ec;
    fs::create_directories(dir_, ec);
}

std::string Journal::key(const core::Message& m, const std::string& sender, std::vector<std::string> recipients) {
    std::sort(recipients.begin(), recipients.end());
    // Owned from the start: reading a spooled body can throw half-way (journal.hpp).
    const crypto::EVP_MD_CTX_ptr ctx(EVP_MD_CTX_new());
    if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) throw std::runtime_error("SHA-256 unavailable");
    const auto feed = [&](std::string_view s) { EVP_DigestUpdate(ctx.get(), s.data(), s.size()); };
    feed(sender);
    feed(std::string_view("\0", 1));
    for (const std::string& r : recipients) {
        feed(r);
        feed(std::string_view("\0", 1));
    }
    for (const core::HeaderField& f : m.headers) {
        if (!identifies(f.name)) continue;
        feed(f.name);
        feed(":");
        feed(f.value);
        feed(std::string_view("\0", 1));
    }
    m.body.for_each_chunk([&](std::string_view c) { feed(c); });
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_DigestFinal_ex(ctx.get(), md, &n) != 1) throw std::runtime_error("SHA-256 failed");
    return base::to_hex(std::string_view(reinterpret_cast<const char*>(md), n));
}

Journal::Seen FileJournal::contains(const std::string& key, std::string* /*error*/) const {
    std::error_code ec;
    const fs::path p = fs::path(dir_) / key;
    if (!fs::exists(p, ec)) return Seen::No;
    const auto age = std::chrono::duration_cast<std::chrono::seconds>(fs::file_time_type::clock::now() - fs::last_write_time(p, ec));
    return !ec && age.count() < max_age_s_ ? Seen::Yes : Seen::No;
}

bool FileJournal::record(const std::string& key, std::string* error) const {
    const std::string path = (fs::path(dir_) / key).string();
    // open(2) rather than a stream: the administrator needs errno's reason, not just "failed".
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) {
        ::close(fd);
        return true;
    }
    if (error != nullptr) *error = "cannot create " + path + ": " + std::strerror(errno);
    return false;
}

size_t FileJournal::prune() const {
    size_t removed = 0;
    std::error_code ec;
    const auto now = fs::file_time_type::clock::now();
    for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
        std::error_code e2;
        const auto t = fs::last_write_time(it->path(), e2);
        if (!e2 && std::chrono::duration_cast<std::chrono::seconds>(now - t).count() >= max_age_s_ && fs::remove(it->path(), e2))
            ++removed;
    }
    return removed;
}

}  // namespace sealmilter::milter
