#!/usr/bin/env python3
"""`sealmilter keys` and `sealmilter decrypt` with the key store, end to end through the real
binary: new-master-key, import of the NSS PKCS#12 files, list --json, decrypt through the store
(exit 65 when no key opens it), retire / compromised by fingerprint, export of an address's
history and re-import into a second store, rewrap, wrong or badly kept master keys (exit 78 from
keys, decrypt and run; check-config reports them), the daemon starting without a key store, and
decrypt --maildir / --mbox with the summary. Standard library only; no network.

usage: test_keys_cli.py --sealmilter BIN --source REPO_DIR
Prints 'keys-cli: N passed, M failed' and exits 1 on any failure.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

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


def normalized(text):
    return text.replace("\r\n", "\n").rstrip("\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sealmilter", required=True)
    ap.add_argument("--source", required=True)
    a = ap.parse_args()
    nss = os.path.join(a.source, "tests/data/nss-smime")
    tmp = tempfile.mkdtemp(prefix="sealmilter-keys-cli-")
    try:
        scenario(a.sealmilter, nss, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"keys-cli: {PASSED} passed, {len(FAILED)} failed")
    for f in FAILED:
        print("  " + f)
    return 1 if FAILED else 0


def write_config(tmp, name, master, keys_dir):
    return write_key_store_config(tmp, name, master, keys_dir)


def scenario(bin_, nss, tmp):
    master = os.path.join(tmp, "master.key")
    rc, out, err = run([bin_, "keys", "new-master-key", master])
    check("new-master-key", rc == 0 and oct(os.stat(master).st_mode & 0o777) == "0o600", f"{rc} {err}")
    with open(master) as f:
        text = f.read()
    check("master key is 64 hex + newline", len(text) == 65 and all(c in "0123456789abcdef" for c in text[:64]), repr(text))
    rc, out, err = run([bin_, "keys", "new-master-key", master])
    check("new-master-key never overwrites", rc != 0 and "already exists" in err and open(master).read() == text, f"{rc} {err}")

    conf = write_config(tmp, "s.conf", master, os.path.join(tmp, "keys"))
    pw = os.path.join(tmp, "pw")
    with open(pw, "w") as f:
        f.write("nss\n")
    keys = [bin_, "keys", "-c", conf]
    rc, out, err = run(keys + ["import", os.path.join(nss, "Bob.p12"), "--pass-file", pw])
    check("import Bob.p12", rc == 0 and "bob@example.com" in out, f"{rc} {out} {err}")
    rc, out, err = run(keys + ["import", os.path.join(nss, "Bob.p12"), "--pass-file", pw])
    check("import twice keeps one", rc == 0 and "already in the store" in out, f"{rc} {out} {err}")
    rc, out, err = run(keys + ["import", os.path.join(nss, "Dave.p12"), "--pass-file", os.path.join(tmp, "spool", "none")])
    check("unreadable pass file is 66", rc == 66, f"{rc} {err}")

    rc, out, err = run(keys + ["list", "--json"])
    listing = json.loads(out) if rc == 0 else []
    check("list --json", rc == 0 and len(listing) == 1, f"{rc} {out} {err}")
    bob = listing[0] if listing else {}
    for field in ("id", "addresses", "sha256", "state", "source", "not_after", "ski", "issuer", "serial", "location"):
        check(f"list has {field}", field in bob, json.dumps(bob))
    check("list values", bob.get("addresses") == ["bob@example.com"] and bob.get("state") == "active"
          and bob.get("source") == "file" and len(bob.get("sha256", "")) == 64, json.dumps(bob))

    # Decrypt through the store: alice.env.eml opens to alice.mime.
    with open(os.path.join(nss, "alice.env.eml"), "rb") as f:
        env = f.read()
    with open(os.path.join(nss, "alice.mime")) as f:
        mime = normalized(f.read())
    rc, out, err = run([bin_, "decrypt", "-c", conf], env)
    check("decrypt through the store", rc == 0 and mime in normalized(out), f"{rc} {err} {out[:300]}")
    check("decrypt names the key", bob.get("id", "?") in err, err)

    # No key in a store of Dave only: 65, naming the identifier.
    conf_dave = write_config(tmp, "dave.conf", master, os.path.join(tmp, "keys-dave"))
    run([bin_, "keys", "-c", conf_dave, "import", os.path.join(nss, "Dave.p12"), "--pass-file", pw])
    rc, out, err = run([bin_, "decrypt", "-c", conf_dave], env)
    check("no key opens it: 65", rc == 65 and "serial=" in err, f"{rc} {err}")
    rc, out, err = run([bin_, "decrypt", "--key", os.path.join(nss, "Bob.p12"), "--pass-file", pw, "-c", conf_dave], env)
    check("decrypt --key is a one-off ring", rc == 0 and mime in normalized(out), f"{rc} {err}")

    # Retire by fingerprint with colons: still decrypts, state shown.
    fp = bob.get("sha256", "")
    colons = ":".join(fp[i:i + 2] for i in range(0, len(fp), 2)).upper()
    rc, out, err = run(keys + ["retire", colons])
    check("retire by fingerprint", rc == 0 and "retired" in out, f"{rc} {out} {err}")
    rc, out, err = run(keys + ["list", "--json"])
    check("state persisted", rc == 0 and json.loads(out)[0]["state"] == "retired", out)
    rc, out, err = run([bin_, "decrypt", "-c", conf], env)
    check("a retired key still opens old mail", rc == 0 and mime in normalized(out), f"{rc} {err}")
    rc, out, err = run(keys + ["compromised", bob.get("id", "?")])
    rc2, out2, _ = run(keys + ["list"])
    check("compromised is flagged in the listing", rc == 0 and "COMPROMISED" in out2, out2)
    rc, out, err = run(keys + ["retire", "0123456789abcdef"])
    check("unknown ID is 65", rc == 65, f"{rc} {err}")

    # Export the address's history, re-import into a second store.
    exported = os.path.join(tmp, "bob-history.p12")
    rc, out, err = run(keys + ["export", "bob@example.com", "--out", exported, "--pass-file", pw])
    check("export", rc == 0 and os.path.exists(exported) and oct(os.stat(exported).st_mode & 0o777) == "0o600", f"{rc} {err}")
    rc, out, err = run(keys + ["export", "bob@example.com", "--out", exported, "--pass-file", pw])
    check("export never overwrites", rc != 0, f"{rc} {err}")
    conf2 = write_config(tmp, "second.conf", master, os.path.join(tmp, "keys2"))
    rc, out, err = run([bin_, "keys", "-c", conf2, "import", exported, "--pass-file", pw])
    check("exported history re-imports", rc == 0 and "imported" in out, f"{rc} {out} {err}")
    rc, out, err = run([bin_, "decrypt", "-c", conf2], env)
    check("the exported key opens the mail", rc == 0 and mime in normalized(out), f"{rc} {err}")

    # At rest: no private key in the clear in any store file.
    for d in ("keys", "keys2"):
        for name in os.listdir(os.path.join(tmp, d)):
            with open(os.path.join(tmp, d, name), "rb") as f:
                data = f.read()
            check(f"at rest {d}/{name}", b"PRIVATE KEY" not in data, name)

    # Bad master keys: keys, decrypt and run refuse with 78; check-config says why.
    cases = {
        "wrong": ("b" * 64 + "\n", 0o600, "does not open the key store"),
        "malformed": ("xyz\n", 0o600, "malformed"),
        "groupread": ("b" * 64, 0o640, "chmod 0600"),
    }
    for name, (content, mode, reason) in cases.items():
        path = os.path.join(tmp, name + ".key")
        with open(path, "w") as f:
            f.write(content)
        os.chmod(path, mode)
        bad = write_config(tmp, name + ".conf", path, os.path.join(tmp, "keys"))
        rc, out, err = run([bin_, "keys", "-c", bad, "list"])
        check(f"keys refuses {name} master key", rc == 78 and reason in err, f"{rc} {err}")
        rc, out, err = run([bin_, "decrypt", "-c", bad], env)
        check(f"decrypt refuses {name} master key", rc == 78 and reason in err, f"{rc} {err}")
        rc, out, err = run([bin_, "run", "-c", bad])
        check(f"run refuses {name} master key", rc == 78 and reason in err, f"{rc} {err}")
        rc, out, err = run([bin_, "check-config", "-c", bad])
        check(f"check-config reports {name} master key", rc == 1 and reason in err, f"{rc} {err}")
    missing = write_config(tmp, "missing.conf", os.path.join(tmp, "absent.key"), os.path.join(tmp, "keys"))
    rc, out, err = run([bin_, "keys", "-c", missing, "list"])
    check("missing master key is 78", rc == 78 and "cannot open" in err, f"{rc} {err}")
    unset = write_config(tmp, "unset.conf", "", os.path.join(tmp, "keys"))
    rc, out, err = run([bin_, "run", "-c", unset])
    check("a store without keys.master_key_file refuses the start", rc == 78 and "not set" in err, f"{rc} {err}")
    rc, out, err = run([bin_, "check-config", "-c", conf])
    check("check-config with a good store", rc == 0, f"{rc} {out} {err}")

    # The daemon starts without a key store when nothing is configured (keys.dir absent).
    no_store = write_config(tmp, "nostore.conf", "", os.path.join(tmp, "never-created"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([bin_, "run", "-c", no_store, f"--milter.socket=inet:{port}@127.0.0.1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    started = False
    deadline = time.time() + 20
    while time.time() < deadline and proc.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                started = True
                break
        except OSError:
            time.sleep(0.1)
    alive = proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    try:
        log = proc.communicate(timeout=20)[0].decode(errors="replace")
    except subprocess.TimeoutExpired:
        proc.kill()
        log = proc.communicate()[0].decode(errors="replace")
    check("daemon starts without a key store", started and alive and "key store: none" in log, log[-600:])

    # Rewrap: the new master key opens the store, the old one no longer does.
    new_master = os.path.join(tmp, "master2.key")
    run([bin_, "keys", "new-master-key", new_master])
    rc, out, err = run(keys + ["rewrap", new_master])
    check("rewrap", rc == 0 and "re-wrapped" in out, f"{rc} {out} {err}")
    rc, out, err = run(keys + ["list"])
    check("old master key refused after rewrap", rc == 78, f"{rc} {err}")
    conf_new = write_config(tmp, "new.conf", new_master, os.path.join(tmp, "keys"))
    rc, out, err = run([bin_, "decrypt", "-c", conf_new], env)
    check("new master key opens the store", rc == 0 and mime in normalized(out), f"{rc} {err}")

    # Archive: a maildir with the NSS messages (Bob's opens, plain stays) and an mbox.
    maildir = os.path.join(tmp, "Maildir")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(maildir, sub))
    shutil.copy(os.path.join(nss, "alice.env.eml"), os.path.join(maildir, "cur", "1:2,S"))
    shutil.copy(os.path.join(nss, "alice.sig.SHA256.opaque.env.eml"), os.path.join(maildir, "new", "2"))
    shutil.copy(os.path.join(nss, "alice.dsig.SHA256.multipart.eml"), os.path.join(maildir, "cur", "3:2,S"))
    rc, out, err = run([bin_, "decrypt", "-c", conf_new, "--maildir", maildir, "--out", os.path.join(tmp, "opened")])
    check("maildir summary", rc == 0 and "opened: 2" in out and "already plain: 1" in out and "no key: 0" in out, f"{rc} {out} {err}")
    check("no progress bar off a terminal", "[" not in err, err)
    with open(os.path.join(tmp, "opened", "cur", "1:2,S")) as f:
        check("maildir message opened", mime in normalized(f.read()))
    rc, out, err = run([bin_, "decrypt", "-c", conf_dave, "--maildir", maildir, "--out", os.path.join(tmp, "opened-dave")])
    check("maildir with no key: 65 and the identifiers", rc == 65 and "no key: 2" in out and "no key for issuer=" in out,
          f"{rc} {out} {err}")
    mbox = os.path.join(tmp, "archive.mbox")
    with open(mbox, "wb") as f:
        for name in ("alice.env.eml", "alice.dsig.SHA256.multipart.eml"):
            with open(os.path.join(nss, name), "rb") as m:
                f.write(b"From alice@example.com Thu Jan  1 00:00:00 2026\n" + m.read().replace(b"\r\n", b"\n") + b"\n")
    rc, out, err = run([bin_, "decrypt", "-c", conf_new, "--mbox", mbox, "--out", os.path.join(tmp, "opened.mbox")])
    check("mbox summary", rc == 0 and "opened: 1" in out and "already plain: 1" in out, f"{rc} {out} {err}")


if __name__ == "__main__":
    sys.exit(main())
