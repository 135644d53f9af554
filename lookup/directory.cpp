// lookup/directory.cpp — the directory HTTP API source (SPEC §6.3; see directory.hpp).
//
// Three parts: expand_url (an address can never change the URL's structure),
// parse_directory_response (pure: status + headers + body -> answer; also the fuzz target),
// and the libcurl driver: one multi handle per source keeps connections (and HTTP/2
// sessions) alive between lookups; lookup_many adds one easy handle per address and drives
// them together, bounded by the configured timeout.
//
// Ownership: every curl handle is a unique_ptr (CURL_ptr, CURLM_ptr, curl_slist_ptr below);
//            easy handles are removed from the multi handle before they are freed.
// Threads:   each lookup_many leases its own multi handle from a pool (curl handles are not
//            thread-safe), so concurrent callers never wait for each other;
//            the pure functions are reentrant.
// Errors:    network, TLS, size and content problems are TempError answers; nothing throws
//            across lookup()/lookup_many() for them. The directory is an untrusted transport:
//            certificates are returned as unvalidated candidates (the Chain validates).
#include "lookup/directory.hpp"

#include "crypto/ossl.hpp"

#include <curl/curl.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <utility>
#include <vector>

namespace sealmilter::lookup {
namespace {

using CURL_ptr = std::unique_ptr<CURL, crypto::Deleter<curl_easy_cleanup>>;
using CURLM_ptr = std::unique_ptr<CURLM, crypto::Deleter<curl_multi_cleanup>>;
using curl_slist_ptr = std::unique_ptr<curl_slist, crypto::Deleter<curl_slist_free_all>>;

constexpr size_t kMaxCertificates = 100;  // per answer; a directory has no reason for more
constexpr int kMaxJsonDepth = 64;         // nlohmann's parser recurses: guard the stack
constexpr size_t kMaxHeaderBytes = size_t{64} * 1024;
constexpr long long kMaxDeltaSeconds = 2147483648LL;  // RFC 9111 §1.2.2
constexpr const char* kUserAgent = "sealmilter";
constexpr const char* kAccept =
    "Accept: application/json, application/pem-certificate-chain, application/x-pem-file, "
    "application/pkix-cert";

// curl_global_init once per process; curl_global_cleanup at exit (after every source that
// was created after it is gone: function-local statics are destroyed in reverse order).
class CurlGlobal {
public:
    static void ensure() { static const CurlGlobal instance; }
    CurlGlobal(const CurlGlobal&) = delete;
    CurlGlobal& operator=(const CurlGlobal&) = delete;

private:
    CurlGlobal() {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) throw std::runtime_error("curl_global_init failed");
    }
    ~CurlGlobal() { curl_global_cleanup(); }
};

std::string lower(std::string_view s) {
    std::string out(s);
    // ASCII only, whatever the process locale: UTF-8 bytes stay as they are.
    std::transform(out.begin(), out.end(), out.begin(),
                   [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; });
    return out;
}

std::string_view trim(std::string_view s) {
    const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
    while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
    return s;
}

// RFC 3986 §2.3 unreserved stay; every other byte becomes %XX (upper-case hex, §2.1).
std::string percent_encode(std::string_view in) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(in.size() * 3);
    for (const char ch : in) {
        const auto c = static_cast<unsigned char>(ch);
        const bool alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (alnum || c == '-' || c == '.' || c == '_' || c == '~') {
            out.push_back(ch);
        } else {
            out.push_back('%');
            out.push_back(kHex[c >> 4]);
            out.push_back(kHex[c & 0x0F]);
        }
    }
    return out;
}

// Cache-Control delta-seconds (RFC 9111 §1.2.2): digits only, clamped; garbage -> nullopt.
std::optional<long long> parse_delta_seconds(std::string_view v) {
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
    v = trim(v);
    if (v.empty()) return std::nullopt;
    long long n = 0;
    for (const char c : v) {
        if (c < '0' || c > '9') return std::nullopt;
        n = std::min(kMaxDeltaSeconds, n * 10 + (c - '0'));
    }
    return n;
}

void parse_cache_control(std::string_view value, SourceAnswer& answer) {
    while (!value.empty()) {
        const size_t comma = value.find(',');
        const std::string_view item = trim(value.substr(0, comma));
        value = comma == std::string_view::npos ? std::string_view{} : value.substr(comma + 1);
        const size_t eq = item.find('=');
        const std::string name = lower(trim(item.substr(0, eq)));
        const std::string_view arg = eq == std::string_view::npos ? std::string_view{} : trim(item.substr(eq + 1));
        if (name == "max-age" && !answer.max_age) {
            answer.max_age = parse_delta_seconds(arg);
        } else if (name == "stale-if-error" && !answer.stale_if_error) {
            answer.stale_if_error = parse_delta_seconds(arg);
        }
    }
}

SourceAnswer temp_error(std::string reason) {
    SourceAnswer a;
    a.outcome = Outcome::TempError;
    a.reason = std::move(reason);
    return a;
}

// Rejects JSON nested deeper than kMaxJsonDepth before the recursive parser sees it.
bool json_depth_ok(std::string_view body) {
    int depth = 0;
    bool in_string = false;
    bool escaped = false;
    for (const char c : body) {
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > kMaxJsonDepth) return false;
        } else if (c == ']' || c == '}') {
            --depth;
        }
    }
    return true;
}

// {"certificates":[{"pem":"..."}...]}; unknown fields are ignored; an entry that does not
// parse is skipped, but at least one must.
SourceAnswer parse_json_answer(const std::string& body) {
    if (!json_depth_ok(body)) return temp_error("JSON nested too deeply");
    const nlohmann::json doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) return temp_error("unparsable JSON answer");
    if (!doc.is_object() || !doc.contains("certificates") || !doc["certificates"].is_array())
        return temp_error("JSON answer without a \"certificates\" array");
    const nlohmann::json& list = doc["certificates"];
    if (list.empty()) return temp_error("directory returned no certificates with 200");
    if (list.size() > kMaxCertificates) return temp_error("too many certificates in the answer");
    SourceAnswer a;
    for (const nlohmann::json& entry : list) {
        if (!entry.is_object() || !entry.contains("pem") || !entry["pem"].is_string()) continue;
        const std::string& pem = entry["pem"].get_ref<const std::string&>();
        if (pem.find("-----BEGIN") == std::string::npos) continue;
        for (crypto::Certificate& c : crypto::parse_certificates(pem).certificates)
            a.candidates.push_back(std::move(c));
    }
    if (a.candidates.empty()) return temp_error("unparsable: no certificate entry in the JSON answer parsed");
    if (a.candidates.size() > kMaxCertificates) return temp_error("too many certificates in the answer");
    a.outcome = Outcome::Found;
    return a;
}

SourceAnswer parse_pem_answer(const std::string& body) {
    if (body.find("-----BEGIN") == std::string::npos) return temp_error("unparsable: PEM answer without a PEM block");
    crypto::ParsedCertificates parsed = crypto::parse_certificates(body);
    if (parsed.certificates.empty()) return temp_error("unparsable PEM answer: " + parsed.error);
    if (parsed.certificates.size() > kMaxCertificates) return temp_error("too many certificates in the answer");
    SourceAnswer a;
    a.outcome = Outcome::Found;
    a.candidates = std::move(parsed.certificates);
    return a;
}

// application/pkix-cert is exactly one DER certificate (RFC 2585 §4.1): no trailing bytes.
SourceAnswer parse_der_answer(const std::string& body) {
    if (body.empty() || body.size() > static_cast<size_t>(std::numeric_limits<long>::max()))
        return temp_error("unparsable: empty DER answer");
    const auto* p = reinterpret_cast<const unsigned char*>(body.data());
    crypto::X509_ptr x(d2i_X509(nullptr, &p, static_cast<long>(body.size())));
    const std::string err = crypto::drain_errors();
    if (!x) return temp_error("unparsable DER answer" + (err.empty() ? std::string{} : " (" + err + ")"));
    if (p != reinterpret_cast<const unsigned char*>(body.data()) + body.size())
        return temp_error("unparsable DER answer: trailing bytes after the certificate");
    SourceAnswer a;
    a.outcome = Outcome::Found;
    a.candidates.emplace_back(std::move(x));
    return a;
}

SourceAnswer parse_ok_body(const std::map<std::string, std::string>& headers, const std::string& body) {
    const auto ct = headers.find("content-type");
    const std::string type =
        ct == headers.end() ? std::string{} : lower(trim(std::string_view(ct->second).substr(0, ct->second.find(';'))));
    if (type == "application/json") return parse_json_answer(body);
    if (type == "application/pem-certificate-chain" || type == "application/x-pem-file") return parse_pem_answer(body);
    if (type == "application/pkix-cert") return parse_der_answer(body);
    return temp_error("unsupported content type \"" + type.substr(0, 100) + "\"");
}

}  // namespace

std::string expand_url(const std::string& url_template, const std::string& email) {
    // Split at the LAST '@' (a quoted local part may hold one); the domain is case-insensitive
    // (RFC 5321 §2.4) and folded to lower case, the local part is sent as the caller gave it.
    const size_t at = email.rfind('@');
    const std::string local = at == std::string::npos ? email : email.substr(0, at);
    const std::string domain = at == std::string::npos ? std::string{} : lower(std::string_view(email).substr(at + 1));
    const std::string address = at == std::string::npos ? local : local + "@" + domain;
    const std::pair<std::string_view, std::string> fields[] = {
        {"{email}", percent_encode(address)}, {"{local}", percent_encode(local)}, {"{domain}", percent_encode(domain)}};
    std::string out;
    out.reserve(url_template.size() + address.size() * 3);
    for (size_t i = 0; i < url_template.size();) {
        bool replaced = false;
        for (const auto& [name, value] : fields) {
            if (url_template.compare(i, name.size(), name) == 0) {
                out += value;
                i += name.size();
                replaced = true;
                break;
            }
        }
        if (!replaced) out.push_back(url_template[i++]);
    }
    return out;
}

// Statuses (SPEC §6.3): 200 -> Found (by content type), 404/410 -> NotFound (authoritative),
// 304 -> not_modified (Found, no candidates: the caller keeps its cached certificates),
// anything else -> TempError. Caching hints are reported with every answer.
SourceAnswer parse_directory_response(long status, const std::map<std::string, std::string>& headers,
                                      const std::string& body, long long max_body) {
    SourceAnswer a;
    if (static_cast<long long>(body.size()) > max_body) {
        a = temp_error("body exceeds directory.max_body");
    } else if (status == 200) {
        try {
            a = parse_ok_body(headers, body);
        } catch (const std::exception& e) {  // allocation failures in OpenSSL / the JSON parser
            a = temp_error(std::string("cannot parse the answer: ") + e.what());
        }
    } else if (status == 304) {
        a.outcome = Outcome::Found;
        a.not_modified = true;
    } else if (status == 404) {
        a.outcome = Outcome::NotFound;
        a.reason = "HTTP 404";
    } else if (status == 410) {
        a.outcome = Outcome::NotFound;
        a.reason = "HTTP 410 (opted out)";
    } else {
        a = temp_error(status <= 0 ? std::string("no HTTP answer") : "HTTP " + std::to_string(status));
    }
    if (const auto cc = headers.find("cache-control"); cc != headers.end()) parse_cache_control(cc->second, a);
    if (const auto et = headers.find("etag"); et != headers.end()) a.etag = et->second;
    return a;
}

// ---- the libcurl driver -------------------------------------------------------------------

namespace {

// One request in flight. Lives at a fixed address (held by unique_ptr): curl keeps pointers
// to it (write/header data, CURLOPT_PRIVATE, the error buffer).
struct Transfer {
    CURL_ptr easy;
    curl_slist_ptr request_headers;
    std::string body;
    std::map<std::string, std::string> headers;  // lower-case names, of the last response
    size_t header_bytes = 0;
    long status_line = 0;  // from the latest status line, for the early Content-Length check
    long long max_body = 0;
    bool too_big = false;
    bool done = false;
    CURLcode result = CURLE_OK;
    char error[CURL_ERROR_SIZE] = {};
};

size_t on_body(char* data, size_t size, size_t count, void* user) {
    auto* t = static_cast<Transfer*>(user);
    const size_t n = size * count;
    // Compared as "what is left" so that no sum can overflow; max_body <= 0 admits nothing.
    const long long room = t->max_body - static_cast<long long>(t->body.size());
    if (room < 0 || n > static_cast<unsigned long long>(room)) {
        t->too_big = true;
        return CURL_WRITEFUNC_ERROR;  // aborts the transfer: CURLE_WRITE_ERROR
    }
    t->body.append(data, n);
    return n;
}

// A Content-Length above max_body ends the transfer before any of the body is read.
bool announced_too_big(std::string_view value, long long max_body) {
    long long n = 0;
    for (const char c : value) {
        if (c < '0' || c > '9') return false;  // malformed: curl itself rejects it
        if (n > (max_body - (c - '0')) / 10) return true;
        n = n * 10 + (c - '0');
    }
    return false;
}

size_t on_header(char* data, size_t size, size_t count, void* user) {
    auto* t = static_cast<Transfer*>(user);
    const size_t n = size * count;
    const std::string_view line = trim(std::string_view(data, n));
    if (line.rfind("HTTP/", 0) == 0) {  // a new response (1xx, redirect, final): start over
        t->headers.clear();
        t->header_bytes = 0;
        const size_t sp = line.find(' ');
        t->status_line = sp == std::string_view::npos ? 0 : std::atol(std::string(line.substr(sp + 1, 3)).c_str());
        return n;
    }
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return n;
    t->header_bytes += n;
    if (t->header_bytes > kMaxHeaderBytes) return n;  // ignore the rest; curl bounds the total too
    const std::string name = lower(trim(line.substr(0, colon)));
    const std::string_view value = trim(line.substr(colon + 1));
    if (name == "content-length" && t->status_line >= 200 && t->status_line != 304 &&
        announced_too_big(value, t->max_body)) {
        t->too_big = true;
        return 0;  // aborts the transfer
    }
    auto [it, inserted] = t->headers.try_emplace(name, value);
    if (!inserted) it->second.append(", ").append(value);  // RFC 9110 §5.3
    return n;
}

bool line_safe(const std::string& s) {
    return s.find_first_of("\r\n", 0) == std::string::npos && s.find('\0') == std::string::npos;
}

// Accept, Authorization, If-None-Match. Values with a line break are never sent (header
// injection): a bad token is an error, a bad ETag just makes the request unconditional.
curl_slist_ptr request_headers(const DirectoryOptions& options, const Query& query, std::string& error) {
    std::vector<std::string> lines = {kAccept};
    if (!options.bearer_token.empty()) {
        if (!line_safe(options.bearer_token)) {
            error = "directory bearer token contains a line break";
            return nullptr;
        }
        lines.push_back("Authorization: Bearer " + options.bearer_token);
    }
    if (!query.if_none_match.empty() && line_safe(query.if_none_match))
        lines.push_back("If-None-Match: " + query.if_none_match);
    curl_slist_ptr list;
    for (const std::string& l : lines) {
        curl_slist* head = curl_slist_append(list.get(), l.c_str());  // same head, or null
        if (head == nullptr) {
            error = "curl_slist_append failed";
            return nullptr;
        }
        static_cast<void>(list.release());
        list.reset(head);
    }
    return list;
}

CURLcode configure(CURL* e, const DirectoryOptions& options, const std::string& url, Transfer* t) {
    const bool https = lower(std::string_view(url).substr(0, 6)) == "https:";
    CURLcode rc = CURLE_OK;
    const auto set = [&rc](CURLcode r) {
        if (rc == CURLE_OK) rc = r;
    };
    set(curl_easy_setopt(e, CURLOPT_URL, url.c_str()));
    set(curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https"));
    set(curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, options.follow_redirects ? 1L : 0L));
    set(curl_easy_setopt(e, CURLOPT_MAXREDIRS, 3L));
    set(curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, https ? "https" : "http,https"));  // no downgrade
    set(curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L));
    set(curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, std::max(1L, options.timeout_ms)));  // 0 would mean never
    set(curl_easy_setopt(e, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS)));
    // Over TLS, wait for the first connection's ALPN answer and multiplex on it rather than
    // open one connection per address. Not over plain HTTP (no h2 there): a hanging first
    // request would hold every other one back.
    if (https) set(curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L));
    set(curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L));
    set(curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L));
    if (!options.ca_file.empty()) {  // ca_file replaces the system store, it does not add to it
        set(curl_easy_setopt(e, CURLOPT_CAINFO, options.ca_file.c_str()));
        set(curl_easy_setopt(e, CURLOPT_CAPATH, nullptr));
    }
    if (!options.client_cert_file.empty()) set(curl_easy_setopt(e, CURLOPT_SSLCERT, options.client_cert_file.c_str()));
    if (!options.client_key_file.empty()) set(curl_easy_setopt(e, CURLOPT_SSLKEY, options.client_key_file.c_str()));
    set(curl_easy_setopt(e, CURLOPT_HTTPGET, 1L));
    set(curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->request_headers.get()));
    set(curl_easy_setopt(e, CURLOPT_USERAGENT, kUserAgent));
    // No CURLOPT_ACCEPT_ENCODING: bodies are never decompressed (no gzip bombs).
    set(curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &on_body));
    set(curl_easy_setopt(e, CURLOPT_WRITEDATA, t));
    set(curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &on_header));
    set(curl_easy_setopt(e, CURLOPT_HEADERDATA, t));
    set(curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error));
    set(curl_easy_setopt(e, CURLOPT_PRIVATE, t));
    return rc;
}

}  // namespace

// A pool of multi handles: a caller takes an idle one (or a new one) for the duration of its
// lookup_many and gives it back, so concurrent callers (one milter thread per SMTP session)
// never wait for each other, while each handle keeps its connection cache for reuse.
struct DirectorySource::Impl {
    DirectoryOptions options;
    std::mutex pool_mutex;  // guards idle
    std::vector<CURLM_ptr> idle;

    CURLM_ptr acquire();
    void release(CURLM_ptr multi);
    std::unique_ptr<Transfer> start(const Query& query, std::string& error) const;
    void drive(CURLM* multi) const;
    SourceAnswer finish(const Transfer& t) const;
};

CURLM_ptr DirectorySource::Impl::acquire() {
    {
        const std::lock_guard<std::mutex> lock(pool_mutex);
        if (!idle.empty()) {
            CURLM_ptr m = std::move(idle.back());
            idle.pop_back();
            return m;
        }
    }
    CURLM_ptr m(curl_multi_init());
    if (!m) throw std::runtime_error("curl_multi_init failed");
    // HTTP/2 multiplexing where the server offers it; bounded connections per host otherwise.
    curl_multi_setopt(m.get(), CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    curl_multi_setopt(m.get(), CURLMOPT_MAX_HOST_CONNECTIONS, 8L);
    return m;
}

void DirectorySource::Impl::release(CURLM_ptr multi) {
    const std::lock_guard<std::mutex> lock(pool_mutex);
    if (idle.size() < 64) idle.push_back(std::move(multi));  // bounded; extras close their connections
}

DirectorySource::DirectorySource(DirectoryOptions options) : impl_(std::make_unique<Impl>()) {
    CurlGlobal::ensure();
    impl_->options = std::move(options);
    impl_->release(impl_->acquire());  // fail early if curl cannot make a multi handle
}

DirectorySource::~DirectorySource() = default;

bool DirectorySource::trusted() const {
    return impl_->options.trusted;
}

std::unique_ptr<Transfer> DirectorySource::Impl::start(const Query& query, std::string& error) const {
    auto t = std::make_unique<Transfer>();
    t->max_body = options.max_body;
    t->easy.reset(curl_easy_init());
    if (!t->easy) {
        error = "curl_easy_init failed";
        return nullptr;
    }
    t->request_headers = request_headers(options, query, error);
    if (!t->request_headers) return nullptr;
    const CURLcode rc = configure(t->easy.get(), options, expand_url(options.url_template, query.email), t.get());
    if (rc != CURLE_OK) {
        error = std::string("curl setup failed: ") + curl_easy_strerror(rc);
        return nullptr;
    }
    return t;
}

// Runs every added transfer until all are done or the deadline (timeout_ms plus a little
// grace over curl's own CURLOPT_TIMEOUT_MS) passes. Each iteration waits at most 200 ms.
void DirectorySource::Impl::drive(CURLM* multi) const {
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + std::chrono::milliseconds(std::max(0L, options.timeout_ms) + 500);
    int running = 0;
    for (;;) {
        if (curl_multi_perform(multi, &running) != CURLM_OK) break;
        int queued = 0;
        while (CURLMsg* m = curl_multi_info_read(multi, &queued)) {
            if (m->msg != CURLMSG_DONE) continue;
            char* p = nullptr;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &p);
            auto* t = reinterpret_cast<Transfer*>(p);
            t->done = true;
            t->result = m->data.result;
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (running == 0 || left <= 0) break;
        curl_multi_poll(multi, nullptr, 0, static_cast<int>(std::min<long long>(left, 200)), nullptr);
    }
}

SourceAnswer DirectorySource::Impl::finish(const Transfer& t) const {
    if (t.too_big)
        return temp_error("body exceeds directory.max_body (" + std::to_string(options.max_body) + " bytes)");
    if (!t.done) return temp_error("directory request timed out after " + std::to_string(options.timeout_ms) + " ms");
    if (t.result != CURLE_OK) {
        std::string reason = std::string("directory request failed: ") + curl_easy_strerror(t.result);
        if (t.error[0] != '\0') reason += std::string(" (") + t.error + ")";
        return temp_error(std::move(reason));
    }
    long status = 0;
    curl_easy_getinfo(t.easy.get(), CURLINFO_RESPONSE_CODE, &status);
    return parse_directory_response(status, t.headers, t.body, options.max_body);
}

SourceAnswer DirectorySource::lookup(const Query& query) {
    return lookup_many({query}).front();
}

std::vector<SourceAnswer> DirectorySource::lookup_many(const std::vector<Query>& queries) {
    std::vector<SourceAnswer> answers(queries.size());
    std::vector<std::unique_ptr<Transfer>> transfers(queries.size());
    // Every added easy handle leaves the multi handle before it is freed, and the multi handle
    // returns to the pool, whatever happens.
    struct Lease {
        Impl& impl;
        CURLM_ptr multi;
        std::vector<std::unique_ptr<Transfer>>& transfers;
        ~Lease() {
            for (auto& t : transfers)
                if (t) curl_multi_remove_handle(multi.get(), t->easy.get());
            impl.release(std::move(multi));
        }
    } lease{*impl_, impl_->acquire(), transfers};
    CURLM* multi = lease.multi.get();
    for (size_t i = 0; i < queries.size(); ++i) {
        std::string error;
        std::unique_ptr<Transfer> t = impl_->start(queries[i], error);
        if (t && curl_multi_add_handle(multi, t->easy.get()) != CURLM_OK) {
            t.reset();
            error = "curl_multi_add_handle failed";
        }
        if (!t) answers[i] = temp_error(error);
        transfers[i] = std::move(t);
    }
    impl_->drive(multi);
    for (size_t i = 0; i < queries.size(); ++i)
        if (transfers[i]) answers[i] = impl_->finish(*transfers[i]);
    return answers;
}

}  // namespace sealmilter::lookup
