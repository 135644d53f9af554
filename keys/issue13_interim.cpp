// keys/issue13_interim.cpp — INTERIM, branch wip-i13-mail only: the few keys/issued.hpp and
// keys/issuer.hpp definitions the mail path links against until part A (wip-i13-keys) lands
// keys/issued.cpp and keys/issuer.cpp. keys/CMakeLists.txt compiles this file only while
// keys/issuer.cpp does not exist, so after A's merge it is dead: the integrator deletes it.
// sha256_hex, digests_equal and uncertifiable_reason are real (small, and the notice worker's
// token hashes must be right); the registry and the issuer are not: Issuer::open says issuing
// is not built, so `sealmilter run` refuses an issue policy in this branch alone.
#include "keys/issued.hpp"
#include "keys/issuer.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cctype>
#include <stdexcept>

namespace sealmilter::keys {
namespace {

constexpr const char* kNotBuilt =
    "issuing is not built in this branch (keys/issuer.cpp and keys/issued.cpp come from part A, wip-i13-keys)";

}  // namespace

std::string sha256_hex(std::string_view text) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(text.data(), text.size(), md, &len, EVP_sha256(), nullptr) != 1)
        throw std::runtime_error("SHA-256 failed");
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < len; ++i) {
        out += kHex[md[i] >> 4];
        out += kHex[md[i] & 15];
    }
    return out;
}

bool digests_equal(std::string_view a, std::string_view b) noexcept {
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// RFC 5280 §4.2.1.6: an rfc822Name is a Mailbox (RFC 5321 §4.1.2) without quoted local parts
// in practice, and IA5String: ASCII only (RFC 8398 puts UTF-8 local parts in SmtpUTF8Mailbox,
// which the mail clients in use do not read).
std::optional<std::string> uncertifiable_reason(std::string_view address) {
    const size_t at = address.rfind('@');
    if (at == std::string_view::npos || at == 0 || at + 1 == address.size())
        return "the address has no local part or no domain, which a certificate cannot name";
    const std::string_view local = address.substr(0, at);
    if (local.front() == '"') return "the address has a quoted local part, which a certificate cannot name";
    for (const char c : address)
        if (static_cast<unsigned char>(c) >= 0x80)
            return "the address is not ASCII, which a certificate's rfc822Name cannot hold";
    static constexpr std::string_view kAtext = "!#$%&'*+-/=?^_`{|}~.";
    for (const char c : local)
        if (!std::isalnum(static_cast<unsigned char>(c)) && kAtext.find(c) == std::string_view::npos)
            return "the address's local part is not a dot-atom, which a certificate cannot name";
    if (local.front() == '.' || local.back() == '.' || local.find("..") != std::string_view::npos)
        return "the address's local part is not a dot-atom, which a certificate cannot name";
    return std::nullopt;
}

IssuedRegistry::IssuedRegistry(std::string dir, const base::Clock* clock) : dir_(std::move(dir)), clock_(clock) {}

std::optional<IssuedRecord> IssuedRegistry::get(std::string_view /*address*/, std::string* error) const {
    if (error != nullptr) *error = kNotBuilt;
    return std::nullopt;
}

std::optional<IssuedRecord> IssuedRegistry::by_token_hash(std::string_view /*token_hash*/, std::string* error) const {
    if (error != nullptr) *error = kNotBuilt;
    return std::nullopt;
}

std::vector<IssuedRecord> IssuedRegistry::list(std::string* error) const {
    if (error != nullptr) *error = kNotBuilt;
    return {};
}

bool IssuedRegistry::update(std::string_view /*address*/,
                            const std::function<std::optional<IssuedRecord>(const std::optional<IssuedRecord>&)>& /*change*/,
                            std::string* error) {
    if (error != nullptr) *error = kNotBuilt;
    return false;
}

// The signature is keys/issuer.hpp's (part A takes these by value to keep them).
// NOLINTBEGIN(performance-unnecessary-value-param)
std::shared_ptr<Issuer> Issuer::open(std::shared_ptr<KeyStore> /*store*/, std::shared_ptr<IssuedRegistry> /*registry*/,
                                     IssueSettings /*settings*/, std::string* error) {
    // NOLINTEND(performance-unnecessary-value-param)
    if (error != nullptr) *error = kNotBuilt;
    return nullptr;
}

// Never reached: open() makes no Issuer in this branch.
std::optional<crypto::Certificate> Issuer::current(std::string_view /*address*/) const { throw std::logic_error(kNotBuilt); }
bool Issuer::ready() const { throw std::logic_error(kNotBuilt); }
std::optional<crypto::Certificate> Issuer::issue(std::string_view /*address*/, std::string* /*error*/) {
    throw std::logic_error(kNotBuilt);
}
void Issuer::retire(std::string_view /*address*/, const std::string& /*reason*/) { throw std::logic_error(kNotBuilt); }
Issuer::~Issuer() = default;
KeyPairPool::~KeyPairPool() = default;
size_t KeyPairPool::ready() const { throw std::logic_error(kNotBuilt); }

}  // namespace sealmilter::keys
