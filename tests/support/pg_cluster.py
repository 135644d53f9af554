#!/usr/bin/env python3
"""A throw-away PostgreSQL 15 cluster for the tests (real server, loopback, non-root).

start DIR [--port P]  initialises DIR (initdb, once) and starts `postgres` on 127.0.0.1:P
                      (a free port when P is not given) as user nobody when run as root.
                      Prints "PORT PID" once the server's postmaster.pid names that pid,
                      that port and "ready" -- so a server another test started on the same
                      port is never taken for ours; a lost port race is retried on a new port.
stop PID              fast shutdown (SIGINT) of that pid, SIGKILL after 20 s.
init DIR --tls CERT KEY
                      initialises DIR and makes the cluster serve TLS with that certificate
                      and key (copied into DIR, owned by the server's user, mode 0600;
                      ssl = on in its postgresql.conf, so every later start serves TLS). Plain
                      connections stay allowed (trust on loopback): the client's sslmode decides.

The tests use the superuser `sealmilter` (trust authentication on loopback only) and the
database `postgres`; the DSN is dsn(port). Only this process's own children are started, and
only the pid it printed is stopped.
"""
import os
import pwd
import signal
import socket
import subprocess
import sys
import time

BIN = "/usr/lib/postgresql/15/bin"
USER = "sealmilter"


def dsn(port):
    return f"host=127.0.0.1 port={port} user={USER} dbname=postgres connect_timeout=5"


def _as_nobody():
    if os.geteuid() != 0:
        return None, None
    pw = pwd.getpwnam("nobody")
    return pw.pw_uid, pw.pw_gid


def _demote(uid, gid):
    def fn():
        os.setsid()
        if uid is not None:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
    return fn


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init(data):
    uid, gid = _as_nobody()
    if os.path.exists(os.path.join(data, "PG_VERSION")):
        return
    os.makedirs(data, mode=0o700, exist_ok=True)
    if uid is not None:
        os.chown(data, uid, gid)
    subprocess.run([f"{BIN}/initdb", "-D", data, "-U", USER, "-A", "trust", "--no-sync", "-E", "UTF8",
                    "--locale=C"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                   preexec_fn=_demote(uid, gid), cwd="/")


def enable_tls(data, cert, key):
    """ssl = on with this certificate and key, from the next start of the cluster in data."""
    init(data)
    uid, gid = _as_nobody()
    for src, name in ((cert, "server.crt"), (key, "server.key")):
        dst = os.path.join(data, name)
        with open(src, "rb") as f, open(dst, "wb") as out:
            out.write(f.read())
        os.chmod(dst, 0o600)
        if uid is not None:
            os.chown(dst, uid, gid)
    with open(os.path.join(data, "postgresql.conf"), "a") as f:
        f.write("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n")


def _ready(data, pid, port):
    try:
        with open(os.path.join(data, "postmaster.pid")) as f:
            lines = f.read().split("\n")
    except OSError:
        return False
    return len(lines) >= 8 and lines[0].strip() == str(pid) and lines[3].strip() == str(port) \
        and lines[7].strip() == "ready"


def start(data, port=None, tries=5):
    """Starts the cluster; returns (port, pid). Raises RuntimeError with the log's tail."""
    init(data)
    uid, gid = _as_nobody()
    last = ""
    for _ in range(tries):
        p = port or free_port()
        log = open(os.path.join(data, "server.log"), "ab")
        proc = subprocess.Popen(
            [f"{BIN}/postgres", "-D", data, "-p", str(p), "-c", "listen_addresses=127.0.0.1",
             "-c", f"unix_socket_directories={data}", "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off", "-c", "max_connections=60", "-c", "shared_buffers=32MB"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, preexec_fn=_demote(uid, gid), cwd="/")
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if _ready(data, proc.pid, p):
                return p, proc.pid
            time.sleep(0.05)
        if proc.poll() is None:
            stop(proc.pid)
        with open(os.path.join(data, "server.log"), "rb") as f:
            last = f.read()[-600:].decode(errors="replace")
        if port:  # a fixed port (a restart): no other port will do
            time.sleep(0.5)
    raise RuntimeError("postgres did not start: " + last)


def stop(pid, timeout=20):
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        try:  # our own child: reap it
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            pass
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def main(argv):
    if len(argv) >= 2 and argv[0] == "start":
        port = int(argv[3]) if len(argv) >= 4 and argv[2] == "--port" else None
        p, pid = start(argv[1], port)
        print(p, pid, flush=True)
        return 0
    if len(argv) == 5 and argv[0] == "init" and argv[2] == "--tls":
        enable_tls(argv[1], argv[3], argv[4])
        return 0
    if len(argv) == 2 and argv[0] == "stop":
        stop(int(argv[1]))
        return 0
    print(__doc__, file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
