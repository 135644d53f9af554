#!/usr/bin/env python3
"""tests/soak/soak.py — the reliability soak: messages through the real Postfix and
`sealmilter run` while a fault injector works on the directory and the daemon.

usage: soak.py --sealmilter BIN --source REPO_DIR [--mode short|long] [--messages N]
               [--clients 20] [--report RELIABILITY.md]
short: 2,000 messages (CI); long: 50,000. Prints figures and 'soak: N passed, M failed'.

Setup (tests/e2e/gateway.py): private Postfix on loopback, the daemon, smtp-sink. The
directory is a small in-process HTTP server whose mode the injector switches between
healthy, slow (2.5 s per answer), failing (HTTP 503) and junk (garbage labelled JSON); the
cache lives 1-3 s so lookups keep reaching it. Recipients per message, at random:
  bob@partner.example     opportunistic, certificate  -> must arrive encrypted
  frank@secure.example    require, certificate        -> must arrive encrypted
  plain@partner.example   opportunistic, none         -> must arrive unchanged
  nobody@secure.example   require, none               -> must be refused (550 5.7.1)
Faults: directory mode every 1-4 s, SIGKILL + restart of the daemon every 5-15 s, SIGHUP
every 2-6 s. The messages are spread over --duration seconds (short 120, long 3600). Clients behave like an MTA queue: a 4xx is retried (backoff, bounded), a 5xx
is final. The last quarter of the messages runs without kills, to measure RSS after warm-up.
The accountant then checks: every accepted (message, recipient) delivered exactly once;
nothing refused or never-accepted delivered; every delivery to bob/frank encrypted and
decryptable by `openssl cms` (all of them in short mode, a sample of 2,000 in long mode);
plain deliveries byte-equal; no plaintext to a require recipient; daemon RSS flat.

--nodes 2: two gateways (each its own Postfix, daemon and sink, one PKI, the same scripted
directory) sharing their cache, harvest store and re-injection journal on a real PostgreSQL 15
(tests/support/pg_cluster.py, loopback, user nobody). The clients are spread over the nodes
(each retries on the node it used, as an MTA queue does); the injector SIGKILLs either node's
daemon and also restarts PostgreSQL (stopped 2-6 s) every 15-30 s. The accountant counts the
deliveries of both sinks. Short form in CI: `--nodes 2 --messages 800 --duration 60`.
"""
import argparse
import hashlib
import http.server
import os
import random
import signal
import smtplib
import subprocess
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
from gateway import Results, Gateway, wire_form  # noqa: E402
import pg_cluster  # noqa: E402

RESULTS = Results()
check = RESULTS.check
FAILED = RESULTS.failed
SENDER = "statements@bank.example"
BOB, FRANK, PLAIN, NOBODY = "bob@partner.example", "frank@secure.example", "plain@partner.example", "nobody@secure.example"
ENCRYPTED_RCPTS = {BOB, FRANK}




class Directory:
    """The directory with a switchable mode (a scripted server: faults nginx cannot make)."""

    def __init__(self, answers):
        self.answers, self.mode = answers, "healthy"
        self.requests = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802
                outer.requests += 1
                mode = outer.mode
                addr = self.path.rsplit("/", 1)[-1].replace("%40", "@")
                if mode == "slow":
                    time.sleep(2.5)
                if mode == "failing":
                    body, status = b"", 503
                elif mode == "junk":
                    body, status = os.urandom(2048), 200
                elif addr in outer.answers:
                    body, status = outer.answers[addr], 200
                else:
                    body, status = b"", 404
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "max-age=2")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256

            def handle_error(self, request, client_address):
                pass  # a client that timed out on a slow answer hung up: expected here

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


def make_message(mid, rcpts, size, rng):
    body = "".join(f"Statement line {i:06d}: reference {rng.randrange(10**9):09d}, amount {rng.randrange(10**6)}.\n"
                   for i in range(max(1, size // 64)))
    return wire_form((f"From: Statements <{SENDER}>\nTo: {', '.join(rcpts)}\nSubject: Statement\nMessage-ID: {mid}\n"
                      f"MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n{body}").encode())


class Client(threading.Thread):
    """Sends its share of messages; retries 4xx like an MTA queue (bounded)."""

    def __init__(self, gw, jobs, ledger, lock, deadline, pace):
        super().__init__(daemon=True)
        self.gw, self.jobs, self.ledger, self.lock, self.deadline = gw, jobs, ledger, lock, deadline
        self.pace = pace  # seconds between this client's new messages (spreads the run over time)

    def attempt(self, rcpts, msg):
        """-> {rcpt: 'accepted'|'refused'|'tempfail'} for this one transaction."""
        out = {}
        try:
            with smtplib.SMTP("127.0.0.1", self.gw.smtp_port, timeout=120) as s:
                s.ehlo("app.bank.example")
                code, _ = s.mail(SENDER)
                if code != 250:
                    return {r: "tempfail" if 400 <= code < 500 else "refused" for r in rcpts}
                ok = []
                for r in rcpts:
                    code, _ = s.rcpt(r)
                    if code in (250, 251):
                        ok.append(r)
                    else:
                        out[r] = "tempfail" if 400 <= code < 500 else "refused"
                if ok:
                    try:
                        code, _ = s.data(msg)
                    except smtplib.SMTPDataError as e:
                        code = e.smtp_code
                    for r in ok:
                        out[r] = "accepted" if code == 250 else ("tempfail" if 400 <= code < 500 else "refused")
                else:
                    s.rset()
        except (OSError, smtplib.SMTPException):
            for r in rcpts:
                out.setdefault(r, "tempfail")  # connection lost: the MTA queue would retry
        return out

    def run(self):
        start = time.time()
        for k, (mid, rcpts, msg) in enumerate(self.jobs):
            wait = start + k * self.pace - time.time()
            if wait > 0:
                time.sleep(wait)
            pending = list(rcpts)
            tries = 0
            while pending and tries < 40 and time.time() < self.deadline:
                tries += 1
                res = self.attempt(pending, msg)
                with self.lock:
                    for r, o in res.items():
                        self.ledger.setdefault((mid, r), []).append(o)
                pending = [r for r in pending if res.get(r) == "tempfail"]
                if pending:
                    time.sleep(min(0.2 * tries, 2.0))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sealmilter", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--mode", choices=["short", "long"], default="short")
    ap.add_argument("--messages", type=int, default=None)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--duration", type=float, default=None,
                    help="seconds over which the messages are spread (short: 120, long: 3600)")
    ap.add_argument("--seed", type=int, default=20261122)
    ap.add_argument("--report", default=None, help="write the figures as Markdown to this file")
    ap.add_argument("--nodes", type=int, choices=[1, 2], default=1,
                    help="2: two gateways sharing their state on PostgreSQL, database restarts among the faults")
    a = ap.parse_args()
    n = a.messages or (2000 if a.mode == "short" else 50000)
    duration = a.duration or (120.0 if a.mode == "short" else 3600.0)
    rng = random.Random(a.seed)
    gw = Gateway(a.sealmilter, a.source, {"bob": (BOB, "rsa"), "frank": (FRANK, "rsa")}, [],
                 "@secure.example require\n* opportunistic\n")
    import json
    answers = {ident.addr: json.dumps({"certificates": [{"pem": ident.pem()}]}).encode() for ident in gw.ids.values()}
    directory = Directory(answers)
    extra = (f"[directory]\nurl = http://127.0.0.1:{directory.port}/certs/{{email}}\nca_file =\n"
             "timeout_ms = 2000\n[cache]\nmin_ttl = 1\nmax_ttl = 3\nnegative_ttl = 2\nmax_stale = 3600\n")
    nodes = [gw]
    pg = {}
    if a.nodes == 2:
        pg["dir"] = os.path.join(gw.tmp, "pg")
        pg["port"], pg["pid"] = pg_cluster.start(pg["dir"])
        with open(os.path.join(gw.tmp, "dsn"), "w") as f:
            f.write(pg_cluster.dsn(pg["port"]) + "\n")
        extra += f"[database]\ndsn_file = {gw.tmp}/dsn\nshared = cache,harvest,journal\n"
        nodes.append(Gateway(a.sealmilter, a.source, {}, [], "@secure.example require\n* opportunistic\n",
                             share_pki=gw))
    for node in nodes:
        node.extra_conf = extra
        node.write_conf()
    faults = {"directory-modes": 0, "sigkill": 0, "sighup": 0, "database restarts": 0}
    figures = {}
    stop_faults = threading.Event()
    calm = threading.Event()
    fault_lock = threading.Lock()
    rss = []
    usage = {}  # daemon pid -> [(open fds, threads)] sampled every 0.2 s
    try:
        for node in nodes:
            node.start()
        # jobs
        mixes = [[BOB], [FRANK], [PLAIN], [BOB, PLAIN], [FRANK, BOB], [NOBODY, BOB], [PLAIN, FRANK, BOB], [NOBODY]]
        sizes = [1024] * 5 + [10240] * 4 + [102400] * 2 + [1048576] * (1 if a.mode == "long" else 0)
        jobs = []
        for i in range(n):
            mid = f"<soak{i}.{uuid.uuid4().hex[:8]}@bank.example>"
            rcpts = rng.choice(mixes)
            jobs.append((mid, rcpts, make_message(mid, rcpts, rng.choice(sizes), rng)))
        # What a plain copy must carry: the body as sent (LF line ends, as in the sink files).
        originals = {mid: hashlib.sha256(msg.replace(b"\r\n", b"\n").partition(b"\n\n")[2]).hexdigest()
                     for mid, _, msg in jobs}
        warm = n * 3 // 4  # the first three quarters under kills; the rest calm

        def sample(node):
            """(pid, open fds, threads) of the node's daemon now, None when it is not running."""
            m = node.milter
            if m is None or m.poll() is not None:
                return None
            try:
                fds = len(os.listdir(f"/proc/{m.pid}/fd"))
                threads = node.milter_status_kib("Threads")  # a count, read like the KiB fields
            except OSError:
                return None
            return (m.pid, fds, threads) if threads is not None else None

        def injector():
            next_mode = time.time() + rng.uniform(1, 4)
            next_kill = time.time() + rng.uniform(5, 15)
            next_hup = time.time() + rng.uniform(2, 6)
            next_db = time.time() + rng.uniform(15, 30)
            while not stop_faults.is_set():
                now = time.time()
                # One fault at a time, and never across the start of the calm phase: the main
                # thread restarts stopped daemons there under the same lock. (Without it, a
                # daemon SIGKILLed just before the calm phase was started twice, by the main
                # thread and after the injector's pause; the second could not bind the milter
                # port and exited 1 -- the "exit 1 in the calm phase" of the pre-stop CI run.)
                with fault_lock:
                    if pg and now >= next_db and not calm.is_set():
                        pg_cluster.stop(pg["pid"])
                        time.sleep(rng.uniform(2, 6))
                        pg["port"], pg["pid"] = pg_cluster.start(pg["dir"], pg["port"])
                        faults["database restarts"] += 1
                        next_db = time.time() + rng.uniform(15, 30)
                    victim = rng.choice(nodes)
                    if now >= next_mode:
                        directory.mode = "healthy" if calm.is_set() else rng.choice(["healthy", "healthy", "slow", "failing", "junk"])
                        faults["directory-modes"] += 1
                        next_mode = now + rng.uniform(1, 4)
                    if now >= next_kill and not calm.is_set():
                        victim.kill_milter()
                        faults["sigkill"] += 1
                        time.sleep(rng.uniform(0.2, 1.5))
                        victim.start_milter()
                        next_kill = now + rng.uniform(5, 15)
                    if now >= next_hup and victim.milter is not None and victim.milter.poll() is None:
                        victim.hup_milter()
                        faults["sighup"] += 1
                        next_hup = now + rng.uniform(2, 6)
                for node in nodes:
                    got = sample(node)
                    if got is not None:
                        usage.setdefault(got[0], []).append(got[1:])
                if calm.is_set() and gw.milter is not None:
                    try:
                        kib = gw.milter_rss_kib()
                    except OSError:
                        kib = None
                    if kib is not None:  # None: the process has exited (a zombie has no VmRSS)
                        rss.append(kib)
                time.sleep(0.2)

        def guarded_injector():
            try:
                injector()
            except Exception as e:  # a fault the harness could not inject fails the run, loudly
                import traceback
                traceback.print_exc()
                FAILED.append(f"injector: {e}")

        fault_thread = threading.Thread(target=guarded_injector, daemon=True)
        fault_thread.start()
        ledger, lock = {}, threading.Lock()
        t0 = time.time()
        deadline = t0 + (1800 if a.mode == "short" else 6 * 3600)
        for phase, part in (("faults", jobs[:warm]), ("calm", jobs[warm:])):
            if phase == "calm":
                with fault_lock:  # not in the middle of a SIGKILL + restart or a database restart
                    calm.set()
                    directory.mode = "healthy"
                    for node in nodes:
                        if node.milter is None or node.milter.poll() is not None:
                            node.start_milter()
            share = duration * len(part) / n
            per_client = max(1, len(part) // a.clients)
            clients = [Client(nodes[k % len(nodes)], part[k::a.clients], ledger, lock, deadline, share / per_client)
                       for k in range(a.clients)]
            for c in clients:
                c.start()
            for c in clients:
                c.join(timeout=max(1, deadline - time.time()))
        stop_faults.set()
        fault_thread.join(timeout=10)
        elapsed = time.time() - t0
        # Postfix delivers what it accepted; give it time, then count.
        deadline2 = time.time() + 300
        while time.time() < deadline2 and not all(node.queue_empty() for node in nodes):
            for node in nodes:
                node.flush()
            time.sleep(1)
        time.sleep(2)
        settled = [sample(node) for node in nodes]  # after the drain: nothing in flight
        deliveries = [d for node in nodes for d in node.deliveries(new_only=False, light=True)]
        delivered = {}
        for d in deliveries:
            for r in d.rcpts:
                delivered.setdefault((d.message_id, r), []).append(d)
        final = {k: v[-1] for k, v in ledger.items()}
        accepted = {k for k, o in final.items() if o == "accepted"}
        refused = {k for k, o in final.items() if o == "refused"}
        gave_up = {k for k, o in final.items() if o == "tempfail"}
        expected_pairs = {(mid, r) for mid, rcpts, _ in jobs for r in rcpts}
        lost = sorted(k for k in accepted if len(delivered.get(k, [])) == 0)
        dupes = sorted(k for k in accepted if len(delivered.get(k, [])) > 1)
        # A split-off copy handed to the next hop in the instant before a SIGKILL (accepted
        # there, the 250 not yet read and journaled) is sent again when the client retries:
        # at-least-once, never lost (milter/journal.hpp). Such a duplicate needs a retried
        # message and a copy (a recipient that was split off); any other duplicate is a bug.
        retried = {mid for (mid, _r), outcomes in ledger.items() if "tempfail" in outcomes}
        rcpts_of = {mid: set(rcpts) for mid, rcpts, _ in jobs}
        split = {mid for mid, rs in rcpts_of.items() if PLAIN in rs and rs & ENCRYPTED_RCPTS}  # plain + encrypted
        crash_dupes = [k for k in dupes if k[0] in retried and k[0] in split]
        other_dupes = [k for k in dupes if k not in crash_dupes]
        ghosts = sorted(k for k in delivered if k not in accepted)
        wrong_refusals = sorted(k for k in refused if k[1] != NOBODY)
        nobody_accepted = sorted(k for k in accepted if k[1] == NOBODY)
        plaintext_to_protected = sorted(k for k, ds in delivered.items() if k[1] in ENCRYPTED_RCPTS and
                                        any(not d.encrypted for d in ds))
        plain_wrong = sorted(k for k, ds in delivered.items() if k[1] == PLAIN and
                             any(d.encrypted or d.body_sha256 != originals.get(k[0]) for d in ds))
        enc = [d for d in deliveries if d.encrypted]
        sample = enc if a.mode == "short" else random.Random(1).sample(enc, min(2000, len(enc)))
        undecryptable = []
        for d in sample:
            who = "bob" if BOB in d.rcpts else "frank"
            p = subprocess.run(["openssl", "cms", "-decrypt", "-binary", "-in", d.path, "-inkey", gw.ids[who].key,
                                "-recip", gw.ids[who].cert], capture_output=True, timeout=120)
            if p.returncode != 0:
                undecryptable.append(d.path)
        tempfail_events = sum(v.count("tempfail") for v in ledger.values())
        figures = {
            "mode": a.mode, "messages": n, "clients": a.clients, "recipient pairs": len(expected_pairs),
            "elapsed s": round(elapsed, 1), "accepted pairs": len(accepted), "refused pairs (550, nobody@)": len(refused),
            "tempfail replies (retried)": tempfail_events, "gave up (still 4xx at the end)": len(gave_up),
            "deliveries": len(deliveries), "encrypted deliveries": len(enc), "decrypted (checked)": len(sample),
            "lost": len(lost), "duplicated (other)": len(other_dupes),
            "split-off copies sent twice after a SIGKILL mid-hand-over": len(crash_dupes),
            "delivered without acceptance": len(ghosts),
            "plaintext to bob/frank": len(plaintext_to_protected), "undecryptable": len(undecryptable),
            "directory mode switches": faults["directory-modes"], "SIGKILL + restart": faults["sigkill"],
            "SIGHUP": faults["sighup"], "directory requests": directory.requests,
        }
        if pg:
            figures["nodes"] = len(nodes)
            figures["PostgreSQL restarts"] = faults["database restarts"]
        if usage:
            figures["peak open fds of a daemon"] = max(f for v in usage.values() for f, _ in v)
            figures["peak threads of a daemon"] = max(t for v in usage.values() for _, t in v)
        for k, got in enumerate(settled):
            if got is not None:
                first = usage.get(got[0], [got[1:]])[0]
                figures[f"node {k + 1} daemon fds / threads: first sample -> after the drain"] = \
                    f"{first[0]} / {first[1]} -> {got[1]} / {got[2]}"
        if rss:
            q = max(1, len(rss) // 4)
            figures["RSS after warm-up KiB (median of first quarter of calm phase)"] = sorted(rss[:q])[q // 2]
            figures["RSS at end KiB (median of last quarter)"] = sorted(rss[-q:])[q // 2]
        for k, v in figures.items():
            print(f"figure: {k}: {v}")
        check("every (message, recipient) got a final answer", len(final) == len(expected_pairs),
              f"{len(final)} of {len(expected_pairs)}")
        check("no client gave up (tempfails recovered)", not gave_up, sorted(gave_up)[:5])
        check("lost = 0", not lost, lost[:5])
        check("no duplicate except a split-off copy re-sent after a SIGKILL", not other_dupes, other_dupes[:5])
        # Two nodes: a database restart in the instant between a copy's 250 and its journal
        # write is the same documented window as a SIGKILL there.
        windows = faults["sigkill"] + faults["database restarts"]
        check("crash-window re-sends stay below the number of SIGKILLs (and database restarts) x clients in flight",
              len(crash_dupes) <= max(1, windows) * 4, f"{len(crash_dupes)} for {windows} kills/restarts")
        check("nothing delivered that was not accepted", not ghosts, ghosts[:5])
        check("only nobody@ (require, no certificate) refused", not wrong_refusals, wrong_refusals[:5])
        check("nobody@ never accepted", not nobody_accepted, nobody_accepted[:5])
        check("zero plaintext to bob/frank (certificate holders, frank require)", not plaintext_to_protected,
              plaintext_to_protected[:5])
        check("plain recipient got the original, byte-equal", not plain_wrong, plain_wrong[:5])
        check("zero undecryptable deliveries", not undecryptable, undecryptable[:5])
        for k, got in enumerate(settled):
            # Nothing in flight after the drain: the daemon holds what it held at start plus
            # at most its idle database connections (database.max_connections = 4) and a few
            # files; threads come back to where they were. (A leak under database restarts
            # and SIGKILLs -- reconnects, sessions waiting on the database -- would show here.)
            if got is not None:
                first = usage.get(got[0], [got[1:]])[0]
                check(f"node {k + 1}: open fds and threads after the drain back near the start (fds <= start + 12,"
                      " threads <= start + 8)", got[1] <= first[0] + 12 and got[2] <= first[1] + 8,
                      f"{first} -> {got[1:]}")
        if rss:
            first, last = figures["RSS after warm-up KiB (median of first quarter of calm phase)"], \
                figures["RSS at end KiB (median of last quarter)"]
            check("daemon RSS flat after warm-up (end within 25% + 8 MiB of warm-up)", last <= first * 1.25 + 8192,
                  f"{first} -> {last} KiB")
    except Exception as e:
        import traceback
        traceback.print_exc()
        FAILED.append(f"harness: {e}")
    finally:
        stop_faults.set()
        if FAILED:
            for node in nodes:
                print("--- milter log (tail) ---\n" + node.log()[-3000:])
        if pg.get("pid"):  # its data directory is inside the first node's, removed by stop()
            pg_cluster.stop(pg["pid"])
        for node in nodes:
            for f in node.stop():
                FAILED.append("sealmilter: " + f)
        directory.stop()
    if a.report and figures:
        with open(a.report, "w") as f:
            f.write(f"# Reliability\n\nGenerated by `python3 tests/soak/soak.py --sealmilter build/sealmilter --source . "
                    f"--mode {a.mode} --report RELIABILITY.md` on {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} "
                    f"({os.cpu_count()} CPUs). Every figure below was measured in that run; see the docstring of "
                    "tests/soak/soak.py for the setup, the faults and what the accountant checks.\n\n"
                    "| | |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in figures.items()) +
                    f"\nChecks: {RESULTS.passed} passed, {len(FAILED)} failed" + ("" if not FAILED else ": " + "; ".join(FAILED)) + "\n")
    return RESULTS.summary("soak")


if __name__ == "__main__":
    sys.exit(main())
