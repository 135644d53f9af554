#!/usr/bin/env python3
"""`sealmilter check-config` judges the state paths for the user who will run the daemon
(issue 15, part 7): after ./setup.sh ran the daemon as root, the unit's user could write
neither the cache nor the re-injection journal, yet check-config said OK.

usage: test_check_config_cli.py --sealmilter BIN
Each case builds its own directories under a temporary root. Cases that judge another user
need root (they chown to `nobody`); without root they are reported as skipped, not passed.
Prints "check-config-cli: N passed, M failed".
"""
import argparse
import os
import pwd
import shutil
import subprocess
import sys
import tempfile

results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(("PASS" if ok else "FAIL") + ": " + name + ("" if ok else "\n" + detail), flush=True)


def layout(root):
    """The daemon's directories under root, and a configuration naming them."""
    d = {k: os.path.join(root, k) for k in ("spool", "lib", "lib/certs", "lib/certs/harvested")}
    for p in d.values():
        os.makedirs(p, exist_ok=True)
    conf = os.path.join(root, "sealmilter.conf")
    with open(conf, "w") as f:
        f.write("[milter]\nspool_dir = %s\n[cache]\npath = %s/cache.db\n[store]\ndir = %s\n[harvest]\ndir = %s\n"
                "[policy]\nfile = %s/policy\n"
                % (d["spool"], d["lib"], d["lib/certs"], d["lib/certs/harvested"], root))
    with open(os.path.join(root, "policy"), "w") as f:
        f.write("* opportunistic\n")
    return d, conf


def run(binary, conf, *args):
    r = subprocess.run([binary, "check-config", "-c", conf] + list(args), capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sealmilter", required=True)
    a = ap.parse_args()
    binary = os.path.abspath(a.sealmilter)
    with tempfile.TemporaryDirectory(prefix="sealmilter-checkconfig-") as tmp:
        os.chmod(tmp, 0o755)
        d, conf = layout(tmp)
        # Checking leaves no state behind: as root it would be root's.
        # Explicitly the current user: as root without --user, a `sealmilter` user (the package's)
        # would be judged too, and these directories are not its.
        rc, out = run(binary, conf, "--user", str(os.geteuid()))
        check("valid for the current user", rc == 0, out)
        check("no cache file and no journal directory left behind",
              not os.path.exists(d["lib"] + "/cache.db") and not os.path.exists(d["spool"] + "/reinjected"),
              str(os.listdir(d["lib"])) + str(os.listdir(d["spool"])))
        rc, out = run(binary, conf, "--user", "no-such-user-here")
        check("an unknown --user is an error that says so", rc == 1 and "'no-such-user-here' does not exist" in out, out)
        if os.geteuid() != 0:
            print("SKIP: judging another user needs root (chown)")
        else:
            nobody = pwd.getpwnam("nobody")
            for p in d.values():
                os.chmod(p, 0o700)
            rc, out = run(binary, conf, "--user", "nobody")
            check("root-owned state: refused for nobody", rc == 1, out)
            for key, path in (("milter.spool_dir", d["spool"]), ("cache.path (its directory)", d["lib"])):
                check("names %s %s and why" % (key, path),
                      "%s %s: user nobody cannot write it (owner root:root, mode 0700)" % (key, path) in out, out)
            # The directories handed over; a journal directory and a cache file left by root.
            for p in d.values():
                os.chown(p, nobody.pw_uid, nobody.pw_gid)
            os.makedirs(d["spool"] + "/reinjected", mode=0o755)
            open(d["lib"] + "/cache.db", "w").close()
            rc, out = run(binary, conf, "--user", "nobody")
            check("a root-owned journal directory is named",
                  rc == 1 and "milter.spool_dir (re-injection journal) %s/reinjected: user nobody cannot write it" % d["spool"]
                  in out, out)
            check("a root-owned cache file is named",
                  "cache.path %s/cache.db: user nobody cannot write it (owner root:root, mode 0644)" % d["lib"] in out, out)
            shutil.rmtree(d["spool"] + "/reinjected")
            os.chown(d["lib"] + "/cache.db", nobody.pw_uid, nobody.pw_gid)
            rc, out = run(binary, conf, "--user", "nobody")
            check("everything nobody's: valid for nobody", rc == 0, out)
            # As nobody itself (access(2) path).
            r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=" + str(nobody.pw_gid), "--clear-groups", binary,
                                "check-config", "-c", conf], capture_output=True, text=True, timeout=60)
            check("run as nobody: valid", r.returncode == 0, r.stdout + r.stderr)
    failed = results.count(False)
    print("check-config-cli: %d passed, %d failed" % (results.count(True), failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
