// keys/token.cpp — PKCS#11 token keys through libp11, URIs through p11-kit. See token.hpp.
//
// Why these libraries: libp11 (Debian libp11-dev, the library under the OpenSSL pkcs11 engine)
// turns a token object into an EVP_PKEY whose private operations run on the token, which is
// what CMS_decrypt and signing need; p11-kit (libp11-kit-dev) parses and formats RFC 7512
// URIs and matches them against token and slot information. libp11 is not thread-safe per
// slot, so every call into it — including the decrypt / sign / derive calls OpenSSL makes
// later through the returned key (token_proxy) — runs under the module's base::Mutex.
#include "keys/token.hpp"

#include "base/file.hpp"
#include "base/mutex.hpp"
#include "keys/token_proxy.hpp"

#include <dlfcn.h>
#include <libp11.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <p11-kit/uri.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>

namespace sealmilter::keys {
namespace {

using P11KitUri_ptr = std::unique_ptr<P11KitUri, base::Deleter<p11_kit_uri_free>>;
// p11_kit_uri_format() returns malloc'd text: free() is its documented release.
inline void free_c_string(char* s) noexcept { std::free(s); }  // NOLINT(cppcoreguidelines-no-malloc,cppcoreguidelines-owning-memory)
using CString_ptr = std::unique_ptr<char, base::Deleter<free_c_string>>;

std::string hex(const unsigned char* p, size_t n) {
    static const char* const kDigits = "0123456789abcdef";
    std::string out;
    for (size_t i = 0; i < n; ++i) {
        out += kDigits[p[i] >> 4];
        out += kDigits[p[i] & 0x0f];
    }
    return out;
}

std::string sha256(const std::string& s) {
    unsigned char md[EVP_MAX_MD_SIZE];
    size_t len = 0;
    if (EVP_Q_digest(nullptr, "SHA256", nullptr, s.data(), s.size(), md, &len) != 1) return {};
    return hex(md, len);
}

// ---- the URI -----------------------------------------------------------------------------

struct Request {
    P11KitUri_ptr uri;
    std::string module;  // module-path, else options.module, else the p11-kit proxy
    std::string pin;     // empty: no login
};

bool read_pin_file(const std::string& path, std::string* pin, std::string* error) {
    try {
        std::string s = base::read_file(path, 4096);
        const size_t eol = s.find_first_of("\r\n");
        if (eol != std::string::npos) s.resize(eol);
        *pin = std::move(s);
        return true;
    } catch (const std::exception& e) {
        *error = "cannot read the PKCS#11 PIN file " + path + ": " + e.what();
        return false;
    }
}

std::optional<Request> parse_request(const std::string& text, const TokenOptions& options,
                                     std::string* error) {
    Request r;
    r.uri.reset(p11_kit_uri_new());
    if (!r.uri) throw std::bad_alloc();
    if (text.rfind("pkcs11:", 0) != 0) {
        *error = "not a pkcs11: URI (RFC 7512)";
        return std::nullopt;
    }
    const int rc = p11_kit_uri_parse(text.c_str(), P11_KIT_URI_FOR_ANY, r.uri.get());
    if (rc != P11_KIT_URI_OK) {
        *error = std::string("malformed pkcs11: URI: ") + p11_kit_uri_message(rc);
        return std::nullopt;
    }
    if (p11_kit_uri_any_unrecognized(r.uri.get()) != 0) {
        *error = "the pkcs11: URI has an attribute this gateway does not understand";
        return std::nullopt;
    }
    // Attributes that would select something this code cannot check are refused, never
    // ignored (ignoring one would widen the match to keys it was meant to exclude).
    if (p11_kit_uri_get_module_name(r.uri.get()) != nullptr) {
        *error = "module-name is not supported in a pkcs11: URI; use module-path or keys.pkcs11_module";
        return std::nullopt;
    }
    if (p11_kit_uri_get_module_info(r.uri.get())->libraryVersion.major != static_cast<CK_BYTE>(-1)) {
        *error = "library-version is not supported in a pkcs11: URI";
        return std::nullopt;
    }
    const char* module_path = p11_kit_uri_get_module_path(r.uri.get());
    r.module = module_path != nullptr ? module_path
               : options.module.empty() ? kDefaultPkcs11Module
                                        : options.module;
    if (const char* pin = p11_kit_uri_get_pin_value(r.uri.get()); pin != nullptr) {
        r.pin = pin;
    } else if (const char* source = p11_kit_uri_get_pin_source(r.uri.get()); source != nullptr) {
        std::string path = source;
        if (path.rfind("file:", 0) == 0) path.erase(0, 5);
        if (!read_pin_file(path, &r.pin, error)) return std::nullopt;
    } else if (!options.pin_file.empty()) {
        if (!read_pin_file(options.pin_file, &r.pin, error)) return std::nullopt;
    }
    return r;
}

// Space-padded fixed-width PKCS#11 string fields, as p11-kit's matchers compare them.
void pad_copy(unsigned char* field, size_t width, const char* value) {
    std::memset(field, ' ', width);
    if (value != nullptr) std::copy_n(value, std::min(width, std::strlen(value)), field);
}

CK_TOKEN_INFO token_info(const PKCS11_TOKEN& t) {
    CK_TOKEN_INFO info{};
    pad_copy(info.label, sizeof info.label, t.label);
    pad_copy(info.manufacturerID, sizeof info.manufacturerID, t.manufacturer);
    pad_copy(info.model, sizeof info.model, t.model);
    pad_copy(info.serialNumber, sizeof info.serialNumber, t.serialnr);
    return info;
}

CK_SLOT_INFO slot_info(const PKCS11_SLOT& s) {
    CK_SLOT_INFO info{};
    pad_copy(info.slotDescription, sizeof info.slotDescription, s.description);
    pad_copy(info.manufacturerID, sizeof info.manufacturerID, s.manufacturer);
    return info;
}

CK_INFO module_info(const PKCS11_CTX& ctx) {
    CK_INFO info{};
    pad_copy(info.manufacturerID, sizeof info.manufacturerID, ctx.manufacturer);
    pad_copy(info.libraryDescription, sizeof info.libraryDescription, ctx.description);
    return info;
}

bool attribute_equals(P11KitUri* uri, CK_ATTRIBUTE_TYPE type, const void* value, size_t len) {
    const CK_ATTRIBUTE* a = p11_kit_uri_get_attribute(uri, type);
    if (a == nullptr) return true;  // not constrained
    return a->ulValueLen == len && (len == 0 || std::memcmp(a->pValue, value, len) == 0);
}

std::string describe_object_filter(P11KitUri* uri) {
    std::string out;
    if (const CK_ATTRIBUTE* a = p11_kit_uri_get_attribute(uri, CKA_ID); a != nullptr) {
        out += "id=" + hex(static_cast<const unsigned char*>(a->pValue), a->ulValueLen);
    }
    if (const CK_ATTRIBUTE* a = p11_kit_uri_get_attribute(uri, CKA_LABEL); a != nullptr) {
        if (!out.empty()) out += ", ";
        out += "object=" + std::string(static_cast<const char*>(a->pValue), a->ulValueLen);
    }
    return out.empty() ? "any" : out;
}

// ---- the module --------------------------------------------------------------------------

// Proxies by slot id + CKA_ID + CKA_LABEL (libp11 may re-list objects, so never by pointer).
using TokenKeyCache = std::map<std::string, crypto::EVP_PKEY_ptr>;

// One loaded PKCS#11 module; never unloaded (the proxies hold pointers into it).
struct Module {
    std::string path;
    base::Mutex mu;
    PKCS11_CTX* ctx SEALMILTER_GUARDED_BY(mu) = nullptr;
    PKCS11_SLOT* slots SEALMILTER_GUARDED_BY(mu) = nullptr;
    unsigned nslots SEALMILTER_GUARDED_BY(mu) = 0;
    CK_FUNCTION_LIST* raw SEALMILTER_GUARDED_BY(mu) = nullptr;  // for attributes libp11 hides
    std::map<unsigned long, std::string> pin_digest SEALMILTER_GUARDED_BY(mu);  // by slot id
    TokenKeyCache proxies SEALMILTER_GUARDED_BY(mu);
};

CK_FUNCTION_LIST* raw_functions(const std::string& path) {
    // The module is already loaded by libp11: RTLD_NOLOAD only finds it (one more reference,
    // kept for the process like libp11's own).
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD);
    if (handle == nullptr) return nullptr;
    auto* get_list = reinterpret_cast<CK_C_GetFunctionList>(dlsym(handle, "C_GetFunctionList"));
    CK_FUNCTION_LIST* list = nullptr;
    if (get_list == nullptr || get_list(&list) != CKR_OK) return nullptr;
    return list;
}

Module* load_module(const std::string& path, std::string* error) {
    static base::Mutex registry_mu;
    // Never destroyed: token keys handed out may be used until the very end of the process
    // (and a module unloaded under a live key would crash), so the registry stays reachable.
    static auto& registry = *new std::map<std::string, std::unique_ptr<Module>>();  // NOLINT(cppcoreguidelines-owning-memory)
    base::MutexLock lock(registry_mu);
    if (auto it = registry.find(path); it != registry.end()) return it->second.get();
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
        *error = "PKCS#11 module " + path + " does not exist (keys.pkcs11_module)";
        return nullptr;
    }
    auto m = std::make_unique<Module>();
    m->path = path;
    base::MutexLock module_lock(m->mu);
    ERR_clear_error();
    m->ctx = PKCS11_CTX_new();
    if (m->ctx == nullptr) throw std::bad_alloc();
    if (PKCS11_CTX_load(m->ctx, path.c_str()) != 0) {
        *error = "cannot load PKCS#11 module " + path + ": " + crypto::drain_errors();
        PKCS11_CTX_free(m->ctx);
        return nullptr;
    }
    if (PKCS11_enumerate_slots(m->ctx, &m->slots, &m->nslots) != 0) {
        *error = "PKCS#11 module " + path + ": cannot list slots: " + crypto::drain_errors();
        PKCS11_CTX_unload(m->ctx);
        PKCS11_CTX_free(m->ctx);
        return nullptr;
    }
    m->raw = raw_functions(path);
    Module* out = m.get();
    registry.emplace(path, std::move(m));
    return out;
}

// Logs in to a token once per process; a second, different PIN is refused rather than
// silently accepted because the token is already open.
bool login(Module& m, PKCS11_SLOT* slot, const std::string& pin, std::string* error)
    SEALMILTER_REQUIRES(m.mu) {
    const unsigned long id = PKCS11_get_slotid_from_slot(slot);
    const std::string digest = sha256(pin);
    if (auto it = m.pin_digest.find(id); it != m.pin_digest.end()) {
        if (it->second == digest) return true;
        *error = std::string("token '") + slot->token->label +
                 "' is already logged in by this process with a different PIN";
        return false;
    }
    ERR_clear_error();
    if (PKCS11_login(slot, 0, pin.c_str()) != 0) {
        *error = std::string("token '") + slot->token->label + "' refused the PIN: " + crypto::drain_errors();
        return false;
    }
    m.pin_digest.emplace(id, digest);
    return true;
}

struct Match {
    PKCS11_SLOT* slot = nullptr;
    PKCS11_KEY* key = nullptr;
};

// Every private key of the tokens the URI names that passes its id/object/type filter.
std::optional<std::vector<Match>> find_keys(Module& m, const Request& r, std::string* error)
    SEALMILTER_REQUIRES(m.mu) {
    P11KitUri* uri = r.uri.get();
    if (const CK_ATTRIBUTE* a = p11_kit_uri_get_attribute(uri, CKA_CLASS); a != nullptr) {
        CK_OBJECT_CLASS cls = 0;
        if (a->ulValueLen == sizeof cls) std::memcpy(&cls, a->pValue, sizeof cls);
        if (cls != CKO_PRIVATE_KEY) {
            *error = "the pkcs11: URI names no private key (use type=private or leave type out)";
            return std::nullopt;
        }
    }
    const CK_SLOT_ID wanted_slot = p11_kit_uri_get_slot_id(uri);
    std::vector<Match> out;
    if (CK_INFO info = module_info(*m.ctx); p11_kit_uri_match_module_info(uri, &info) != 1) {
        *error = "the pkcs11: URI's library-manufacturer/library-description do not match module " + m.path;
        return std::nullopt;
    }
    std::string tokens_seen;
    bool token_matched = false;
    for (unsigned i = 0; i < m.nslots; ++i) {
        PKCS11_SLOT* slot = &m.slots[i];
        if (slot->token == nullptr || slot->token->initialized == 0) continue;
        if (!tokens_seen.empty()) tokens_seen += ", ";
        tokens_seen += std::string("'") + slot->token->label + "'";
        CK_TOKEN_INFO info = token_info(*slot->token);
        if (p11_kit_uri_match_token_info(uri, &info) != 1) continue;
        if (CK_SLOT_INFO si = slot_info(*slot); p11_kit_uri_match_slot_info(uri, &si) != 1) continue;
        if (wanted_slot != static_cast<CK_SLOT_ID>(-1) && PKCS11_get_slotid_from_slot(slot) != wanted_slot) continue;
        token_matched = true;
        if (!r.pin.empty() && !login(m, slot, r.pin, error)) return std::nullopt;
        PKCS11_KEY* keys = nullptr;
        unsigned nkeys = 0;
        if (PKCS11_enumerate_keys(slot->token, &keys, &nkeys) != 0) {
            *error = std::string("token '") + slot->token->label + "': cannot list keys: " + crypto::drain_errors();
            return std::nullopt;
        }
        for (unsigned k = 0; k < nkeys; ++k) {
            PKCS11_KEY* key = &keys[k];
            if (key->isPrivate == 0) continue;
            if (!attribute_equals(uri, CKA_ID, key->id, key->id_len)) continue;
            const size_t label_len = key->label != nullptr ? std::strlen(key->label) : 0;
            if (!attribute_equals(uri, CKA_LABEL, key->label, label_len)) continue;
            out.push_back({slot, key});
        }
    }
    if (!token_matched) {
        *error = "no token matches the pkcs11: URI (tokens present: " +
                 (tokens_seen.empty() ? std::string("none") : tokens_seen) + ")";
        return std::nullopt;
    }
    return out;
}

// CKA_EXTRACTABLE / CKA_SENSITIVE straight from the module (libp11 does not expose them).
// Unreadable attributes count as the unsafe value.
void read_protection(Module& m, PKCS11_SLOT* slot, const PKCS11_KEY* key, TokenObject& o)
    SEALMILTER_REQUIRES(m.mu) {
    o.extractable = true;
    o.sensitive = false;
    if (m.raw == nullptr) return;
    CK_SESSION_HANDLE session = 0;
    if (m.raw->C_OpenSession(PKCS11_get_slotid_from_slot(slot), CKF_SERIAL_SESSION, nullptr, nullptr,
                             &session) != CKR_OK) {
        return;
    }
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    std::vector<unsigned char> id(key->id, key->id + key->id_len);
    CK_ATTRIBUTE find[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_ID, id.data(), id.size()}};
    CK_OBJECT_HANDLE object = 0;
    CK_ULONG count = 0;
    if (m.raw->C_FindObjectsInit(session, find, 2) == CKR_OK) {
        m.raw->C_FindObjects(session, &object, 1, &count);
        m.raw->C_FindObjectsFinal(session);
    }
    if (count == 1) {
        CK_BBOOL extractable = CK_TRUE;
        CK_BBOOL sensitive = CK_FALSE;
        CK_ATTRIBUTE attrs[] = {{CKA_EXTRACTABLE, &extractable, sizeof extractable},
                                {CKA_SENSITIVE, &sensitive, sizeof sensitive}};
        if (m.raw->C_GetAttributeValue(session, object, attrs, 2) == CKR_OK) {
            o.extractable = extractable == CK_TRUE;
            o.sensitive = sensitive == CK_TRUE;
        }
    }
    m.raw->C_CloseSession(session);
}

std::string object_uri(const PKCS11_TOKEN& token, const PKCS11_KEY& key) {
    P11KitUri_ptr uri(p11_kit_uri_new());
    if (!uri) throw std::bad_alloc();
    *p11_kit_uri_get_token_info(uri.get()) = token_info(token);
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE type{CKA_CLASS, &cls, sizeof cls};
    p11_kit_uri_set_attribute(uri.get(), &type);
    if (key.id_len > 0) {
        CK_ATTRIBUTE id{CKA_ID, key.id, key.id_len};
        p11_kit_uri_set_attribute(uri.get(), &id);
    }
    if (key.label != nullptr && key.label[0] != '\0') {
        CK_ATTRIBUTE label{CKA_LABEL, key.label, std::strlen(key.label)};
        p11_kit_uri_set_attribute(uri.get(), &label);
    }
    char* text = nullptr;
    if (p11_kit_uri_format(uri.get(), P11_KIT_URI_FOR_OBJECT_ON_TOKEN, &text) != P11_KIT_URI_OK) return {};
    const CString_ptr owned(text);
    return text;
}

std::optional<crypto::Certificate> token_certificate(PKCS11_KEY* key) {
    PKCS11_CERT* cert = PKCS11_find_certificate(key);
    if (cert == nullptr || cert->x509 == nullptr) return std::nullopt;
    X509* copy = X509_dup(cert->x509);
    if (copy == nullptr) return std::nullopt;
    return crypto::Certificate(crypto::X509_ptr(copy));
}

std::string pubkey_der(EVP_PKEY* key) {
    unsigned char* der = nullptr;
    const int len = i2d_PUBKEY(key, &der);
    if (len <= 0) return {};
    std::string out(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
    OPENSSL_free(der);
    return out;
}

std::optional<crypto::KeyMaterial> load(const std::string& text, const TokenOptions& options,
                                        const crypto::Certificate* given, std::string* error) {
    std::string local;
    if (error == nullptr) error = &local;
    const std::optional<Request> r = parse_request(text, options, error);
    if (!r) return std::nullopt;
    Module* m = load_module(r->module, error);
    if (m == nullptr) return std::nullopt;
    base::MutexLock lock(m->mu);
    const std::optional<std::vector<Match>> found = find_keys(*m, *r, error);
    if (!found) return std::nullopt;
    if (found->size() != 1) {
        *error = found->empty()
                     ? "no private key on the token matches " + describe_object_filter(r->uri.get()) +
                           (r->pin.empty() ? " (no PIN given: private keys stay hidden until login)" : "")
                     : "the pkcs11: URI matches " + std::to_string(found->size()) +
                           " private keys; name one with id= or object=";
        return std::nullopt;
    }
    const Match& hit = found->front();
    crypto::KeyMaterial km;
    const std::string cache_key = std::to_string(PKCS11_get_slotid_from_slot(hit.slot)) + "/" +
                                  hex(hit.key->id, hit.key->id_len) + "/" +
                                  (hit.key->label != nullptr ? hit.key->label : "");
    auto cached = m->proxies.find(cache_key);
    if (cached == m->proxies.end()) {
        ERR_clear_error();
        crypto::EVP_PKEY_ptr token_key(PKCS11_get_private_key(hit.key));
        crypto::EVP_PKEY_ptr proxy = detail::make_token_proxy(std::move(token_key), m->mu);
        if (!proxy) {
            *error = "cannot use the token key (only RSA and EC keys are supported): " + crypto::drain_errors();
            return std::nullopt;
        }
        cached = m->proxies.emplace(cache_key, std::move(proxy)).first;
    }
    EVP_PKEY_up_ref(cached->second.get());
    km.key.reset(cached->second.get());
    if (given != nullptr) {
        const std::string want = pubkey_der(km.key.get());
        if (want.empty() || pubkey_der(X509_get0_pubkey(given->native())) != want) {
            *error = "the certificate " + given->subject() + " is not the token key's";
            return std::nullopt;
        }
        km.certificate = *given;
    } else {
        km.certificate = token_certificate(hit.key);
    }
    ERR_clear_error();  // libp11 may leave notes (e.g. already logged in) on success
    return km;
}

}  // namespace

std::optional<crypto::KeyMaterial> load_token_key(const std::string& pkcs11_uri, const TokenOptions& options,
                                                  std::string* error) {
    return load(pkcs11_uri, options, nullptr, error);
}

std::optional<crypto::KeyMaterial> load_token_key(const std::string& pkcs11_uri, const TokenOptions& options,
                                                  const crypto::Certificate& certificate, std::string* error) {
    return load(pkcs11_uri, options, &certificate, error);
}

std::vector<TokenObject> list_token_keys(const std::string& pkcs11_uri, const TokenOptions& options,
                                         std::string* error) {
    std::string local;
    if (error == nullptr) error = &local;
    error->clear();
    const std::optional<Request> r = parse_request(pkcs11_uri, options, error);
    if (!r) return {};
    Module* m = load_module(r->module, error);
    if (m == nullptr) return {};
    base::MutexLock lock(m->mu);
    const std::optional<std::vector<Match>> found = find_keys(*m, *r, error);
    if (!found) return {};
    std::vector<TokenObject> out;
    for (const Match& hit : *found) {
        TokenObject o;
        o.uri = object_uri(*hit.slot->token, *hit.key);
        o.token_label = hit.slot->token->label != nullptr ? hit.slot->token->label : "";
        o.label = hit.key->label != nullptr ? hit.key->label : "";
        o.id_hex = hex(hit.key->id, hit.key->id_len);
        const int type = PKCS11_get_key_type(hit.key);
        o.key_type = type == EVP_PKEY_RSA ? "RSA" : type == EVP_PKEY_EC ? "EC" : "other";
        read_protection(*m, hit.slot, hit.key, o);
        o.certificate = token_certificate(hit.key);
        out.push_back(std::move(o));
    }
    ERR_clear_error();
    return out;
}

namespace {

// RSA-OAEP with SHA-256 for both the OAEP hash and MGF1 (RFC 8017 §7.1).
crypto::EVP_PKEY_CTX_ptr oaep_context(EVP_PKEY* key, bool encrypt) {
    crypto::EVP_PKEY_CTX_ptr ctx(EVP_PKEY_CTX_new(key, nullptr));
    if (!ctx) return nullptr;
    const int init = encrypt ? EVP_PKEY_encrypt_init(ctx.get()) : EVP_PKEY_decrypt_init(ctx.get());
    if (init != 1 || EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_oaep_md(ctx.get(), EVP_sha256()) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), EVP_sha256()) != 1) {
        return nullptr;
    }
    return ctx;
}

std::optional<crypto::KeyMaterial> rsa_token_key(const std::string& uri, const TokenOptions& options,
                                                 std::string* error) {
    std::optional<crypto::KeyMaterial> km = load_token_key(uri, options, error);
    if (km && EVP_PKEY_get_base_id(km->key.get()) != EVP_PKEY_RSA) {
        *error = "a master key on a token must be an RSA key";
        return std::nullopt;
    }
    return km;
}

}  // namespace

std::optional<std::string> token_wrap_key(const std::string& pkcs11_uri, const TokenOptions& options,
                                          const std::string& data_key, std::string* error) {
    std::string local;
    if (error == nullptr) error = &local;
    const std::optional<crypto::KeyMaterial> km = rsa_token_key(pkcs11_uri, options, error);
    if (!km) return std::nullopt;
    ERR_clear_error();
    crypto::EVP_PKEY_CTX_ptr ctx = oaep_context(km->key.get(), true);
    size_t len = 0;
    const auto* in = reinterpret_cast<const unsigned char*>(data_key.data());
    if (!ctx || EVP_PKEY_encrypt(ctx.get(), nullptr, &len, in, data_key.size()) != 1) {
        *error = "cannot wrap with the token key: " + crypto::drain_errors();
        return std::nullopt;
    }
    std::string out(len, '\0');
    if (EVP_PKEY_encrypt(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len, in, data_key.size()) != 1) {
        *error = "cannot wrap with the token key: " + crypto::drain_errors();
        return std::nullopt;
    }
    out.resize(len);
    return out;
}

std::optional<std::string> token_unwrap_key(const std::string& pkcs11_uri, const TokenOptions& options,
                                            const std::string& wrapped, std::string* error) {
    std::string local;
    if (error == nullptr) error = &local;
    const std::optional<crypto::KeyMaterial> km = rsa_token_key(pkcs11_uri, options, error);
    if (!km) return std::nullopt;
    ERR_clear_error();
    crypto::EVP_PKEY_CTX_ptr ctx = oaep_context(km->key.get(), false);
    const auto* in = reinterpret_cast<const unsigned char*>(wrapped.data());
    size_t len = 0;
    if (!ctx || EVP_PKEY_decrypt(ctx.get(), nullptr, &len, in, wrapped.size()) != 1) {
        *error = "the token cannot unwrap the key: " + crypto::drain_errors();
        return std::nullopt;
    }
    std::string out(len, '\0');
    if (EVP_PKEY_decrypt(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len, in, wrapped.size()) != 1) {
        OPENSSL_cleanse(out.data(), out.size());
        *error = "the token cannot unwrap the key (wrong key or damaged data): " + crypto::drain_errors();
        return std::nullopt;
    }
    out.resize(len);
    return out;
}

}  // namespace sealmilter::keys
