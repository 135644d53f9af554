// lookup/ldap_source.cpp — the LDAP certificate source (see ldap_source.hpp).
//
// Three parts: the value parser (DER certificate or CMS certs-only bundle), one exchange
// with a server (Exchange: connect, TLS, bind, concurrent searches, all against one
// deadline), and the per-server connection pools the source keeps between lookups.
//
// Ownership: the source owns its pools, each pool its idle connections (ldap_handles.hpp).
// Threads:   the pools are guarded by their mutex; a connection is one thread's while in use.
// Errors:    every failure becomes a TempError answer with the reason (libldap's error string
//            and the server's diagnostic message); nothing throws out of lookup_many for them.
#include "lookup/ldap_source.hpp"

#include "base/ascii.hpp"
#include "base/file.hpp"
#include "base/mutex.hpp"
#include "base/worker_thread.hpp"
#include "crypto/certs_only.hpp"
#include "crypto/ossl.hpp"
#include "crypto/signed_data.hpp"
#include "lookup/ldap_handles.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <iterator>
#include <limits>
#include <map>
#include <set>
#include <system_error>
#include <thread>
#include <csignal>
#include <sys/socket.h>
#include <unistd.h>

namespace sealmilter::lookup {
namespace {

using ldap::BerElement_ptr;
using ldap::BervalArray_ptr;
using ldap::LDAP_ptr;
using ldap::LDAPMessage_ptr;
using ldap::LdapString_ptr;
using SteadyClock = std::chrono::steady_clock;

constexpr size_t kMaxCertificates = 100;            // per answer, as the directory
constexpr size_t kMaxValueBytes = 1 << 20;          // one attribute value
constexpr ber_len_t kMaxIncoming = 8 << 20;         // one LDAP message from the server
constexpr size_t kMaxSearchesPerConnection = 64;    // outstanding at once on one connection
constexpr size_t kMaxParallelServers = 8;           // servers asked at once by one lookup_many
constexpr const char* kSystemBundle = "/etc/ssl/certs/ca-certificates.crt";
// userCertificate without ;binary for Active Directory, which sends DER under that name.
const char* const kAttributes[] = {"userCertificate;binary", "userCertificate", "userSMIMECertificate",
                                   "userSMIMECertificate;binary", nullptr};

SourceAnswer temp_error(std::string reason) {
    SourceAnswer a;
    a.outcome = Outcome::TempError;
    a.reason = std::move(reason);
    return a;
}

SourceAnswer not_found(std::string reason) {
    SourceAnswer a;
    a.outcome = Outcome::NotFound;
    a.reason = std::move(reason);
    return a;
}

// The attribute type without options ("userCertificate;binary" -> "usercertificate").
std::string attribute_type(std::string_view attribute) {
    return base::to_lower(attribute.substr(0, attribute.find(';')));
}

timeval to_timeval(std::chrono::milliseconds ms) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
    return tv;
}

}  // namespace

LdapValue parse_ldap_value(const std::string& attribute, std::string_view bytes) {
    LdapValue v;
    if (bytes.empty() || bytes.size() > kMaxValueBytes) {
        v.error = attribute + ": empty or oversized value (" + std::to_string(bytes.size()) + " bytes)";
        return v;
    }
    // userSMIMECertificate holds a certs-only SignedData (RFC 2798 §2.8); some directories put
    // a bare certificate there, and userCertificate is always one DER certificate.
    if (attribute_type(attribute) == "usersmimecertificate" && crypto::cms_type(bytes).kind == crypto::CmsKind::Signed) {
        crypto::CertsOnlyBundle bundle = crypto::read_certs_only(bytes, kMaxCertificates);
        if (!bundle.error.empty()) {
            v.error = attribute + ": " + bundle.error;
            return v;
        }
        v.certificates = std::move(bundle.certificates);
        v.capabilities = std::move(bundle.capabilities);
        return v;
    }
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
    crypto::X509_ptr x(d2i_X509(nullptr, &p, static_cast<long>(bytes.size())));
    const std::string err = crypto::drain_errors();
    if (!x) {
        v.error = attribute + ": not a DER certificate" + (err.empty() ? std::string{} : " (" + err + ")");
        return v;
    }
    if (p != reinterpret_cast<const unsigned char*>(bytes.data()) + bytes.size()) {
        v.error = attribute + ": trailing bytes after the certificate";
        return v;
    }
    v.certificates.emplace_back(std::move(x));
    return v;
}

namespace {

// What one search gathered, turned into an answer when its result arrives.
struct Gathered {
    std::vector<crypto::Certificate> certificates;
    std::set<std::string> fingerprints;
    std::vector<std::string> capabilities;
    std::vector<std::string> problems;
    int entries = 0;

    void add(LdapValue v) {
        if (!v.error.empty()) {
            if (problems.size() < 5) problems.push_back(std::move(v.error));
            return;
        }
        if (capabilities.empty()) capabilities = std::move(v.capabilities);
        for (crypto::Certificate& c : v.certificates)
            if (certificates.size() < kMaxCertificates && fingerprints.insert(c.fingerprint_sha256()).second)
                certificates.push_back(std::move(c));
    }

    SourceAnswer answer(const std::string& note) {
        if (!certificates.empty()) {
            SourceAnswer a;
            a.outcome = Outcome::Found;
            a.candidates = std::move(certificates);
            a.capabilities = std::move(capabilities);
            a.reason = note;
            return a;
        }
        if (!problems.empty()) {
            std::string why = "no certificate value parsed";
            for (const std::string& p : problems) why += "; " + p;
            return temp_error(why);
        }
        return not_found(entries == 0 ? "no entry for the address" : "entry without a certificate");
    }
};

// The server's diagnostic message for the last operation, when it sent one.
std::string diagnostic(LDAP* ld) {
    char* raw = nullptr;
    ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, static_cast<void*>(&raw));
    const LdapString_ptr msg(raw);
    return msg && *msg ? std::string(" (") + msg.get() + ")" : std::string{};
}

std::string ldap_error(LDAP* ld, int rc) { return std::string(ldap_err2string(rc)) + diagnostic(ld); }

// Reads every certificate attribute of one entry into `g`.
void read_entry(LDAP* ld, LDAPMessage* entry, Gathered& g) {
    ++g.entries;
    BerElement* raw_ber = nullptr;
    for (LdapString_ptr attr(ldap_first_attribute(ld, entry, &raw_ber)); attr;
         attr.reset(ldap_next_attribute(ld, entry, raw_ber))) {
        const std::string type = attribute_type(attr.get());
        if (type != "usercertificate" && type != "usersmimecertificate") continue;
        const BervalArray_ptr values(ldap_get_values_len(ld, entry, attr.get()));
        for (berval** v = values.get(); v != nullptr && *v != nullptr; ++v)
            g.add(parse_ldap_value(attr.get(), std::string_view((*v)->bv_val, (*v)->bv_len)));
    }
    const BerElement_ptr ber(raw_ber);
}

}  // namespace

// ---- one exchange with one server ----------------------------------------------------------

namespace {

// Settings of the connection, shared by every server of the source.
struct TlsPolicy {
    std::string ca_file;
    bool starttls = true;
};

// libldap bounds the TCP connect (LDAP_OPT_NETWORK_TIMEOUT) and every wait for an answer
// (LDAP_OPT_TIMEOUT), but not the TLS handshake of ldaps:// or StartTLS: a peer that accepts
// and stays silent keeps it spinning. While a connection is opened, a watchdog shuts the
// socket down at the deadline (the handshake then fails); the connect callback tells it the
// socket, the close callback withdraws it under the same lock, so it never touches a
// descriptor that was closed and reused.
class OpenGuard {
public:
    explicit OpenGuard(SteadyClock::time_point deadline) {
        current_ = this;
        thread_ = base::start_worker_thread([this, deadline] { watch(deadline); });
    }
    ~OpenGuard() {
        {
            base::MutexLock lock(mu_);
            done_ = true;
        }
        wake_.notify_all();
        thread_.join();
        current_ = nullptr;
    }
    OpenGuard(const OpenGuard&) = delete;
    OpenGuard& operator=(const OpenGuard&) = delete;

    bool fired() {
        base::MutexLock lock(mu_);
        return fired_;
    }
    static ldap_conncb* callbacks() { return &callbacks_; }

private:
    void watch(SteadyClock::time_point deadline) {
        base::UniqueMutexLock lock(mu_);
        while (!done_) {
            if (wake_.wait_until(lock, deadline) != std::cv_status::timeout) continue;
            if (!done_ && fd_ >= 0) {
                shutdown(fd_, SHUT_RDWR);
                fired_ = true;
            }
            return;
        }
    }
    static int on_add(LDAP* /*ld*/, Sockbuf* sb, LDAPURLDesc* /*srv*/, sockaddr* /*addr*/, ldap_conncb* /*ctx*/) {
        ber_socket_t fd = -1;
        if (current_ != nullptr && sb != nullptr && ber_sockbuf_ctrl(sb, LBER_SB_OPT_GET_FD, &fd) == 1) {
            base::MutexLock lock(current_->mu_);
            current_->fd_ = fd;
        }
        return 0;
    }
    static void on_del(LDAP* /*ld*/, Sockbuf* sb, ldap_conncb* /*ctx*/) {
        if (current_ == nullptr || sb == nullptr) return;
        base::MutexLock lock(current_->mu_);
        current_->fd_ = -1;
    }

    static thread_local OpenGuard* current_;  // the guard of the open() running on this thread
    static ldap_conncb callbacks_;
    base::Mutex mu_;
    std::condition_variable_any wake_;
    int fd_ SEALMILTER_GUARDED_BY(mu_) = -1;
    bool done_ SEALMILTER_GUARDED_BY(mu_) = false;
    bool fired_ SEALMILTER_GUARDED_BY(mu_) = false;
    std::thread thread_;
};

thread_local OpenGuard* OpenGuard::current_ = nullptr;
ldap_conncb OpenGuard::callbacks_{OpenGuard::on_add, OpenGuard::on_del, nullptr};

class Exchange {
public:
    Exchange(const LdapServer& server, const TlsPolicy& tls, SteadyClock::time_point deadline, long timeout_ms)
        : server_(server), tls_(tls), deadline_(deadline), timeout_ms_(timeout_ms) {}

    // A new connection: TCP (+ TLS for ldaps://), StartTLS unless TLS is in place (when
    // ldap.starttls), bind when `bind_dn` is set. Empty = ok, else why not.
    std::string open(LDAP_ptr& out, const std::string& bind_dn, const std::string& password) const {
        LDAP* raw = nullptr;
        int rc = ldap_initialize(&raw, server_.uri.c_str());
        LDAP_ptr ld(raw);
        if (rc != LDAP_SUCCESS || !ld) return "cannot use URI " + server_.uri + ": " + ldap_err2string(rc);
        if (!set_options(ld.get()) || ldap_set_option(ld.get(), LDAP_OPT_CONNECT_CB, OpenGuard::callbacks()) != LDAP_OPT_SUCCESS)
            return "cannot set the connection options";
        if (!refresh_timeouts(ld.get())) return timed_out("connecting");
        OpenGuard guard(deadline_);  // declared after `ld`: stops watching before ld can close
        rc = ldap_connect(ld.get());
        if (rc != LDAP_SUCCESS)
            return guard.fired() ? timed_out("connecting, TLS") : "cannot connect to " + server_.uri + ": " + ldap_error(ld.get(), rc);
        if (ldap_tls_inplace(ld.get()) == 0 && tls_.starttls) {
            if (!refresh_timeouts(ld.get())) return timed_out("StartTLS");
            rc = ldap_start_tls_s(ld.get(), nullptr, nullptr);
            if (rc != LDAP_SUCCESS)
                return guard.fired() ? timed_out("StartTLS") : "StartTLS with " + server_.uri + " failed: " + ldap_error(ld.get(), rc);
        }
        if (!bind_dn.empty()) {
            if (!refresh_timeouts(ld.get())) return timed_out("binding");
            berval cred{static_cast<ber_len_t>(password.size()), const_cast<char*>(password.data())};
            rc = ldap_sasl_bind_s(ld.get(), bind_dn.c_str(), LDAP_SASL_SIMPLE, &cred, nullptr, nullptr, nullptr);
            if (rc != LDAP_SUCCESS && guard.fired()) return timed_out("binding");
            if (rc != LDAP_SUCCESS) return "bind as " + bind_dn + " refused by " + server_.uri + ": " + ldap_error(ld.get(), rc);
        }
        Sockbuf* sb = nullptr;
        if (ldap_get_option(ld.get(), LDAP_OPT_SOCKBUF, static_cast<void*>(&sb)) == LDAP_OPT_SUCCESS && sb != nullptr) {
            ber_len_t max = kMaxIncoming;
            ber_sockbuf_ctrl(sb, LBER_SB_OPT_SET_MAX_INCOMING, &max);
        }
        out = std::move(ld);
        return {};
    }

    // Searches for every address on `ld` at once and fills `answers` (same order). Returns
    // false when the connection failed before any answer arrived (a reused connection the
    // server closed: the caller retries once on a fresh one); answers are then unset.
    bool search(LDAP* ld, const std::vector<std::string>& addresses, std::vector<SourceAnswer>& answers) const {
        answers.assign(addresses.size(), temp_error("no answer"));
        std::map<int, size_t> pending;  // msgid -> index
        std::vector<Gathered> gathered(addresses.size());
        if (!refresh_timeouts(ld)) {
            fill(answers, timed_out("searching"));
            return true;
        }
        for (size_t i = 0; i < addresses.size(); ++i) {
            const std::string filter = expand_filter(server_.filter, addresses[i]);
            timeval limit = to_timeval(remaining());
            if (limit.tv_usec > 0) ++limit.tv_sec;  // the server's time limit is in whole seconds
            int msgid = 0;
            const int rc = ldap_search_ext(ld, server_.base.c_str(), LDAP_SCOPE_SUBTREE, filter.c_str(),
                                           const_cast<char**>(kAttributes), 0, nullptr, nullptr, &limit, size_limit_,
                                           &msgid);
            if (rc == LDAP_SERVER_DOWN && i == 0) return false;
            if (rc != LDAP_SUCCESS) answers[i] = temp_error("search on " + server_.uri + " failed: " + ldap_error(ld, rc));
            else pending.emplace(msgid, i);
        }
        bool any_answer = false;
        while (!pending.empty()) {
            timeval tv = to_timeval(remaining());
            if (tv.tv_sec == 0 && tv.tv_usec == 0) break;
            LDAPMessage* raw = nullptr;
            const int type = ldap_result(ld, LDAP_RES_ANY, LDAP_MSG_ONE, &tv, &raw);
            const LDAPMessage_ptr msg(raw);
            if (type == 0) break;  // the deadline
            if (type < 0) {
                if (!any_answer) return false;
                int err = LDAP_SERVER_DOWN;
                ldap_get_option(ld, LDAP_OPT_RESULT_CODE, &err);
                for (const auto& [id, index] : pending) answers[index] = temp_error("connection to " + server_.uri + " lost: " + ldap_err2string(err));
                pending.clear();
                broken_ = true;
                break;
            }
            any_answer = true;
            const auto it = pending.find(ldap_msgid(msg.get()));
            if (it == pending.end()) continue;
            if (type == LDAP_RES_SEARCH_ENTRY) {
                read_entry(ld, msg.get(), gathered[it->second]);
            } else if (type == LDAP_RES_SEARCH_RESULT) {
                answers[it->second] = finish(ld, msg.get(), gathered[it->second]);
                pending.erase(it);
            }  // LDAP_RES_SEARCH_REFERENCE: referrals are not followed
        }
        if (!pending.empty()) {  // the deadline passed: abandon what is left, drop the connection
            for (const auto& [id, index] : pending) {
                ldap_abandon_ext(ld, id, nullptr, nullptr);
                answers[index] = temp_error(timed_out("searching"));
            }
            broken_ = true;
        }
        return true;
    }

    bool broken() const { return broken_; }
    void set_size_limit(int n) { size_limit_ = n; }

private:
    std::chrono::milliseconds remaining() const {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - SteadyClock::now());
        return std::max(left, std::chrono::milliseconds(0));
    }

    std::string timed_out(const char* what) const {
        return "LDAP server " + server_.uri + " timed out (" + what + "; ldap.timeout_ms " + std::to_string(timeout_ms_) + ")";
    }

    static void fill(std::vector<SourceAnswer>& answers, const std::string& why) {
        for (SourceAnswer& a : answers) a = temp_error(why);
    }

    // Network and API timeouts set to what is left of the deadline; false when nothing is.
    bool refresh_timeouts(LDAP* ld) const {
        const std::chrono::milliseconds left = remaining();
        if (left.count() <= 0) return false;
        const timeval tv = to_timeval(left);
        ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv);
        ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv);
        return true;
    }

    bool set_options(LDAP* ld) const {
        const int version = LDAP_VERSION3;
        const int demand = LDAP_OPT_X_TLS_DEMAND;
        const int tls12 = LDAP_OPT_X_TLS_PROTOCOL_TLS1_2;
        const int client = 0;
        const std::string ca = tls_.ca_file.empty() ? kSystemBundle : tls_.ca_file;
        return ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &version) == LDAP_OPT_SUCCESS &&
               ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF) == LDAP_OPT_SUCCESS &&
               ldap_set_option(ld, LDAP_OPT_RESTART, LDAP_OPT_ON) == LDAP_OPT_SUCCESS &&
               ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand) == LDAP_OPT_SUCCESS &&
               ldap_set_option(ld, LDAP_OPT_X_TLS_PROTOCOL_MIN, &tls12) == LDAP_OPT_SUCCESS &&
               ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, ca.c_str()) == LDAP_OPT_SUCCESS &&
               // NEWCTX last: it builds this handle's TLS context from the options above.
               ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &client) == LDAP_OPT_SUCCESS;
    }

    SourceAnswer finish(LDAP* ld, LDAPMessage* result, Gathered& g) const {
        int rc = LDAP_OTHER;
        char* raw_diag = nullptr;
        if (ldap_parse_result(ld, result, &rc, nullptr, &raw_diag, nullptr, nullptr, 0) != LDAP_SUCCESS)
            return temp_error("unparsable search result from " + server_.uri);
        const LdapString_ptr diag(raw_diag);
        const std::string server_says = diag && *diag ? std::string(" (") + diag.get() + ")" : std::string{};
        switch (rc) {
        case LDAP_SUCCESS: return g.answer({});
        case LDAP_SIZELIMIT_EXCEEDED:  // more entries than ldap.size_limit: use those received
            return g.answer("ldap.size_limit reached");
        case LDAP_REFERRAL: return not_found("referral from " + server_.uri + " (referrals are not followed)");
        case LDAP_NO_SUCH_OBJECT:
            return temp_error("search base '" + server_.base + "' does not exist on " + server_.uri + server_says);
        default: return temp_error("search on " + server_.uri + " failed: " + ldap_err2string(rc) + server_says);
        }
    }

    const LdapServer& server_;
    const TlsPolicy& tls_;
    SteadyClock::time_point deadline_;
    long timeout_ms_;
    int size_limit_ = 10;
    mutable bool broken_ = false;
};

}  // namespace

// ---- connection pools and the source -------------------------------------------------------

namespace {

// The connections kept for one server URI: idle ones for reuse, at most `max` open at once.
class Pool {
public:
    explicit Pool(int max) : max_(max) {}

    // An idle connection, or null with a slot reserved for a new one; false when every slot
    // stayed busy until the deadline.
    bool acquire(LDAP_ptr& out, SteadyClock::time_point deadline) {
        base::UniqueMutexLock lock(mu_);
        while (idle_.empty() && open_ >= max_)
            if (wake_.wait_until(lock, deadline) == std::cv_status::timeout && idle_.empty() && open_ >= max_) return false;
        if (!idle_.empty()) {
            out = std::move(idle_.back());
            idle_.pop_back();
            return true;
        }
        ++open_;
        out.reset();
        return true;
    }

    // Closes every idle connection: one was found closed by the server, the others, opened
    // before the same restart, would fail the same way.
    void drop_idle() {
        std::vector<LDAP_ptr> stale;
        {
            base::MutexLock lock(mu_);
            stale.swap(idle_);
            open_ -= static_cast<int>(stale.size());
        }
        wake_.notify_all();
    }

    // Gives a connection back (null or broken: its slot is freed).
    void release(LDAP_ptr ld, bool keep) {
        {
            base::MutexLock lock(mu_);
            if (ld && keep) idle_.push_back(std::move(ld));
            else --open_;
        }
        wake_.notify_one();
    }

private:
    base::Mutex mu_;
    std::condition_variable_any wake_;
    std::vector<LDAP_ptr> idle_ SEALMILTER_GUARDED_BY(mu_);
    int open_ SEALMILTER_GUARDED_BY(mu_) = 0;
    const int max_;
};

}  // namespace

struct LdapSource::Impl {
    LdapOptions options;
    TlsPolicy tls;
    base::Mutex mu;
    std::map<std::string, std::unique_ptr<Pool>> pools SEALMILTER_GUARDED_BY(mu);
    std::atomic<long> opened{0};

    explicit Impl(LdapOptions o) : options(std::move(o)), tls{options.ca_file, options.starttls} {}

    Pool& pool(const std::string& uri) {
        base::MutexLock lock(mu);
        std::unique_ptr<Pool>& p = pools[uri];
        if (!p) p = std::make_unique<Pool>(options.max_connections);
        return *p;
    }

    // The bind identity belongs to ldap.uri's server only: a partner's directory from the
    // domain map never sees our password.
    bool binds(const LdapServer& server) const { return !options.bind_dn.empty() && server.uri == options.defaults.uri; }

    // All `addresses` for one server, in chunks of kMaxSearchesPerConnection, within one deadline.
    std::vector<SourceAnswer> ask(const LdapServer& server, const std::vector<std::string>& addresses) {
        const auto deadline = SteadyClock::now() + std::chrono::milliseconds(options.timeout_ms);
        std::vector<SourceAnswer> out;
        out.reserve(addresses.size());
        for (size_t start = 0; start < addresses.size(); start += kMaxSearchesPerConnection) {
            const std::vector<std::string> chunk(addresses.begin() + static_cast<std::ptrdiff_t>(start),
                                                 addresses.begin() + static_cast<std::ptrdiff_t>(std::min(addresses.size(), start + kMaxSearchesPerConnection)));
            std::vector<SourceAnswer> answers = ask_chunk(server, chunk, deadline);
            std::move(answers.begin(), answers.end(), std::back_inserter(out));
        }
        return out;
    }

    std::vector<SourceAnswer> ask_chunk(const LdapServer& server, const std::vector<std::string>& addresses,
                                        SteadyClock::time_point deadline) {
        Pool& p = pool(server.uri);
        Exchange x(server, tls, deadline, options.timeout_ms);
        x.set_size_limit(options.size_limit);
        std::vector<SourceAnswer> answers;
        for (int attempt = 0; attempt < 2; ++attempt) {
            LDAP_ptr ld;
            if (!p.acquire(ld, deadline))
                return std::vector<SourceAnswer>(addresses.size(), temp_error("all " + std::to_string(options.max_connections) +
                                                                                  " connections to " + server.uri + " stayed busy"));
            const bool reused = static_cast<bool>(ld);
            if (!reused) {
                const std::string why = x.open(ld, binds(server) ? options.bind_dn : std::string{}, options.bind_password);
                if (!why.empty()) {
                    p.release(nullptr, false);
                    return std::vector<SourceAnswer>(addresses.size(), temp_error(why));
                }
                opened.fetch_add(1);
            }
            if (!x.search(ld.get(), addresses, answers)) {
                p.release(nullptr, false);
                if (reused) {  // the server closed an idle connection: once more, on a fresh one
                    p.drop_idle();
                    continue;
                }
                return std::vector<SourceAnswer>(addresses.size(), temp_error("connection to " + server.uri + " lost"));
            }
            p.release(std::move(ld), !x.broken());
            return answers;
        }
        return std::vector<SourceAnswer>(addresses.size(), temp_error("connection to " + server.uri + " lost"));
    }
};

LdapSource::LdapSource(LdapOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
    // libldap writes with write(2): a server that closed the connection would raise SIGPIPE,
    // whose default action ends the process (the daemon, `sealmilter lookup`). The error
    // comes back as EPIPE instead, and the lookup is a TempError. A handler someone else
    // installed is left alone (libmilter ignores SIGPIPE itself).
    struct sigaction current {};
    if (sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) signal(SIGPIPE, SIG_IGN);
}

LdapSource::~LdapSource() = default;

SourceProperties LdapSource::properties() const {
    return {.cacheable = true, .negative_authoritative = true};  // no entry = the directory has none
}

bool LdapSource::vouches_for(const crypto::Certificate& /*candidate*/) const { return impl_->options.trusted; }

long LdapSource::connections_opened() const { return impl_->opened.load(); }

SourceAnswer LdapSource::lookup(const Query& query) { return lookup_many({query}).front(); }

std::vector<SourceAnswer> LdapSource::lookup_many(const std::vector<Query>& queries) {
    std::vector<SourceAnswer> answers(queries.size());
    // Group the addresses by server; a server per worker thread, at most kMaxParallelServers.
    std::map<std::string, std::pair<LdapServer, std::vector<size_t>>> groups;
    for (size_t i = 0; i < queries.size(); ++i) {
        const std::optional<LdapServer> server = server_for(impl_->options, queries[i].email);
        if (!server) {
            answers[i] = not_found("no LDAP server for this domain (ldap.uri empty, not in ldap.domain_map)");
            continue;
        }
        auto& g = groups[server->uri + '\n' + server->base + '\n' + server->filter];
        g.first = *server;
        g.second.push_back(i);
    }
    const auto run = [&](const std::pair<LdapServer, std::vector<size_t>>& g) {
        std::vector<std::string> addresses;
        for (const size_t i : g.second) addresses.push_back(queries[i].email);
        std::vector<SourceAnswer> got;
        try {
            got = impl_->ask(g.first, addresses);
        } catch (const std::exception& e) {  // allocation failures: a source error, never a crash
            got.assign(addresses.size(), temp_error(std::string("LDAP lookup failed: ") + e.what()));
        }
        for (size_t k = 0; k < g.second.size() && k < got.size(); ++k) answers[g.second[k]] = std::move(got[k]);
    };
    std::vector<const std::pair<LdapServer, std::vector<size_t>>*> list;
    list.reserve(groups.size());
    for (const auto& [key, g] : groups) list.push_back(&g);
    for (size_t start = 0; start < list.size(); start += kMaxParallelServers) {
        const size_t end = std::min(list.size(), start + kMaxParallelServers);
        std::vector<std::thread> workers;
        for (size_t k = start + 1; k < end; ++k) workers.push_back(base::start_worker_thread([&run, &list, k] { run(*list[k]); }));
        run(*list[start]);
        for (std::thread& t : workers) t.join();
    }
    return answers;
}

// ---- settings ------------------------------------------------------------------------------

LdapOptions ldap_options(const Settings& s) {
    LdapOptions o;
    o.defaults.uri = std::string(base::trim(s.get("ldap.uri")));
    o.defaults.base = s.get("ldap.base");
    o.defaults.filter = s.get("ldap.filter");
    std::string why;
    if (!o.defaults.uri.empty() && !check_ldap_uris(o.defaults.uri, why)) throw SettingsError("ldap.uri: " + why);
    if (!check_filter_template(o.defaults.filter, why)) throw SettingsError("ldap.filter: " + why);
    o.bind_dn = s.get("ldap.bind_dn");
    const std::string password_file = s.get("ldap.bind_password_file");
    if (!o.bind_dn.empty() && password_file.empty())
        throw SettingsError("ldap.bind_dn: set without ldap.bind_password_file (an empty password would be an "
                            "unauthenticated bind, RFC 4513 §5.1.2)");
    if (o.bind_dn.empty() && !password_file.empty())
        throw SettingsError("ldap.bind_password_file: set without ldap.bind_dn");
    if (!password_file.empty()) {
        o.bind_password = read_secret("ldap.bind_password_file", password_file);
        if (o.bind_password.empty()) throw SettingsError("ldap.bind_password_file: " + password_file + " holds an empty password");
    }
    o.ca_file = s.get("ldap.ca_file");
    if (!o.ca_file.empty() && access(o.ca_file.c_str(), R_OK) != 0)
        throw SettingsError("ldap.ca_file: cannot read " + o.ca_file + ": " + std::generic_category().message(errno));
    o.starttls = s.get_bool("ldap.starttls");
    o.timeout_ms = static_cast<long>(s.get_int("ldap.timeout_ms"));
    o.size_limit = static_cast<int>(s.get_int("ldap.size_limit"));
    o.max_connections = static_cast<int>(s.get_int("ldap.max_connections"));
    o.trusted = s.get_bool("ldap.trusted");
    if (const std::string map = s.get("ldap.domain_map"); !map.empty()) {
        std::string text;
        try {
            text = base::read_file(map, size_t{4} << 20);
        } catch (const std::system_error& e) {
            throw SettingsError(std::string("ldap.domain_map: ") + e.what());
        }
        o.domain_map = parse_domain_map(text, map, o.defaults);
    }
    if (o.trusted && !o.starttls) {
        const auto plaintext = [](const LdapServer& sv) { return !sv.uri.empty() && !all_ldaps(sv.uri); };
        bool any = plaintext(o.defaults);
        for (const auto& [domain, sv] : o.domain_map) any = any || plaintext(sv);
        if (any) throw SettingsError("ldap.trusted: a server is reached without TLS (ldap:// with ldap.starttls off)");
    }
    return o;
}

}  // namespace sealmilter::lookup
