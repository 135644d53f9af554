// milter/adapter.cpp — libmilter glue (see adapter.hpp). Keep it thin: no decisions here.
#include "milter/adapter.hpp"

#include "milter/reinject.hpp"
#include "milter/session.hpp"

#include <libmilter/mfapi.h>

#include <atomic>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <cerrno>
#include <csignal>
#include <memory>
#include <pthread.h>
#include <thread>
#include <vector>

namespace sealmilter::milter {
namespace {

ServicesHolder* g_services = nullptr;  // set by serve(); libmilter callbacks have no user data
base::Logger g_log;                    // set by serve() before smfi_main; read-only afterwards
std::atomic<unsigned long> g_session{0};

void check(int rc, const std::string& what) {
    if (rc != MI_SUCCESS) throw std::runtime_error(what + " failed");
}

Session* conn(SMFICTX* ctx) { return static_cast<Session*>(smfi_getpriv(ctx)); }

Session& session(SMFICTX* ctx) {
    Session* c = conn(ctx);
    if (c == nullptr) throw std::runtime_error("no connection state");
    return *c;
}

// The connection state is created by whichever callback comes first (negotiate precedes
// connect) and owned through smfi_setpriv until on_close.
Session& ensure_conn(SMFICTX* ctx) {
    if (Session* c = conn(ctx)) return *c;
    auto c = std::make_unique<Session>("S" + std::to_string(++g_session));
    check(smfi_setpriv(ctx, c.get()), "smfi_setpriv");
    return *c.release();
}

std::string tag_of(SMFICTX* ctx) {
    const Session* c = conn(ctx);
    return c == nullptr ? "-" : c->tag();
}

// The one guarded dispatcher: everything that can throw runs inside.
template <typename Fn>
sfsistat guarded(SMFICTX* ctx, const char* step, Fn&& fn) {
    try {
        return fn();
    } catch (const std::exception& e) {
        g_log.child(tag_of(ctx)).error(std::string("internal error in ") + step + ": " + e.what() + "; tempfail");
    } catch (...) {
        g_log.child(tag_of(ctx)).error(std::string("unknown internal error in ") + step + "; tempfail");
    }
    smfi_setreply(ctx, const_cast<char*>("451"), const_cast<char*>("4.7.0"),
                  const_cast<char*>("internal error in the encryption gateway; try again later"));
    return SMFIS_TEMPFAIL;
}

sfsistat reply(SMFICTX* ctx, const Reply& r) {
    check(smfi_setreply(ctx, const_cast<char*>(r.code.c_str()), const_cast<char*>(r.xcode.c_str()),
                        const_cast<char*>(r.text.c_str())),
          "smfi_setreply");
    return r.temporary ? SMFIS_TEMPFAIL : SMFIS_REJECT;
}

class LibmilterActions final : public MessageActions, public crypto::ByteSink {
public:
    LibmilterActions(SMFICTX* ctx, bool leadspc) : ctx_(ctx), leadspc_(leadspc) {}
    void change_header(const std::string& name, int index, const std::string& value) override {
        std::string v = wire(value);
        check(smfi_chgheader(ctx_, const_cast<char*>(name.c_str()), index, v.data()), "smfi_chgheader " + name);
    }
    void delete_header(const std::string& name, int index) override {
        check(smfi_chgheader(ctx_, const_cast<char*>(name.c_str()), index, nullptr), "smfi_chgheader(delete) " + name);
    }
    void add_header(const std::string& name, const std::string& value) override {
        std::string v = wire(value);
        check(smfi_addheader(ctx_, const_cast<char*>(name.c_str()), v.data()), "smfi_addheader " + name);
    }
    void insert_header(int index, const std::string& name, const std::string& value) override {
        std::string v = wire(value);
        check(smfi_insheader(ctx_, index, const_cast<char*>(name.c_str()), v.data()), "smfi_insheader " + name);
    }
    crypto::ByteSink& replace_body() override { return *this; }
    // The encryptor writes base64 a line at a time; the MTA gets full milter packets
    // (libmilter's largest body chunk, 65535 bytes) instead of one packet per line.
    void write(const char* data, size_t len) override {
        while (len > 0) {
            const size_t n = std::min(len, kChunk - pending_.size());
            pending_.append(data, n);
            data += n;
            len -= n;
            if (pending_.size() == kChunk) flush_body();
        }
    }
    // Sends what is left; called once the transaction accepted the message.
    void flush_body() {
        if (pending_.empty()) return;
        check(smfi_replacebody(ctx_, reinterpret_cast<unsigned char*>(pending_.data()), static_cast<int>(pending_.size())),
              "smfi_replacebody");
        pending_.clear();
    }
    void delete_recipient(const std::string& address) override {
        check(smfi_delrcpt(ctx_, const_cast<char*>(address.c_str())), "smfi_delrcpt " + address);
    }

private:
    // Without SMFIP_HDR_LEADSPC the MTA inserts the space after the colon itself.
    std::string wire(const std::string& value) const {
        if (leadspc_ || value.empty() || value[0] != ' ') return value;
        return value.substr(1);
    }
    static constexpr size_t kChunk = 65535;
    SMFICTX* ctx_;
    bool leadspc_;
    std::string pending_;
};

sfsistat on_negotiate(SMFICTX* ctx, unsigned long f0, unsigned long f1, unsigned long, unsigned long,
                      unsigned long* pf0, unsigned long* pf1, unsigned long* pf2, unsigned long* pf3) {
    return guarded(ctx, "negotiate", [&] {
        // Only the actions the transform needs.
        *pf0 = f0 & (SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY | SMFIF_DELRCPT);
        // DATA is not skipped (no SMFIP_NODATA): Postfix sends the DATA-stage macro packet
        // anyway, and without a reply to ACK it, Nagle on the MTA's side holds the first header
        // until our delayed ACK fires (+40 ms per message, measured). The reply to DATA ACKs it.
        // Headers and body chunks need no reply (SMFIP_NR_*): one round trip less for each.
        *pf1 = f1 & (SMFIP_HDR_LEADSPC | SMFIP_NOHELO | SMFIP_NOUNKNOWN | SMFIP_NOEOH | SMFIP_NR_HDR | SMFIP_NR_BODY);
        Session& c = ensure_conn(ctx);
        c.leadspc = (*pf1 & SMFIP_HDR_LEADSPC) != 0;
        c.no_reply_hdr = (*pf1 & SMFIP_NR_HDR) != 0;
        c.no_reply_body = (*pf1 & SMFIP_NR_BODY) != 0;
        *pf2 = 0;
        *pf3 = 0;
        return SMFIS_CONTINUE;
    });
}

sfsistat on_connect(SMFICTX* ctx, char*, _SOCK_ADDR*) {
    return guarded(ctx, "connect", [&] {
        ensure_conn(ctx);
        return SMFIS_CONTINUE;
    });
}

sfsistat on_envfrom(SMFICTX* ctx, char** argv) {
    return guarded(ctx, "MAIL FROM", [&] {
        // Postfix hands the queue id ({i}, in its default milter_mail_macros) at MAIL FROM, so
        // the RCPT-time lines can already start with it.
        const char* qid = smfi_getsymval(ctx, const_cast<char*>("i"));
        session(ctx).begin(g_services->get(), argv[0] != nullptr ? argv[0] : "", qid != nullptr ? qid : "");
        return SMFIS_CONTINUE;
    });
}

sfsistat on_envrcpt(SMFICTX* ctx, char** argv) {
    return guarded(ctx, "RCPT TO", [&] {
        const Reply r = session(ctx).recipient(argv[0] != nullptr ? argv[0] : "");
        return r.accept ? SMFIS_CONTINUE : reply(ctx, r);
    });
}

// Header and body callbacks only accumulate (Session::accumulate keeps any failure for end
// of message, and never throws).
sfsistat on_header(SMFICTX* ctx, char* name, char* value) {
    Session* c = conn(ctx);
    if (c == nullptr) return SMFIS_TEMPFAIL;  // cannot happen: negotiate creates the state
    c->header(name != nullptr ? name : "", value != nullptr ? value : "");
    return c->no_reply_hdr ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

sfsistat on_body(SMFICTX* ctx, unsigned char* data, size_t len) {
    Session* c = conn(ctx);
    if (c == nullptr) return SMFIS_TEMPFAIL;
    c->body(reinterpret_cast<const char*>(data), len);
    return c->no_reply_body ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

sfsistat on_eom(SMFICTX* ctx) {
    return guarded(ctx, "end of message", [&] {
        Session& c = session(ctx);
        const char* qid = smfi_getsymval(ctx, const_cast<char*>("i"));
        const std::shared_ptr<const Services> s = g_services->get();
        LibmilterActions actions(ctx, c.leadspc);
        SmtpReinjector reinjector(s->reinject_host, s->reinject_port, s->reinject_timeout_ms);
        const EomResult r = c.end_of_message(qid != nullptr ? qid : "", actions, reinjector);
        if (r.verdict == EomResult::Verdict::Accept) {
            actions.flush_body();
            return SMFIS_CONTINUE;
        }
        return reply(ctx, r.reply);
    });
}

sfsistat on_abort(SMFICTX* ctx) {
    return guarded(ctx, "abort", [&] {
        if (Session* c = conn(ctx)) c->abort();
        return SMFIS_CONTINUE;
    });
}

sfsistat on_close(SMFICTX* ctx) {
    return guarded(ctx, "close", [&] {
        const std::unique_ptr<Session> c(conn(ctx));  // ownership returns from libmilter
        smfi_setpriv(ctx, nullptr);
        return SMFIS_CONTINUE;
    });
}

// At end of message the milter writes several small replies (header changes, body chunks,
// the verdict) that the MTA does not acknowledge at the protocol level; with Nagle's algorithm
// each one after the first waits for the MTA's delayed TCP ACK (40 ms on Linux): measured
// +85 ms per 10 KiB message (bench/smtp.sh). libmilter does not expose its sockets, so once
// smfi_opensocket() has run, the process's only listening TCP socket is libmilter's: set
// TCP_NODELAY there; Linux copies it to every accepted connection.
void disable_nagle_on_listeners(const base::Logger& log) {
    for (int fd = 0; fd < 1024; ++fd) {
        struct stat st {};
        if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
        int listening = 0;
        socklen_t len = sizeof listening;
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || listening == 0) continue;
        sockaddr_storage addr{};
        socklen_t alen = sizeof addr;
        if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &alen) != 0 ||
            (addr.ss_family != AF_INET && addr.ss_family != AF_INET6))
            continue;  // unix sockets have no Nagle
        const int one = 1;
        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
            log.warning(std::string("cannot set TCP_NODELAY on the milter socket: ") + std::strerror(errno));
    }
}

}  // namespace

// Signals. libmilter's own signal thread sigwait()s for SIGHUP, SIGTERM and SIGINT and stops
// the milter on any of them; SIGHUP must reload instead. So: all three are blocked in every
// thread (inherited from the thread that blocks them first, hence before any thread exists:
// the lookup resolver's workers start while the Services are built), the reload thread waits
// for SIGHUP alone, and libmilter's sigwait() (the one below) never includes SIGHUP. A thread
// that left SIGHUP unblocked would take it with the default action: the daemon dies.
// SIGTERM / SIGINT reach libmilter only: smfi_main() returns and the daemon exits 0.
void block_daemon_signals() {
    sigset_t blocked;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGHUP);
    sigaddset(&blocked, SIGTERM);
    sigaddset(&blocked, SIGINT);
    pthread_sigmask(SIG_BLOCK, &blocked, nullptr);
}

int serve(const std::string& socket, ServicesHolder& services, const std::function<void()>& reload,
          const base::Logger& log) {
    g_services = &services;
    g_log = log;
    block_daemon_signals();  // normally done already, before the first thread
    std::thread([reload] {
        sigset_t hup;
        sigemptyset(&hup);
        sigaddset(&hup, SIGHUP);
        for (;;) {
            if (sigwaitinfo(&hup, nullptr) == SIGHUP) reload();
        }
    }).detach();

    smfiDesc desc{};
    static char name[] = "sealmilter";
    desc.xxfi_name = name;
    desc.xxfi_version = SMFI_VERSION;
    desc.xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY | SMFIF_DELRCPT;
    desc.xxfi_connect = on_connect;
    desc.xxfi_envfrom = on_envfrom;
    desc.xxfi_envrcpt = on_envrcpt;
    desc.xxfi_header = on_header;
    desc.xxfi_body = on_body;
    desc.xxfi_eom = on_eom;
    desc.xxfi_abort = on_abort;
    desc.xxfi_close = on_close;
    desc.xxfi_negotiate = on_negotiate;
    std::string sock = socket;
    if (smfi_setconn(sock.data()) != MI_SUCCESS) {
        log.error("cannot use milter.socket " + socket);
        return 1;
    }
    if (smfi_register(desc) != MI_SUCCESS) {
        log.error("smfi_register failed");
        return 1;
    }
    errno = 0;
    if (smfi_opensocket(true) != MI_SUCCESS) {
        // libmilter reports the reason to syslog only; errno still holds it (EADDRINUSE when
        // another process listens there, e.g. a second daemon started on the same config).
        const int err = errno;
        log.error("cannot open milter.socket " + socket + (err != 0 ? std::string(": ") + std::strerror(err) : ""));
        return 1;
    }
    disable_nagle_on_listeners(log);
    log.info("listening on " + socket);
    return smfi_main() == MI_SUCCESS ? 0 : 1;
}

}  // namespace sealmilter::milter

// libmilter (a shared library) calls sigwait() from its signal thread with {HUP, TERM, INT} and
// treats SIGHUP as "stop". This definition in the executable interposes on the C library's for
// libmilter (the dynamic linker resolves its import here) and leaves SIGHUP out of the set, so
// SIGHUP only ever reaches serve()'s reload thread. Same contract as POSIX sigwait().
extern "C" int sigwait(const sigset_t* set, int* sig) {
    sigset_t s = *set;
    sigdelset(&s, SIGHUP);
    for (;;) {
        const int got = sigwaitinfo(&s, nullptr);
        if (got > 0) {
            *sig = got;
            return 0;
        }
        if (errno != EINTR) return errno;
    }
}
