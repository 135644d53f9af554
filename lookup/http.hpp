// lookup/http.hpp — the one HTTP client of lookup/: directory lookups and publishing.
//
// Purpose:   one TLS and authentication policy for every request the gateway makes to the
//            directory (SPEC §6.3): TLS verified (ca_file replaces the system store), optional
//            client certificate + key, optional bearer token, a whole-request timeout, a body
//            limit (checked against Content-Length before any body byte is read), no
//            redirects unless allowed (never to another scheme than http/https, never from
//            https to http), no decompression (no gzip bombs).
//            All requests of all callers run on ONE libcurl multi handle driven by one I/O
//            thread: a batch (perform()) is multiplexed over HTTP/2 where the server offers
//            it (CURLPIPE_MULTIPLEX, CURLOPT_PIPEWAIT), concurrent connections to one host
//            never exceed max_connections (CURLMOPT_MAX_HOST_CONNECTIONS: the rest wait for a
//            free connection), and connections stay open for the next batch.
// Ownership: the client owns its multi handle, its easy handles and its thread; responses
//            are values.
// Threads:   perform() from any number of threads at once; it blocks until its batch is done
//            (each request bounded by timeout_ms plus a short grace). The destructor ends the
//            batches in flight (their unfinished requests fail) and joins the thread.
// Errors:    network, TLS, size and timeout problems are described in each HttpResponse,
//            never thrown; the constructor throws std::runtime_error when libcurl cannot be
//            initialised.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace sealmilter::lookup {

struct HttpOptions {
    long timeout_ms = 5000;        // whole request, including waiting for a free connection
    std::string bearer_token;      // sent as "Authorization: Bearer ..." when not empty
    std::string ca_file;           // PEM bundle; empty = the system store
    std::string client_cert_file;  // TLS client certificate (PEM); empty = none
    std::string client_key_file;   // its key
    long long max_body = 1 << 20;  // larger answers fail (too_big)
    bool follow_redirects = false;  // at most 3; https never downgrades to http
    long max_connections = 4;      // per host, at once
};

struct HttpRequest {
    std::string url;
    std::vector<std::string> headers;  // "Name: value" lines; lines with CR/LF are not sent
    bool post = false;                 // POST `body` instead of GET
    std::string body;
};

struct HttpResponse {
    enum class Failure { None, TooBig, Timeout, Transport, Setup };
    Failure failure = Failure::None;
    std::string error;  // Transport / Setup: what libcurl said
    long status = 0;
    std::map<std::string, std::string> headers;  // lower-case names, of the final response
    std::string body;
};

// RFC 9113 §8.1: a server may send a complete response before it has read the whole request
// and then reset the stream with NO_ERROR; libcurl 7.88 reports that reset as
// CURLE_HTTP2_STREAM although the response arrived. True when `status` and what was received
// of the body make a complete response on their own: a final status whose response has no
// content (204, 304), or a body exactly as long as the announced Content-Length.
bool response_complete_before_reset(long status, const std::map<std::string, std::string>& headers,
                                    size_t body_size);

class HttpClient {
public:
    explicit HttpClient(HttpOptions options);
    ~HttpClient();
    HttpClient(const HttpClient&) = delete;
    HttpClient& operator=(const HttpClient&) = delete;

    const HttpOptions& options() const;
    // Runs every request concurrently; answers in the same order.
    std::vector<HttpResponse> perform(const std::vector<HttpRequest>& requests);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace sealmilter::lookup
