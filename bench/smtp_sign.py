#!/usr/bin/env python3
"""bench/smtp_sign.py — SMTP throughput through Postfix + sealmilter with signing on and off.

usage: smtp_sign.py --sealmilter BIN --source REPO_DIR [--messages N] [--rounds R] [--command TEXT]

One private Postfix with sealmilter (tests/e2e/gateway.py: loopback, next hop smtp-sink), the
sender's key in a key store (`sealmilter keys import`). Configurations, switched by SIGHUP
between runs: crypto.sign = never and = always; recipients: bob@partner.example (certificate in
the warm cache: encrypt only vs sign-then-encrypt) and plain@partner.example (no certificate:
plain vs sign only). smtp-source (10 sessions, N messages of 10 KiB) per run; messages/s = N /
wall time until the last 250. One round runs every (configuration, recipient) once, order
rotated; ratios are signing-on over signing-off per round, then the median. Prints a Markdown
section on stdout (bench/smtp_sign.sh writes it into BENCHMARKS.md), progress on stderr.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
from gateway import Gateway  # noqa: E402

SENDER = "alice@bank.example"
SIZE = 10 * 1024


def log(msg):
    print(f"smtp_sign: {msg}", file=sys.stderr, flush=True)


def drain(gw, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if gw.queue_empty():
            return
        time.sleep(0.05)
    raise RuntimeError("the Postfix queue did not drain")


def run_once(gw, rcpt, messages):
    drain(gw)
    cmd = ["smtp-source", "-s", "10", "-m", str(messages), "-l", str(SIZE), "-f", SENDER, "-t", rcpt,
           "-S", "Statement", f"127.0.0.1:{gw.smtp_port}"]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600)
    wall = time.perf_counter() - t0
    if p.returncode != 0 or p.stderr.strip():
        raise RuntimeError("smtp-source failed: " + p.stderr.decode(errors="replace")[-400:])
    drain(gw)
    return messages / wall


def set_signing(gw, base_conf, sign):
    gw.extra_conf = base_conf + f"[crypto]\nsign = {sign}\n"
    gw.write_conf()
    before = gw.log().count("reloaded the configuration")
    gw.hup_milter()
    deadline = time.time() + 20
    while time.time() < deadline and gw.log().count("reloaded the configuration") <= before:
        time.sleep(0.05)
    if gw.log().count("reloaded the configuration") <= before:
        raise RuntimeError("sealmilter did not reload")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sealmilter", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--messages", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--command", default="bench/smtp_sign.sh")
    a = ap.parse_args()
    gw = Gateway(a.sealmilter, a.source, {"alice": (SENDER, "rsa"), "bob": ("bob@partner.example", "rsa")}, ["bob"],
                 "* opportunistic\n", sink_dump=False)
    try:
        master = os.path.join(gw.tmp, "master.key")
        base = f"[keys]\ndir = {gw.tmp}/keys\nmaster_key_file = {master}\n"
        gw.extra_conf = base
        gw.write_conf()
        subprocess.run([gw.bin, "keys", "new-master-key", master], check=True, capture_output=True)
        subprocess.run([gw.bin, "keys", "-c", gw.conf, "import", gw.ids["alice"].p12, "--pass-file",
                        os.path.join(gw.pki_dir, "p12pass")], check=True, capture_output=True)
        gw.start()
        runs = [("never", "bob@partner.example"), ("always", "bob@partner.example"),
                ("never", "plain@partner.example"), ("always", "plain@partner.example")]
        set_signing(gw, base, "always")  # warm-up: the cache learns bob, the key is unwrapped
        run_once(gw, "bob@partner.example", 20)
        run_once(gw, "plain@partner.example", 20)
        if "signed by <alice@bank.example>" not in gw.log():
            raise RuntimeError("sealmilter did not sign in the warm-up: " + gw.log()[-800:])
        rates = {r: [] for r in runs}
        for rnd in range(a.rounds):
            order = runs[rnd % len(runs):] + runs[:rnd % len(runs)]
            for sign, rcpt in order:
                set_signing(gw, base, sign)
                signed_before = gw.log().count(": signed by <")
                rates[(sign, rcpt)].append(run_once(gw, rcpt, a.messages))
                signed = gw.log().count(": signed by <") - signed_before
                if signed != (a.messages if sign == "always" else 0):  # each message signed, or none
                    raise RuntimeError(f"crypto.sign = {sign} to {rcpt}: {signed} of {a.messages} messages signed")
            log(f"round {rnd + 1}: " + ", ".join(f"{s}/{r.split('@')[0]} {rates[(s, r)][-1]:.0f}" for s, r in runs))
        out = ["## SMTP throughput with signing (crypto.sign = always vs never)", "",
               f"Generated by `{a.command}`: Postfix + sealmilter on loopback (tests/e2e/gateway.py), smtp-source "
               f"with 10 sessions, {a.messages} messages of 10 KiB per run, {a.rounds} interleaved rounds (SIGHUP "
               "switches crypto.sign between runs); messages/s median over rounds; ratio = signing on / off, per "
               "round, median. RSA-2048 signer from the key store, SHA-256, multipart/signed.", "",
               "| recipient | signing off | msg/s | signing on | msg/s | ratio on/off |", "|---|---|---:|---|---:|---:|"]
        for rcpt, off_name, on_name in (("bob@partner.example", "encrypt only", "sign-then-encrypt"),
                                        ("plain@partner.example", "plain", "sign only")):
            off, on = rates[("never", rcpt)], rates[("always", rcpt)]
            ratio = statistics.median(b / a_ for a_, b in zip(off, on))
            out.append(f"| {rcpt} | {off_name} | {statistics.median(off):.1f} | {on_name} | "
                       f"{statistics.median(on):.1f} | {ratio:.2f} |")
        out.append("")
        out.append(f"Machine load average at the end: {os.getloadavg()[0]:.2f} (2 cores shared; compare the ratios).")
        print("\n".join(out))
        return 0
    finally:
        gw.stop()


if __name__ == "__main__":
    sys.exit(main())
