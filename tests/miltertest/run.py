#!/usr/bin/env python3
"""Runs the miltertest scripts (package miltertest) against `sealmilter run` over the real milter
protocol on a loopback port. The milter's certificates come from its store (bob@partner.example
with a test CA); the policy requires encryption for @secure.example.

usage: run.py --sealmilter BIN --source REPO_DIR
Prints 'miltertest: N passed, M failed' and exits 1 on any failure.
"""
import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
from gateway import free_port, make_pki, port_open  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sealmilter", required=True)
    ap.add_argument("--source", required=True)
    a = ap.parse_args()
    if not shutil.which("miltertest"):
        print("miltertest: not installed (scripts/deps.sh installs it)\nmiltertest: 0 passed, 1 failed")
        return 1
    failed, passed = [], 0
    with tempfile.TemporaryDirectory(prefix="sealmilter-miltertest-") as tmp:
        store = os.path.join(tmp, "store")
        os.makedirs(store)
        ids, ca = make_pki(tmp, {"bob": ("bob@partner.example", "rsa")})
        shutil.copy(ids["bob"].cert, store)
        with open(os.path.join(tmp, "policy"), "w") as f:
            f.write("@secure.example require\n* opportunistic\n")
        port = free_port()
        conf = os.path.join(tmp, "sealmilter.conf")
        with open(conf, "w") as f:
            f.write(f"[milter]\nsocket = inet:{port}@127.0.0.1\nspool_dir = {tmp}\nreinject = 127.0.0.1:{free_port()}\n"
                    f"[policy]\nfile = {tmp}/policy\n[lookup]\norder = store\ntrust_anchors = {ca}\n"
                    f"[store]\ndir = {store}\n[cache]\npath =\n")
        log = open(os.path.join(tmp, "milter.log"), "wb")
        milter = subprocess.Popen([a.sealmilter, "run", "-c", conf], stdout=log, stderr=subprocess.STDOUT)
        try:
            for _ in range(200):
                if port_open(port) or milter.poll() is not None:
                    break
                subprocess.run(["sleep", "0.05"])
            env = dict(os.environ, MILTER_SOCKET=f"inet:{port}@127.0.0.1", MILTERTEST_DIR=HERE)
            for script in sorted(glob.glob(os.path.join(HERE, "*.lua"))):
                name = os.path.basename(script)
                if name == "common.lua":
                    continue
                p = subprocess.run(["miltertest", "-s", script], env=env, capture_output=True, timeout=120)
                if p.returncode == 0:
                    passed += 1
                    print(f"ok   {name}")
                else:
                    failed.append(name)
                    print(f"FAIL {name}: rc={p.returncode} {p.stdout.decode(errors='replace')}"
                          f"{p.stderr.decode(errors='replace')}")
            if milter.poll() is not None:
                failed.append(f"the milter exited ({milter.returncode})")
        finally:
            milter.terminate()
            milter.wait(timeout=10)
            log.close()
            with open(os.path.join(tmp, "milter.log"), errors="replace") as f:
                text = f.read()
            if milter.returncode != 0 or any(p in text for p in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                                                                  "runtime error:")):
                failed.append(f"sealmilter run: exit {milter.returncode} or a sanitizer report")
            if failed:
                with open(os.path.join(tmp, "milter.log"), errors="replace") as f:
                    print("--- milter log ---\n" + f.read()[-3000:])
    print(f"miltertest: {passed} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
