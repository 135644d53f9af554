/* bench/noop_milter.c — the floor of any milter, for bench/smtp.sh.
 *
 *   noop_milter SOCKET        (SOCKET as libmilter takes it: unix:/path or inet:PORT@HOST)
 *
 * A libmilter filter that changes nothing but negotiates exactly the protocol steps
 * sealmilter does (milter/adapter.cpp on_negotiate), so that Postfix talks to it the way it
 * talks to sealmilter: the same SMFIF_* actions requested (so Postfix keeps the same state for
 * a filter that may edit), the same SMFIP_* flags (no HELO, no unknown, no end of headers,
 * headers and body chunks without replies, DATA not skipped), the same callbacks registered
 * (NULL ones are answered by libmilter itself, as for sealmilter), and the same TCP_NODELAY on
 * an inet listener. Every callback answers at once; end of message answers continue. What
 * Postfix + this filter costs is the milter protocol itself, the floor sealmilter is measured
 * against. Runs in the foreground until SIGTERM / SIGINT; exits 1 if it cannot listen.
 */
#include <libmilter/mfapi.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>

/* Set on negotiate, as sealmilter does: header/body replies only if the MTA wants them. One
 * process serves one Postfix, so the negotiated answer is the same for every connection. */
static volatile int no_reply_hdr, no_reply_body;

static sfsistat on_negotiate(SMFICTX* ctx, unsigned long f0, unsigned long f1, unsigned long f2, unsigned long f3,
                             unsigned long* pf0, unsigned long* pf1, unsigned long* pf2, unsigned long* pf3) {
    (void)ctx, (void)f2, (void)f3;
    *pf0 = f0 & (SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY | SMFIF_DELRCPT);
    *pf1 = f1 & (SMFIP_HDR_LEADSPC | SMFIP_NOHELO | SMFIP_NOUNKNOWN | SMFIP_NOEOH | SMFIP_NR_HDR | SMFIP_NR_BODY);
    no_reply_hdr = (*pf1 & SMFIP_NR_HDR) != 0;
    no_reply_body = (*pf1 & SMFIP_NR_BODY) != 0;
    *pf2 = 0;
    *pf3 = 0;
    return SMFIS_CONTINUE;
}

static sfsistat on_connect(SMFICTX* ctx, char* host, _SOCK_ADDR* addr) {
    (void)ctx, (void)host, (void)addr;
    return SMFIS_CONTINUE;
}

static sfsistat on_envelope(SMFICTX* ctx, char** argv) {
    (void)ctx, (void)argv;
    return SMFIS_CONTINUE;
}

static sfsistat on_header(SMFICTX* ctx, char* name, char* value) {
    (void)ctx, (void)name, (void)value;
    return no_reply_hdr ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

static sfsistat on_body(SMFICTX* ctx, unsigned char* data, size_t len) {
    (void)ctx, (void)data, (void)len;
    return no_reply_body ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

static sfsistat on_other(SMFICTX* ctx) {
    (void)ctx;
    return SMFIS_CONTINUE;
}

/* sealmilter's disable_nagle_on_listeners(): libmilter hides its socket; the only listening
 * inet socket of the process is its. Unix sockets have no Nagle. */
static void disable_nagle_on_listeners(void) {
    for (int fd = 0; fd < 1024; ++fd) {
        struct stat st;
        int listening = 0, one = 1;
        socklen_t len = sizeof listening;
        struct sockaddr_storage addr;
        socklen_t alen = sizeof addr;
        if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || listening == 0) continue;
        if (getsockname(fd, (struct sockaddr*)&addr, &alen) != 0) continue;
        if (addr.ss_family != AF_INET && addr.ss_family != AF_INET6) continue;
        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) perror("noop_milter: TCP_NODELAY");
    }
}

int main(int argc, char** argv) {
    /* sealmilter's registration (milter/adapter.cpp serve()): same actions, same callbacks. */
    struct smfiDesc desc = {
        .xxfi_name = "noop_milter",
        .xxfi_version = SMFI_VERSION,
        .xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY | SMFIF_DELRCPT,
        .xxfi_connect = on_connect,
        .xxfi_envfrom = on_envelope,
        .xxfi_envrcpt = on_envelope,
        .xxfi_header = on_header,
        .xxfi_body = on_body,
        .xxfi_eom = on_other,
        .xxfi_abort = on_other,
        .xxfi_close = on_other,
        .xxfi_negotiate = on_negotiate,
    };
    if (argc != 2) {
        fprintf(stderr, "usage: noop_milter unix:/path | inet:PORT@HOST\n");
        return 2;
    }
    if (smfi_setconn(argv[1]) != MI_SUCCESS || smfi_register(desc) != MI_SUCCESS ||
        smfi_opensocket(1) != MI_SUCCESS) {
        fprintf(stderr, "noop_milter: cannot listen on %s\n", argv[1]);
        return 1;
    }
    disable_nagle_on_listeners();
    return smfi_main() == MI_SUCCESS ? 0 : 1;
}
