#!/usr/bin/env python3
"""`sealmilter run` starts the HTTPS pickup service when pickup.listen is set, and `check-config`
judges the pickup.* keys the same way (issue 13, docs/issuing.md "The pickup service").

usage: test_pickup_run.py --sealmilter BIN --source DIR
No mail server: the daemon listens on a unix milter socket in a temp dir and the pickup on a
free loopback port (retried when another process took it first; the daemon's own log line names
the port it bound). The daemon is stopped by its PID. Prints "pickup-run: N passed, M failed".
"""
import argparse
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(("PASS" if ok else "FAIL") + ": " + name + ("" if ok else "\n" + str(detail)), flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(tmp, name, pickup):
    path = os.path.join(tmp, name)
    for d in ("spool", "certs", "keys"):
        os.makedirs(os.path.join(tmp, d), exist_ok=True)
    with open(path, "w") as f:
        f.write(f"""[milter]
socket = unix:{tmp}/milter.sock
spool_dir = {tmp}/spool
[policy]
file =
[cache]
path =
[store]
dir = {tmp}/certs
[harvest]
enabled = false
dir = {tmp}/harvested
[keys]
dir = {tmp}/keys
master_key_file = {tmp}/master.key
[issue]
org_name = Example <Bank>
notice_from = secure-mail@bank.example
[pickup]
{pickup}
""")
    return path


def run(args, timeout=60):
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout + r.stderr


def get(ctx, url):
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=10) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def start_daemon(bin_, tmp, tls):
    """The daemon with the pickup on a free port: (process, port, log path); retries a port race."""
    for attempt in range(5):
        port = free_port()
        conf = write_config(tmp, "run.conf", f"listen = 127.0.0.1:{port}\nurl = http://127.0.0.1:{port}\n"
                            f"cert_file = {tls}/server.crt\nkey_file = {tls}/server.key\n"
                            f"audit_log = {tmp}/audit.log\n")
        log = os.path.join(tmp, f"daemon-{attempt}.log")
        with open(log, "w") as out:
            proc = subprocess.Popen([bin_, "run", "-c", conf], stdout=out, stderr=subprocess.STDOUT)
        for _ in range(150):  # bounded: 15 s
            text = open(log).read()
            if f"pickup service on https://127.0.0.1:{port}" in text:
                return proc, port, log
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        if "already in use" not in open(log).read():
            return None, port, log
    return None, 0, log


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sealmilter", required=True)
    ap.add_argument("--source", required=True)
    a = ap.parse_args()
    bin_ = os.path.abspath(a.sealmilter)
    with tempfile.TemporaryDirectory(prefix="sealmilter-pickup-run-") as tmp:
        tls = os.path.join(tmp, "tls")
        subprocess.run([os.path.join(a.source, "tests/support/tls_ca.sh"), tls, "pickup run test CA"],
                       check=True, capture_output=True)
        other = os.path.join(tmp, "other")
        subprocess.run([os.path.join(a.source, "tests/support/tls_ca.sh"), other, "another CA"],
                       check=True, capture_output=True)
        ctx = ssl.create_default_context(cafile=os.path.join(tls, "ca.crt"))
        # The issuing CA (part A's `ca init`): the pickup serves it as /ca.pem.
        rc, out = run([bin_, "keys", "new-master-key", os.path.join(tmp, "master.key")])
        check("new-master-key", rc == 0, out)
        init = subprocess.run([bin_, "ca", "init", "-c", write_config(tmp, "init.conf", "")], capture_output=True,
                              text=True, timeout=120)
        check("ca init", init.returncode == 0 and "BEGIN CERTIFICATE" in init.stdout, init.stderr)

        proc, port, log = start_daemon(bin_, tmp, tls)
        check("run starts the pickup service (http:// pickup.url on loopback)", proc is not None, open(log).read())
        if proc is not None:
            try:
                base = f"https://127.0.0.1:{port}"
                status, headers, body = get(ctx, base + "/help")
                check("GET /help over HTTPS", status == 200 and "Thunderbird" in body, (status, body[:300]))
                check("security headers", "frame-ancestors 'none'" in headers.get("Content-Security-Policy", "")
                      and headers.get("Strict-Transport-Security") == "max-age=31536000"
                      and headers.get("Referrer-Policy") == "no-referrer", headers)
                check("the organisation's name is escaped", "Example &lt;Bank&gt;" in body and "<Bank>" not in body)
                status, headers, body = get(ctx, base + "/ca.pem")
                check("GET /ca.pem is the CA `ca init` made", status == 200 and body.strip() == init.stdout.strip()
                      and "attachment" in headers.get("Content-Disposition", ""), (status, body[:300]))
                status, _, body = get(ctx, base + "/p/" + "A" * 43)
                check("an unknown link is not valid", status == 404 and "not valid any more" in body,
                      (status, body[:300]))
                # A second daemon on the same port refuses to start, with a sentence.
                busy = write_config(tmp, "busy.conf", f"listen = 127.0.0.1:{port}\nurl = https://x.example\n"
                                    f"cert_file = {tls}/server.crt\nkey_file = {tls}/server.key\n")
                with open(busy) as f:
                    content = f.read().replace(f"unix:{tmp}/milter.sock", f"unix:{tmp}/milter2.sock")
                with open(busy, "w") as f:
                    f.write(content)
                rc, out = run([bin_, "run", "-c", busy])
                check("a port in use refuses the start", rc == 78 and "the port is already in use by another process"
                      in out, (rc, out))
                audit = open(os.path.join(tmp, "audit.log")).read()
                check("audit log lines", "pickup: event=bad_link" in audit and
                      oct(os.stat(os.path.join(tmp, "audit.log")).st_mode & 0o777) == "0o640", audit)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)

        def cc(name, pickup, expect):
            conf = write_config(tmp, "cc.conf", pickup)
            rc, out = run([bin_, "check-config", "-c", conf, "--user", str(os.geteuid())])
            check("check-config: " + name, (rc == 0 if expect is None else rc == 1 and expect in out), (rc, out))

        good = f"cert_file = {tls}/server.crt\nkey_file = {tls}/server.key\n"
        cc("a good pickup section", "listen = 127.0.0.1:8443\nurl = https://secure.bank.example\n" + good, None)
        conf = write_config(tmp, "nostore.conf", "listen = 127.0.0.1:8443\nurl = https://x.example\n" + good)
        with open(conf) as f:
            content = f.read().replace(f"master_key_file = {tmp}/master.key", "master_key_file =").replace(
                f"dir = {tmp}/keys\n", f"dir = {tmp}/keys-none\n")
        with open(conf, "w") as f:
            f.write(content)
        rc, out = run([bin_, "check-config", "-c", conf, "--user", str(os.geteuid())])
        check("check-config warns when no link can work", rc == 0 and "no key store is configured" in out, (rc, out))
        cc("off when listen is empty", "url = http://example.com\n", None)
        cc("url required", "listen = 127.0.0.1:8443\n" + good, "pickup.url: required")
        cc("plain http elsewhere refused", "listen = 127.0.0.1:8443\nurl = http://secure.bank.example\n" + good,
           "must use https://")
        cc("certificate required", "listen = 127.0.0.1:8443\nurl = https://x.example\n",
           "pickup.cert_file: required")
        cc("key of another certificate", "listen = 127.0.0.1:8443\nurl = https://x.example\n"
           f"cert_file = {tls}/server.crt\nkey_file = {other}/server.key\n", "does not belong to the certificate")
        cc("bad trusted proxy", "listen = 127.0.0.1:8443\nurl = https://x.example\ntrusted_proxies = proxy.lan\n" + good,
           "pickup.trusted_proxies")
    passed = sum(results)
    print(f"pickup-run: {passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
