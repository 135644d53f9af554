// keys/master_key.cpp — reading, checking and making the master key file (see master_key.hpp).
#include "keys/master_key.hpp"

#include "base/encoding.hpp"
#include "base/handle.hpp"
#include "crypto/ossl.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace sealmilter::keys {
namespace {

bool fail(std::string* error, const std::string& why) {
    if (error != nullptr) *error = why;
    return false;
}

// Wipes a string holding key material before it is freed.
struct Wiped {
    std::string s;
    ~Wiped() { OPENSSL_cleanse(s.data(), s.size()); }
};

}  // namespace

MasterKey::~MasterKey() { OPENSSL_cleanse(bytes_.data(), bytes_.size()); }

MasterKey MasterKey::random() {
    std::array<unsigned char, kSize> b{};
    if (RAND_priv_bytes(b.data(), static_cast<int>(b.size())) != 1) crypto::throw_openssl("RAND_priv_bytes");
    MasterKey k(b);
    OPENSSL_cleanse(b.data(), b.size());
    return k;
}

std::optional<MasterKey> read_master_key(const std::string& path, std::string* error) {
    const std::string where = "keys.master_key_file " + path + ": ";
    if (path.empty()) {
        fail(error, "keys.master_key_file is not set");
        return std::nullopt;
    }
    const base::UniqueFd fd(open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (fd.get() < 0) {
        fail(error, where + "cannot open: " + std::strerror(errno));
        return std::nullopt;
    }
    struct stat st {};
    if (fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
        fail(error, where + "not a regular file");
        return std::nullopt;
    }
    if (st.st_uid != geteuid() && st.st_uid != 0) {
        fail(error, where + "owned by uid " + std::to_string(st.st_uid) + ", not by the running user (uid " +
                        std::to_string(geteuid()) + ") or root");
        return std::nullopt;
    }
    if ((st.st_mode & 077) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        fail(error, where + "mode " + mode + " lets group or others read it; chmod 0600 " + path);
        return std::nullopt;
    }
    Wiped text;
    text.s.resize(130);
    const ssize_t n = read(fd.get(), text.s.data(), text.s.size());
    if (n < 0) {
        fail(error, where + "cannot read: " + std::strerror(errno));
        return std::nullopt;
    }
    text.s.resize(static_cast<size_t>(n));
    if (!text.s.empty() && text.s.back() == '\n') text.s.pop_back();
    const std::optional<std::string> raw = text.s.size() == 2 * MasterKey::kSize ? base::from_hex(text.s) : std::nullopt;
    if (!raw || raw->size() != MasterKey::kSize) {
        fail(error, where + "malformed: expected 64 hex characters (32 bytes) and at most a final newline, as "
                            "`sealmilter keys new-master-key FILE` writes");
        return std::nullopt;
    }
    std::array<unsigned char, MasterKey::kSize> b{};
    std::memcpy(b.data(), raw->data(), b.size());
    Wiped wipe_raw{*raw};
    MasterKey key(b);
    OPENSSL_cleanse(b.data(), b.size());
    return key;
}

bool create_master_key_file(const std::string& path, std::string* error) {
    const base::UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (fd.get() < 0)
        return fail(error, path + ": " + (errno == EEXIST ? std::string("already exists; a master key is never overwritten")
                                                          : std::string(std::strerror(errno))));
    const MasterKey key = MasterKey::random();
    Wiped hex{base::to_hex(std::string_view(reinterpret_cast<const char*>(key.data()), MasterKey::kSize)) + "\n"};
    // fchmod: the umask may have removed bits, never added; 0600 exactly whatever it is.
    const bool ok = fchmod(fd.get(), 0600) == 0 && write(fd.get(), hex.s.data(), hex.s.size()) == static_cast<ssize_t>(hex.s.size()) &&
                    fsync(fd.get()) == 0;
    if (!ok) {
        const std::string why = std::strerror(errno);
        unlink(path.c_str());
        return fail(error, path + ": cannot write: " + why);
    }
    return true;
}

}  // namespace sealmilter::keys
