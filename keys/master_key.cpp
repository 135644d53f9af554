// keys/master_key.cpp — reading, checking and making the master key file (see master_key.hpp).
#include "keys/master_key.hpp"

#include "base/encoding.hpp"
#include "base/handle.hpp"
#include "crypto/base64.hpp"
#include "crypto/ossl.hpp"
#include "keys/token.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
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

constexpr std::string_view kTokenMagic = "sealmilter-master-key token\n";

std::optional<MasterKey> read_master_key_file(const std::string& path, const TokenOptions* token, std::string* error);

std::optional<MasterKey> read_master_key(const std::string& path, std::string* error) {
    return read_master_key_file(path, nullptr, error);
}

std::optional<MasterKey> read_master_key(const std::string& path, const TokenOptions& token, std::string* error) {
    return read_master_key_file(path, &token, error);
}

namespace {

// The token form's "name value" line, or "".
std::string token_field(const std::string& text, std::string_view name) {
    size_t at = 0;
    while (at < text.size()) {
        const size_t end = std::min(text.find('\n', at), text.size());
        const std::string_view line(text.data() + at, end - at);
        if (line.size() > name.size() && line.substr(0, name.size()) == name && line[name.size()] == ' ')
            return std::string(line.substr(name.size() + 1));
        at = end + 1;
    }
    return "";
}

std::optional<MasterKey> from_bytes(const std::string& raw) {
    std::array<unsigned char, MasterKey::kSize> b{};
    std::memcpy(b.data(), raw.data(), b.size());
    MasterKey key(b);
    OPENSSL_cleanse(b.data(), b.size());
    return key;
}

}  // namespace

std::optional<MasterKey> read_master_key_file(const std::string& path, const TokenOptions* token, std::string* error) {
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
    text.s.resize(4096);  // the token form: a URI and 344 base64 characters
    const ssize_t n = read(fd.get(), text.s.data(), text.s.size());
    if (n < 0) {
        fail(error, where + "cannot read: " + std::strerror(errno));
        return std::nullopt;
    }
    text.s.resize(static_cast<size_t>(n));
    if (text.s.rfind(kTokenMagic, 0) == 0) {
        if (token == nullptr) {
            fail(error, where + "holds a master key wrapped on a PKCS#11 token; this command cannot open it");
            return std::nullopt;
        }
        const std::string uri = token_field(text.s, "uri");
        const std::string wrapped = crypto::decode_base64(token_field(text.s, "wrapped"));
        if (uri.rfind("pkcs11:", 0) != 0 || wrapped.empty()) {
            fail(error, where + "malformed token form: expected the lines `uri pkcs11:...` and `wrapped BASE64`, as "
                                "`sealmilter keys new-master-key FILE --token URI` writes");
            return std::nullopt;
        }
        std::string why;
        std::optional<std::string> raw = token_unwrap_key(uri, *token, wrapped, &why);
        const bool unwrapped = raw.has_value();
        const Wiped clear{unwrapped ? std::move(*raw) : std::string()};
        if (!unwrapped || clear.s.size() != MasterKey::kSize) {
            fail(error, where + "the token does not unwrap the master key (" + (why.empty() ? "wrong length" : why) + ")");
            return std::nullopt;
        }
        return from_bytes(clear.s);
    }
    if (!text.s.empty() && text.s.back() == '\n') text.s.pop_back();
    const std::optional<std::string> raw = text.s.size() == 2 * MasterKey::kSize ? base::from_hex(text.s) : std::nullopt;
    if (!raw || raw->size() != MasterKey::kSize) {
        fail(error, where + "malformed: expected 64 hex characters (32 bytes) and at most a final newline, as "
                            "`sealmilter keys new-master-key FILE` writes");
        return std::nullopt;
    }
    Wiped wipe_raw{*raw};
    return from_bytes(wipe_raw.s);
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

bool create_token_master_key_file(const std::string& path, const std::string& uri, const TokenOptions& token,
                                  std::string* error) {
    if (uri.rfind("pkcs11:", 0) != 0 || uri.find_first_of(" \t\r\n") != std::string::npos)
        return fail(error, "not a pkcs11: URI (RFC 7512): " + uri);
    if (uri.find("pin-value") != std::string::npos)
        return fail(error, "the URI carries pin-value: the PIN would be kept beside the key; use keys.pkcs11_pin_file");
    const MasterKey key = MasterKey::random();
    Wiped clear{std::string(reinterpret_cast<const char*>(key.data()), MasterKey::kSize)};
    std::string why;
    const std::optional<std::string> wrapped = token_wrap_key(uri, token, clear.s, &why);
    if (!wrapped) return fail(error, "the token does not wrap the master key: " + why);
    // Proof before anything is written: the token opens what it wrapped.
    std::optional<std::string> back = token_unwrap_key(uri, token, *wrapped, &why);
    const bool opened = back.has_value();
    const Wiped again{opened ? std::move(*back) : std::string()};
    if (!opened || again.s != clear.s) return fail(error, "the token wraps but does not unwrap the master key: " + why);
    const base::UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (fd.get() < 0)
        return fail(error, path + ": " + (errno == EEXIST ? std::string("already exists; a master key is never overwritten")
                                                          : std::string(std::strerror(errno))));
    std::string b64(4 * ((wrapped->size() + 2) / 3) + 1, '\0');
    b64.resize(static_cast<size_t>(EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()),
                                                   reinterpret_cast<const unsigned char*>(wrapped->data()),
                                                   static_cast<int>(wrapped->size()))));
    const std::string text = std::string(kTokenMagic) + "uri " + uri + "\nwrapped " + b64 + "\n";
    const bool ok = fchmod(fd.get(), 0600) == 0 && write(fd.get(), text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                    fsync(fd.get()) == 0;
    if (!ok) {
        const std::string why_write = std::strerror(errno);
        unlink(path.c_str());
        return fail(error, path + ": cannot write: " + why_write);
    }
    return true;
}

}  // namespace sealmilter::keys
