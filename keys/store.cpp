// keys/store.cpp — the on-disk key store (see store.hpp for the layout and crash rules).
#include "keys/store.hpp"

#include "base/ascii.hpp"
#include "base/encoding.hpp"
#include "base/file.hpp"
#include "base/handle.hpp"
#include "crypto/base64.hpp"
#include "keys/wrap.hpp"

#include "keys/token.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sstream>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <unordered_map>
#include <unordered_set>

namespace sealmilter::keys {

struct KeyStore::Record {
    std::string id;
    KeyState state = KeyState::Active;
    KeyOrigin origin = KeyOrigin::File;
    std::string file;  // key file name inside keys.dir
    std::string uri;   // token keys: the pkcs11: URI
    std::string cert_b64;
    std::string chain_b64;  // comma-joined, "-" when none
    KeyEntry entry;
};

namespace {

constexpr const char* kIndexMagic = "sealmilter-keys 2";
constexpr const char* kIndexMagicV1 = "sealmilter-keys 1";
constexpr const char* kKeyMagic = "sealmilter-key 1";
constexpr std::string_view kCheckPlain = "sealmilter key store check v1";
constexpr std::string_view kCheckAad = "sealmilter-keys check";
constexpr size_t kIdLength = 16;

bool fail(std::string* error, const std::string& why) {
    if (error != nullptr) *error = why;
    return false;
}

std::string b64(std::string_view bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
    out.resize(static_cast<size_t>(n));
    return out;
}

std::string cert_b64(const crypto::Certificate& c) {
    const std::vector<unsigned char> der = c.der();
    return b64(std::string_view(reinterpret_cast<const char*>(der.data()), der.size()));
}

std::optional<crypto::Certificate> cert_from_b64(std::string_view text) {
    const std::string der = crypto::decode_base64(text);
    const auto* p = reinterpret_cast<const unsigned char*>(der.data());
    crypto::X509_ptr x(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
    if (!x) {
        crypto::drain_errors();
        return std::nullopt;
    }
    return crypto::Certificate(std::move(x));
}

std::string pem(const crypto::Certificate& c) {
    crypto::BIO_ptr mem(BIO_new(BIO_s_mem()));
    if (!mem || PEM_write_bio_X509(mem.get(), c.native()) != 1) crypto::throw_openssl("PEM_write_bio_X509");
    char* data = nullptr;
    const long n = BIO_get_mem_data(mem.get(), &data);
    return {data, static_cast<size_t>(n)};
}

std::string aad_for(const std::string& id, const std::string& sha256) { return "sealmilter-key v1 " + id + " " + sha256; }

std::string key_file_name(const std::string& id, unsigned generation) {
    return id + ".g" + std::to_string(generation) + ".key";
}

std::string key_file_text(const std::string& id, KeyState state, KeyOrigin origin, const std::string& sha256,
                          const std::string& secret_line, const crypto::Certificate& cert,
                          const std::vector<crypto::Certificate>& chain) {
    std::string t = std::string(kKeyMagic) + "\nid " + id + "\nstate " + state_name(state) + "\norigin " +
                    origin_name(origin) + "\nsha256 " + sha256 + "\n" + secret_line + "\n";
    t += pem(cert);
    for (const crypto::Certificate& c : chain) t += pem(c);
    return t;
}

// The value of "name value" in a key file's head, or nullopt.
std::optional<std::string> field(const std::string& text, std::string_view name) {
    std::istringstream in(text);
    std::string line;
    for (int i = 0; i < 16 && std::getline(in, line); ++i) {
        if (line.size() > name.size() && line.compare(0, name.size(), name) == 0 && line[name.size()] == ' ')
            return line.substr(name.size() + 1);
    }
    return std::nullopt;
}

// An entry with everything the index records taken from `cert` (parses it).
KeyEntry make_entry(const KeyStore::Record& r, const KeyStorage& storage, const crypto::Certificate& cert,
                    std::vector<crypto::Certificate> chain) {
    return std::make_shared<const KeyInfo>(describe_key(r.id, cert, std::move(chain), r.state, r.origin,
                                                        r.origin == KeyOrigin::Token ? r.uri : storage.location(r.file)));
}

// The entry of `r` with a new location (rewrap: the next generation's file); nothing re-parsed.
KeyEntry relocated(const KeyStore::Record& r, const KeyStorage& storage) {
    KeyInfo k = *r.entry;
    k.location = r.origin == KeyOrigin::Token ? r.uri : storage.location(r.file);
    return std::make_shared<const KeyInfo>(std::move(k));
}

std::string sha256_hex(std::string_view bytes) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr) != 1) crypto::throw_openssl("EVP_Digest");
    return base::to_hex(std::string_view(reinterpret_cast<const char*>(md), len));
}

// An index list item: RFC 3986 percent encoding (no ',' or space is left; an address may hold them).
std::string escape_item(std::string_view item) { return base::percent_encode(item, "@:+"); }

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

std::vector<std::string> split_list(const std::string& text, bool unescape) {
    std::vector<std::string> out;
    std::istringstream in(text);
    std::string one;
    while (std::getline(in, one, ',')) {
        if (unescape) {
            std::string plain;
            for (size_t i = 0; i < one.size(); ++i) {
                if (one[i] == '%' && i + 2 < one.size() && hex_digit(one[i + 1]) >= 0 && hex_digit(one[i + 2]) >= 0) {
                    plain += static_cast<char>(hex_digit(one[i + 1]) * 16 + hex_digit(one[i + 2]));
                    i += 2;
                } else {
                    plain += one[i];
                }
            }
            one = std::move(plain);
        }
        out.push_back(std::move(one));
    }
    return out;
}

// The chain column ("-" or comma-joined base64 DER); each distinct certificate decoded once
// (lazily parsed when `lazy`).
std::optional<std::vector<crypto::Certificate>> decode_chain(const std::string& column,
                                                             std::unordered_map<std::string, crypto::Certificate>& seen,
                                                             bool lazy) {
    std::vector<crypto::Certificate> chain;
    if (column == "-") return chain;
    std::istringstream cs(column);
    std::string one;
    while (std::getline(cs, one, ',')) {
        if (const auto it = seen.find(one); it != seen.end()) {
            chain.push_back(it->second);
            continue;
        }
        std::optional<crypto::Certificate> c;
        if (lazy) {
            std::string der = crypto::decode_base64(one);
            if (der.empty()) return std::nullopt;
            c = crypto::Certificate::from_der_lazily(std::move(der));
        } else {
            c = cert_from_b64(one);
        }
        if (!c) return std::nullopt;
        seen.emplace(one, *c);
        chain.push_back(std::move(*c));
    }
    return chain;
}

}  // namespace

KeyStore::KeyStore(StoreOptions options, const MasterKey& master)
    : options_(std::move(options)),
      storage_(options_.storage ? options_.storage : file_storage(options_.dir)),
      master_(master) {}
KeyStore::~KeyStore() = default;

std::shared_ptr<KeyStore> KeyStore::open(const StoreOptions& options, std::string* error) {
    std::optional<MasterKey> master =
        read_master_key(options.master_key_file, TokenOptions{options.pkcs11_module, options.pkcs11_pin_file}, error);
    if (!master) return nullptr;
    auto store = std::make_shared<KeyStore>(options, *master);
    if (!store->load_index(error)) return nullptr;
    return store;
}

std::shared_ptr<const KeyRing> open_store(const StoreOptions& options, std::string* error) {
    return KeyStore::open(options, error);
}

bool KeyStore::load_index(std::string* error) {
    const std::string where = "key store (" + storage_->describe() + "): index: ";
    std::string why;
    std::optional<std::string> read = storage_->read_index(&why);
    if (!read) {
        if (!why.empty()) return fail(error, why);
        generation_ = 0;  // no key imported yet: an empty store
        records_.clear();
        index_text_.reset();
        rebuild();
        return true;
    }
    // A writer re-reads the index under its lock; when no one else changed it (the usual case:
    // the Issuer imports one key after another) the records in memory are that text already.
    if (index_text_ && *index_text_ == *read && generation_ > 0) return true;
    const std::string& text = *read;
    std::istringstream in(text);
    std::string line;
    if (!std::getline(in, line) || (line != kIndexMagic && line != kIndexMagicV1))
        return fail(error, where + "not a sealmilter key index");
    const bool v1 = line == kIndexMagicV1;
    unsigned generation = 0;
    std::string check;
    std::vector<Record> records;
    // The chain certificates repeat (every key of one CA names the same issuers): each distinct
    // one is decoded once and shared.
    std::unordered_map<std::string, crypto::Certificate> chain_certs;
    size_t n = 1;
    // Bounded by the file (read_file's limit).
    while (std::getline(in, line)) {
        ++n;
        std::istringstream f(line);
        std::string kind;
        f >> kind;
        if (kind == "generation") {
            f >> generation;
        } else if (kind == "check") {
            f >> check;
        } else if (kind == "key") {
            std::optional<Record> r = v1 ? parse_record_v1(f, chain_certs) : parse_record(f, chain_certs);
            if (!r) return fail(error, where + "line " + std::to_string(n) + " is damaged");
            records.push_back(std::move(*r));
        }
    }
    if (generation == 0 || check.empty()) return fail(error, where + "no generation or check value");
    if (unwrap(master_, crypto::decode_base64(check), kCheckAad) != std::string(kCheckPlain))
        return fail(error, "keys.master_key_file " + options_.master_key_file + " does not open the key store in " +
                               storage_->describe() + " (its check value fails: another master key, or `keys rewrap` moved "
                               "the store to a new one)");
    generation_ = generation;
    records_ = std::move(records);
    index_text_ = std::move(read);
    rebuild();
    return true;
}

// Version 2 (written since the lazy index): "key ID STATE ORIGIN FILE URI SHA256 NOT_BEFORE
// NOT_AFTER ADDRESSES INDEX_KEYS CERT CHAIN" — everything the KeyIndex needs is on the line, the
// certificate is kept as DER (checked against SHA256) and parsed only when its entry is used.
std::optional<KeyStore::Record> KeyStore::parse_record(std::istringstream& f,
                                                       std::unordered_map<std::string, crypto::Certificate>& chain_certs) const {
    Record r;
    std::string state;
    std::string origin;
    std::string sha;
    long long not_before = 0;
    long long not_after = 0;
    std::string addresses;
    std::string index_keys;
    f >> r.id >> state >> origin >> r.file >> r.uri >> sha >> not_before >> not_after >> addresses >> index_keys >>
        r.cert_b64 >> r.chain_b64;
    const std::optional<KeyState> s = parse_state(state);
    if (f.fail() || !s || (origin != "file" && origin != "token") || index_keys.empty()) return std::nullopt;
    std::string der = crypto::decode_base64(r.cert_b64);
    if (der.empty() || sha256_hex(der) != sha) return std::nullopt;  // a damaged line
    std::optional<std::vector<crypto::Certificate>> chain = decode_chain(r.chain_b64, chain_certs, true);
    if (!chain) return std::nullopt;
    r.state = *s;
    r.origin = origin == "token" ? KeyOrigin::Token : KeyOrigin::File;
    if (r.uri == "-") r.uri.clear();
    KeyInfo k{r.id, {}, crypto::Certificate::from_der_lazily(std::move(der)), std::move(*chain), r.state, r.origin,
              r.origin == KeyOrigin::Token ? r.uri : storage_->location(r.file)};
    if (addresses != "-") k.addresses = split_list(addresses, true);
    k.index_keys = split_list(index_keys, true);
    k.recorded_not_before = static_cast<std::time_t>(not_before);
    k.recorded_not_after = static_cast<std::time_t>(not_after);
    k.recorded_sha256 = std::move(sha);
    r.entry = std::make_shared<const KeyInfo>(std::move(k));
    return r;
}

// Version 1 (before the lazy index): "key ID STATE ORIGIN FILE URI CERT CHAIN"; every
// certificate is parsed to index it. Read as it is; the next write stores version 2.
std::optional<KeyStore::Record> KeyStore::parse_record_v1(std::istringstream& f,
                                                          std::unordered_map<std::string, crypto::Certificate>& chain_certs) const {
    Record r;
    std::string state;
    std::string origin;
    f >> r.id >> state >> origin >> r.file >> r.uri >> r.cert_b64 >> r.chain_b64;
    const std::optional<KeyState> s = parse_state(state);
    std::optional<crypto::Certificate> cert = cert_from_b64(r.cert_b64);
    if (f.fail() || !s || (origin != "file" && origin != "token") || !cert) return std::nullopt;
    std::optional<std::vector<crypto::Certificate>> chain = decode_chain(r.chain_b64, chain_certs, false);
    if (!chain) return std::nullopt;
    r.state = *s;
    r.origin = origin == "token" ? KeyOrigin::Token : KeyOrigin::File;
    if (r.uri == "-") r.uri.clear();
    r.entry = make_entry(r, *storage_, *cert, std::move(*chain));
    return r;
}

void KeyStore::rebuild() {
    index_ = KeyIndex();
    for (const Record& r : records_) index_.add(r.entry);
}

void KeyStore::for_each(const std::function<void(const KeyEntry&)>& fn) const {
    for (const KeyEntry& e : index_.all()) fn(e);
}

KeyEntry KeyStore::resolve(std::string_view id) const {
    std::string want = base::to_lower(id);
    want.erase(std::remove(want.begin(), want.end(), ':'), want.end());
    for (const KeyEntry& e : index_.all())
        if (e->id == want || e->sha256() == want) return e;
    return nullptr;
}

PrivateKey KeyStore::cached(const std::string& id) const {
    const base::MutexLock lock(mu_);
    for (auto it = lru_.begin(); it != lru_.end(); ++it) {
        if (it->first != id) continue;
        lru_.splice(lru_.begin(), lru_, it);
        return lru_.front().second;
    }
    return nullptr;
}

void KeyStore::remember(const std::string& id, const PrivateKey& key) const {
    if (options_.max_unwrapped == 0) return;
    const base::MutexLock lock(mu_);
    lru_.emplace_front(id, key);
    while (lru_.size() > options_.max_unwrapped) lru_.pop_back();
}

PrivateKey KeyStore::private_key(const KeyInfo& key, std::string* error) const {
    if (PrivateKey k = cached(key.id)) return k;
    crypto::KeyMaterial m;
    if (key.origin == KeyOrigin::Token) {
        std::optional<crypto::KeyMaterial> t =
            load_token_key(key.location, TokenOptions{options_.pkcs11_module, options_.pkcs11_pin_file}, key.certificate, error);
        if (!t) return nullptr;
        m = std::move(*t);
    } else {
        std::string why;
        const std::optional<std::string> read = storage_->read_key(storage_->name_at(key.location), &why);
        if (!read) {
            fail(error, "key " + key.id + ": " + why);
            return nullptr;
        }
        const std::string& text = *read;
        const std::optional<std::string> wrapped = field(text, "wrapped");
        m.key = wrapped ? unwrap_private_key(master_, crypto::decode_base64(*wrapped), aad_for(key.id, key.sha256())) : nullptr;
        if (!m.key) {
            fail(error, "key " + key.id + ": " + key.location + " does not unwrap (damaged, or not of this store)");
            return nullptr;
        }
        m.certificate = key.certificate;
        m.chain = key.chain;
    }
    auto shared = std::make_shared<const crypto::KeyMaterial>(std::move(m));
    remember(key.id, shared);
    return shared;
}

bool KeyStore::commit(std::vector<Record> records, unsigned generation, const MasterKey& key, std::string* error) {
    std::string text = std::string(kIndexMagic) + "\ngeneration " + std::to_string(generation) + "\ncheck " +
                       b64(wrap(key, kCheckPlain, kCheckAad)) + "\n";
    for (const Record& r : records) {
        const KeyInfo& k = *r.entry;
        std::string addresses;
        for (const std::string& a : k.addresses) addresses += (addresses.empty() ? "" : ",") + escape_item(a);
        std::string index_keys;
        for (const std::string& x : k.index_keys) index_keys += (index_keys.empty() ? "" : ",") + escape_item(x);
        text += "key " + r.id + " " + state_name(r.state) + " " + origin_name(r.origin) + " " + r.file + " " +
                (r.uri.empty() ? std::string("-") : r.uri) + " " + k.sha256() + " " + std::to_string(k.not_before()) + " " +
                std::to_string(k.not_after()) + " " + (addresses.empty() ? std::string("-") : addresses) + " " + index_keys +
                " " + r.cert_b64 + " " + r.chain_b64 + "\n";
    }
    try {
        if (before_index_) before_index_();
        storage_->replace_index(text, index_text_);
    } catch (const std::exception& e) {
        return fail(error, std::string("key store index not written: ") + e.what());
    }
    generation_ = generation;
    records_ = std::move(records);
    index_text_ = std::move(text);
    rebuild();
    return true;
}

std::optional<KeyStore::ImportReport> KeyStore::import_keys(std::vector<crypto::KeyMaterial> keys, std::string* error) {
    return import_keys(std::move(keys), KeyState::Active, error);
}

std::optional<KeyStore::ImportReport> KeyStore::import_keys(std::vector<crypto::KeyMaterial> keys, KeyState state,
                                                            std::string* error) {
    try {
        const std::unique_ptr<KeyStorage::Guard> lock = storage_->lock();
        if (!load_index(error)) return std::nullopt;  // another writer may have changed it
        const unsigned generation = generation_ == 0 ? 1 : generation_;
        std::vector<Record> records = records_;
        std::vector<std::pair<std::string, std::string>> texts;
        ImportReport report;
        // Hash sets, not scans: a batch of 100,000 against a store of 100,000 stays linear.
        std::unordered_map<std::string, size_t> by_sha;
        std::unordered_set<std::string> ids;
        for (size_t i = 0; i < records.size(); ++i) {
            by_sha.emplace(records[i].entry->sha256(), i);
            ids.insert(records[i].id);
        }
        for (crypto::KeyMaterial& m : keys) {
            if (!m.certificate || !m.key) {
                fail(error, "a private key without its certificate cannot be indexed; nothing imported");
                return std::nullopt;
            }
            if (X509_check_private_key(m.certificate->native(), m.key.get()) != 1) {
                crypto::drain_errors();
                fail(error, "the key does not belong to the certificate " + m.certificate->subject() + "; nothing imported");
                return std::nullopt;
            }
            Record r;
            r.state = state;
            r.entry = make_entry(r, *storage_, *m.certificate, {});
            const std::string sha = r.entry->sha256();
            if (const auto same = by_sha.find(sha); same != by_sha.end()) {
                report.already.push_back(records[same->second].entry);
                continue;
            }
            size_t len = kIdLength;  // a longer id on the (2^-64) chance of a prefix collision
            while (ids.count(sha.substr(0, len)) != 0) len += 8;
            r.id = sha.substr(0, len);
            ids.insert(r.id);
            by_sha.emplace(sha, records.size());
            r.file = key_file_name(r.id, generation);
            r.cert_b64 = cert_b64(*m.certificate);
            r.chain_b64.clear();
            for (const crypto::Certificate& c : m.chain) r.chain_b64 += (r.chain_b64.empty() ? "" : ",") + cert_b64(c);
            if (r.chain_b64.empty()) r.chain_b64 = "-";
            const std::string wrapped = "wrapped " + b64(wrap_private_key(master_, m.key.get(), aad_for(r.id, sha)));
            texts.emplace_back(r.file, key_file_text(r.id, r.state, r.origin, sha, wrapped, *m.certificate, m.chain));
            r.entry = make_entry(r, *storage_, *m.certificate, m.chain);
            report.added.push_back(r.entry);
            records.push_back(std::move(r));
        }
        if (report.added.empty()) return report;
        storage_->put_keys(texts);
        if (!commit(std::move(records), generation, master_, error)) return std::nullopt;
        return report;
    } catch (const std::exception& e) {
        fail(error, e.what());
        return std::nullopt;
    }
}

std::optional<KeyStore::ImportReport> KeyStore::import_token_key(const std::string& uri, const crypto::Certificate& certificate,
                                                                 const std::vector<crypto::Certificate>& chain,
                                                                 std::string* error) {
    if (uri.rfind("pkcs11:", 0) != 0 || uri.find_first_of(" \t\r\n") != std::string::npos) {
        fail(error, "not a pkcs11: URI (RFC 7512): " + uri);
        return std::nullopt;
    }
    if (uri.find("pin-value") != std::string::npos) {
        fail(error, "the URI carries pin-value: the PIN would be kept in the store; use keys.pkcs11_pin_file");
        return std::nullopt;
    }
    try {
        const std::unique_ptr<KeyStorage::Guard> lock = storage_->lock();
        if (!load_index(error)) return std::nullopt;
        const unsigned generation = generation_ == 0 ? 1 : generation_;
        std::vector<Record> records = records_;
        Record r;
        r.origin = KeyOrigin::Token;
        r.uri = uri;
        r.entry = make_entry(r, *storage_, certificate, chain);
        const std::string sha = r.entry->sha256();
        ImportReport report;
        for (const Record& x : records) {
            if (x.entry->sha256() != sha) continue;
            report.already.push_back(x.entry);
            return report;
        }
        r.id = sha.substr(0, kIdLength);
        r.file = key_file_name(r.id, generation);
        r.cert_b64 = cert_b64(certificate);
        r.chain_b64.clear();
        for (const crypto::Certificate& c : chain) r.chain_b64 += (r.chain_b64.empty() ? "" : ",") + cert_b64(c);
        if (r.chain_b64.empty()) r.chain_b64 = "-";
        storage_->put_keys({{r.file, key_file_text(r.id, r.state, r.origin, sha, "uri " + uri, certificate, chain)}});
        r.entry = make_entry(r, *storage_, certificate, chain);
        report.added.push_back(r.entry);
        records.push_back(std::move(r));
        if (!commit(std::move(records), generation, master_, error)) return std::nullopt;
        return report;
    } catch (const std::exception& e) {
        fail(error, e.what());
        return std::nullopt;
    }
}

bool KeyStore::set_state(const std::string& id, KeyState state, std::string* error) {
    try {
        const std::unique_ptr<KeyStorage::Guard> lock = storage_->lock();
        if (!load_index(error)) return false;
        const KeyEntry target = resolve(id);
        if (!target) return fail(error, "no key " + id + " in " + storage_->describe());
        std::vector<Record> records = records_;
        for (Record& r : records) {
            if (r.id != target->id) continue;
            r.state = state;
            // The key file records the state too (the index is what counts).
            std::string why;
            std::optional<std::string> text = storage_->read_key(r.file, &why);
            if (!text) return fail(error, "key " + r.id + ": " + why);
            const size_t at = text->find("\nstate ");
            const size_t end = at == std::string::npos ? at : text->find('\n', at + 1);
            if (end != std::string::npos) {
                text->replace(at, end - at, std::string("\nstate ") + state_name(state));
                storage_->put_keys({{r.file, *text}});
            }
            KeyInfo changed = *r.entry;
            changed.state = state;
            r.entry = std::make_shared<const KeyInfo>(std::move(changed));
        }
        return commit(std::move(records), generation_, master_, error);
    } catch (const std::exception& e) {
        return fail(error, e.what());
    }
}

bool KeyStore::remove_key(const std::string& id, std::string* error) {
    try {
        const std::unique_ptr<KeyStorage::Guard> lock = storage_->lock();
        if (!load_index(error)) return false;
        const KeyEntry target = resolve(id);
        if (!target) return fail(error, "no key " + id + " in " + storage_->describe());
        if (target->state != KeyState::Escrowed)
            return fail(error, "key " + target->id + " is " + state_name(target->state) +
                                   ": only an escrowed key is ever removed from the store");
        std::vector<Record> records = records_;
        std::string file;
        for (auto it = records.begin(); it != records.end(); ++it) {
            if (it->id != target->id) continue;
            file = it->file;
            records.erase(it);
            break;
        }
        if (!commit(std::move(records), generation_, master_, error)) return false;
        {
            const base::MutexLock l(mu_);
            lru_.remove_if([&](const std::pair<std::string, PrivateKey>& k) { return k.first == target->id; });
        }
        // After the index: a crash in between leaves an unreferenced file, never an entry without one.
        storage_->remove_keys({file});
        return true;
    } catch (const std::exception& e) {
        return fail(error, e.what());
    }
}

bool KeyStore::rewrap(const MasterKey& new_key, std::string* error) {
    try {
        const std::unique_ptr<KeyStorage::Guard> lock = storage_->lock();
        if (!load_index(error)) return false;
        const unsigned generation = generation_ + 1;
        std::vector<Record> records = records_;
        std::vector<std::string> old_files;
        std::vector<std::pair<std::string, std::string>> texts;
        for (Record& r : records) {
            const std::string old_path = storage_->location(r.file);
            std::string why;
            std::optional<std::string> read = storage_->read_key(r.file, &why);
            if (!read) return fail(error, "key " + r.id + ": " + why + "; nothing changed");
            std::string text = std::move(*read);
            if (r.origin == KeyOrigin::File) {
                const std::string aad = aad_for(r.id, r.entry->sha256());
                const std::optional<std::string> line = field(text, "wrapped");
                std::optional<std::string> plain = line ? unwrap(master_, crypto::decode_base64(*line), aad) : std::nullopt;
                if (!plain) return fail(error, "key " + r.id + ": " + old_path + " does not unwrap; nothing changed");
                std::string secret = std::move(*plain);
                const std::string fresh = b64(wrap(new_key, secret, aad));
                OPENSSL_cleanse(secret.data(), secret.size());
                const size_t at = text.find("\nwrapped ");
                text.replace(at + 9, text.find('\n', at + 1) - at - 9, fresh);
            }
            old_files.push_back(r.file);
            r.file = key_file_name(r.id, generation);
            texts.emplace_back(r.file, std::move(text));
            r.entry = relocated(r, *storage_);
        }
        storage_->put_keys(texts);
        if (!commit(std::move(records), generation, new_key, error)) return false;
        master_ = new_key;
        storage_->remove_keys(old_files);  // superseded copies under the old key
        return true;
    } catch (const std::exception& e) {
        return fail(error, e.what());
    }
}

}  // namespace sealmilter::keys
