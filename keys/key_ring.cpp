// keys/key_ring.cpp — the KeyRing helpers and the in-memory ring (see key_ring.hpp).
#include "keys/key_ring.hpp"

#include "base/ascii.hpp"
#include "base/encoding.hpp"

#include <algorithm>

namespace sealmilter::keys {

const char* state_name(KeyState s) noexcept {
    switch (s) {
    case KeyState::Active: return "active";
    case KeyState::Retired: return "retired";
    case KeyState::Compromised: return "compromised";
    case KeyState::Escrowed: return "escrowed";
    }
    return "?";
}

std::optional<KeyState> parse_state(std::string_view name) noexcept {
    for (const KeyState s : {KeyState::Active, KeyState::Retired, KeyState::Compromised, KeyState::Escrowed}) {
        if (name == state_name(s)) return s;
    }
    return std::nullopt;
}

const char* origin_name(KeyOrigin o) noexcept { return o == KeyOrigin::Token ? "token" : "file"; }

std::string KeyInfo::sha256() const {
    if (!recorded_sha256.empty()) return recorded_sha256;
    std::string fp = certificate.fingerprint_sha256();
    fp.erase(std::remove(fp.begin(), fp.end(), ':'), fp.end());
    return base::to_lower(fp);
}

std::time_t KeyInfo::not_before() const {
    return recorded_not_before != 0 ? recorded_not_before : certificate.not_before();
}

std::time_t KeyInfo::not_after() const { return recorded_not_after != 0 ? recorded_not_after : certificate.not_after(); }

KeyInfo describe_key(std::string id, const crypto::Certificate& certificate, std::vector<crypto::Certificate> chain,
                     KeyState state, KeyOrigin origin, std::string location) {
    KeyInfo k{std::move(id), {}, certificate, std::move(chain), state, origin, std::move(location)};
    for (const std::string& a : certificate.email_addresses()) k.addresses.push_back(base::to_lower(a));
    for (const crypto::RecipientId& rid : crypto::certificate_ids(certificate)) k.index_keys.push_back(rid.index_key());
    k.recorded_not_before = certificate.not_before();
    k.recorded_not_after = certificate.not_after();
    k.recorded_sha256 = k.sha256();
    return k;
}

KeyState effective_state(const KeyInfo& key, std::time_t now) noexcept {
    if (key.state != KeyState::Active) return key.state;
    try {
        if (key.not_after() < now) return KeyState::Retired;
    } catch (const std::exception&) {  // a damaged lazily held certificate: never active
        return KeyState::Retired;
    }
    return key.state;
}

KeyEntry active_key_for(const KeyRing& ring, std::string_view address, std::time_t now) {
    for (const KeyEntry& e : ring.for_address(address)) {  // newest first
        if (effective_state(*e, now) == KeyState::Active && e->not_before() <= now) return e;
    }
    return nullptr;
}

void KeyIndex::add(const KeyEntry& entry) {
    all_.push_back(entry);
    if (!entry->index_keys.empty()) {  // recorded by the store's index: no parse
        for (const std::string& k : entry->index_keys) by_id_[k].push_back(entry);
    } else {
        for (const crypto::RecipientId& id : crypto::certificate_ids(entry->certificate)) by_id_[id.index_key()].push_back(entry);
    }
    // Appended in O(1): a store of 100,000 keys is indexed in one pass; for_address sorts the
    // (few) keys of one address when asked.
    for (const std::string& a : entry->addresses) by_address_[base::to_lower(a)].push_back(entry);
}

std::vector<KeyEntry> KeyIndex::find(const crypto::RecipientId& id) const {
    const auto it = by_id_.find(id.index_key());
    return it == by_id_.end() ? std::vector<KeyEntry>{} : it->second;
}

std::vector<KeyEntry> KeyIndex::for_address(std::string_view address) const {
    const auto it = by_address_.find(base::to_lower(address));
    if (it == by_address_.end()) return {};
    std::vector<KeyEntry> list = it->second;
    std::stable_sort(list.begin(), list.end(), [](const KeyEntry& x, const KeyEntry& y) {
        return x->not_before() > y->not_before();
    });
    return list;
}

bool MemoryKeyRing::add(crypto::KeyMaterial material, std::string location) {
    if (!material.certificate || !material.key) return false;
    auto info = std::make_shared<KeyInfo>(
        describe_key({}, *material.certificate, material.chain, KeyState::Active, KeyOrigin::File, std::move(location)));
    info->id = info->sha256();
    if (keys_.count(info->id) != 0) return true;  // the same key twice: once is enough
    keys_.emplace(info->id, std::make_shared<const crypto::KeyMaterial>(std::move(material)));
    index_.add(info);
    return true;
}

PrivateKey MemoryKeyRing::private_key(const KeyInfo& key, std::string* error) const {
    const auto it = keys_.find(key.id);
    if (it != keys_.end()) return it->second;
    if (error != nullptr) *error = "key " + key.id + " is not in this ring";
    return nullptr;
}

void MemoryKeyRing::for_each(const std::function<void(const KeyEntry&)>& fn) const {
    for (const KeyEntry& e : index_.all()) fn(e);
}

}  // namespace sealmilter::keys
