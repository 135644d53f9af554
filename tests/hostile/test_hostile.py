#!/usr/bin/env python3
"""Hostile input through the real gateway: each case of tests/hostile/README.md, sent over
SMTP into a private Postfix with `sealmilter run` (tests/e2e/gateway.py), must end in its
expected outcome (encrypted / refused with a code / tempfailed), and after every case a canary
message must still be encrypted and delivered: the daemon keeps serving.

usage: test_hostile.py --sealmilter BIN --source REPO_DIR [--only NAME]
Prints 'hostile: N passed, M failed' and exits 1 on any failure. Case timings and the
milter's peak RSS are printed as figures, never asserted (bounds come from test timeouts).
"""
import argparse
import os
import random
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
from gateway import Results, Gateway, inner_expected, must, wire_form  # noqa: E402

RESULTS = Results()
check = RESULTS.check
FAILED = RESULTS.failed
BOB = "bob@partner.example"
SENDER = "statements@bank.example"




def msgid():
    return f"<h.{uuid.uuid4().hex[:12]}@hostile.test>"


def head(mid, extra=b"", to=BOB):
    return (f"From: {SENDER}\r\nTo: {to}\r\nSubject: hostile\r\nMessage-ID: {mid}\r\nMIME-Version: 1.0\r\n"
            ).encode() + extra


# ---- message cases: (name, builder(mid) -> bytes, expected) -------------------------------------
# expected: "encrypted" (delivered once, encrypted, decrypts to what the milter was given) or
# ("refused", code, enhanced) for a refusal at end of data.

def nested(mid, levels=10000):
    opens = [b"--b%d\r\nContent-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n" % (i, i + 1) for i in range(levels - 1)]
    leaf = b"--b%d\r\nContent-Type: text/plain\r\n\r\ndeep inside\r\n" % (levels - 1)
    closes = [b"--b%d--\r\n" % i for i in reversed(range(levels))]
    return (head(mid, b"Content-Type: multipart/mixed; boundary=\"b0\"\r\n") + b"\r\n" + b"".join(opens) + leaf +
            b"".join(closes))


def many_parts(mid, n=100000):
    parts = b"".join(b"--p\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i for i in range(n))
    return head(mid, b"Content-Type: multipart/mixed; boundary=\"p\"\r\n") + b"\r\n" + parts + b"--p--\r\n"


def long_header(mid):
    return head(mid, b"X-Long: " + b"a" * (1024 * 1024) + b"\r\nContent-Type: text/plain\r\n") + b"\r\nbody\r\n"


def many_headers(mid):
    return head(mid, b"".join(b"X-H%d: value %d\r\n" % (i, i) for i in range(100000)) +
                b"Content-Type: text/plain\r\n") + b"\r\nbody\r\n"


def nul_bytes(mid):
    return head(mid, b"X-Nul: a\x00b\r\nContent-Type: text/plain\r\n") + b"\r\nbody \x00 with \x00\x00 NULs\r\n"


def bad_rfc2047(mid):
    return (f"From: {SENDER}\r\nTo: {BOB}\r\nSubject: =?UTF-8?B?{'/w==' * 3}?= =?UTF-8?Q?=C3=28=A0=A1?=\r\n"
            f"Message-ID: {mid}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nx\r\n").encode()


def boundary_collision(mid):
    return head(mid, b"Content-Type: multipart/mixed; boundary=\"same\"\r\n") + \
        b"\r\n--same\r\nContent-Type: text/plain\r\n\r\nthis line says --same and\r\n--same\r\n--same--\r\n" \
        b"--same--\r\ntrailing --same-- text\r\n"


def base64_garbage(mid):
    return head(mid, b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n") + \
        b"\r\nJVBERi0xLjQK!!!@@@###$$$ not base64 at all ===\r\n\xff\xfe\r\n"


def only_headers(mid):
    return head(mid, b"Content-Type: text/plain\r\n")  # no empty line, no body


def huge(mid, size=200 * 1024 * 1024):
    line = b"x" * 998 + b"\r\n"
    return head(mid, b"Content-Type: text/plain\r\n") + b"\r\n" + line * (size // len(line))


MESSAGE_CASES = [
    ("mime-nested-10000", nested, "encrypted"),
    ("parts-100000", many_parts, "encrypted"),
    ("header-line-1mb", long_header, "encrypted"),
    ("headers-100000", many_headers, "encrypted"),
    ("nul-bytes", nul_bytes, "encrypted"),
    ("invalid-utf8-rfc2047", bad_rfc2047, "encrypted"),
    ("boundary-collision", boundary_collision, "encrypted"),
    ("base64-garbage", base64_garbage, "encrypted"),
    ("only-headers", only_headers, "encrypted"),
    ("message-200mb", huge, ("refused", 552, "5.3.4")),
]

# ---- directory / certificate cases: recipient -> expected RCPT reply for a `require` recipient
DIRECTORY_CASES = [
    ("directory-xml", "xml@hostile.example", (451, "4.7.1")),
    ("directory-html", "html@hostile.example", (451, "4.7.1")),
    ("directory-2gb-content-length", "huge-length@hostile.example", (451, "4.7.1")),
    ("directory-gzip-bomb", "gzip@hostile.example", (451, "4.7.1")),
    ("directory-json-100000-deep", "deep@hostile.example", (451, "4.7.1")),
    ("directory-10mb-junk", "junk@hostile.example", (451, "4.7.1")),
    ("directory-never-answers", "hang@hostile.example", (451, "4.7.1")),
    ("certificate-64kb-san-list", "san64k@hostile.example", (250, "2.1.5")),
    ("certificate-rsa-16384", "rsa16k@hostile.example", (250, "2.1.5")),
    ("certificate-chain-50-intermediates", "chain50@hostile.example", (550, "5.7.1")),
]


def make_certificates(gw, www):
    """The certificate cases, issued under the gateway's trusted test CA."""
    pki, ca, ca_key = gw.pki_dir, gw.ca, os.path.join(gw.pki_dir, "ca.key")

    def issue(name, ext_text, issuer=(ca, ca_key), pubkey_args=()):
        """A certificate for a fresh EC key (or -force_pubkey) under `issuer`; returns (cert, key)."""
        key, csr, ext = (os.path.join(pki, f"{name}.{x}") for x in ("key", "csr", "ext"))
        must(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
              "-keyout", key, "-out", csr, "-subj", f"/CN={name}"])
        with open(ext, "w") as f:
            f.write(ext_text)
        out = os.path.join(pki, f"{name}.pem")
        must(["openssl", "x509", "-req", "-in", csr, "-CA", issuer[0], "-CAkey", issuer[1], "-set_serial",
              str(random.getrandbits(62)), "-days", "5", "-extfile", ext, "-out", out, *pubkey_args])
        return out, key

    def leaf_ext(addr, extra_san=""):
        return ("basicConstraints=CA:FALSE\nkeyUsage=critical,keyEncipherment\nextendedKeyUsage=emailProtection\n"
                f"subjectAltName=email:{addr}{extra_san}\n")

    def publish(name, pems):
        import json
        certs = []
        for p in pems:
            with open(p) as f:
                certs.append({"pem": f.read()})
        with open(os.path.join(www, name + ".json"), "w") as f:
            json.dump({"certificates": certs}, f)

    # 64 KB of SAN entries, the real address among them.
    san = "".join(f",email:other{i:05d}@list.hostile.example" for i in range(2400))
    bob_pub = ["-force_pubkey", gw.ids["bob"].cert.replace(".pem", ".pub")]
    publish("san64k", [issue("san64k", leaf_ext("san64k@hostile.example", san), pubkey_args=bob_pub)[0]])
    # RSA-16384: the committed public key, certified by the test CA (no private key needed to encrypt).
    rsa16k = ["-force_pubkey", os.path.join(HERE, "..", "data", "hostile", "rsa16384.pub.pem")]
    publish("rsa16k", [issue("rsa16k", leaf_ext("rsa16k@hostile.example"), pubkey_args=rsa16k)[0]])
    # A leaf under 50 intermediates (each served in the answer; none is a trust anchor).
    chain = []
    issuer = (ca, ca_key)
    for i in range(50):
        issuer = issue(f"int{i}", "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n", issuer)
        chain.append(issuer[0])
    leaf = issue("chain50", leaf_ext("chain50@hostile.example"), issuer)[0]
    publish("chain50", [leaf] + list(reversed(chain)))


def run_message_case(gw, name, build, expected):
    mid = msgid()
    msg = build(mid)
    t0 = time.time()
    try:
        r = gw.send(SENDER, [BOB], msg)
    except Exception as e:  # a dropped connection is not a defined outcome
        check(f"{name}: SMTP session completes", False, repr(e))
        return
    took = time.time() - t0
    if expected == "encrypted":
        ds = gw.wait_deliveries(mid, 1, timeout=120) if r["data"] and r["data"][0] == 250 else []
        ok = r["data"] is not None and r["data"][0] == 250 and len(ds) == 1 and ds[0].encrypted
        check(f"{name}: accepted and delivered once, encrypted", ok, (r, len(ds)))
        if ok:
            dec = subprocess.run(["openssl", "cms", "-decrypt", "-binary", "-in", ds[0].path, "-inkey", gw.ids["bob"].key,
                                  "-recip", gw.ids["bob"].cert], capture_output=True, timeout=300)
            check(f"{name}: decrypts with openssl cms", dec.returncode == 0, dec.stderr[-300:])
    else:
        _, code, xcode = expected
        got = r["data"] or r.get("mail") or (0, "")
        check(f"{name}: refused {code} {xcode}", got[0] == code and str(got[1]).startswith(xcode), got)
        check(f"{name}: nothing delivered (no partial message)", not gw.wait_deliveries(mid, 1, timeout=3))
    print(f"figure: {name}: {len(msg)} bytes, reply after {took:.2f} s")


def canary(gw, after):
    mid = msgid()
    r = gw.send(SENDER, [BOB], wire_form(head(mid, b"Content-Type: text/plain\r\n") + b"\r\ncanary\r\n"))
    ds = gw.wait_deliveries(mid, 1, timeout=60) if r["data"] and r["data"][0] == 250 else []
    check(f"after {after}: the daemon keeps serving (canary encrypted)",
          gw.milter is not None and gw.milter.poll() is None and r["data"] and r["data"][0] == 250 and len(ds) == 1
          and ds[0].encrypted, r)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sealmilter", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--only", default=None)
    a = ap.parse_args()
    fault = None
    gw = Gateway(a.sealmilter, a.source, {"bob": ("bob@partner.example", "rsa")}, ["bob"],
                 "@hostile.example require\n* opportunistic\n",
                 postfix_extra="message_size_limit = 314572800\nheader_size_limit = 2097152\n")
    try:
        www = os.path.join(gw.tmp, "hostile-www")
        os.makedirs(www)
        # bob's public key for -force_pubkey (any key will do for the SAN case)
        must(["openssl", "x509", "-in", gw.ids["bob"].cert, "-noout", "-pubkey", "-out",
              gw.ids["bob"].cert.replace(".pem", ".pub")])
        make_certificates(gw, www)
        import json
        with open(os.path.join(www, "bob.json"), "w") as f:  # the canary's recipient
            json.dump({"certificates": [{"pem": gw.ids["bob"].pem()}]}, f)
        fault = subprocess.Popen([sys.executable, os.path.join(a.source, "tests/support/http/fault_server.py"),
                                  "--lifetime", "1200", "--www", www], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        port = int(fault.stdout.readline())
        gw.extra_conf = (f"[directory]\nurl = http://127.0.0.1:{port}/{{local}}/x\nca_file =\ntimeout_ms = 3000\n"
                         "[cache]\npath =\n")
        gw.write_conf()
        gw.start()
        for name, build, expected in MESSAGE_CASES:
            if a.only and a.only != name:
                continue
            run_message_case(gw, name, build, expected)
            canary(gw, name)
        for name, rcpt, (code, xcode) in DIRECTORY_CASES:
            if a.only and a.only != name:
                continue
            mid = msgid()
            t0 = time.time()
            r = gw.send(SENDER, [rcpt, BOB], wire_form(head(mid, b"Content-Type: text/plain\r\n", to=rcpt) + b"\r\nx\r\n"))
            got = r["rcpt"].get(rcpt, (0, ""))
            check(f"{name}: RCPT {code} {xcode}", got[0] == code and got[1].startswith(xcode), got)
            print(f"figure: {name}: RCPT reply after {time.time() - t0:.2f} s")
            if code == 250:
                ds = [d for d in gw.wait_deliveries(mid, 2, timeout=60) if rcpt in d.rcpts]
                check(f"{name}: delivered encrypted", len(ds) == 1 and ds[0].encrypted, len(ds))
            canary(gw, name)
        rss = gw.milter_rss_peak_kib() if gw.milter else None
        print(f"figure: milter peak RSS over the catalogue: {rss} KiB")
        # Generous: ~46 MiB in a release build, ~400 MiB under AddressSanitizer (its quarantine).
        bound = 1024 if os.environ.get("ASAN_OPTIONS") else 256
        check(f"milter peak RSS under {bound} MiB over the whole catalogue", rss is not None and rss < bound * 1024, rss)
        bad = [d.path for d in gw.deliveries(new_only=False) if any(r.endswith("@hostile.example") for r in d.rcpts)
               and not d.encrypted]
        check("no plaintext reached a require recipient", not bad, bad[:3])
    except Exception as e:
        import traceback
        traceback.print_exc()
        FAILED.append(f"harness: {e}")
    finally:
        if FAILED:
            print("--- milter log (tail) ---\n" + gw.log()[-3000:])
        for f in gw.stop():
            FAILED.append("sealmilter: " + f)
        if fault is not None:
            fault.terminate()
            fault.wait(timeout=10)
    return RESULTS.summary("hostile")


if __name__ == "__main__":
    sys.exit(main())
