// lookup/directory.cpp — the directory HTTP API source (SPEC §6.3; see directory.hpp).
//
// Three parts: expand_url (an address can never change the URL's structure),
// parse_directory_response (pure: status + headers + body -> answer; also the fuzz target),
// and the source itself: lookup_many hands all its requests to the one HttpClient
// (lookup/http.hpp), which multiplexes them over HTTP/2, caps connections per host and keeps
// connections for the next batch.
//
// Ownership: the source owns its HttpClient.
// Threads:   lookup_many from any thread; the pure functions are reentrant.
// Errors:    network, TLS, size and content problems are TempError answers; nothing throws
//            across lookup()/lookup_many() for them. The directory is an untrusted transport:
//            certificates are returned as unvalidated candidates (the Chain validates).
#include "lookup/directory.hpp"

#include "base/ascii.hpp"
#include "base/encoding.hpp"
#include "crypto/ossl.hpp"
#include "lookup/http.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <limits>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace sealmilter::lookup {
namespace {

constexpr size_t kMaxCertificates = 100;  // per answer; a directory has no reason for more
constexpr int kMaxJsonDepth = 64;         // nlohmann's parser recurses: guard the stack
constexpr long long kMaxDeltaSeconds = 2147483648LL;  // RFC 9111 §1.2.2
constexpr const char* kAccept =
    "Accept: application/json, application/pem-certificate-chain, application/x-pem-file, "
    "application/pkix-cert";

using base::trim;


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
        const std::string name = base::to_lower(trim(item.substr(0, eq)));
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
        ct == headers.end() ? std::string{} : base::to_lower(trim(std::string_view(ct->second).substr(0, ct->second.find(';'))));
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
    const std::string domain = at == std::string::npos ? std::string{} : base::to_lower(std::string_view(email).substr(at + 1));
    const std::string address = at == std::string::npos ? local : local + "@" + domain;
    const std::pair<std::string_view, std::string> fields[] = {
        {"{email}", base::percent_encode(address)},
        {"{local}", base::percent_encode(local)},
        {"{domain}", base::percent_encode(domain)}};
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

// ---- the source ----------------------------------------------------------------------------

namespace {

HttpOptions http_options(const DirectoryOptions& o) {
    HttpOptions h;
    h.timeout_ms = o.timeout_ms;
    h.bearer_token = o.bearer_token;
    h.ca_file = o.ca_file;
    h.client_cert_file = o.client_cert_file;
    h.client_key_file = o.client_key_file;
    h.max_body = o.max_body;
    h.follow_redirects = o.follow_redirects;
    h.max_connections = o.max_connections;
    return h;
}

}  // namespace

struct DirectorySource::Impl {
    DirectoryOptions options;
    HttpClient http;

    explicit Impl(DirectoryOptions o) : options(std::move(o)), http(http_options(options)) {}

    HttpRequest request(const Query& query) const {
        HttpRequest r;
        // The normalised address, as before the query carried the written form too: the
        // directory's keys are case-folded (a DNS SMIMEA source will use query.written()).
        r.url = expand_url(options.url_template, query.email);
        r.headers = {kAccept};
        if (!query.if_none_match.empty()) r.headers.push_back("If-None-Match: " + query.if_none_match);
        return r;
    }

    SourceAnswer answer(const HttpResponse& r) const {
        switch (r.failure) {
        case HttpResponse::Failure::None: break;
        case HttpResponse::Failure::TooBig:
            return temp_error("body exceeds directory.max_body (" + std::to_string(options.max_body) + " bytes)");
        case HttpResponse::Failure::Timeout:
            return temp_error("directory request timed out after " + std::to_string(options.timeout_ms) + " ms");
        case HttpResponse::Failure::Transport: return temp_error("directory request failed: " + r.error);
        case HttpResponse::Failure::Setup: return temp_error("directory " + r.error);
        }
        return parse_directory_response(r.status, r.headers, r.body, options.max_body);
    }
};

DirectorySource::DirectorySource(DirectoryOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

DirectorySource::~DirectorySource() = default;

SourceProperties DirectorySource::properties() const {
    return {.cacheable = true, .negative_authoritative = true};  // 404/410 are definite (SPEC §6.3)
}

bool DirectorySource::vouches_for(const crypto::Certificate& /*candidate*/) const {
    return impl_->options.trusted;
}

SourceAnswer DirectorySource::lookup(const Query& query) {
    return lookup_many({query}).front();
}

std::vector<SourceAnswer> DirectorySource::lookup_many(const std::vector<Query>& queries) {
    std::vector<HttpRequest> requests;
    requests.reserve(queries.size());
    for (const Query& q : queries) requests.push_back(impl_->request(q));
    const std::vector<HttpResponse> responses = impl_->http.perform(requests);
    std::vector<SourceAnswer> answers;
    answers.reserve(responses.size());
    for (const HttpResponse& r : responses) answers.push_back(impl_->answer(r));
    return answers;
}

}  // namespace sealmilter::lookup
