#!/usr/bin/env python3
"""A key on a SoftHSM2 token signs in place (issue 12, docs/signing.md), through the key store.

The test makes its own SoftHSM2 configuration and token (a library, not a server), generates a
non-extractable RSA-2048 key pair on it with pkcs11-tool, issues a certificate for the public
key from a test CA and stores it beside the key, then: `sealmilter keys import-token` puts the
token key into a fresh key store, `sealmilter sign -c CONF` (signer chosen from the From
address) signs a message with it, and `openssl cms -verify` against the CA accepts the
signature; `sealmilter verify` reports the signer. `keys retire` then makes the key unusable:
`sealmilter sign` refuses (no usable signer) while crypto.sign_key names no other key.

Usage: test_sign_token_cli.py --sealmilter PATH
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "4711-sign"
FAILURES = []


def check(name, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else ": " + str(detail)[-600:]), flush=True)
    if not cond:
        FAILURES.append(name)
    return cond


def run(cmd, env=None, stdin=b"", ok=True):
    p = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=120)
    if ok and p.returncode != 0:
        raise RuntimeError("%s -> %d: %s" % (" ".join(cmd), p.returncode, p.stderr.decode(errors="replace")[-600:]))
    return p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sealmilter", required=True)
    a = ap.parse_args()
    for tool in ("softhsm2-util", "pkcs11-tool", "openssl"):
        if shutil.which(tool) is None:
            print("sign-token: missing tool %s (scripts/deps.sh installs it)" % tool)
            return 1
    d = tempfile.mkdtemp(prefix="sealmilter-sign-token-")
    try:
        p = lambda n: os.path.join(d, n)
        os.mkdir(p("tokens"))
        with open(p("softhsm2.conf"), "w") as f:
            f.write("directories.tokendir = %s\nobjectstore.backend = file\n" % p("tokens"))
        env = dict(os.environ, SOFTHSM2_CONF=p("softhsm2.conf"))
        run(["softhsm2-util", "--init-token", "--free", "--label", "signing", "--pin", PIN, "--so-pin", "so-sign"], env)
        tool = ["pkcs11-tool", "--module", MODULE, "--token-label", "signing"]
        run(tool + ["--login", "--pin", PIN, "--keypairgen", "--key-type", "rsa:2048", "--id", "01", "--label", "signer",
                    "--usage-sign"], env)
        run(tool + ["--read-object", "--type", "pubkey", "--id", "01", "-o", p("pub.der")], env)
        run(["openssl", "pkey", "-pubin", "-inform", "DER", "-in", p("pub.der"), "-out", p("pub.pem")])
        run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", p("ca.key"), "-out", p("ca.pem"),
             "-subj", "/CN=sealmilter token signing CA", "-days", "30",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        with open(p("ext.cnf"), "w") as f:
            f.write("[ee]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=emailProtection\nsubjectAltName=email:statements@bank.example\n")
        # A CSR needs the private key; the token key never leaves the token, so the certificate is
        # made from the CA's own request with the token's public key forced in.
        run(["openssl", "req", "-new", "-key", p("ca.key"), "-subj", "/CN=statements", "-out", p("tmp.csr")])
        run(["openssl", "x509", "-req", "-in", p("tmp.csr"), "-force_pubkey", p("pub.pem"), "-CA", p("ca.pem"),
             "-CAkey", p("ca.key"), "-set_serial", "77", "-days", "30", "-extfile", p("ext.cnf"), "-extensions", "ee",
             "-outform", "DER", "-out", p("cert.der")])
        run(tool + ["--login", "--pin", PIN, "--write-object", p("cert.der"), "--type", "cert", "--id", "01",
                    "--label", "signer"], env)
        with open(p("pin"), "w") as f:
            f.write(PIN + "\n")
        os.chmod(p("pin"), 0o600)
        with open(p("sealmilter.conf"), "w") as f:
            f.write("[keys]\ndir = %s\nmaster_key_file = %s\npkcs11_module = %s\npkcs11_pin_file = %s\n"
                    % (p("keys"), p("master.key"), MODULE, p("pin")))
        b = a.sealmilter
        run([b, "keys", "new-master-key", p("master.key")], env)
        r = run([b, "keys", "-c", p("sealmilter.conf"), "import-token", "pkcs11:token=signing;id=%01"], env, ok=False)
        check("import-token: the token key is in the store", r.returncode == 0, r.stderr)
        msg = (b"From: Statements <statements@bank.example>\nTo: bob@partner.example\nSubject: Statement\n"
               b"Content-Type: text/plain; charset=us-ascii\n\nYour statement is ready.\n")
        r = run([b, "sign", "-c", p("sealmilter.conf")], env, msg, ok=False)
        if check("sign: the token key signs (sender's own key)", r.returncode == 0, r.stderr):
            check("sign: it says it signs with the token key", b"signing as <statements@bank.example> (sender" in r.stderr,
                  r.stderr)
            v = subprocess.run(["openssl", "cms", "-verify", "-CAfile", p("ca.pem"), "-purpose", "smimesign"],
                               input=r.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
            check("openssl cms -verify accepts the token's signature", v.returncode == 0 and
                  b"Your statement is ready." in v.stdout, v.stderr)
            v = run([b, "verify", "--ca", p("ca.pem")], env, r.stdout, ok=False)
            check("sealmilter verify: valid, trusted, signer named", v.returncode == 0 and
                  b"signer: CN=statements <statements@bank.example>" in v.stdout and b"chain: trusted" in v.stdout,
                  v.stdout + v.stderr)
        # Retired: never chosen; with no crypto.sign_key there is nobody to sign.
        lst = run([b, "keys", "-c", p("sealmilter.conf"), "list"], env, ok=False)
        key_id = next((ln.split()[0] for ln in lst.stdout.decode().splitlines() if "statements@bank.example" in ln), "")
        r = run([b, "keys", "-c", p("sealmilter.conf"), "retire", key_id], env, ok=False)
        check("keys retire", r.returncode == 0, (key_id, r.stderr, lst.stdout))
        r = run([b, "sign", "-c", p("sealmilter.conf")], env, msg, ok=False)
        check("sign: a retired key is never chosen (exit 65, no active key)", r.returncode == 65 and
              b"no active key" in r.stderr, (r.returncode, r.stderr))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print("sign-token: %d failed" % len(FAILURES))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
