#!/usr/bin/env python3
"""tests/e2e/test_burst_e2e.py — one message to 1,000 recipients through the real Postfix.

A bank's statement run: one message, 1,000 envelope recipients (all named in To, so they share
envelopes), half of them with a certificate in a directory that answers every request after
50 ms (nginx with TLS + HTTP/2 in front of bench/slow_directory.py), the other half unknown to
it (404). RCPT-time lookups go through the bounded resolver (lookup/resolver.hpp) and the
directory's one multiplexed HTTP client (lookup/http.hpp, directory.max_connections).

Checks: every RCPT and the DATA are accepted; every certificate holder receives an encrypted
copy that `openssl cms` decrypts with the holder's key to the original entity; every other
recipient receives the message plain and unchanged; nobody gets it twice; the daemon's thread
count (/proc/PID/status Threads, sampled throughout) never exceeds a bound derived from the
configuration: the threads it runs idle (which include the resolver's workers and the HTTP
client's I/O thread) plus one libmilter thread per concurrent milter connection (Postfix opens
one for this SMTP session) and a small allowance. A thread per RCPT would need hundreds. The
elapsed time is printed, never asserted.

usage: test_burst_e2e.py --sealmilter BIN --source DIR
Needs root, postfix, smtp-sink, nginx, openssl, python3-cryptography.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gateway import Gateway, Results, inner_expected, sink_body_equal  # noqa: E402

RECIPIENTS = 1000
HOLDERS = 500
DELAY_MS = 50
MILTER_CONNECTIONS = 1  # this test's one SMTP session through the milter
ALLOWANCE = 3           # libmilter's own bookkeeping, a re-injection, a reload
RESULTS = Results()


class SlowDirectoryGateway(Gateway):
    """The shared gateway, with the directory behind nginx answering after DELAY_MS."""

    def conf_text(self, extra=None):
        return (super().conf_text(extra).replace("/json/{email}", "/slow/{email}")
                .replace("timeout_ms = 3000\n", "timeout_ms = 10000\nmax_connections = 4\n"))

    def start_nginx(self):
        self.slow = subprocess.Popen(
            ["python3", os.path.join(self.source, "bench", "slow_directory.py"), self.www, str(DELAY_MS)],
            stdout=subprocess.PIPE, stderr=open(os.path.join(self.tmp, "slow.err"), "wb"))
        upstream = self.slow.stdout.readline().decode().strip()
        prefix = os.path.join(self.tmp, "nginx")
        self.nginx = subprocess.Popen(
            ["bash", os.path.join(self.source, "tests/support/http/start_nginx.sh"), prefix, str(self.http_port),
             upstream], stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.tmp, "nginx.err"), "wb"))
        self._wait(self.http_port, self.nginx, "nginx")

    def stop(self):
        findings = super().stop()
        self._stop(getattr(self, "slow", None))
        return findings


def make_holders(gw):
    """HOLDERS EC P-256 certificates under the gateway's test CA, published in the directory.
    Returns {address: (cert_path, key_path)}."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    with open(os.path.join(gw.pki_dir, "ca.key"), "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), None)
    with open(gw.ca, "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    now = datetime.datetime.now(datetime.timezone.utc)
    holders = {}
    for i in range(HOLDERS):
        addr = f"holder{i}@partner.example"
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"holder{i}")]))
                .issuer_name(ca.subject).public_key(key.public_key()).serial_number(10_000 + i)
                .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=True, key_cert_sign=False,
                                             crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
                .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(addr)]), critical=False)
                .sign(ca_key, hashes.SHA256()))
        pem = cert.public_bytes(serialization.Encoding.PEM)
        cert_path, key_path = os.path.join(gw.pki_dir, f"h{i}.pem"), os.path.join(gw.pki_dir, f"h{i}.key")
        with open(cert_path, "wb") as f:
            f.write(pem)
        with open(key_path, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        with open(os.path.join(gw.www, addr), "w") as f:
            f.write(json.dumps({"certificates": [{"pem": pem.decode()}]}))
        holders[addr] = (cert_path, key_path)
    return holders


def threads_of(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


class ThreadSampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.samples, self.done = pid, 0, 0, threading.Event()

    def run(self):
        while not self.done.is_set():
            try:
                self.peak = max(self.peak, threads_of(self.pid))
                self.samples += 1
            except OSError:
                return
            time.sleep(0.01)


def the_message(rcpts):
    to = ",\n ".join(rcpts)
    return (f"From: statements@bank.example\nTo: {to}\nSubject: Your statement\n"
            f"Message-ID: <burst-1000@bank.example>\nMIME-Version: 1.0\n"
            f"Content-Type: text/plain; charset=us-ascii\n\n"
            f"Dear customer,\nyour monthly statement is ready.\n").encode()


def collect(gw, message_id, wanted, timeout=300):
    """Deliveries of the message until every wanted recipient is covered (Postfix splits one
    relay transaction per default_destination_recipient_limit recipients)."""
    deadline = time.time() + timeout
    found = []
    while time.time() < deadline:
        found = [d for d in gw.deliveries(new_only=False) if d.message_id == message_id]
        if wanted <= {r for d in found for r in d.rcpts}:
            time.sleep(2)  # catch an unexpected extra copy
            return [d for d in gw.deliveries(new_only=False) if d.message_id == message_id]
        time.sleep(0.5)
    return found


def check_deliveries(gw, holders, others, deliveries, original):
    seen = {}
    for d in deliveries:
        for r in d.rcpts:
            seen[r] = seen.get(r, 0) + 1
    RESULTS.check("every recipient got the message exactly once",
                  set(seen) == holders.keys() | others and all(n == 1 for n in seen.values()),
                  f"{len(seen)} recipients seen, {sum(1 for n in seen.values() if n > 1)} twice")
    mixed = [d for d in deliveries if set(d.rcpts) & holders.keys() and set(d.rcpts) & others]
    RESULTS.check("holders and the others never share a delivery", not mixed, f"{len(mixed)} mixed")
    wrong = [d.path for d in deliveries if d.encrypted != bool(set(d.rcpts) & holders.keys())]
    RESULTS.check("encrypted for holders, plain for the others", not wrong, f"{len(wrong)} wrong: {wrong[:3]}")
    plain_changed = [d.path for d in deliveries if not d.encrypted and not sink_body_equal(d, original)]
    RESULTS.check("plain copies are unchanged", not plain_changed, str(plain_changed[:3]))
    want = inner_expected(original)
    failures = []
    for d in deliveries:
        if not d.encrypted:
            continue
        for r in d.rcpts:
            cert, key = holders[r]
            p = subprocess.run(["openssl", "cms", "-decrypt", "-binary", "-in", d.path, "-inkey", key,
                                "-recip", cert], capture_output=True, timeout=120)
            if p.returncode != 0 or p.stdout != want:
                failures.append(f"{r}: {p.stderr[:200]!r}")
    RESULTS.check(f"every holder's copy decrypts to the original ({len(holders)} holders)", not failures,
                  "; ".join(failures[:3]))


def run(gw):
    holders = make_holders(gw)
    others = {f"plain{i}@partner.example" for i in range(RECIPIENTS - HOLDERS)}
    rcpts = sorted(holders) + sorted(others)
    time.sleep(1)  # the daemon has settled: its idle thread count
    idle = threads_of(gw.milter.pid)
    bound = idle + MILTER_CONNECTIONS + ALLOWANCE
    sampler = ThreadSampler(gw.milter.pid)
    sampler.start()
    original = the_message(rcpts)
    t0 = time.time()
    result = gw.send("statements@bank.example", rcpts, original)
    decided = time.time() - t0
    deliveries = collect(gw, "<burst-1000@bank.example>", holders.keys() | others)
    sampler.done.set()
    sampler.join()
    print(f"decided (RCPT 1 .. DATA reply) in {decided:.1f} s; {len(deliveries)} deliveries; "
          f"threads idle {idle}, peak {sampler.peak} over {sampler.samples} samples, bound {bound}")
    RESULTS.check("all 1,000 RCPTs accepted", all(c == 250 for c, _ in result["rcpt"].values()) and
                  len(result["rcpt"]) == RECIPIENTS, str([v for v in result["rcpt"].values() if v[0] != 250][:3]))
    RESULTS.check("DATA accepted", result["data"] is not None and result["data"][0] == 250, str(result["data"]))
    RESULTS.check("thread count stayed within the configured bound", 0 < sampler.peak <= bound,
                  f"peak {sampler.peak} > {bound}")
    check_deliveries(gw, holders, others, deliveries, original)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sealmilter", required=True)
    ap.add_argument("--source", required=True)
    a = ap.parse_args()
    for tool in ("postfix", "smtp-sink", "openssl", "nginx"):
        if subprocess.run(["sh", "-c", f"command -v {tool} || test -x /usr/sbin/{tool}"],
                          capture_output=True).returncode != 0:
            print(f"e2e-burst: missing tool {tool} (scripts/deps.sh installs it)")
            return 1
    gw = SlowDirectoryGateway(a.sealmilter, a.source, {}, [], "* opportunistic\n",
                              extra_conf="")
    try:
        gw.start()
        run(gw)
    except Exception as e:  # a harness failure is a test failure, with the logs
        import traceback
        traceback.print_exc()
        RESULTS.check("harness", False, str(e))
    finally:
        if RESULTS.failed:
            print("--- milter log (tail) ---\n" + gw.log()[-3000:])
            print("--- postfix maillog (tail) ---\n" + gw.maillog()[-3000:])
        for f in gw.stop():
            RESULTS.check("sealmilter exits cleanly", False, f)
    return RESULTS.summary("e2e-burst")


if __name__ == "__main__":
    sys.exit(main())
