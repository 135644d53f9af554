// pickup/flow.hpp — what the pickup service answers, independent of HTTP plumbing.
//
// Purpose:   Flow::handle() maps one request (method, path, client address, form fields) to one
//            response (status, type, body, extra headers): the routes of docs/issuing.md, the
//            CSRF / token / lock / rate-limit checks in that order, the registry changes inside
//            PickupBackend::update (so two requests for one address cannot both pass a limit),
//            the code mail, the PKCS#12 and its one-time download. service.cpp adds the security
//            headers and speaks HTTP (libmicrohttpd).
// Ownership: Flow owns the CSRF secret, the per-client limiter and the pending downloads
//            (PKCS#12 files encrypted under the recipient's password, at most 256, 5 minutes).
// Threads:   handle() is safe concurrently.
// Errors:    handle() never throws: an unexpected failure is a 500 page and a log line.
#pragma once

#include "base/mutex.hpp"
#include "pickup/pages.hpp"
#include "pickup/service.hpp"

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace sealmilter::pickup {

struct HttpRequest {
    std::string method;  // "GET", "HEAD", "POST"
    std::string path;    // without the query
    std::string client;  // after trusted_proxies (see TrustedProxies::client)
    std::map<std::string, std::string> form;
    bool form_too_large = false;
};

struct HttpResponse {
    unsigned status = 200;
    std::string content_type = "text/html; charset=utf-8";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
    bool cacheable = false;  // static assets; everything else is Cache-Control: no-store
    // Run by the HTTP layer once the response has left: `delivered` = it was sent completely
    // (MHD_REQUEST_TERMINATED_COMPLETED_OK), false = the transfer broke off. A download records
    // the pickup here, never before the file went out. Never throws.
    std::function<void(bool delivered)> after;
};

class Flow {
public:
    Flow(PickupSettings settings, PickupDeps deps);
    HttpResponse handle(const HttpRequest& request);

    static constexpr size_t kMaxDownloads = 256;
    static constexpr std::time_t kDownloadLifetime = 300;

private:
    struct Link {  // a valid link: its record, the token and the token's hash
        keys::IssuedRecord record;
        std::string token;
        std::string token_hash;
    };
    struct Download {
        std::string der;
        keys::IssuedRecord record;
        bool legacy = false;
        std::time_t expires = 0;
    };

    HttpResponse route(const HttpRequest& request);
    HttpResponse static_file(const std::string& path) const;
    std::optional<Link> link(std::string_view token, const std::string& client, std::time_t now) const;
    HttpResponse show_link(const std::string& token, const HttpRequest& request);
    HttpResponse show_entry(const std::string& token, const HttpRequest& request);
    HttpResponse send_code(const std::string& token, const HttpRequest& request);
    HttpResponse download(const std::string& token, const HttpRequest& request);
    HttpResponse fetch(const std::string& id, const HttpRequest& request);
    void delivered(const Download& d, const std::string& client, bool complete) const;
    HttpResponse code_entry(const Link& l, std::time_t now, std::string_view note, std::string_view error,
                            unsigned status = 200) const;
    HttpResponse prepare(const Link& l, const HttpRequest& request, bool legacy);
    HttpResponse page(unsigned status, std::string body) const;
    bool record_ok(const keys::IssuedRecord& r, std::string_view token_hash, std::time_t now) const;

    PickupSettings settings_;
    PickupDeps deps_;
    Look look_;
    Csrf csrf_;
    ClientLimiter limiter_;
    base::Mutex mu_;
    std::map<std::string, Download> downloads_ SEALMILTER_GUARDED_BY(mu_);
};

}  // namespace sealmilter::pickup
