#!/usr/bin/env python3
"""Token keys through the key store, end to end through the real binary, against a SoftHSM2
token this test makes in its own temp directory (SOFTHSM2_CONF points there; no server):
non-extractable RSA-2048 and EC P-256 key pairs generated on the token by pkcs11-tool, their
certificates issued by a throw-away CA (openssl) and stored beside them on the token. Then:
`keys import-token URI`, `keys list --json` (source token, not exportable, the token URI as
location), `sealmilter decrypt -c` of messages encrypted to each token key (RSA and ECDH), the
key never leaving the token (the token refuses to hand out the private key, the store's files
hold only the URI, `keys export` refuses), and the master key on the token:
`keys new-master-key FILE --token URI`, a store under it used by import-token / list / decrypt,
and exit 78 when the token cannot unwrap it (no PIN). Standard library only.

usage: test_keys_token_cli.py --sealmilter BIN
Prints 'keys-token-cli: N passed, M failed' and exits 1 on any failure (77 = skipped: no
softhsm2 / pkcs11-tool on this machine).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

from key_store_config import write_key_store_config

SOFTHSM = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "4711-cli"
PASSED = 0
FAILED = []


def check(name, cond, detail=""):
    global PASSED
    if cond:
        PASSED += 1
    else:
        FAILED.append(f"{name}: {detail}")
        print(f"FAIL {name}: {detail}", flush=True)


def run(cmd, stdin=None, env=None):
    p = subprocess.run(cmd, input=stdin, capture_output=True, timeout=120, env=env)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def must(cmd, env):
    rc, out, err = run(cmd, env=env)
    if rc != 0:
        raise RuntimeError(f"{' '.join(cmd)} -> {rc}: {out} {err}")
    return out


def p11(env, *args):
    return must(["pkcs11-tool", "--module", SOFTHSM, "--token-label", "mail", *args], env)


def make_token_key(tmp, env, kid, label, keytype, usage, email, ku, ca_key, ca_cert, serial):
    """A key pair generated on the token (never extractable), its certificate stored beside it."""
    p11(env, "--login", "--pin", PIN, "--keypairgen", "--key-type", keytype, "--id", kid, "--label", label, *usage)
    pub_der = os.path.join(tmp, f"{label}.pub.der")
    p11(env, "--read-object", "--type", "pubkey", "--id", kid, "-o", pub_der)
    pub_pem = os.path.join(tmp, f"{label}.pub.pem")
    must(["openssl", "pkey", "-pubin", "-inform", "DER", "-in", pub_der, "-out", pub_pem], env)
    # A request signed by a throw-away key; the certificate carries the token key (-force_pubkey).
    dummy = os.path.join(tmp, f"{label}.dummy.key")
    csr = os.path.join(tmp, f"{label}.csr")
    must(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", dummy,
          "-subj", f"/CN={email}", "-out", csr], env)
    ext = os.path.join(tmp, f"{label}.ext")
    with open(ext, "w") as f:
        f.write(f"subjectAltName=email:{email}\nkeyUsage=critical,{ku}\nsubjectKeyIdentifier=hash\n")
    cert = os.path.join(tmp, f"{label}.crt.pem")
    must(["openssl", "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-force_pubkey", pub_pem,
          "-extfile", ext, "-days", "30", "-set_serial", str(serial), "-out", cert], env)
    cert_der = os.path.join(tmp, f"{label}.crt.der")
    must(["openssl", "x509", "-in", cert, "-outform", "DER", "-out", cert_der], env)
    p11(env, "--login", "--pin", PIN, "--write-object", cert_der, "--type", "cert", "--id", kid, "--label", label)
    return cert


def encrypted_mail(tmp, env, cert, text, name):
    plain = os.path.join(tmp, f"{name}.txt")
    with open(plain, "w") as f:
        f.write(f"Content-Type: text/plain\r\n\r\n{text}\r\n")
    out = os.path.join(tmp, f"{name}.eml")
    must(["openssl", "cms", "-encrypt", "-aes256", "-in", plain, "-out", out, "-from", "partner@partner.example",
          "-to", "staff@bank.example", "-subject", "token test", cert], env)
    with open(out, "rb") as f:
        return f.read()


def write_config(tmp, name, master, keys_dir, pin_file):
    return write_key_store_config(tmp, name, master, keys_dir,
                                  f"pkcs11_module = {SOFTHSM}\npkcs11_pin_file = {pin_file}\n")


def files_of(directory):
    data = b""
    for root, _, names in os.walk(directory):
        for n in names:
            with open(os.path.join(root, n), "rb") as f:
                data += f.read()
    return data


def scenario(bin_, tmp):
    env = dict(os.environ)
    os.makedirs(os.path.join(tmp, "tokens"))
    with open(os.path.join(tmp, "softhsm2.conf"), "w") as f:
        f.write(f"directories.tokendir = {tmp}/tokens\nobjectstore.backend = file\nlog.level = ERROR\n")
    env["SOFTHSM2_CONF"] = os.path.join(tmp, "softhsm2.conf")
    must(["softhsm2-util", "--init-token", "--free", "--label", "mail", "--pin", PIN, "--so-pin", "so-cli"], env)
    ca_key = os.path.join(tmp, "ca.key")
    ca_cert = os.path.join(tmp, "ca.pem")
    must(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", ca_key,
          "-out", ca_cert, "-subj", "/CN=Token CLI Test CA", "-days", "30"], env)
    rsa_cert = make_token_key(tmp, env, "01", "rsa1", "rsa:2048", ["--usage-decrypt", "--usage-sign"], "rsa@bank.example",
                              "keyEncipherment,digitalSignature", ca_key, ca_cert, 11)
    ec_cert = make_token_key(tmp, env, "02", "ec1", "EC:prime256v1", ["--usage-derive", "--usage-sign"], "ec@bank.example",
                             "keyAgreement,digitalSignature", ca_key, ca_cert, 12)
    pin_file = os.path.join(tmp, "pin")
    with open(pin_file, "w") as f:
        f.write(PIN + "\n")
    os.chmod(pin_file, 0o600)

    # --- token keys in a store under a file master key ------------------------------------
    master = os.path.join(tmp, "master.key")
    must([bin_, "keys", "new-master-key", master], env)
    keys_dir = os.path.join(tmp, "keys")
    conf = write_config(tmp, "s.conf", master, keys_dir, pin_file)
    keys = [bin_, "keys", "-c", conf]
    rc, out, err = run(keys + ["import-token", "pkcs11:token=mail"], env=env)
    check("import-token", rc == 0 and "rsa@bank.example" in out and "ec@bank.example" in out, f"{rc} {out} {err}")
    rc, out, err = run(keys + ["import-token", "pkcs11:token=mail;object=rsa1"], env=env)
    check("import-token twice keeps one", rc == 0 and "already in the store" in out, f"{rc} {out} {err}")
    rc, out, err = run(keys + ["import-token", "pkcs11:token=mail;object=rsa1;pin-value=" + PIN], env=env)
    # pin-value in the URI logs in for this command only; the store keeps the key's own URI.
    check("import-token with pin-value", rc == 0 and "already in the store" in out and PIN not in out + err, f"{rc} {out} {err}")
    check("the PIN is never stored", PIN.encode() not in files_of(keys_dir), "")
    rc, out, err = run(keys + ["list", "--json"], env=env)
    listing = json.loads(out) if rc == 0 else []
    check("list --json has both token keys", rc == 0 and len(listing) == 2, f"{rc} {out} {err}")
    for k in listing:
        check(f"{k['addresses']} source token", k.get("source") == "token", json.dumps(k))
        check(f"{k['addresses']} not exportable", k.get("exportable") is False, json.dumps(k))
        check(f"{k['addresses']} location is its URI", k.get("location", "").startswith("pkcs11:")
              and "token=mail" in k.get("location", "") and "pin" not in k.get("location", ""), json.dumps(k))
        check(f"{k['addresses']} active", k.get("state") == "active", json.dumps(k))
    rc, out, err = run(keys + ["list"], env=env)
    check("list (text) names the token", rc == 0 and out.count("token pkcs11:") == 2, out)

    for cert, name in ((rsa_cert, "rsa"), (ec_cert, "ec")):
        mail = encrypted_mail(tmp, env, cert, f"opened on the token ({name})", name)
        rc, out, err = run([bin_, "decrypt", "-c", conf], mail, env=env)
        check(f"decrypt -c with the {name} token key", rc == 0 and f"opened on the token ({name})" in out,
              f"{rc} {err} {out[:300]}")

    # The key never leaves the token: the token refuses to hand it out, the store holds only
    # the URI, and export refuses.
    for kid in ("01", "02"):
        rc, out, err = run(["pkcs11-tool", "--module", SOFTHSM, "--token-label", "mail", "--login", "--pin", PIN,
                            "--read-object", "--type", "privkey", "--id", kid, "-o", os.path.join(tmp, f"stolen{kid}")], env=env)
        check(f"the token refuses to export private key {kid}", rc != 0 or not os.path.exists(os.path.join(tmp, f"stolen{kid}"))
              or os.path.getsize(os.path.join(tmp, f"stolen{kid}")) == 0, f"{rc} {out} {err}")
    stored = files_of(keys_dir)
    check("store files hold the URIs", stored.count(b"uri pkcs11:") == 2, "")
    check("no private key marker in the store", b"PRIVATE KEY" not in stored and b"wrapped " not in stored, "")
    rc, out, err = run(keys + ["export", "rsa@bank.example", "--out", os.path.join(tmp, "rsa.p12"), "--pass-file", pin_file],
                       env=env)
    check("export refuses a token key", rc == 65 and "stays on its token" in err and not os.path.exists(os.path.join(tmp, "rsa.p12")),
          f"{rc} {out} {err}")

    # --- the master key on the token ------------------------------------------------------
    token_master = os.path.join(tmp, "master.token")
    rc, out, err = run(keys + ["new-master-key", token_master, "--token", "pkcs11:token=mail;object=rsa1"], env=env)
    check("new-master-key --token", rc == 0 and os.path.exists(token_master)
          and oct(os.stat(token_master).st_mode & 0o777) == "0o600", f"{rc} {out} {err}")
    text = open(token_master).read() if os.path.exists(token_master) else ""
    check("token master key file form", text.startswith("sealmilter-master-key token\nuri pkcs11:token=mail;object=rsa1\nwrapped "),
          text)
    rc, out, err = run(keys + ["new-master-key", token_master, "--token", "pkcs11:token=mail;object=rsa1"], env=env)
    check("new-master-key --token never overwrites", rc == 73 and "already exists" in err and open(token_master).read() == text,
          f"{rc} {err}")
    rc, out, err = run(keys + ["new-master-key", os.path.join(tmp, "ec.token"), "--token", "pkcs11:token=mail;object=ec1"],
                       env=env)
    check("new-master-key --token needs an RSA key", rc == 78 and "RSA" in err and not os.path.exists(os.path.join(tmp, "ec.token")),
          f"{rc} {err}")
    conf_t = write_config(tmp, "t.conf", token_master, os.path.join(tmp, "keys-t"), pin_file)
    keys_t = [bin_, "keys", "-c", conf_t]
    rc, out, err = run(keys_t + ["import-token", "pkcs11:token=mail;object=ec1"], env=env)
    check("import-token into the store under the token master key", rc == 0 and "ec@bank.example" in out, f"{rc} {out} {err}")
    p12 = os.path.join(tmp, "file-key.p12")
    fkey = os.path.join(tmp, "file.key")
    fcert = os.path.join(tmp, "file.pem")
    must(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", fkey, "-out", fcert, "-days", "30",
          "-subj", "/CN=file@bank.example", "-addext", "subjectAltName=email:file@bank.example",
          "-addext", "keyUsage=keyEncipherment,digitalSignature"], env)
    must(["openssl", "pkcs12", "-export", "-inkey", fkey, "-in", fcert, "-passout", "pass:" + PIN, "-out", p12], env)
    rc, out, err = run(keys_t + ["import", p12, "--pass-file", pin_file], env=env)
    check("a file key wrapped under the token master key", rc == 0 and "file@bank.example" in out, f"{rc} {out} {err}")
    rc, out, err = run(keys_t + ["list", "--json"], env=env)
    check("list under the token master key", rc == 0 and len(json.loads(out)) == 2, f"{rc} {out} {err}")
    for cert, name in ((fcert, "file"), (ec_cert, "ec2")):
        mail = encrypted_mail(tmp, env, cert, f"token master key ({name})", name)
        rc, out, err = run([bin_, "decrypt", "-c", conf_t], mail, env=env)
        check(f"decrypt under the token master key ({name})", rc == 0 and f"token master key ({name})" in out,
              f"{rc} {err} {out[:300]}")
    # No PIN: the token does not unwrap the master key -> 78 with the reason, from keys and decrypt.
    conf_nopin = write_config(tmp, "nopin.conf", token_master, os.path.join(tmp, "keys-t"), "")
    rc, out, err = run([bin_, "keys", "-c", conf_nopin, "list"], env=env)
    check("no PIN: keys refuses with 78", rc == 78 and "does not unwrap the master key" in err, f"{rc} {err}")
    rc, out, err = run([bin_, "decrypt", "-c", conf_nopin], mail, env=env)
    check("no PIN: decrypt refuses with 78", rc == 78, f"{rc} {err}")
    rc, out, err = run([bin_, "check-config", "-c", conf_nopin], env=env)
    check("no PIN: check-config says so", rc != 0 and "does not unwrap the master key" in (out + err), f"{rc} {out} {err}")
    # rewrap from the token master key back to a file master key keeps every key usable.
    file_master = os.path.join(tmp, "master2.key")
    must([bin_, "keys", "new-master-key", file_master], env)
    rc, out, err = run(keys_t + ["rewrap", file_master], env=env)
    check("rewrap from the token master key to a file", rc == 0 and "2 key(s) re-wrapped" in out, f"{rc} {out} {err}")
    conf_back = write_config(tmp, "back.conf", file_master, os.path.join(tmp, "keys-t"), pin_file)
    mail = encrypted_mail(tmp, env, fcert, "after rewrap", "rewrapped")
    rc, out, err = run([bin_, "decrypt", "-c", conf_back], mail, env=env)
    check("decrypt after rewrap", rc == 0 and "after rewrap" in out, f"{rc} {err}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sealmilter", required=True)
    a = ap.parse_args()
    if not os.path.exists(SOFTHSM) or shutil.which("pkcs11-tool") is None or shutil.which("softhsm2-util") is None:
        print("keys-token-cli: skipped (softhsm2 or opensc's pkcs11-tool missing; see scripts/deps.sh)")
        return 77
    tmp = tempfile.mkdtemp(prefix="sealmilter-keys-token-cli-")
    try:
        scenario(a.sealmilter, tmp)
    except Exception as e:  # a tool that failed while building the token: say which
        FAILED.append(f"set-up: {e}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"keys-token-cli: {PASSED} passed, {len(FAILED)} failed")
    for f in FAILED:
        print("  " + f)
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
