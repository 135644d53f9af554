// keys/issuer.cpp — the issuing CA, the key-pair pool and issuing (see issuer.hpp).
#include "keys/issuer.hpp"

#include "base/ascii.hpp"
#include "base/file.hpp"
#include "base/worker_thread.hpp"
#include "crypto/certificate_builder.hpp"
#include "crypto/recipient_id.hpp"
#include "keys/store.hpp"
#include "keys/token.hpp"

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <sys/stat.h>
#include <thread>

namespace sealmilter::keys {
namespace {

constexpr size_t kMaxLocalPart = 64;   // RFC 5321 §4.5.3.1.1
constexpr size_t kMaxAddress = 254;    // RFC 5321 §4.5.3.1.3 path minus the angle brackets
constexpr size_t kMaxCommonName = 64;  // RFC 5280 ub-common-name
constexpr long kCaValidityDays = 20L * 365 + 5;

bool fail(std::string* error, const std::string& why) {
    if (error != nullptr) *error = why;
    return false;
}

// RFC 5322 §3.2.3 atext.
bool is_atext(char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    return std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != std::string_view::npos;
}

bool is_dot_atom(std::string_view s) {
    if (s.empty() || s.front() == '.' || s.back() == '.') return false;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '.') {
            if (s[i + 1] == '.') return false;  // s.back() is not '.', so i + 1 is in range
        } else if (!is_atext(s[i])) {
            return false;
        }
    }
    return true;
}

// A host name: labels of letters, digits and hyphens (RFC 1123 §2.1), 1..63 each.
bool is_domain(std::string_view d) {
    if (d.empty() || d.size() > 253) return false;
    size_t start = 0;
    while (start <= d.size()) {
        const size_t dot = d.find('.', start);
        const std::string_view label = d.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
        if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
        for (const char c : label)
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-')) return false;
        if (dot == std::string_view::npos) break;
        start = dot + 1;
    }
    return true;
}

bool has_non_ascii(std::string_view s) {
    for (const char c : s)
        if (static_cast<unsigned char>(c) >= 0x80) return true;
    return false;
}

std::string ca_file(const std::string& keys_dir) { return keys_dir + "/ca.pem"; }

bool ca_exists(const std::string& keys_dir) {
    struct stat st {};
    return stat(ca_file(keys_dir).c_str(), &st) == 0;
}

// keys.dir/ca.pem: the CA certificate, then its chain.
void write_ca_file(const std::string& keys_dir, const crypto::Certificate& cert, const std::vector<crypto::Certificate>& chain) {
    if (mkdir(keys_dir.c_str(), 0700) != 0 && errno != EEXIST)
        throw std::system_error(errno, std::generic_category(), "mkdir " + keys_dir);
    std::string text = cert.pem();
    for (const crypto::Certificate& c : chain) text += c.pem();
    base::write_atomically(ca_file(keys_dir), text, 0644);
}

// "CN=Example Bank Mail CA,O=Example Bank" (RFC 4514 order: the most specific first) -> the
// attributes in DER order (the last first). A backslash escapes the next character.
std::optional<std::vector<std::pair<std::string, std::string>>> parse_subject(std::string_view text, std::string* error) {
    std::vector<std::pair<std::string, std::string>> out;
    std::string part;
    std::vector<std::string> parts;
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\\' && i + 1 < text.size()) {
            part += text[++i];
        } else if (text[i] == ',') {
            parts.push_back(std::move(part));
            part.clear();
        } else {
            part += text[i];
        }
    }
    parts.push_back(std::move(part));
    for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        const size_t eq = it->find('=');
        const std::string field(base::trim(std::string_view(*it).substr(0, eq == std::string::npos ? 0 : eq)));
        const std::string value(base::trim(eq == std::string::npos ? std::string_view() : std::string_view(*it).substr(eq + 1)));
        if (field.empty() || value.empty() || OBJ_txt2nid(field.c_str()) == NID_undef) {
            fail(error, "issue.ca_subject: '" + *it + "' is not NAME=value with a known attribute name (CN, O, OU, C, L, ST)");
            return std::nullopt;
        }
        out.emplace_back(field, value);
    }
    return out;
}

// The token key for a CA: exactly one private key matched by `uri`.
std::optional<std::pair<std::string, crypto::KeyMaterial>> token_ca_key(const KeyStore& store, const std::string& uri,
                                                                        std::string* error) {
    const TokenOptions options{store.options().pkcs11_module, store.options().pkcs11_pin_file};
    const std::vector<TokenObject> objects = list_token_keys(uri, options, error);
    if (objects.size() != 1) {
        if (objects.size() > 1) fail(error, "--token " + uri + " matches " + std::to_string(objects.size()) + " keys; name one");
        else if (error != nullptr && error->empty()) *error = "--token " + uri + ": no private key matches";
        return std::nullopt;
    }
    std::optional<crypto::KeyMaterial> m = load_token_key(objects.front().uri, options, error);
    if (!m) return std::nullopt;
    return std::make_pair(objects.front().uri, std::move(*m));
}

}  // namespace

std::optional<std::string> uncertifiable_reason(std::string_view address) {
    const size_t at = address.rfind('@');
    if (at == std::string_view::npos || at == 0 || at + 1 == address.size())
        return "the address has no local part or no domain, which a certificate cannot name";
    const std::string_view local = address.substr(0, at);
    const std::string_view domain = address.substr(at + 1);
    if (local.front() == '"')
        return "the address has a quoted local part, which a certificate cannot name";
    if (has_non_ascii(local))
        return "the address has a non-ASCII (internationalised) local part, which a certificate's rfc822Name cannot "
               "hold";
    if (has_non_ascii(domain))
        return "the address has a non-ASCII domain, which a certificate's rfc822Name cannot hold (use its ASCII "
               "xn-- form)";
    if (local.size() > kMaxLocalPart) return "the address's local part is longer than 64 characters";
    if (address.size() > kMaxAddress) return "the address is longer than 254 characters";
    if (!is_dot_atom(local))
        return "the address's local part is not a plain dot-atom (RFC 5322), which a certificate cannot name";
    if (!is_domain(domain)) return "the address's domain is not a host name, which a certificate cannot name";
    return std::nullopt;
}

// --- IssuingCa ---------------------------------------------------------------------------

std::optional<IssuingCa> IssuingCa::load(const std::string& keys_dir, const KeyRing& ring, std::string* error) {
    const crypto::ParsedCertificates parsed = crypto::load_certificate_file(ca_file(keys_dir));
    if (parsed.certificates.empty()) {
        fail(error, "no issuing CA: " + parsed.error + " (make one with `sealmilter ca init` or `sealmilter ca import`)");
        return std::nullopt;
    }
    const crypto::Certificate& cert = parsed.certificates.front();
    const std::string sha = base::to_lower(cert.fingerprint_sha256());
    for (const crypto::RecipientId& id : crypto::certificate_ids(cert)) {
        for (const KeyEntry& e : ring.find(id)) {
            if (base::to_lower(crypto::Certificate(e->certificate).fingerprint_sha256()) != sha) continue;
            PrivateKey key = ring.private_key(*e, error);
            if (!key) return std::nullopt;
            return IssuingCa(e, std::move(key));
        }
    }
    fail(error, "the issuing CA of " + ca_file(keys_dir) + " (" + cert.subject() + ") has no key in the key store");
    return std::nullopt;
}

crypto::Certificate IssuingCa::make_recipient_certificate(std::string_view address, EVP_PKEY* public_key,
                                                          const IssueSettings& s, std::time_t now) const {
    const std::string lower = base::to_lower(address);
    crypto::CertificateBuilder b;
    // CN is limited to 64 characters (RFC 5280 ub-common-name); the SAN always holds the address.
    if (lower.size() <= kMaxCommonName) b.common_name(lower);
    b.organization(s.org_name)
        .add_email_san(lower)
        .public_key(public_key)
        .issuer(entry_->certificate, key_->key.get())
        .validity(now - 60, now + s.validity_days * 86400L)
        .key_usage(crypto::kDigitalSignature | crypto::kKeyEncipherment)
        .extended_key_usage({"emailProtection"})
        .subject_key_identifier()
        .authority_key_identifier();
    return b.build();
}

std::optional<crypto::Certificate> init_ca(KeyStore& store, const IssueSettings& s, const std::string& token_uri,
                                           std::string* error) {
    const std::string& dir = store.options().dir;
    if (ca_exists(dir)) {
        fail(error, "an issuing CA exists already (" + ca_file(dir) + "); nothing changed");
        return std::nullopt;
    }
    const std::string subject =
        s.ca_subject.empty() ? "CN=" + s.org_name + " Mail Encryption CA,O=" + s.org_name : s.ca_subject;
    const auto attributes = parse_subject(subject, error);
    if (!attributes) return std::nullopt;
    try {
        std::optional<std::pair<std::string, crypto::KeyMaterial>> token;
        crypto::EVP_PKEY_ptr key;
        if (!token_uri.empty()) {
            token = token_ca_key(store, token_uri, error);
            if (!token) return std::nullopt;
        } else {
            key = crypto::generate_rsa_key(3072);
        }
        EVP_PKEY* signer = token ? token->second.key.get() : key.get();
        crypto::CertificateBuilder b;
        for (const auto& [field, value] : *attributes) b.subject_attribute(field, value);
        b.public_key(signer)  // self-signed: signed by the same key (on the token, for a token key)
            .valid_days(kCaValidityDays)
            .basic_constraints(true)
            .key_usage(crypto::kKeyCertSign | crypto::kCrlSign)
            .subject_key_identifier();
        crypto::Certificate cert = b.build();
        std::optional<KeyStore::ImportReport> r;
        if (token) {
            r = store.import_token_key(token->first, cert, {}, error);
        } else {
            std::vector<crypto::KeyMaterial> one;
            one.push_back(crypto::KeyMaterial{std::move(key), cert, {}});
            r = store.import_keys(std::move(one), KeyState::Active, error);
        }
        if (!r) return std::nullopt;
        write_ca_file(dir, cert, {});
        return cert;
    } catch (const std::exception& e) {
        fail(error, std::string("ca init: ") + e.what());
        return std::nullopt;
    }
}

std::optional<crypto::Certificate> import_ca(KeyStore& store, crypto::KeyMaterial material, std::string* error) {
    const std::string& dir = store.options().dir;
    if (ca_exists(dir)) {
        fail(error, "an issuing CA exists already (" + ca_file(dir) + "); nothing changed");
        return std::nullopt;
    }
    if (!material.certificate || !material.key) {
        fail(error, "a CA needs its private key and its certificate");
        return std::nullopt;
    }
    X509* x = material.certificate->native();
    const uint32_t flags = X509_get_extension_flags(x);
    if ((flags & EXFLAG_CA) == 0U || (flags & EXFLAG_BCONS) == 0U) {
        fail(error, material.certificate->subject() + " is not a CA certificate (no basicConstraints cA)");
        return std::nullopt;
    }
    if ((flags & EXFLAG_KUSAGE) != 0U && (X509_get_key_usage(x) & KU_KEY_CERT_SIGN) == 0U) {
        fail(error, material.certificate->subject() + " may not sign certificates (keyUsage without keyCertSign)");
        return std::nullopt;
    }
    const crypto::Certificate cert = *material.certificate;
    const std::vector<crypto::Certificate> chain = material.chain;
    try {
        std::vector<crypto::KeyMaterial> one;
        one.push_back(std::move(material));
        if (!store.import_keys(std::move(one), KeyState::Active, error)) return std::nullopt;
        write_ca_file(dir, cert, chain);
        return cert;
    } catch (const std::exception& e) {
        fail(error, std::string("ca import: ") + e.what());
        return std::nullopt;
    }
}

// --- KeyPairPool ---------------------------------------------------------------------------

struct KeyPairPool::State {
    unsigned bits = 2048;
    size_t target = 0;
    mutable base::Mutex mu;
    std::condition_variable_any wake;
    std::deque<crypto::EVP_PKEY_ptr> ready SEALMILTER_GUARDED_BY(mu);
    size_t in_progress SEALMILTER_GUARDED_BY(mu) = 0;
    bool stop SEALMILTER_GUARDED_BY(mu) = false;
    std::atomic<unsigned long long> generated{0};
    std::atomic<unsigned long long> failures{0};
    std::vector<std::thread> workers;

    static constexpr std::chrono::milliseconds kFirstBackoff{100};
    static constexpr std::chrono::milliseconds kMaxBackoff{30000};

    // One worker: waits while the pool is full, generates outside the lock; after a failed
    // generation it waits (doubling, capped) so a persistent failure is no busy loop.
    void run() {
        std::chrono::milliseconds backoff{0};
        for (;;) {
            {
                base::UniqueMutexLock lock(mu);
                if (backoff.count() > 0)  // woken early only by stop
                    wake.wait_for(lock, backoff, [this]() SEALMILTER_NO_THREAD_SAFETY_ANALYSIS { return stop; });
                // Bounded: each wake-up either stops, or starts one generation.
                while (!stop && ready.size() + in_progress >= target) wake.wait(lock);
                if (stop) return;
                ++in_progress;
            }
            crypto::EVP_PKEY_ptr key;
            try {
                key = crypto::generate_rsa_key(bits);
            } catch (const std::exception&) {
                key.reset();  // an OpenSSL failure: try again after the back-off
            }
            const base::MutexLock lock(mu);
            --in_progress;
            if (key) {
                ready.push_back(std::move(key));
                generated.fetch_add(1, std::memory_order_relaxed);
                backoff = std::chrono::milliseconds{0};
            } else {
                failures.fetch_add(1, std::memory_order_relaxed);
                backoff = backoff.count() == 0 ? kFirstBackoff : std::min(backoff * 2, kMaxBackoff);
            }
        }
    }
};

KeyPairPool::KeyPairPool(unsigned bits, size_t target, unsigned threads) : state_(std::make_shared<State>()) {
    state_->bits = bits;
    state_->target = target;
    for (unsigned i = 0; i < threads; ++i) {
        const std::shared_ptr<State> s = state_;
        state_->workers.push_back(base::start_worker_thread([s] { s->run(); }));
    }
}

KeyPairPool::~KeyPairPool() {
    {
        const base::MutexLock lock(state_->mu);
        state_->stop = true;
    }
    state_->wake.notify_all();
    for (std::thread& t : state_->workers) t.join();  // at most one key generation each
}

crypto::EVP_PKEY_ptr KeyPairPool::take() {
    crypto::EVP_PKEY_ptr key;
    {
        const base::MutexLock lock(state_->mu);
        if (state_->ready.empty()) return nullptr;
        key = std::move(state_->ready.front());
        state_->ready.pop_front();
    }
    state_->wake.notify_one();
    return key;
}

size_t KeyPairPool::ready() const {
    const base::MutexLock lock(state_->mu);
    return state_->ready.size();
}

unsigned long long KeyPairPool::generated() const { return state_->generated.load(std::memory_order_relaxed); }
unsigned long long KeyPairPool::failures() const { return state_->failures.load(std::memory_order_relaxed); }

void KeyPairPool::put(crypto::EVP_PKEY_ptr key) {
    if (!key) return;
    const base::MutexLock lock(state_->mu);
    state_->ready.push_back(std::move(key));
}

}  // namespace sealmilter::keys
