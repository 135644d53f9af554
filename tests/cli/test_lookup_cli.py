#!/usr/bin/env python3
"""`sealmilter lookup`, `cache list|purge` and `encrypt` without --cert, end to end against a
real nginx directory with TLS (tests/support/http/start_nginx.sh). Standard library only.

usage: test_lookup_cli.py --sealmilter BIN --source REPO_DIR
Prints 'lookup-cli: N passed, M failed' and exits 1 on any failure.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

PASSED = 0
FAILED = []


def check(name, cond, detail=""):
    global PASSED
    if cond:
        PASSED += 1
    else:
        FAILED.append(f"{name}: {detail}")
        print(f"FAIL {name}: {detail}", flush=True)


def run(cmd, stdin=None):
    p = subprocess.run(cmd, input=stdin, capture_output=True, timeout=60)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, pid_file):
    """Until nginx (proc) listens on port: its pid file, written after it bound the port, must
    name proc, or another test's nginx that won the race for the port would pass for ours."""
    deadline = time.time() + 15
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with open(pid_file) as f:
                if f.read().strip() != str(proc.pid):
                    raise OSError("not ours yet")
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_pki(d):
    """A recipient CA and leaf certificates: bob (RSA), carol (EC), eve (RSA, other address)."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem",
            "-days", "30", "-subj", "/CN=Recipient Test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    leaves = {"bob": ("bob@partner.example", "rsa:2048", "keyEncipherment"),
              "carol": ("carol@partner.example", "ec", "keyAgreement"),
              "eve": ("eve@evil.example", "rsa:2048", "keyEncipherment")}
    for name, (addr, kind, ku) in leaves.items():
        newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"] if kind == "ec" else ["-newkey", kind]
        openssl("req", "-new", *newkey, "-nodes", "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.csr",
                "-subj", f"/CN={name}")
        with open(f"{d}/{name}.ext", "w") as f:
            f.write(f"basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,{ku}\n"
                    f"extendedKeyUsage=emailProtection\nsubjectAltName=email:{addr}\n")
        openssl("x509", "-req", "-in", f"{d}/{name}.csr", "-CA", f"{d}/ca.pem", "-CAkey", f"{d}/ca.key",
                "-CAcreateserial", "-days", "30", "-extfile", f"{d}/{name}.ext", "-out", f"{d}/{name}.pem")


def fingerprint(path):
    out = subprocess.run(["openssl", "x509", "-in", path, "-noout", "-fingerprint", "-sha256"],
                         capture_output=True, check=True, text=True).stdout
    return out.strip().split("=", 1)[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sealmilter", required=True)
    ap.add_argument("--source", required=True)
    a = ap.parse_args()
    bin_ = a.sealmilter
    with tempfile.TemporaryDirectory(prefix="sealmilter-lookup-cli-") as tmp:
        pki = os.path.join(tmp, "pki")
        prefix = os.path.join(tmp, "nginx")
        store = os.path.join(tmp, "store")
        for d in (pki, prefix, store, os.path.join(prefix, "www", "json")):
            os.makedirs(d, exist_ok=True)
        make_pki(pki)
        for name, addr in (("bob", "bob@partner.example"), ("eve", "mallory@partner.example")):
            with open(f"{pki}/{name}.pem") as f:
                pem = f.read()
            with open(os.path.join(prefix, "www", "json", addr), "w") as f:
                json.dump({"certificates": [{"pem": pem}]}, f)
        port = free_port()
        nginx = subprocess.Popen(["bash", os.path.join(a.source, "tests/support/http/start_nginx.sh"), prefix,
                                  str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            if not wait_port(port, nginx, os.path.join(prefix, "nginx.pid")):
                print("lookup-cli: nginx did not start: " + nginx.stderr.read().decode(errors="replace"))
                return 1
            conf = os.path.join(tmp, "sealmilter.conf")
            with open(conf, "w") as f:
                f.write(f"[milter]\nspool_dir = {tmp}\n"
                        f"[lookup]\norder = store,cache,directory\ntrust_anchors = {pki}/ca.pem\n"
                        f"[store]\ndir = {store}\n"
                        f"[directory]\nurl = https://127.0.0.1:{port}/json/{{email}}\n"
                        f"ca_file = {prefix}/tls/ca.crt\n"
                        f"[cache]\npath = {tmp}/cache.db\n")
            base = [bin_, "lookup", "-c", conf]

            rc, out, err = run([bin_, "check-config", "-c", conf])
            check("check-config accepts the test config", rc == 0 and b"configuration OK" in out, err)
            bad = os.path.join(tmp, "bad.conf")
            with open(bad, "w") as f:
                f.write("[lookup]\norder = store,cache\n\n[cache]\nmin_ttl = soon\n")
            rc, _, err = run([bin_, "check-config", "-c", bad])
            check("check-config names file:line", rc == 1 and f"{bad}:5: bad value 'soon'" in err, err)
            rc, _, err = run([bin_, "check-config", "-c", conf, "--lookup.trust_anchors=/nonexistent.pem"])
            check("check-config rejects a missing trust anchor", rc == 1 and "/nonexistent.pem" in err, err)
            rc, _, err = run([bin_, "check-config", "-c", conf, f"--store.dir={tmp}/nope"])
            check("check-config rejects a missing store", rc == 1 and "store.dir" in err, err)

            rc, out, err = run(base + ["Bob@Partner.Example", "--json"])
            check("found exit 0", rc == 0, f"rc={rc} {err}")
            r = json.loads(out)[0] if rc == 0 else {}
            check("found via directory", r.get("source") == "directory", str(r.get("source")))
            check("selected bob's certificate", r.get("selected") == [fingerprint(f"{pki}/bob.pem")],
                  str(r.get("selected")))
            rc, out, _ = run(base + ["bob@partner.example", "--json"])
            check("second lookup from cache", rc == 0 and json.loads(out)[0]["source"] == "cache", out[:200])

            rc, out, _ = run(base + ["nobody@partner.example", "--json"])
            check("404 exit 1", rc == 1, f"rc={rc}")
            check("404 reason", "HTTP 404" in json.loads(out)[0]["reason"], out[:300])

            rc, out, _ = run(base + ["mallory@partner.example", "--json"])
            steps = json.loads(out)[0]["steps"] if out else []
            cands = [c for s in steps for c in s["candidates"]]
            check("wrong-address certificate rejected", rc == 1 and cands and not cands[0]["usable"]
                  and "not in certificate" in cands[0]["reason"], out[:400])

            rc, out, _ = run(base + ["bob@partner.example", "nobody@partner.example"])
            check("mixed found/none exit 1", rc == 1, f"rc={rc}")
            check("text output names the source", b"found via cache" in out, out[:200])

            rc, _, err = run([bin_, "lookup", "-c", conf, "--directory.url=https://127.0.0.1:1/{email}",
                              "--lookup.order=directory", "x@partner.example"])
            check("directory down exit 2", rc == 2, f"rc={rc} {err}")

            with open(os.path.join(a.source, "tests/data/messages/01-plain-ascii.eml"), "rb") as f:
                msg = f.read()
            rc, enc, err = run([bin_, "encrypt", "-c", conf, "--to", "bob@partner.example"], msg)
            check("encrypt without --cert", rc == 0, f"rc={rc} {err}")
            dec = subprocess.run(["openssl", "cms", "-decrypt", "-inkey", f"{pki}/bob.key", "-recip",
                                  f"{pki}/bob.pem"], input=enc, capture_output=True)
            check("bob decrypts the looked-up envelope", dec.returncode == 0 and b"Content-Type" in dec.stdout,
                  dec.stderr.decode(errors="replace")[:200])
            rc, _, err = run([bin_, "encrypt", "-c", conf, "--to", "nobody@partner.example"], msg)
            check("encrypt to a recipient without certificate exits 65", rc == 65, f"rc={rc} {err}")
            rc, _, err = run([bin_, "encrypt", "-c", conf, "--lookup.order=directory",
                              "--directory.url=https://127.0.0.1:1/{email}", "--to", "bob@partner.example"], msg)
            check("encrypt with the directory down exits 75", rc == 75, f"rc={rc} {err}")

            subprocess.run(["cp", f"{pki}/carol.pem", store], check=True)
            rc, out, _ = run(base + ["carol@partner.example", "--json"])
            check("admin-pinned store answers", rc == 0 and json.loads(out)[0]["source"] == "store", out[:300])

            rc, out, _ = run([bin_, "cache", "list", "-c", conf, "--json"])
            entries = {e["email"]: e for e in json.loads(out)} if rc == 0 else {}
            check("cache lists the positive entry", entries.get("bob@partner.example", {}).get("kind") == "positive",
                  out[:300])
            check("cache lists the negative entry",
                  entries.get("nobody@partner.example", {}).get("kind") == "negative", out[:300])
            rc, out, _ = run([bin_, "cache", "purge", "-c", conf, "bob@partner.example"])
            check("purge one", rc == 0 and b"purged 1 entry" in out, out.decode())
            rc, out, _ = run([bin_, "cache", "purge", "-c", conf])
            check("purge all", rc == 0 and out.startswith(b"purged "), out.decode())
            rc, out, _ = run([bin_, "cache", "list", "-c", conf, "--json"])
            check("cache empty after purge", rc == 0 and json.loads(out) == [], out[:200])
        finally:
            nginx.terminate()
            try:
                nginx.wait(timeout=10)
            except subprocess.TimeoutExpired:
                nginx.kill()
                nginx.wait()
    print(f"lookup-cli: {PASSED} passed, {len(FAILED)} failed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
