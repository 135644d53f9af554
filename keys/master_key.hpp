// keys/master_key.hpp — the key store's master key: 32 random bytes kept as 64 hex characters.
//
// Purpose:   every private key in keys.dir is wrapped under this key (keys/wrap.hpp). The file
//            (keys.master_key_file) holds exactly 64 hex characters, optionally followed by one
//            newline; it must be a regular file, owned by the running user or root, with no
//            group or other permission bits. read_master_key() refuses anything else with one
//            sentence that names the file and what is wrong; create_master_key_file() makes a
//            new one (mode 0600, O_EXCL: an existing file is never overwritten).
// Ownership: MasterKey owns its bytes and wipes them (OPENSSL_cleanse) when destroyed.
// Threads:   re-entrant.
// Errors:    std::nullopt / false with the reason in *error; never throws for bad files.
#pragma once

#include <array>
#include <optional>
#include <string>

namespace sealmilter::keys {

class MasterKey {
public:
    static constexpr size_t kSize = 32;
    explicit MasterKey(const std::array<unsigned char, kSize>& bytes) noexcept : bytes_(bytes) {}
    MasterKey(const MasterKey&) = default;
    MasterKey& operator=(const MasterKey&) = default;
    ~MasterKey();
    const unsigned char* data() const noexcept { return bytes_.data(); }

    static MasterKey random();  // from the OpenSSL DRBG; throws crypto::CryptoError when it fails

private:
    std::array<unsigned char, kSize> bytes_;
};

struct TokenOptions;  // keys/token.hpp

// Reads and checks keys.master_key_file (format, type, owner, mode).
std::optional<MasterKey> read_master_key(const std::string& path, std::string* error);

// The master key on a token (issue 11 item 2): keys.master_key_file may instead hold
//     sealmilter-master-key token
//     uri pkcs11:token=...;object=...      (an RSA key on the token, never extractable)
//     wrapped BASE64                       (the 32 bytes, RSA-OAEP SHA-256 under that key)
// under the same file checks (owner, mode 0600). The file alone opens nothing: the token (its
// PIN from keys.pkcs11_pin_file) unwraps the key each time the store is opened. This form of
// read_master_key() reads both forms; the two-argument one refuses the token form.
std::optional<MasterKey> read_master_key(const std::string& path, const TokenOptions& token, std::string* error);

// Writes a fresh random master key wrapped by the token RSA key `uri` to `path` (mode 0600,
// never overwrites); the clear key is never written. false and *error on failure.
bool create_token_master_key_file(const std::string& path, const std::string& uri, const TokenOptions& token,
                                  std::string* error);

// Writes a fresh random master key to `path` with mode 0600; false when the file exists or
// cannot be written (nothing is left behind on failure).
bool create_master_key_file(const std::string& path, std::string* error);

}  // namespace sealmilter::keys
