#!/usr/bin/env python3
"""`sealmilter ca init|import|show` and `sealmilter issued new|list|revoke|resend`, end to end
through the real binary (issue 13, keys part): the root `ca init` prints and stores (a CA
certificate checked by `openssl x509`), its key active in the store; a second `ca init` refused
(73); a sub-CA from a PKCS#12 of an openssl-made PKI (`ca import`, its chain in ca.pem; a non-CA
and a wrong password refused, 65); `ca init --token` with the CA key on a SoftHSM2 token made in
the test's temp dir (skipped without softhsm2); a certificate issued for an address (`issued new`) verifies
with `openssl verify -purpose smimeencrypt`, its key is escrowed in the store and opens mail
encrypted to it by `openssl cms` (`sealmilter decrypt` through the store); quoted and non-ASCII
addresses refused with the reason; `issued list [--json]`; `resend` unlocks a locked link and
makes the notice due; `revoke` ends the record and retires the key; exit codes (1 not found,
64 usage, 78 configuration). Standard library only; no network, no server.

usage: test_issue_cli.py --sealmilter BIN
Prints 'issue-cli: N passed, M failed' and exits 1 on any failure.
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

from key_store_config import write_key_store_config

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
    p = subprocess.run(cmd, input=stdin, capture_output=True, timeout=120)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def must(cmd):
    rc, out, err = run(cmd)
    if rc != 0:
        raise RuntimeError(f"{' '.join(cmd)} -> {rc}: {out} {err}")
    return out


def new_store(bin_, tmp, name, issue_section=""):
    master = os.path.join(tmp, f"{name}.key")
    must([bin_, "keys", "new-master-key", master])
    return write_key_store_config(tmp, f"{name}.conf", master, os.path.join(tmp, name), "[issue]\n" + issue_section)


def record_path(keys_dir, address):
    return os.path.join(keys_dir, "issued", hashlib.sha256(address.lower().encode()).hexdigest())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sealmilter", required=True)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="sealmilter-issue-cli-")
    try:
        root_ca(a.sealmilter, tmp)
        sub_ca(a.sealmilter, tmp)
        token_ca(a.sealmilter, tmp)
        usage(a.sealmilter, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"issue-cli: {PASSED} passed, {len(FAILED)} failed")
    for f in FAILED:
        print("  " + f)
    return 1 if FAILED else 0


def root_ca(bin_, tmp):
    conf = new_store(bin_, tmp, "keys", "org_name = Example Bank\nca_subject = CN=Example Bank Mail CA,O=Example Bank\n")
    keys_dir = os.path.join(tmp, "keys")
    rc, out, err = run([bin_, "ca", "show", "-c", conf])
    check("ca show without a CA exits 1", rc == 1 and "ca init" in err, f"{rc} {err}")
    rc, out, err = run([bin_, "ca", "init", "-c", conf])
    check("ca init", rc == 0 and out.startswith("-----BEGIN CERTIFICATE-----"), f"{rc} {err}")
    ca_pem = os.path.join(tmp, "root.pem")
    with open(ca_pem, "w") as f:
        f.write(out)
    text = must(["openssl", "x509", "-in", ca_pem, "-noout", "-text"])
    check("root subject from issue.ca_subject", "Subject: O = Example Bank, CN = Example Bank Mail CA" in text, text[:400])
    check("root is a CA (critical)", "X509v3 Basic Constraints: critical\n                CA:TRUE" in text, text)
    check("root may sign certificates", "Certificate Sign, CRL Sign" in text, text)
    check("root is RSA-3072", "Public-Key: (3072 bit)" in text, text[:600])
    with open(os.path.join(keys_dir, "ca.pem")) as f:
        check("ca.pem holds the printed root", f.read() == out)
    keys = json.loads(must([bin_, "keys", "list", "--json", "-c", conf]))
    check("the CA key is in the store, active", len(keys) == 1 and keys[0]["state"] == "active", keys)
    rc, out2, err = run([bin_, "ca", "init", "-c", conf])
    check("a second ca init is refused (73)", rc == 73 and "exists already" in err, f"{rc} {err}")
    rc, out2, err = run([bin_, "ca", "show", "-c", conf])
    check("ca show", rc == 0 and "Example Bank Mail CA" in out2 and "active" in out2, f"{rc} {out2} {err}")

    # A certificate for a new address.
    rc, cert, err = run([bin_, "issued", "new", "-c", conf, "New.Customer@Example.com"])
    check("issued new", rc == 0 and cert.startswith("-----BEGIN CERTIFICATE-----"), f"{rc} {err}")
    leaf = os.path.join(tmp, "leaf.pem")
    with open(leaf, "w") as f:
        f.write(cert)
    rc, out, err = run(["openssl", "verify", "-purpose", "smimeencrypt", "-CAfile", ca_pem, leaf])
    check("openssl verify -purpose smimeencrypt", rc == 0 and ": OK" in out, f"{rc} {out} {err}")
    text = must(["openssl", "x509", "-in", leaf, "-noout", "-text"])
    check("issued: SAN rfc822Name", "email:new.customer@example.com" in text, text)
    check("issued: keyUsage critical", "X509v3 Key Usage: critical\n                Digital Signature, Key Encipherment" in text, text)
    check("issued: EKU emailProtection", "E-mail Protection" in text, text)
    check("issued: CN and O", "Subject: O = Example Bank, CN = new.customer@example.com" in text, text[:500])
    check("issued: AKI and SKI", "Authority Key Identifier" in text and "Subject Key Identifier" in text, text)
    rc, again, err = run([bin_, "issued", "new", "-c", conf, "new.customer@example.com"])
    check("issued new twice gives the same certificate", rc == 0 and again == cert, f"{rc} {err}")
    keys = json.loads(must([bin_, "keys", "list", "--json", "-c", conf]))
    escrowed = [k for k in keys if "new.customer@example.com" in k["addresses"]]
    check("the key is escrowed in the store", len(escrowed) == 1 and escrowed[0]["recorded_state"] == "escrowed", keys)
    for bad, says in (('"quoted name"@example.com', "quoted local part"), ("j\u00f6rg@example.com", "non-ASCII")):
        rc, out, err = run([bin_, "issued", "new", "-c", conf, bad])
        check(f"issued new refuses {bad!r}", rc == 65 and says in err, f"{rc} {err}")

    # Mail encrypted to the issued certificate opens with the escrowed key.
    msg = os.path.join(tmp, "msg.eml")
    with open(msg, "w") as f:
        f.write("Content-Type: text/plain\r\n\r\nYour statement: 1,234.56 EUR\r\n")
    enc = subprocess.run(["openssl", "cms", "-encrypt", "-aes-256-cbc", "-in", msg, leaf], capture_output=True, timeout=60)
    headers = b"From: bank@example.net\r\nTo: new.customer@example.com\r\nSubject: statement\r\nMIME-Version: 1.0\r\n"
    rc, out, err = run([bin_, "decrypt", "-c", conf], headers + enc.stdout)
    check("the escrowed key opens mail to the issued certificate", rc == 0 and "1,234.56 EUR" in out, f"{rc} {err}")

    # list, resend, revoke.
    rows = json.loads(must([bin_, "issued", "list", "--json", "-c", conf]))
    check("issued list --json", len(rows) == 1 and rows[0]["address"] == "new.customer@example.com" and
          rows[0]["state"] == "escrowed" and rows[0]["notice_due"] and rows[0]["pickups"] == 0 and
          rows[0]["sha256"] == escrowed[0]["sha256"], rows)
    rc, out, err = run([bin_, "issued", "list", "-c", conf])
    check("issued list", rc == 0 and "new.customer@example.com  escrowed" in out and "1 issued" in out, f"{rc} {out}")

    path = record_path(keys_dir, "new.customer@example.com")
    with open(path) as f:
        rec = f.read()
    # What the daemon writes after the notice and five wrong codes.
    rec = rec.replace("notice_due 1", "notice_due 0").replace("notice_sent_at 0", "notice_sent_at 1700000000")
    rec = rec.replace("locked 0", "locked 1").replace("wrong_codes 0", "wrong_codes 5")
    with open(path, "w") as f:
        f.write(rec)
    rc, out, err = run([bin_, "issued", "list", "-c", conf])
    check("issued list shows the lock", "LOCKED" in out, out)
    rc, out, err = run([bin_, "issued", "resend", "-c", conf, "NEW.customer@example.com"])
    check("issued resend", rc == 0 and "due" in out, f"{rc} {err}")
    row = json.loads(must([bin_, "issued", "list", "--json", "-c", conf]))[0]
    check("resend: notice due, unlocked", row["notice_due"] and not row["locked"] and row["notice_sent"] == "-", row)
    rc, out, err = run([bin_, "issued", "resend", "-c", conf, "nobody@example.com"])
    check("resend of an unknown address exits 1", rc == 1, f"{rc} {err}")

    rc, out, err = run([bin_, "issued", "revoke", "-c", conf, "new.customer@example.com"])
    check("issued revoke", rc == 0 and "revoked" in out, f"{rc} {err}")
    row = json.loads(must([bin_, "issued", "list", "--json", "-c", conf]))[0]
    check("revoke: the record is revoked", row["state"] == "revoked" and not row["notice_due"], row)
    keys = json.loads(must([bin_, "keys", "list", "--json", "-c", conf]))
    key = [k for k in keys if k["sha256"] == escrowed[0]["sha256"]]
    check("revoke: the key stays, retired", len(key) == 1 and key[0]["recorded_state"] == "retired", keys)
    rc, out, err = run([bin_, "decrypt", "-c", conf], headers + enc.stdout)
    check("revoked: old mail still opens", rc == 0 and "1,234.56 EUR" in out, f"{rc} {err}")
    rc, out, err = run([bin_, "issued", "resend", "-c", conf, "new.customer@example.com"])
    check("resend of a revoked certificate exits 1", rc == 1 and "nothing to pick up" in err, f"{rc} {err}")
    rc, out, err = run([bin_, "issued", "revoke", "-c", conf, "nobody@example.com"])
    check("revoke of an unknown address exits 1", rc == 1, f"{rc} {err}")

    # A damaged record is reported, never a crash.
    with open(path, "w") as f:
        f.write("sealmilter-issued 1\naddress half\n")
    rc, out, err = run([bin_, "issued", "list", "-c", conf])
    check("a damaged record is named, not a crash", rc == 0 and "damaged" in err and "0 issued" in out, f"{rc} {out} {err}")


def sub_ca(bin_, tmp):
    """A sub-CA of the organisation's PKI, made with openssl, imported from a PKCS#12."""
    d = os.path.join(tmp, "pki")
    os.makedirs(d)
    j = lambda n: os.path.join(d, n)
    must(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", j("root.key"), "-out", j("root.pem"),
          "-subj", "/O=Org/CN=Org Root", "-days", "30", "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    must(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", j("sub.key"), "-out", j("sub.csr"),
          "-subj", "/O=Org/CN=Org Mail Sub-CA"])
    with open(j("sub.ext"), "w") as f:
        f.write("basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n"
                "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    must(["openssl", "x509", "-req", "-in", j("sub.csr"), "-CA", j("root.pem"), "-CAkey", j("root.key"), "-set_serial", "7",
          "-days", "30", "-extfile", j("sub.ext"), "-out", j("sub.pem")])
    with open(j("pw"), "w") as f:
        f.write("sub-secret\n")
    must(["openssl", "pkcs12", "-export", "-inkey", j("sub.key"), "-in", j("sub.pem"), "-certfile", j("root.pem"),
          "-passout", "pass:sub-secret", "-out", j("sub.p12")])
    # Not a CA: a leaf signed by the root.
    must(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", j("leaf.key"), "-out", j("leaf.csr"),
          "-subj", "/CN=leaf"])
    must(["openssl", "x509", "-req", "-in", j("leaf.csr"), "-CA", j("root.pem"), "-CAkey", j("root.key"), "-set_serial", "8",
          "-days", "30", "-out", j("leaf.pem")])
    with open(j("leaf-bundle.pem"), "w") as f:
        f.write(open(j("leaf.key")).read() + open(j("leaf.pem")).read())

    conf = new_store(bin_, tmp, "subkeys", "org_name = Org\n")
    rc, out, err = run([bin_, "ca", "import", "-c", conf, j("leaf-bundle.pem")])
    check("ca import refuses a non-CA (65)", rc == 65 and "not a CA" in err, f"{rc} {err}")
    with open(j("bad-pw"), "w") as f:
        f.write("wrong\n")
    rc, out, err = run([bin_, "ca", "import", "-c", conf, j("sub.p12"), "--password-file", j("bad-pw")])
    check("ca import with a wrong password (65)", rc == 65, f"{rc} {err}")
    rc, out, err = run([bin_, "ca", "import", "-c", conf, j("sub.p12"), "--password-file", j("pw")])
    check("ca import of a sub-CA", rc == 0 and "Org Mail Sub-CA" in out, f"{rc} {err}")
    rc, out, err = run([bin_, "ca", "show", "-c", conf])
    check("ca show names the chain", rc == 0 and "chain     CN=Org Root,O=Org" in out, f"{rc} {out} {err}")
    rc, cert, err = run([bin_, "issued", "new", "-c", conf, "sub@example.com"])
    leaf = os.path.join(d, "issued.pem")
    with open(leaf, "w") as f:
        f.write(cert)
    rc, out, err = run(["openssl", "verify", "-purpose", "smimeencrypt", "-CAfile", j("root.pem"), "-untrusted",
                        os.path.join(tmp, "subkeys", "ca.pem"), leaf])
    check("a sub-CA's certificate verifies to the organisation's root", rc == 0 and ": OK" in out, f"{rc} {out} {err}")

    # The same sub-CA as one PEM: key, certificate, then the chain.
    with open(j("sub-bundle.pem"), "w") as f:
        f.write(open(j("sub.key")).read() + open(j("sub.pem")).read() + open(j("root.pem")).read())
    conf = new_store(bin_, tmp, "pemkeys", "org_name = Org\n")
    rc, out, err = run([bin_, "ca", "import", "-c", conf, j("sub-bundle.pem")])
    check("ca import of a PEM bundle", rc == 0 and "Org Mail Sub-CA" in out, f"{rc} {err}")
    rc, out, err = run([bin_, "ca", "show", "-c", conf])
    check("a PEM bundle's chain is kept", rc == 0 and "chain     CN=Org Root,O=Org" in out, f"{rc} {out} {err}")


SOFTHSM = "/usr/lib/softhsm/libsofthsm2.so"


def token_ca(bin_, tmp):
    """`ca init --token URI`: the CA key made on a SoftHSM2 token (in this test's temp dir),
    the root self-signed by the token, recipient certificates signed on it."""
    if not os.path.exists(SOFTHSM) or shutil.which("pkcs11-tool") is None or shutil.which("softhsm2-util") is None:
        print("token CA: skipped (no softhsm2 / pkcs11-tool)")
        return
    env = dict(os.environ)
    d = os.path.join(tmp, "token")
    os.makedirs(os.path.join(d, "tokens"))
    with open(os.path.join(d, "softhsm2.conf"), "w") as f:
        f.write(f"directories.tokendir = {d}/tokens\nobjectstore.backend = file\nlog.level = ERROR\n")
    env["SOFTHSM2_CONF"] = os.path.join(d, "softhsm2.conf")
    pin = "4711-ca"
    for cmd in (["softhsm2-util", "--init-token", "--free", "--label", "ca", "--pin", pin, "--so-pin", "so-ca"],
                ["pkcs11-tool", "--module", SOFTHSM, "--token-label", "ca", "--login", "--pin", pin, "--keypairgen",
                 "--key-type", "rsa:3072", "--id", "0a", "--label", "mailca", "--usage-sign"]):
        p = subprocess.run(cmd, capture_output=True, timeout=120, env=env)
        if p.returncode != 0:
            check("token set-up", False, f"{cmd}: {p.stderr.decode(errors='replace')}")
            return
    pin_file = os.path.join(d, "pin")
    with open(pin_file, "w") as f:
        f.write(pin + "\n")
    os.chmod(pin_file, 0o600)
    master = os.path.join(d, "master.key")
    must([bin_, "keys", "new-master-key", master])
    conf = write_key_store_config(d, "t.conf", master, os.path.join(d, "keys"),
                                  f"pkcs11_module = {SOFTHSM}\npkcs11_pin_file = {pin_file}\n[issue]\norg_name = Token Bank\n")
    tok = lambda args: subprocess.run([bin_, *args], capture_output=True, timeout=120, env=env)
    p = tok(["ca", "init", "-c", conf, "--token", "pkcs11:token=ca;object=mailca"])
    out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    check("ca init --token", p.returncode == 0 and out.startswith("-----BEGIN CERTIFICATE-----"), f"{p.returncode} {err}")
    root = os.path.join(d, "root.pem")
    with open(root, "w") as f:
        f.write(out)
    rc, text, err = run(["openssl", "x509", "-in", root, "-noout", "-text"])
    check("the token root is self-signed, RSA-3072, named by issue.org_name",
          "Public-Key: (3072 bit)" in text and "Issuer: O = Token Bank, CN = Token Bank Mail Encryption CA" in text, text[:700])
    rc, out2, err = run(["openssl", "verify", "-CAfile", root, root])
    check("the token root's self-signature verifies", rc == 0, f"{rc} {out2} {err}")
    p = tok(["keys", "list", "--json", "-c", conf])
    keys = json.loads(p.stdout or b"[]")
    check("the CA key stays on the token", len(keys) == 1 and keys[0]["source"] == "token" and
          keys[0]["location"].startswith("pkcs11:"), keys)
    p = tok(["issued", "new", "-c", conf, "token.customer@example.com"])
    leaf = os.path.join(d, "leaf.pem")
    with open(leaf, "wb") as f:
        f.write(p.stdout)
    check("issued new signs on the token", p.returncode == 0, p.stderr.decode(errors="replace"))
    rc, out2, err = run(["openssl", "verify", "-purpose", "smimeencrypt", "-CAfile", root, leaf])
    check("a token-signed certificate verifies", rc == 0 and ": OK" in out2, f"{rc} {out2} {err}")
    conf2 = write_key_store_config(d, "t2.conf", master, os.path.join(d, "keys2"),
                                   f"pkcs11_module = {SOFTHSM}\npkcs11_pin_file = {pin_file}\n")
    p = tok(["ca", "init", "-c", conf2, "--token", "pkcs11:token=ca;object=none"])
    err = p.stderr.decode(errors="replace")
    check("ca init --token with no such key is refused (65)", p.returncode == 65 and "no private key" in err,
          f"{p.returncode} {err}")
    check("nothing written when refused", not os.path.exists(os.path.join(d, "keys2", "ca.pem")))


def usage(bin_, tmp):
    conf = os.path.join(tmp, "keys.conf")
    for args, code in ((["issued"], 64), (["issued", "revoke"], 64), (["issued", "list", "extra"], 64),
                       (["issued", "frobnicate"], 64), (["ca"], 64), (["ca", "import"], 64), (["ca", "show", "x"], 64)):
        rc, out, err = run([bin_, *args, "-c", conf])
        check(f"{' '.join(args)} exits {code}", rc == code, f"{rc} {err}")
    no_master = write_key_store_config(tmp, "nomaster.conf", "", os.path.join(tmp, "empty-keys"))
    rc, out, err = run([bin_, "ca", "init", "-c", no_master])
    check("ca init without a master key exits 78", rc == 78 and "master_key_file" in err, f"{rc} {err}")
    rc, out, err = run([bin_, "issued", "new", "-c", no_master, "a@example.com"])
    check("issued new without a key store exits 78", rc == 78, f"{rc} {err}")
    conf2 = new_store(bin_, tmp, "noca")
    rc, out, err = run([bin_, "issued", "new", "-c", conf2, "a@example.com"])
    check("issued new without a CA exits 78", rc == 78 and "ca init" in err, f"{rc} {err}")
    rc, out, err = run([bin_, "ca", "init", "-c", conf2, "--issue.ca_subject=CN=X,BOGUS=y"])
    check("a bad issue.ca_subject exits 78", rc == 78 and "issue.ca_subject" in err, f"{rc} {err}")


if __name__ == "__main__":
    sys.exit(main())
