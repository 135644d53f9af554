// pickup/service.cpp — libmicrohttpd plumbing of the pickup service (see service.hpp): the
// socket, TLS, per-request state, POST bodies, and the security headers of every response.
#include "pickup/service.hpp"

#include "base/handle.hpp"
#include "base/socket_address.hpp"
#include "pickup/flow.hpp"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>

namespace sealmilter::pickup {

namespace {

constexpr const char* kCsp =
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'";

struct Listener {
    base::UniqueFd fd;
    int port = 0;
};

// Binds HOST:PORT ([v6]:PORT) ourselves: the sentence for "in use", and port 0 for tests.
std::optional<Listener> bind_listener(const std::string& where, std::string* error) {
    const size_t colon = where.rfind(':');
    if (colon == std::string::npos || colon + 1 == where.size()) {
        *error = "pickup.listen " + where + ": expected HOST:PORT";
        return std::nullopt;
    }
    std::string host = where.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    const std::string port_text = where.substr(colon + 1);
    char* end = nullptr;
    const long port = std::strtol(port_text.c_str(), &end, 10);
    if (*end != '\0' || port < 0 || port > 65535) {
        *error = "pickup.listen " + where + ": bad port";
        return std::nullopt;
    }
    const std::optional<base::SocketAddress> a = base::ip_socket_address(host, static_cast<int>(port));
    if (!a) {
        *error = "pickup.listen " + where + ": the host must be an IP address";
        return std::nullopt;
    }
    Listener l{base::UniqueFd(socket(a->family(), SOCK_STREAM | SOCK_CLOEXEC, 0)), 0};
    const int one = 1;
    if (l.fd.get() < 0 || setsockopt(l.fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(l.fd.get(), a->get(), a->length) != 0 || ::listen(l.fd.get(), 64) != 0) {
        *error = "pickup.listen " + where + ": cannot listen: " +
                 (errno == EADDRINUSE ? std::string("the port is already in use by another process")
                                      : std::string(std::strerror(errno)));
        return std::nullopt;
    }
    sockaddr_storage bound{};
    socklen_t blen = sizeof bound;
    getsockname(l.fd.get(), reinterpret_cast<sockaddr*>(&bound), &blen);
    l.port = ntohs(bound.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                              : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
    return l;
}

// The flow's copy of the settings does not need the TLS key.
PickupSettings without_key(PickupSettings s) {
    OPENSSL_cleanse(s.key_pem.data(), s.key_pem.size());
    s.key_pem.clear();
    return s;
}

}  // namespace

struct PickupService::Impl {
    PickupSettings settings;
    base::Logger log;
    Flow flow;
    int port = 0;
    MHD_Daemon* daemon = nullptr;

    Impl(PickupSettings s, PickupDeps d)
        : settings(s), log(d.log), flow(without_key(std::move(s)), std::move(d)) {}
    ~Impl() {
        if (daemon != nullptr) MHD_stop_daemon(daemon);
        OPENSSL_cleanse(settings.key_pem.data(), settings.key_pem.size());
    }
    Impl(const Impl&) = delete;
    Impl& operator=(const Impl&) = delete;
};

namespace {

// One request's state between MHD's calls (created on the first, freed by on_completed).
struct Request {
    HttpRequest http;
    size_t received = 0;
    size_t max_bytes = 0;
    MHD_PostProcessor* post = nullptr;
    std::function<void(bool)> after;  // HttpResponse::after of the queued response
    ~Request() {
        if (post != nullptr) MHD_destroy_post_processor(post);
        // The form holds the passwords: wiped before the memory goes back (append_field never
        // leaves a copy behind in a freed buffer).
        for (auto& [key, value] : http.form) OPENSSL_cleanse(value.data(), value.size());
    }
    Request() = default;
    Request(const Request&) = delete;
    Request& operator=(const Request&) = delete;
};

// Appends to a form value without leaving a copy in freed memory: the value is given room for
// the whole body at once (a body is at most max_bytes, so it never grows again); should it ever
// have to, the old buffer is wiped before it is freed.
void append_field(std::string& value, const char* data, size_t size, size_t room) {
    if (value.size() + size > value.capacity()) {
        std::string bigger;
        bigger.reserve(std::max(room, value.size() + size));
        bigger.append(value);
        OPENSSL_cleanse(value.data(), value.size());
        value.swap(bigger);
    }
    value.append(data, size);
}

MHD_Result on_post_field(void* cls, MHD_ValueKind /*kind*/, const char* key, const char* /*filename*/,
                         const char* /*content_type*/, const char* /*transfer_encoding*/, const char* data,
                         uint64_t /*off*/, size_t size) {
    auto* r = static_cast<Request*>(cls);
    try {
        if (key == nullptr || (r->http.form.size() >= 16 && r->http.form.find(key) == r->http.form.end())) {
            r->http.form_too_large = true;
            return MHD_NO;
        }
        append_field(r->http.form[key], data, size, r->max_bytes);
        return MHD_YES;
    } catch (...) {  // a C callback: nothing may unwind into MHD
        r->http.form_too_large = true;
        return MHD_NO;
    }
}

MHD_Result on_header(void* cls, MHD_ValueKind /*kind*/, const char* key, const char* value) {
    // Every X-Forwarded-For field, joined: the last hop is the last element of the last field.
    auto* xff = static_cast<std::string*>(cls);
    try {
        if (key != nullptr && value != nullptr && strcasecmp(key, "X-Forwarded-For") == 0) {
            if (!xff->empty()) xff->append(",");
            xff->append(value);
        }
        return MHD_YES;
    } catch (...) {  // a C callback: nothing may unwind into MHD
        return MHD_NO;
    }
}

std::string peer_address(MHD_Connection* c) {
    const MHD_ConnectionInfo* ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci == nullptr || ci->client_addr == nullptr) return "unknown";
    char buf[INET6_ADDRSTRLEN] = {};
    const sockaddr* sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, buf, sizeof buf);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, buf, sizeof buf);
    std::string s = buf;
    if (s.rfind("::ffff:", 0) == 0 && s.find('.') != std::string::npos) s = s.substr(7);
    return s.empty() ? "unknown" : s;
}

MHD_Result respond(MHD_Connection* c, const HttpResponse& r) {
    MHD_Response* m = MHD_create_response_from_buffer(r.body.size(), const_cast<char*>(r.body.data()),
                                                      MHD_RESPMEM_MUST_COPY);
    if (m == nullptr) return MHD_NO;
    MHD_add_response_header(m, "Content-Type", r.content_type.c_str());
    MHD_add_response_header(m, "Content-Security-Policy", kCsp);
    MHD_add_response_header(m, "Strict-Transport-Security", "max-age=31536000");
    MHD_add_response_header(m, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(m, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(m, "X-Frame-Options", "DENY");
    MHD_add_response_header(m, "Cache-Control", r.cacheable ? "public, max-age=3600" : "no-store");
    for (const auto& [k, v] : r.headers) MHD_add_response_header(m, k.c_str(), v.c_str());
    const MHD_Result ok = MHD_queue_response(c, r.status, m);
    MHD_destroy_response(m);
    return ok;
}

MHD_Result too_large(MHD_Connection* c) {
    HttpResponse too_big;
    too_big.status = 413;
    too_big.body = "<!DOCTYPE html><html lang=\"en\"><title>Too large</title><h1>Request too large</h1></html>\n";
    too_big.headers.emplace_back("Connection", "close");
    return respond(c, too_big);
}

// The declared Content-Length, when there is one and it is a number.
std::optional<uint64_t> content_length(MHD_Connection* c) {
    const char* v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (v == nullptr || *v == '\0') return std::nullopt;
    char* end = nullptr;
    errno = 0;
    const unsigned long long n = std::strtoull(v, &end, 10);
    if (*end != '\0' || errno != 0) return std::nullopt;
    return n;
}

MHD_Result handle_request(PickupService::Impl* impl, MHD_Connection* c, const char* url, const char* method,
                          const char* upload_data, size_t* upload_size, void** con_cls) {
    auto* r = static_cast<Request*>(*con_cls);
    if (r == nullptr) {
        auto fresh = std::make_unique<Request>();
        fresh->http.method = method;
        fresh->http.path = url;
        fresh->max_bytes = impl->settings.max_post_bytes;
        std::string xff;
        MHD_get_connection_values(c, MHD_HEADER_KIND, on_header, &xff);
        fresh->http.client = impl->settings.proxies.client(peer_address(c), xff);
        // A body that says it is too large is refused before a byte of it is read.
        const std::optional<uint64_t> declared = content_length(c);
        if (declared && *declared > fresh->max_bytes) {
            fresh->received = static_cast<size_t>(std::min<uint64_t>(*declared, SIZE_MAX));
            *con_cls = fresh.release();  // NOLINT(cppcoreguidelines-owning-memory): on_completed frees it
            return too_large(c);
        }
        if (fresh->http.method == "POST") {
            fresh->post = MHD_create_post_processor(c, 1024, on_post_field, fresh.get());
            if (fresh->post == nullptr) fresh->http.form_too_large = true;  // not a form: refused like a forged one
        }
        *con_cls = fresh.release();  // NOLINT(cppcoreguidelines-owning-memory): MHD holds it; on_completed frees it
        return MHD_YES;
    }
    if (*upload_size != 0) {
        r->received += *upload_size;
        if (r->received > r->max_bytes) {
            // Too large: answered at once (MHD closes the connection after the 413) instead of
            // reading the rest of the body to its end.
            *upload_size = 0;
            return too_large(c);
        }
        if (!r->http.form_too_large && r->post != nullptr &&
            MHD_post_process(r->post, upload_data, *upload_size) != MHD_YES)
            r->http.form_too_large = true;
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->received > r->max_bytes) return too_large(c);
    HttpResponse response = impl->flow.handle(r->http);
    const MHD_Result queued = respond(c, response);
    if (queued == MHD_YES) r->after = std::move(response.after);
    else if (response.after) response.after(false);
    return queued;
}

MHD_Result on_request(void* cls, MHD_Connection* c, const char* url, const char* method, const char* /*version*/,
                      const char* upload_data, size_t* upload_size, void** con_cls) {
    try {
        return handle_request(static_cast<PickupService::Impl*>(cls), c, url, method, upload_data, upload_size,
                              con_cls);
    } catch (const std::exception& e) {  // a C callback: nothing may unwind into MHD
        static_cast<PickupService::Impl*>(cls)->log.error(std::string("pickup: request failed: ") + e.what());
        return MHD_NO;
    } catch (...) {
        return MHD_NO;
    }
}

void on_completed(void* cls, MHD_Connection* /*c*/, void** con_cls, MHD_RequestTerminationCode toe) {
    std::unique_ptr<Request> r(static_cast<Request*>(*con_cls));  // made in on_request
    *con_cls = nullptr;
    if (!r || !r->after) return;
    try {
        // Only a response sent to its end counts (a download is a pickup only then).
        r->after(toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
    } catch (const std::exception& e) {  // a C callback: nothing may unwind into MHD
        static_cast<PickupService::Impl*>(cls)->log.error(std::string("pickup: after a response: ") + e.what());
    } catch (...) {
        static_cast<PickupService::Impl*>(cls)->log.error("pickup: after a response: unknown failure");
    }
}

void on_mhd_log(void* cls, const char* fmt, va_list ap) {
    try {
        char buf[512];
        std::vsnprintf(buf, sizeof buf, fmt, ap);
        std::string line = buf;
        while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
        static_cast<const base::Logger*>(cls)->warning("pickup (libmicrohttpd): " + line);
    } catch (...) {  // a C callback: nothing may unwind into MHD
    }
}

}  // namespace

PickupService::PickupService(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PickupService::~PickupService() = default;
int PickupService::port() const noexcept { return impl_->port; }

std::unique_ptr<PickupService> PickupService::start(PickupSettings settings, PickupDeps deps, std::string* error) {
    if (!deps.audit || !deps.mail) {
        *error = "the pickup service needs an audit log and a mail re-injector";
        return nullptr;
    }
    if (settings.cert_pem.empty() || settings.key_pem.empty()) {
        *error = "the pickup service needs pickup.cert_file and pickup.key_file";
        return nullptr;
    }
    std::optional<Listener> l = bind_listener(settings.listen, error);
    if (!l) return nullptr;
    auto impl = std::make_unique<Impl>(std::move(settings), std::move(deps));
    impl->port = l->port;
    const PickupSettings& s = impl->settings;
    // MHD_USE_AUTO: epoll on Linux (no FD_SETSIZE limit); MHD suppresses SIGPIPE itself on Linux.
    const unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_TLS | MHD_USE_ERROR_LOG;
    impl->daemon = MHD_start_daemon(
        flags, 0, nullptr, nullptr, &on_request, impl.get(), MHD_OPTION_LISTEN_SOCKET, l->fd.get(),
        MHD_OPTION_THREAD_POOL_SIZE, static_cast<unsigned>(s.threads), MHD_OPTION_CONNECTION_LIMIT,
        static_cast<unsigned>(s.max_connections), MHD_OPTION_CONNECTION_TIMEOUT,
        static_cast<unsigned>(s.connection_timeout_s), MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        static_cast<size_t>(64 * 1024), MHD_OPTION_HTTPS_MEM_CERT, s.cert_pem.c_str(), MHD_OPTION_HTTPS_MEM_KEY,
        s.key_pem.c_str(), MHD_OPTION_HTTPS_PRIORITIES, "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2",
        MHD_OPTION_NOTIFY_COMPLETED, &on_completed, impl.get(), MHD_OPTION_EXTERNAL_LOGGER, &on_mhd_log, &impl->log,
        MHD_OPTION_END);
    if (impl->daemon == nullptr) {
        *error = "pickup.listen " + impl->settings.listen +
                 ": the HTTPS server did not start (is the certificate / key pair in pickup.cert_file and "
                 "pickup.key_file valid PEM that belong together?)";
        return nullptr;
    }
    (void)l->fd.release();  // MHD owns the listening socket now and closes it when it stops
    return std::make_unique<PickupService>(std::move(impl));
}

}  // namespace sealmilter::pickup
