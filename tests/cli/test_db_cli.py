#!/usr/bin/env python3
"""`sealmilter db` and the database.* keys through the real binary and a real PostgreSQL 15
(tests/support/pg_cluster.py): check-config refuses a name it does not know and an unmigrated
schema, accepts `publish` (also without directory.publish_url); `keys` on PostgreSQL (import on
one node's configuration, list and decrypt on another's); `db status` / `db migrate`; `cache
list` on the shared cache; over TLS (the server's certificate from a throw-away CA made here):
sslmode=verify-full with that CA works, another CA is refused with libpq's reason (exit 75,
never plaintext). Prints "db-cli: N passed, M failed"."""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import pg_cluster  # noqa: E402
from gateway import Results  # noqa: E402

RESULTS = Results()
check = RESULTS.check


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, timeout=120)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def make_tls(d):
    """A throw-away CA, a server certificate for 127.0.0.1 from it, and a second CA (the wrong one)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2"]
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    for cmd in (["openssl", "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=db-test-ca"],
                ["openssl", "req", "-x509", *ec, "-keyout", "wrong.key", "-out", "wrong.pem", "-subj", "/CN=db-test-ca"],
                ["openssl", "req", *[x for x in ec if x not in ("-days", "2")], "-keyout", "server.key", "-out",
                 "server.csr", "-subj", "/CN=127.0.0.1"],
                ["openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", "server.pem", "-days", "2", "-extfile", "san.ext"]):
        subprocess.run(cmd, cwd=d, check=True, capture_output=True, timeout=60)


def keys_on_postgresql(a, tmp, dsn):
    """database.shared = keys: a key imported through node A's configuration opens mail through
    node B's (another keys.dir, the same master key file); neither keys.dir is written."""
    nss = os.path.join(a.source, "tests", "data", "nss-smime")
    master = os.path.join(tmp, "master.key")
    rc, out, err = run([a.sealmilter, "keys", "new-master-key", master])
    check("keys on PostgreSQL: master key", rc == 0, (rc, out, err))

    def node(name):
        path = os.path.join(tmp, f"{name}.conf")
        with open(path, "w") as f:
            f.write(f"[milter]\nspool_dir = {tmp}/spool\n[policy]\nfile =\n[cache]\npath =\n[harvest]\nenabled = false\n"
                    f"[database]\ndsn_file = {dsn}\nshared = keys\n[keys]\ndir = {tmp}/{name}-keys\n"
                    f"master_key_file = {master}\n")
        return path

    node_a, node_b = node("a"), node("b")
    pw = os.path.join(tmp, "pw")
    with open(pw, "w") as f:
        f.write("nss\n")
    rc, out, err = run([a.sealmilter, "keys", "-c", node_a, "import", os.path.join(nss, "Bob.p12"), "--pass-file", pw])
    check("keys on PostgreSQL: import on node A", rc == 0 and "bob@example.com" in out, (rc, out, err))
    rc, out, err = run([a.sealmilter, "keys", "-c", node_b, "list", "--json"])
    check("keys on PostgreSQL: node B lists it", rc == 0 and "bob@example.com" in out and "postgresql:" in out, (rc, out, err))
    with open(os.path.join(nss, "alice.env.eml"), "rb") as f:
        env = f.read()
    p = subprocess.run([a.sealmilter, "decrypt", "-c", node_b], input=env, capture_output=True, timeout=120)
    check("keys on PostgreSQL: node B decrypts with it", p.returncode == 0 and b"Content-Type" in p.stdout,
          (p.returncode, p.stderr.decode(errors="replace")))
    rc, out, err = run([a.sealmilter, "check-config", "-c", node_b])
    check("keys on PostgreSQL: check-config opens the store", rc == 0 and "configuration OK" in out, (rc, out, err))
    check("keys on PostgreSQL: no keys.dir written", not os.path.exists(os.path.join(tmp, "a-keys"))
          and not os.path.exists(os.path.join(tmp, "b-keys")), os.listdir(tmp))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sealmilter", required=True)
    ap.add_argument("--source", required=True)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="sealmilter-db-cli-")
    os.chmod(tmp, 0o755)
    pid = None
    try:
        make_tls(tmp)
        pg_cluster.enable_tls(os.path.join(tmp, "pg"), os.path.join(tmp, "server.pem"), os.path.join(tmp, "server.key"))
        port, pid = pg_cluster.start(os.path.join(tmp, "pg"))
        dsn = os.path.join(tmp, "dsn")
        with open(dsn, "w") as f:
            f.write("# shared state\n" + pg_cluster.dsn(port) + "\n")
        os.makedirs(os.path.join(tmp, "spool"))

        def conf(shared, name="c.conf"):
            path = os.path.join(tmp, name)
            with open(path, "w") as f:
                f.write(f"[milter]\nspool_dir = {tmp}/spool\n[policy]\nfile =\n[lookup]\norder = cache,harvest\n"
                        f"[database]\ndsn_file = {dsn}\nshared = {shared}\n")
            return path

        for name, why in (("nonsense", "nonsense"),):
            rc, _, err = run([a.sealmilter, "check-config", "-c", conf("cache," + name)])
            check(f"check-config refuses database.shared = {name}, saying why", rc == 1 and why in err, (rc, err))
        # publish is accepted, also without directory.publish_url (this config has none).
        c = conf("cache,harvest,journal,publish")
        rc, _, err = run([a.sealmilter, "check-config", "-c", c])
        check("check-config refuses a database without the schema", rc == 1 and "schema version 0" in err, (rc, err))
        rc, out, _ = run([a.sealmilter, "db", "status", "-c", c])
        check("db status: migration pending (exit 1)", rc == 1 and "schema version 0" in out, (rc, out))
        rc, out, err = run([a.sealmilter, "db", "migrate", "-c", c])
        check("db migrate: creates the schema", rc == 0 and "migrated from version 0" in out, (rc, out, err))
        rc, out, _ = run([a.sealmilter, "db", "migrate", "-c", c])
        check("db migrate again: up to date", rc == 0 and "up to date" in out, (rc, out))
        rc, out, err = run([a.sealmilter, "check-config", "-c", c])
        check("check-config accepts the migrated database", rc == 0 and "configuration OK" in out, (rc, out, err))
        rc, out, err = run([a.sealmilter, "cache", "list", "-c", c])
        check("cache list runs on the shared cache", rc == 0, (rc, out, err))
        for name, ca, want in (("tls-good", "ca.pem", None), ("tls-wrong", "wrong.pem", "certificate verify failed")):
            with open(os.path.join(tmp, name), "w") as f:
                f.write(pg_cluster.dsn(port) + f" sslmode=verify-full sslrootcert={tmp}/{ca}\n")
            with open(c) as f:
                text = f.read().replace(f"dsn_file = {dsn}", f"dsn_file = {tmp}/{name}")
            with open(os.path.join(tmp, name + ".conf"), "w") as f:
                f.write(text)
            rc, out, err = run([a.sealmilter, "db", "status", "-c", os.path.join(tmp, name + ".conf")])
            if want is None:
                check("db status over TLS, verify-full with the server's CA", rc == 0, (rc, out, err))
            else:
                check("db status over TLS with another CA: refused (exit 75), libpq's reason named",
                      rc == 75 and want in err, (rc, out, err))
        keys_on_postgresql(a, tmp, dsn)
        pg_cluster.stop(pid)
        pid = None
        rc, _, err = run([a.sealmilter, "db", "status", "-c", c])
        check("db status with the database down: exit 75, the error named", rc == 75 and "database" in err, (rc, err))
    finally:
        if pid:
            pg_cluster.stop(pid)
        shutil.rmtree(tmp, ignore_errors=True)
    return RESULTS.summary("db-cli")


if __name__ == "__main__":
    sys.exit(main())
