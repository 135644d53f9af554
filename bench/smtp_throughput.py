#!/usr/bin/env python3
"""bench/smtp_throughput.py — Postfix with sealmilter against the floor of any milter and a real peer.

usage: smtp_throughput.py --sealmilter BIN --noop BIN --source REPO_DIR [--messages N] [--rounds R]
                          [--latency-count N] [--command TEXT]
Prints a Markdown section (the SMTP part of BENCHMARKS.md) on stdout, progress on stderr; exits
1 when a run fails (a message refused or not delivered, a milter that does not sign / encrypt,
a tool missing).

One private Postfix (tests/e2e/gateway.py: `postfix -c DIR`, loopback, next hop smtp-sink)
offers one SMTP service per configuration, each with its own `-o smtpd_milters=`:
  alone       the milter-bypassing re-injection service (Postfix alone; reference)
  noop        bench/noop_milter.c: negotiates sealmilter's protocol steps, changes nothing
  opendkim    OpenDKIM (Debian `opendkim`) signing with a throw-away RSA-2048 key
  sealmilter  sealmilter encrypting to a recipient whose certificate is in the warm cache
each milter once on a unix socket and once on an inet socket (loopback), all running for the
whole run. Throughput: Postfix's `smtp-source` (10 sessions, N messages), messages/s = N / wall
time until the last 250 (a milter's work happens before that reply); one round runs every
configuration once, in an order rotated each round, and the ratios are taken per round (noise
hits neighbours alike) then their median. CPU per message: utime+stime from /proc, before and
after each run (the queue drained), per process group: the Postfix master and its descendants
(reaped children included through cutime), the milter process of that configuration, the load
generator (smtp-source, from wait4) and the next hop (smtp-sink); beside them the whole machine
(/proc/stat), which includes whatever else runs. Latency: one session, DATA sent -> 250 received.
Deliveries to audit@check.example go to a second, dumping smtp-sink: before and after the rounds
one smtp-source message per service is checked there (OpenDKIM's carries a DKIM-Signature,
sealmilter's is S/MIME enveloped and decrypts, the others are untouched).
"""
import argparse
import os
import platform
import smtplib
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
from gateway import Delivery, Gateway, free_port, port_open, wire_form  # noqa: E402

SIZES = [("10 KiB", 10 * 1024), ("100 KiB", 100 * 1024)]
CONFIGS = ["alone", "noop", "opendkim", "sealmilter"]
MILTERS = CONFIGS[1:]
KINDS = ["unix", "inet"]
SESSIONS = 10
SENDER, RCPT, AUDIT = "statements@bank.example", "bob@partner.example", "audit@check.example"
TARGET_NOOP, TARGET_DKIM = 0.95, 1.1  # issue 10: sealmilter/no-op and sealmilter/OpenDKIM
CLK = os.sysconf("SC_CLK_TCK")
GROUPS = ["postfix", "milter", "loadgen", "sink"]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------
# CPU time from /proc
# ------------------------------------------------------------------------------------------------

def proc_stat(pid):
    """(ppid, utime+stime+cutime+cstime) of a process in clock ticks, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rfind(")") + 2:].split()  # rest[0] is field 3 (state)
    return int(rest[1]), sum(int(x) for x in rest[11:15])


def tree_ticks(root):
    """CPU ticks of `root` and its live descendants, their reaped children included (cutime):
    a child that exits between two readings moves into its parent's cutime, so it counts once."""
    stats = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = proc_stat(int(name))
            if st is not None:
                stats[int(name)] = st
    members, frontier = set(), [root]
    while frontier:
        pid = frontier.pop()
        if pid in stats and pid not in members:
            members.add(pid)
            frontier += [p for p, (ppid, _) in stats.items() if ppid == pid]
    return sum(stats[p][1] for p in members)


def machine_ticks():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[0] + v[1] + v[2] + v[5] + v[6] + v[7]  # user nice system irq softirq steal


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# ------------------------------------------------------------------------------------------------
# The gateway with every configuration side by side
# ------------------------------------------------------------------------------------------------

class Bench(Gateway):
    """tests/e2e/gateway.py's Gateway (which runs sealmilter on inet) plus the other milters and
    one SMTP service per (configuration, socket kind). Every process started here is ours and
    stopped by PID."""

    def __init__(self, a):
        self.dump_port = free_port()
        extra = (f"message_size_limit = 104857600\n"
                 f"transport_maps = inline:{{check.example=smtp:[127.0.0.1]:{self.dump_port}}}\n")
        super().__init__(a.sealmilter, a.source, {"bob": (RCPT, "rsa"), "audit": (AUDIT, "rsa")},
                         ["bob", "audit"], "* opportunistic\n", postfix_extra=extra, sink_dump=False)
        self.noop_bin = a.noop
        self.socks = os.path.join(self.tmp, "sockets")
        self.dump_dir = os.path.join(self.tmp, "dump")
        for d in (self.socks, self.dump_dir):
            os.makedirs(d, mode=0o755)
        self.extra_procs = {}  # (milter, kind) -> Popen; sealmilter inet is the Gateway's own
        self.dump_sink = None
        self.ports = {("alone", k): self.reinject_port for k in KINDS}
        self.ports[("sealmilter", "inet")] = self.smtp_port  # main.cf's smtpd_milters
        self.specs = {}  # (milter, kind) -> the socket as Postfix and libmilter spell it
        for m in MILTERS:
            for k in KINDS:
                self.specs[(m, k)] = (f"unix:{self.socks}/{m}.sock" if k == "unix"
                                      else f"inet:127.0.0.1:{free_port()}")
                self.ports.setdefault((m, k), free_port())
        self.specs[("sealmilter", "inet")] = f"inet:127.0.0.1:{self.milter_port}"

    def postfix_master(self, with_reinject=True):
        out = super().postfix_master(with_reinject)
        for (m, k), spec in sorted(self.specs.items()):
            if (m, k) != ("sealmilter", "inet"):
                out += f"127.0.0.1:{self.ports[(m, k)]} inet n - n - - smtpd\n  -o smtpd_milters={spec}\n"
        return out

    @staticmethod
    def libmilter_spec(spec):
        """Postfix's inet:HOST:PORT is libmilter's inet:PORT@HOST."""
        if spec.startswith("inet:"):
            host, port = spec[5:].rsplit(":", 1)
            return f"inet:{port}@{host}"
        return spec

    def start(self):
        self.start_nginx()
        self.start_sink()
        self.dump_sink = self._popen("dump-sink", ["smtp-sink", "-d", os.path.join(self.dump_dir, "%H%M%S."),
                                                   "-u", "root", f"127.0.0.1:{self.dump_port}", "256"])
        self._wait(self.dump_port, self.dump_sink, "smtp-sink (dump)")
        self.start_milter()
        self.make_dkim_key()
        for m in MILTERS:
            for k in KINDS:
                if (m, k) != ("sealmilter", "inet"):
                    self.start_extra(m, k)
        self.start_postfix()
        return self

    def make_dkim_key(self):
        self.dkim_dir = os.path.join(self.tmp, "dkim")
        os.makedirs(self.dkim_dir, mode=0o700)
        subprocess.run(["opendkim-genkey", "-b", "2048", "-d", "bank.example", "-s", "bench", "-D", self.dkim_dir],
                       check=True, capture_output=True, timeout=60)

    def dkim_conf(self, kind):
        path = os.path.join(self.dkim_dir, f"opendkim-{kind}.conf")
        with open(path, "w") as f:
            # Debian's shipped choices (relaxed/simple, From oversigned), signing only.
            # RequireSafeKeys off: the throw-away key lives under /tmp, which others may write.
            f.write(f"Mode s\nDomain bank.example\nSelector bench\nKeyFile {self.dkim_dir}/bench.private\n"
                    f"RequireSafeKeys false\nSocket {self.libmilter_spec(self.specs[('opendkim', kind)])}\n"
                    "UMask 000\nSyslog no\nBackground no\nCanonicalization relaxed/simple\n"
                    "SignatureAlgorithm rsa-sha256\nOversignHeaders From\n")
        return path

    def sealmilter_unix_conf(self):
        """The Gateway's config with its own socket, cache, spool and harvest directory."""
        text = self.conf_text().replace(f"socket = inet:{self.milter_port}@127.0.0.1",
                                        f"socket = {self.specs[('sealmilter', 'unix')]}")
        for name in ("cache.db", "spool", "harvested"):
            text = text.replace(f"{self.tmp}/{name}", f"{self.tmp}/unix-{name}")
        os.makedirs(f"{self.tmp}/unix-spool", exist_ok=True)
        path = os.path.join(self.tmp, "sealmilter-unix.conf")
        with open(path, "w") as f:
            f.write(text)
        return path

    def start_extra(self, m, k):
        spec = self.libmilter_spec(self.specs[(m, k)])
        cmd = {"noop": lambda: [self.noop_bin, spec],
               "opendkim": lambda: ["opendkim", "-f", "-x", self.dkim_conf(k)],
               "sealmilter": lambda: [self.bin, "run", "-c", self.sealmilter_unix_conf()]}[m]()
        p = self._popen(f"{m}-{k}", cmd)
        self.extra_procs[(m, k)] = p
        deadline = time.time() + 20
        while time.time() < deadline and p.poll() is None:
            path = spec[5:] if k == "unix" else None
            if (path and os.path.exists(path)) or (not path and port_open(int(spec[5:].split("@")[0]))):
                if path:
                    os.chmod(path, 0o666)  # Postfix's smtpd runs as user postfix
                return
            time.sleep(0.05)
        raise RuntimeError(f"{m} on {k} did not listen: " + self.proc_log(f"{m}-{k}")[-1000:])

    def _popen(self, name, cmd):
        out = open(os.path.join(self.tmp, f"{name}.log"), "ab")
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)

    def proc_log(self, name):
        with open(os.path.join(self.tmp, f"{name}.log"), "rb") as f:
            return f.read().decode(errors="replace")

    def milter_pid(self, m, k):
        return self.milter.pid if (m, k) == ("sealmilter", "inet") else self.extra_procs[(m, k)].pid

    def sealmilter_log(self, k):
        return self.log() if k == "inet" else self.proc_log("sealmilter-unix")

    def master_pid(self):
        with open(os.path.join(self.pf, "queue", "pid", "master.pid")) as f:
            return int(f.read().split()[0])

    def queue_empty(self):
        """Without asking Postfix (postqueue would spawn showq and count as Postfix's CPU)."""
        for d in ("maildrop", "incoming", "active", "deferred", "hold"):
            for _, _, files in os.walk(os.path.join(self.pf, "queue", d)):
                if files:
                    return False
        return True

    def stop(self):
        findings = []
        for (m, k), p in self.extra_procs.items():
            self._stop(p)
            if m == "sealmilter" and p.returncode != 0:
                findings.append(f"sealmilter on {k} exited with {p.returncode} on SIGTERM")
        self._stop(self.dump_sink)
        return findings + super().stop()


# ------------------------------------------------------------------------------------------------
# Load, checks, measurements
# ------------------------------------------------------------------------------------------------

def drain(gw, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if gw.queue_empty():
            return
        time.sleep(0.05)
    raise RuntimeError("the Postfix queue did not drain")


def smtp_source(port, messages, size, rcpt=RCPT):
    """Runs smtp-source; returns (wall seconds, its CPU ticks from wait4)."""
    cmd = ["smtp-source", "-s", str(SESSIONS), "-m", str(messages), "-l", str(size), "-f", SENDER,
           "-t", rcpt, "-S", "Statement", f"127.0.0.1:{port}"]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0 or err.strip():
        raise RuntimeError(f"smtp-source failed ({p.returncode}): {err.decode(errors='replace')[-500:]}")
    return wall, round((ru.ru_utime + ru.ru_stime) * CLK)


def measure(gw, m, k, messages, size):
    """One throughput run: {'rate': msg/s, 'cpu': {group: ms per message}, 'machine': ms/msg}."""
    drain(gw)
    master, sink = gw.master_pid(), gw.sink.pid
    milter = None if m == "alone" else gw.milter_pid(m, k)
    before = {"postfix": tree_ticks(master), "sink": tree_ticks(sink),
              "milter": tree_ticks(milter) if milter else 0, "machine": machine_ticks()}
    wall, loadgen = smtp_source(gw.ports[(m, k)], messages, size)
    drain(gw)
    after = {"postfix": tree_ticks(master), "sink": tree_ticks(sink),
             "milter": tree_ticks(milter) if milter else 0, "machine": machine_ticks()}
    per_msg = lambda ticks: ticks / CLK * 1000 / messages  # noqa: E731
    cpu = {g: per_msg(after[g] - before[g]) for g in ("postfix", "sink", "milter")}
    cpu["loadgen"] = per_msg(loadgen)
    return {"rate": messages / wall, "cpu": cpu, "machine": per_msg(after["machine"] - before["machine"])}


def check_deliveries(gw, when):
    """One smtp-source message per service to the dumping sink; each must show its milter's work."""
    seen = set(os.listdir(gw.dump_dir))
    for (m, k), port in sorted(gw.ports.items()):
        smtp_source(port, 1, 2000, rcpt=AUDIT)
        deadline = time.time() + 30
        new = []
        while time.time() < deadline and not new:
            time.sleep(0.6)  # smtp-sink writes the file while the transaction runs
            new = [n for n in os.listdir(gw.dump_dir) if n not in seen and not n.endswith((".der", ".nss"))]
        if len(new) != 1:
            raise RuntimeError(f"{when}: {m} on {k}: {len(new)} deliveries at the audit sink, expected 1")
        seen.add(new[0])
        d = Delivery(os.path.join(gw.dump_dir, new[0]))
        dkim = d.headers("DKIM-Signature")
        ok = {"alone": not dkim and not d.encrypted, "noop": not dkim and not d.encrypted,
              "opendkim": len(dkim) == 1 and "d=bank.example" in dkim[0] and "s=bench" in dkim[0]
              and not d.encrypted,
              "sealmilter": d.encrypted and not dkim and gw.openssl_decrypt(d, gw.ids["audit"])[0]}[m]
        if not ok:
            raise RuntimeError(f"{when}: the delivery through {m} on {k} is not what it should be: {d.path}")
    log(f"{when}: deliveries checked (OpenDKIM signs, sealmilter encrypts, the others pass unchanged)")


def message(size, n):
    body = ("".join(f"Line {i:05d} of the monthly statement, amounts and references follow here.\n"
                    for i in range(size // 72 + 1)))[:size]
    return wire_form((f"From: {SENDER}\nTo: {RCPT}\nSubject: Statement {n}\n"
                      f"Message-ID: <lat{n}.{time.time_ns()}@bench.example>\nMIME-Version: 1.0\n"
                      "Content-Type: text/plain; charset=us-ascii\n\n" + body).encode())


def latencies(port, size, count):
    out = []
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as s:
        s.ehlo("bench.example")
        for n in range(count):
            msg = message(size, n)
            code, _ = s.mail(SENDER)
            code2, _ = s.rcpt(RCPT)
            if code != 250 or code2 != 250:
                raise RuntimeError(f"MAIL/RCPT refused: {code} {code2}")
            t0 = time.perf_counter()
            code, text = s.data(msg)
            out.append(time.perf_counter() - t0)
            if code != 250:
                raise RuntimeError(f"DATA refused: {code} {text}")
    return out


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def rotated(items, n):
    n %= len(items)
    return items[n:] + items[:n]


def run_rounds(gw, a):
    """{(size label, kind): [round: {config: measure()}]}, configurations interleaved per round."""
    out = {}
    for label, size in SIZES:
        for k in KINDS:
            rounds = []
            for rnd in range(a.rounds):
                r = {}
                for m in rotated(CONFIGS, rnd):
                    r[m] = measure(gw, m, k, a.messages, size)
                rounds.append(r)
                log(f"{label} {k} round {rnd + 1}: " + ", ".join(f"{m} {r[m]['rate']:.0f}" for m in CONFIGS)
                    + f" msg/s; load {loadavg()}")
            out[(label, k)] = rounds
    return out


def run_latency(gw, a):
    """{(size label, config): [seconds]} on the unix socket, in chunks alternating the configs."""
    lat = {}
    chunk = max(1, a.latency_count // 4)
    for label, size in SIZES:
        for i in range(0, a.latency_count, chunk):
            for m in rotated(CONFIGS, i // chunk):
                lat.setdefault((label, m), []).extend(
                    latencies(gw.ports[(m, "unix")], size, min(chunk, a.latency_count - i)))
                drain(gw)
    return lat


def count_encrypted(gw):
    return {k: gw.sealmilter_log(k).count("encrypted (aes-256-cbc") for k in KINDS}


# ------------------------------------------------------------------------------------------------
# The report
# ------------------------------------------------------------------------------------------------

def med(values):
    return statistics.median(values)


def spread(values, fmt):
    return f"{fmt(med(values))} ({fmt(min(values))}–{fmt(max(values))})"


def ratio_list(rounds, num, den):
    return [r[num]["rate"] / r[den]["rate"] for r in rounds]


def throughput_table(res):
    out = ["| Socket | Size | Postfix alone | no-op filter | OpenDKIM | sealmilter | no-op / alone | "
           "**sealmilter / no-op** (target >= 0.95) | **sealmilter / OpenDKIM** (target >= 1.1) |",
           "|---|---|---|---|---|---|---|---|---|"]
    for (label, k), rounds in res.items():
        rates = [f"{med([r[m]['rate'] for r in rounds]):,.0f}" for m in CONFIGS]
        floor = ratio_list(rounds, "noop", "alone")
        vs_noop, vs_dkim = ratio_list(rounds, "sealmilter", "noop"), ratio_list(rounds, "sealmilter", "opendkim")
        two = lambda x: f"{x:.2f}"  # noqa: E731
        out.append(f"| {k} | {label} | {' | '.join(rates)} | {spread(floor, two)} | "
                   f"{spread(vs_noop, two)} {'met' if med(vs_noop) >= TARGET_NOOP else 'missed'} | "
                   f"{spread(vs_dkim, two)} {'met' if med(vs_dkim) >= TARGET_DKIM else 'missed'} |")
    return out


def cpu_table(res):
    out = ["| Socket | Size | Configuration | Postfix | milter | load generator | smtp-sink | sum | "
           "whole machine |", "|---|---|---|---|---|---|---|---|---|"]
    for (label, k), rounds in res.items():
        for m in CONFIGS:
            g = {grp: med([r[m]["cpu"][grp] for r in rounds]) for grp in GROUPS}
            mach = med([r[m]["machine"] for r in rounds])
            milter = "–" if m == "alone" else f"{g['milter']:.2f}"
            out.append(f"| {k} | {label} | {m} | {g['postfix']:.2f} | {milter} | {g['loadgen']:.2f} | "
                       f"{g['sink']:.2f} | {sum(g.values()):.2f} | {mach:.2f} |")
    return out


def latency_table(lat):
    out = ["| Size | " + " | ".join(f"p50 {m} | p99 {m}" for m in CONFIGS) + " |",
           "|---|" + "---|" * (2 * len(CONFIGS))]
    for label, _ in SIZES:
        cells = [f"{pct(lat[(label, m)], p) * 1000:.2f} ms" for m in CONFIGS for p in (50, 99)]
        out.append(f"| {label} | {' | '.join(cells)} |")
    return out


def extra_cpu_line(res):
    """sealmilter's own CPU per message against the no-op filter's and OpenDKIM's (unix, 10 KiB)."""
    rounds = res[(SIZES[0][0], "unix")]
    d = {m: med([r[m]["cpu"]["milter"] for r in rounds]) for m in MILTERS}
    p = {m: med([r[m]["cpu"]["postfix"] for r in rounds]) for m in MILTERS}
    vs = lambda x, y: f"{abs(x - y):.2f} ms {'more' if x >= y else 'less'} than"  # noqa: E731
    return (f"On the unix socket at {SIZES[0][0]}, sealmilter's process spends {d['sealmilter']:.2f} ms of CPU per "
            f"message: {vs(d['sealmilter'], d['noop'])} the no-op filter ({d['noop']:.2f} ms) and "
            f"{vs(d['sealmilter'], d['opendkim'])} OpenDKIM ({d['opendkim']:.2f} ms); Postfix spends "
            f"{p['sealmilter']:.2f} ms per message with sealmilter (it queues and delivers the larger encrypted "
            f"body), {p['noop']:.2f} ms with the no-op filter. CPU times on a loaded machine include contention "
            "(caches, and vCPU time the hypervisor takes back is charged to whatever ran): compare them within "
            "this run only.")


def git_rev(source):
    def git(*args):
        return subprocess.run(["git", "-C", source, *args], capture_output=True, text=True).stdout.strip()
    return (git("rev-parse", "--short", "HEAD") or "unknown") + (" + uncommitted changes" if git("status", "--porcelain") else "")


def report(a, res, lat, env):
    out = ["## SMTP throughput: sealmilter against the no-op floor and OpenDKIM\n",
           "Generated by `bench/smtp.sh`; every figure below was measured in this run. One private Postfix 3.7 on "
           "loopback with one SMTP service per configuration, next hop `smtp-sink`: Postfix alone (the "
           "milter-bypassing re-injection service), a **no-op milter** (`bench/noop_milter.c`: negotiates "
           "sealmilter's protocol steps and changes nothing — the floor of any milter), **OpenDKIM** signing "
           "(rsa-sha256, RSA-2048, relaxed/simple) and **sealmilter** encrypting (AES-256-CBC to an RSA-2048 "
           "certificate from the warm cache). Each milter runs once on a unix socket and once on inet "
           "(loopback), on the same Postfix. A round runs every configuration once (order rotated each round); "
           "ratios are per round, then the median (min–max over rounds). msg/s = messages / wall time until "
           "the last 250.\n",
           "| | |", "|---|---|",
           f"| Command | `{a.command}` |",
           f"| Date | {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} |",
           f"| Source | git {git_rev(a.source)} |",
           f"| Machine | {os.cpu_count()} CPUs, Linux {platform.release()}; shared with other users' builds |",
           f"| Load average (1/5/15 min) | before {env['load_before']}, after {env['load_after']} |",
           f"| Peers | {env['opendkim']}; libmilter {env['libmilter']} |",
           f"| Load | `smtp-source -s {SESSIONS} -m {a.messages} -l SIZE` per run, {a.rounds} rounds per socket "
           "and size after one warm-up run per service; medians shown |",
           f"| Checked | before and after the rounds, one message per service to a dumping sink: OpenDKIM's "
           f"carries a DKIM-Signature (d=bank.example, s=bench), sealmilter's is S/MIME enveloped and decrypts "
           f"with the recipient's key, the no-op filter's and Postfix's are untouched; sealmilter logged "
           f"{env['encrypted']} messages encrypted, every one it was sent |",
           f"| Run time | {env['seconds']:.0f} s |\n",
           "Throughput (msg/s, median over rounds):\n", *throughput_table(res), "",
           "CPU per message (ms, median over rounds) by process group, from /proc utime+stime before and after "
           "each run (queue drained): Postfix = the master and its descendants; milter = the process of that "
           "configuration; load generator = `smtp-source`; whole machine = /proc/stat, which includes other "
           "users' work:\n", *cpu_table(res), "", extra_cpu_line(res), "",
           f"Latency on the unix socket (one SMTP session, {a.latency_count} messages per configuration and "
           "size, in chunks alternating the configurations; DATA sent -> 250 received):\n",
           *latency_table(lat), ""]
    return "\n".join(out)


def tool_version(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    return ((p.stdout or p.stderr).strip().splitlines() or ["unknown"])[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sealmilter", required=True)
    ap.add_argument("--noop", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--messages", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--latency-count", type=int, default=200)
    ap.add_argument("--command", default="bench/smtp.sh")
    a = ap.parse_args()
    t0, env = time.time(), {"load_before": loadavg()}
    gw = Bench(a)
    try:
        gw.start()
        check_deliveries(gw, "before the rounds")
        for (m, k), port in sorted(gw.ports.items()):  # warm-up: smtpd processes, the cache
            smtp_source(port, min(a.messages, 100), SIZES[0][1])
        drain(gw)
        before = count_encrypted(gw)
        res = run_rounds(gw, a)
        lat = run_latency(gw, a)
        after = count_encrypted(gw)
        check_deliveries(gw, "after the rounds")
        sent = {k: a.rounds * a.messages * len(SIZES) + (a.latency_count * len(SIZES) if k == "unix" else 0)
                for k in KINDS}
        for k in KINDS:
            if after[k] - before[k] < sent[k]:
                raise RuntimeError(f"sealmilter on {k} encrypted {after[k] - before[k]} of {sent[k]} messages")
        env["encrypted"] = f"{sum(after[k] - before[k] for k in KINDS):,}"
    finally:
        findings = gw.stop()
    # An exit status on SIGTERM says nothing about the figures (reported, not fatal); a
    # sanitizer report does.
    for f in findings:
        log(f"warning: {f}")
    if any("Sanitizer" in f or "runtime error:" in f for f in findings):
        raise RuntimeError("sanitizer findings in the milter's log")
    env.update(load_after=loadavg(), seconds=time.time() - t0, opendkim=tool_version(["opendkim", "-V"]),
               libmilter=tool_version(["dpkg-query", "-W", "-f=${Version}", "libmilter1.0.1"]))
    print(report(a, res, lat, env))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RuntimeError as e:
        log(f"smtp_throughput.py: {e}")
        sys.exit(1)
