// lookup/http.cpp — the HTTP client of lookup/ (see http.hpp).
//
// perform() prepares one easy handle per request on the caller's thread, hands the batch to
// the I/O thread and waits. The I/O thread alone touches the multi handle: it adds the
// handles of new batches, drives every transfer, removes each finished one, ends a batch's
// leftovers at the batch's deadline, and wakes the caller when its batch is complete.
// curl_multi_wakeup (thread-safe) interrupts its poll when a batch arrives.
#include "lookup/http.hpp"

#include "base/ascii.hpp"
#include "base/handle.hpp"
#include "base/mutex.hpp"
#include "base/worker_thread.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <stdexcept>
#include <string_view>
#include <thread>

namespace sealmilter::lookup {
namespace {

using CURL_ptr = std::unique_ptr<CURL, base::Deleter<curl_easy_cleanup>>;
using CURLM_ptr = std::unique_ptr<CURLM, base::Deleter<curl_multi_cleanup>>;
using curl_slist_ptr = std::unique_ptr<curl_slist, base::Deleter<curl_slist_free_all>>;
using SteadyClock = std::chrono::steady_clock;

constexpr size_t kMaxHeaderBytes = size_t{64} * 1024;
constexpr const char* kUserAgent = "sealmilter";
constexpr auto kGrace = std::chrono::milliseconds(500);  // over curl's own CURLOPT_TIMEOUT_MS

// curl_global_init once per process; curl_global_cleanup at exit (after every client that
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

struct Batch;

// One request in flight. Lives at a fixed address (held by unique_ptr): curl keeps pointers
// to it (write/header data, CURLOPT_PRIVATE, the error buffer).
struct Transfer {
    CURL_ptr easy;
    curl_slist_ptr request_headers;
    Batch* batch = nullptr;
    HttpResponse response;
    size_t header_bytes = 0;
    long status_line = 0;  // from the latest status line, for the early Content-Length check
    long long max_body = 0;
    bool too_big = false;
    bool added = false;  // in the multi handle
    bool done = false;
    CURLcode result = CURLE_OK;
    char error[CURL_ERROR_SIZE] = {};
};

// The caller waits on `complete`; everything else is the I/O thread's until then.
struct Batch {
    std::vector<std::unique_ptr<Transfer>> transfers;
    SteadyClock::time_point deadline;
    size_t running = 0;  // I/O thread only
    base::Mutex mutex;
    std::condition_variable_any wake;
    bool complete SEALMILTER_GUARDED_BY(mutex) = false;
};

size_t on_body(char* data, size_t size, size_t count, void* user) {
    auto* t = static_cast<Transfer*>(user);
    const size_t n = size * count;
    // Compared as "what is left" so that no sum can overflow; max_body <= 0 admits nothing.
    const long long room = t->max_body - static_cast<long long>(t->response.body.size());
    if (room < 0 || n > static_cast<unsigned long long>(room)) {
        t->too_big = true;
        return CURL_WRITEFUNC_ERROR;  // aborts the transfer: CURLE_WRITE_ERROR
    }
    t->response.body.append(data, n);
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
    const std::string_view line = base::trim(std::string_view(data, n));
    if (line.rfind("HTTP/", 0) == 0) {  // a new response (1xx, redirect, final): start over
        t->response.headers.clear();
        t->header_bytes = 0;
        const size_t sp = line.find(' ');
        t->status_line = sp == std::string_view::npos ? 0 : std::atol(std::string(line.substr(sp + 1, 3)).c_str());
        return n;
    }
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return n;
    t->header_bytes += n;
    if (t->header_bytes > kMaxHeaderBytes) return n;  // ignore the rest; curl bounds the total too
    const std::string name = base::to_lower(base::trim(line.substr(0, colon)));
    const std::string_view value = base::trim(line.substr(colon + 1));
    if (name == "content-length" && t->status_line >= 200 && t->status_line != 304 &&
        announced_too_big(value, t->max_body)) {
        t->too_big = true;
        return 0;  // aborts the transfer
    }
    auto [it, inserted] = t->response.headers.try_emplace(name, value);
    if (!inserted) it->second.append(", ").append(value);  // RFC 9110 §5.3
    return n;
}

bool line_safe(const std::string& s) {
    return s.find_first_of("\r\n", 0) == std::string::npos && s.find('\0') == std::string::npos;
}

// The request's own lines plus Authorization. A token with a line break is an error (header
// injection); any other unsafe line is dropped.
curl_slist_ptr header_list(const HttpOptions& options, const HttpRequest& request, std::string& error) {
    std::vector<std::string> lines;
    for (const std::string& l : request.headers)
        if (line_safe(l)) lines.push_back(l);
    if (!options.bearer_token.empty()) {
        if (!line_safe(options.bearer_token)) {
            error = "bearer token contains a line break";
            return nullptr;
        }
        lines.push_back("Authorization: Bearer " + options.bearer_token);
    }
    lines.emplace_back("Expect:");  // no 100-continue round trip for a POST
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

// TLS policy and limits: the same for every request of every caller.
void configure_policy(CURL* e, const HttpOptions& options, bool https, CURLcode& rc) {
    const auto set = [&rc](CURLcode r) {
        if (rc == CURLE_OK) rc = r;
    };
    set(curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https"));
    set(curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, options.follow_redirects ? 1L : 0L));
    set(curl_easy_setopt(e, CURLOPT_MAXREDIRS, 3L));
    set(curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, https ? "https" : "http,https"));  // no downgrade
    set(curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L));
    set(curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, std::max(1L, options.timeout_ms)));  // 0 would mean never
    set(curl_easy_setopt(e, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS)));
    // Over TLS, wait for the first connection's ALPN answer and multiplex on it rather than
    // open one connection per request. Not over plain HTTP (no h2 there): a hanging first
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
    set(curl_easy_setopt(e, CURLOPT_USERAGENT, kUserAgent));
    // No CURLOPT_ACCEPT_ENCODING: bodies are never decompressed (no gzip bombs).
}

CURLcode configure(CURL* e, const HttpOptions& options, const HttpRequest& request, Transfer* t) {
    const bool https = base::to_lower(std::string_view(request.url).substr(0, 6)) == "https:";
    CURLcode rc = CURLE_OK;
    const auto set = [&rc](CURLcode r) {
        if (rc == CURLE_OK) rc = r;
    };
    set(curl_easy_setopt(e, CURLOPT_URL, request.url.c_str()));
    configure_policy(e, options, https, rc);
    if (request.post) {
        set(curl_easy_setopt(e, CURLOPT_POST, 1L));
        set(curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size())));
        set(curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, request.body.c_str()));
    } else {
        set(curl_easy_setopt(e, CURLOPT_HTTPGET, 1L));
    }
    set(curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->request_headers.get()));
    set(curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &on_body));
    set(curl_easy_setopt(e, CURLOPT_WRITEDATA, t));
    set(curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &on_header));
    set(curl_easy_setopt(e, CURLOPT_HEADERDATA, t));
    set(curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error));
    set(curl_easy_setopt(e, CURLOPT_PRIVATE, t));
    return rc;
}

std::unique_ptr<Transfer> prepare(const HttpOptions& options, const HttpRequest& request, Batch* batch) {
    auto t = std::make_unique<Transfer>();
    t->batch = batch;
    t->max_body = options.max_body;
    t->easy.reset(curl_easy_init());
    std::string error;
    if (!t->easy) error = "curl_easy_init failed";
    if (error.empty()) t->request_headers = header_list(options, request, error);
    if (error.empty()) {
        if (const CURLcode rc = configure(t->easy.get(), options, request, t.get()); rc != CURLE_OK)
            error = std::string("curl setup failed: ") + curl_easy_strerror(rc);
    }
    if (!error.empty()) {
        t->response.failure = HttpResponse::Failure::Setup;
        t->response.error = std::move(error);
        t->done = true;
    }
    return t;
}

}  // namespace

bool response_complete_before_reset(long status, const std::map<std::string, std::string>& headers,
                                    size_t body_size) {
    if (status < 200 || status > 599) return false;  // no final response yet
    if (status == 204 || status == 304) return true;  // never has content (RFC 9110 §15.3.5, §15.4.5)
    const auto length = headers.find("content-length");
    if (length == headers.end() || length->second.empty() || length->second.size() > 18) return false;
    size_t n = 0;
    for (const char c : length->second) {
        if (c < '0' || c > '9') return false;
        n = n * 10 + static_cast<size_t>(c - '0');
    }
    return n == body_size;
}

namespace {

// The response as the caller sees it, once the transfer is over (or abandoned).
HttpResponse conclude(Transfer& t) {
    HttpResponse r = std::move(t.response);
    if (r.failure == HttpResponse::Failure::Setup) return r;
    if (t.too_big) {
        r.failure = HttpResponse::Failure::TooBig;
    } else if (!t.done) {
        r.failure = HttpResponse::Failure::Timeout;
    } else if (t.result == CURLE_HTTP2_STREAM &&
               response_complete_before_reset(t.status_line, r.headers, r.body.size())) {
        r.status = t.status_line;  // the response was whole before the stream was reset
    } else if (t.result != CURLE_OK) {
        r.failure = HttpResponse::Failure::Transport;
        r.error = curl_easy_strerror(t.result);
        if (t.error[0] != '\0') r.error += std::string(" (") + t.error + ")";
    } else {
        curl_easy_getinfo(t.easy.get(), CURLINFO_RESPONSE_CODE, &r.status);
    }
    return r;
}

}  // namespace

struct HttpClient::Impl {
    HttpOptions options;
    CURLM_ptr multi;  // the I/O thread's (curl_multi_wakeup excepted)
    base::Mutex mutex;
    std::deque<Batch*> incoming SEALMILTER_GUARDED_BY(mutex);
    bool stopping SEALMILTER_GUARDED_BY(mutex) = false;
    std::vector<Batch*> active;  // I/O thread only
    std::thread io;

    void run();
    bool admit();  // false when stopping
    void add(Batch& b);
    void collect();
    void expire(SteadyClock::time_point now);
    void detach(Transfer& t);
    static void complete(Batch& b);
    int poll_ms() const;
};

void HttpClient::Impl::add(Batch& b) {
    for (auto& t : b.transfers) {
        if (t->done) continue;
        if (curl_multi_add_handle(multi.get(), t->easy.get()) != CURLM_OK) {
            t->response.failure = HttpResponse::Failure::Setup;
            t->response.error = "curl_multi_add_handle failed";
            t->done = true;
            continue;
        }
        t->added = true;
        ++b.running;
    }
    active.push_back(&b);  // completed by expire(), even when nothing could be added
}

// Takes the batches that arrived; false once the client is stopping.
bool HttpClient::Impl::admit() {
    std::deque<Batch*> arrived;
    {
        const base::MutexLock lock(mutex);
        if (stopping) return false;
        arrived.swap(incoming);
    }
    for (Batch* b : arrived) add(*b);
    return true;
}

void HttpClient::Impl::detach(Transfer& t) {
    if (!t.added) return;
    curl_multi_remove_handle(multi.get(), t.easy.get());
    t.added = false;
    --t.batch->running;
}

// The last touch of a batch: its caller may destroy it as soon as the lock is released, so
// the notification happens under the lock.
void HttpClient::Impl::complete(Batch& b) {
    const base::MutexLock lock(b.mutex);
    b.complete = true;
    b.wake.notify_all();
}

void HttpClient::Impl::collect() {
    int queued = 0;
    while (CURLMsg* m = curl_multi_info_read(multi.get(), &queued)) {
        if (m->msg != CURLMSG_DONE) continue;
        char* p = nullptr;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &p);
        auto* t = reinterpret_cast<Transfer*>(p);
        t->done = true;
        t->result = m->data.result;
        detach(*t);  // frees its connection (or stream) for a waiting transfer
    }
}

// Ends what is left of every batch past its deadline (its requests time out), and forgets
// complete batches (their callers own them).
void HttpClient::Impl::expire(SteadyClock::time_point now) {
    std::vector<Batch*> finished;
    for (Batch* b : active) {
        if (b->running != 0 && now >= b->deadline)
            for (auto& t : b->transfers) detach(*t);
        if (b->running == 0) finished.push_back(b);
    }
    active.erase(std::remove_if(active.begin(), active.end(), [](Batch* b) { return b->running == 0; }),
                 active.end());
    for (Batch* b : finished) complete(*b);
}

int HttpClient::Impl::poll_ms() const {
    auto wait = std::chrono::milliseconds(200);
    const auto now = SteadyClock::now();
    for (const Batch* b : active)
        wait = std::min(wait, std::chrono::duration_cast<std::chrono::milliseconds>(b->deadline - now));
    return static_cast<int>(std::max<long long>(1, wait.count()));
}

void HttpClient::Impl::run() {
    while (admit()) {
        int running = 0;
        curl_multi_perform(multi.get(), &running);
        collect();
        expire(SteadyClock::now());
        curl_multi_poll(multi.get(), nullptr, 0, poll_ms(), nullptr);
    }
    // Stopping: every batch still here ends now, its unfinished requests as timeouts.
    {
        const base::MutexLock lock(mutex);
        for (Batch* b : incoming) active.push_back(b);
        incoming.clear();
    }
    expire(SteadyClock::time_point::max());
}

HttpClient::HttpClient(HttpOptions options) : impl_(std::make_unique<Impl>()) {
    CurlGlobal::ensure();
    impl_->options = std::move(options);
    impl_->multi.reset(curl_multi_init());
    if (!impl_->multi) throw std::runtime_error("curl_multi_init failed");
    // HTTP/2 multiplexing where the server offers it; a bounded number of connections per
    // host otherwise (the rest wait in the multi handle for a free one).
    curl_multi_setopt(impl_->multi.get(), CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    curl_multi_setopt(impl_->multi.get(), CURLMOPT_MAX_HOST_CONNECTIONS, std::max(1L, impl_->options.max_connections));
    impl_->io = base::start_worker_thread([impl = impl_.get()] { impl->run(); });
}

HttpClient::~HttpClient() {
    {
        const base::MutexLock lock(impl_->mutex);
        impl_->stopping = true;
    }
    curl_multi_wakeup(impl_->multi.get());
    impl_->io.join();
}

const HttpOptions& HttpClient::options() const {
    return impl_->options;
}

std::vector<HttpResponse> HttpClient::perform(const std::vector<HttpRequest>& requests) {
    Batch batch;
    batch.deadline = SteadyClock::now() + std::chrono::milliseconds(std::max(0L, impl_->options.timeout_ms)) + kGrace;
    for (const HttpRequest& r : requests) batch.transfers.push_back(prepare(impl_->options, r, &batch));
    bool accepted = false;
    {
        const base::MutexLock lock(impl_->mutex);
        if (!impl_->stopping) {
            impl_->incoming.push_back(&batch);
            accepted = true;
        }
    }
    if (accepted) {
        curl_multi_wakeup(impl_->multi.get());
        base::UniqueMutexLock lock(batch.mutex);
        batch.wake.wait(lock, [&batch]() SEALMILTER_NO_THREAD_SAFETY_ANALYSIS { return batch.complete; });
    }
    std::vector<HttpResponse> out;
    out.reserve(batch.transfers.size());
    for (auto& t : batch.transfers) out.push_back(conclude(*t));
    return out;
}

}  // namespace sealmilter::lookup
