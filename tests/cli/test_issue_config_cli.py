#!/usr/bin/env python3
"""`check-config` and `run` refuse a policy that issues certificates (issue 13, docs/issuing.md)
when something it needs is missing: a key store, a CA in keys.dir, issue.notice_from, pickup.url
— each named in one sentence (check-config: exit 1; run: exit 78 before it listens). A policy
that does not issue needs none of them.

usage: test_issue_config_cli.py --sealmilter BIN
Prints "issue-config-cli: N passed, M failed". No server; everything in a temporary directory.
"""
import argparse
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from key_store_config import write_key_store_config  # noqa: E402

results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(("PASS" if ok else "FAIL") + ": " + name + ("" if ok else "\n" + detail), flush=True)


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sealmilter", required=True)
    binary = os.path.abspath(ap.parse_args().sealmilter)
    with tempfile.TemporaryDirectory(prefix="sealmilter-issue-config-") as tmp:
        keys_dir = os.path.join(tmp, "keys")
        master = os.path.join(tmp, "master.key")
        rc, out = run([binary, "keys", "new-master-key", master])
        check("a master key for the store", rc == 0, out)
        sock = "unix:" + os.path.join(tmp, "milter.sock")

        def config(name, policy="", keys_extra="", store=True, extra=""):
            path = write_key_store_config(tmp, name, master if store else "", keys_dir, keys_extra)
            with open(path, "a") as f:
                f.write(extra)
            with open(path) as f:
                text = f.read()
            text = text.replace("[policy]\nfile =\n", "[policy]\nfile =\n" + policy)
            text = text.replace("[milter]\n", f"[milter]\nsocket = {sock}\n")
            with open(path, "w") as f:
                f.write(text)
            return path

        def both(name, conf, sentence):
            rc, out = run([binary, "check-config", "-c", conf, "--user", str(os.geteuid())])
            check(f"{name}: check-config fails naming it", rc == 1 and sentence in out, f"rc={rc}\n{out}")
            rc, out = run([binary, "run", "-c", conf])
            check(f"{name}: run refuses with exit 78 naming it", rc == 78 and sentence in out, f"rc={rc}\n{out}")
            check(f"{name}: run did not listen", not os.path.exists(sock[5:]), sock)

        both("no key store", config("a.conf", "default_mode = issue\n", store=False),
             "no key store is configured (keys.master_key_file)")
        both("no CA in keys.dir", config("b.conf", "no_cert_action = issue\n"),
             "keys.dir has no issuing CA (" + keys_dir + "/ca.pem")
        os.makedirs(keys_dir, exist_ok=True)
        with open(os.path.join(keys_dir, "ca.pem"), "w") as f:
            f.write("")  # check-config only asks whether `ca init` named a CA; run opens it
        both("no issue.notice_from", config("c.conf", "default_mode = issue\n"), "issue.notice_from is empty")
        both("no pickup.url", config("d.conf", "default_mode = issue\n", extra="[issue]\nnotice_from = notices@bank.example\n"),
             "pickup.url is empty")
        # A policy line with mode issue counts as well.
        policy_file = os.path.join(tmp, "policy")
        with open(policy_file, "w") as f:
            f.write("@customers.bank.example issue\n* opportunistic\n")
        conf = config("e.conf", store=False)
        with open(conf) as f:
            text = f.read().replace("[policy]\nfile =\n", f"[policy]\nfile = {policy_file}\n")
        with open(conf, "w") as f:
            f.write(text)
        both("a policy line 'issue'", conf, "no key store is configured")
        # Without issue anywhere, nothing of it is needed.
        rc, out = run([binary, "check-config", "-c", config("f.conf", store=False), "--user", str(os.geteuid())])
        check("a policy that does not issue: check-config passes", rc == 0 and "issues certificates" not in out,
              f"rc={rc}\n{out}")
    failed = results.count(False)
    print(f"issue-config-cli: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
