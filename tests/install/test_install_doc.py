#!/usr/bin/env python3
"""Follows docs/install.md's from-source commands literally, then docs/postfix.md's first test
through a private Postfix on loopback (issue 15, part 7).

usage: test_install_doc.py --source SRC --work DIR

1. Copies SRC's files (git ls-files) to DIR/src (a fixed path: ccache reuses objects).
2. Runs every ```sh block of docs/install.md's "From source" section in DIR/src with bash -e,
   in order, except blocks preceded by "<!-- not in the test -->" (systemd is not running
   here) and the Uninstall section, which runs last.
3. Starts the installed daemon as the unit's user with the unit's ExecStart line, on free
   loopback ports (--milter.socket, --milter.reinject: the documented 8891/10027 may be taken
   by a parallel test).
4. A private Postfix (`postfix -c DIR`, never the system instance) from the main.cf and
   master.cf blocks of docs/postfix.md (ports substituted), with the first test's relayhost
   to a local smtp-sink; runs the first test's swaks line; checks the delivered message and
   that the daemon logged the documented lines (queue id first, the RCPT line included).
5. Stops everything by PID, uninstalls as the doc says, checks nothing is left.
Existing /etc/sealmilter, /var/lib/sealmilter, /var/spool/sealmilter are moved aside and put
back. Needs root. Prints "install-doc: N passed, M failed".
"""
import argparse
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

STATE = ["/etc/sealmilter", "/var/lib/sealmilter", "/var/spool/sealmilter"]
results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(("PASS" if ok else "FAIL") + ": " + name + ("" if ok or not detail else "\n" + detail), flush=True)
    return ok


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def section(text, title):
    """The text of a markdown section (## or ###) up to the next heading of the same or higher
    level; lines inside fenced blocks (a "# comment" in a config) are not headings."""
    lines = text.splitlines(keepends=True)
    fence, start, level, out = False, None, 0, []
    for line in lines:
        if line.startswith("```"):
            fence = not fence
        heading = None if fence else re.match(r"^(#+) (.*?)\s*$", line)
        if start is None:
            if heading and heading.group(2) == title:
                start, level = True, len(heading.group(1))
            continue
        if heading and len(heading.group(1)) <= level:
            break
        out.append(line)
    if start is None:
        raise SystemExit("section not found: " + title)
    return "".join(out)


def blocks(text, lang="sh"):
    """Fenced blocks of `lang`, skipping those right after <!-- not in the test -->."""
    out = []
    for m in re.finditer(r"(<!-- not in the test -->\s*\n)?```" + lang + r"\n(.*?)```", text, re.S):
        if not m.group(1):
            out.append(m.group(2))
    return out


def wait_for(pred, seconds):
    end = time.time() + seconds
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


def stop(proc):
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("install-doc: needs root\ninstall-doc: 0 passed, 1 failed")
        return 1
    src = os.path.abspath(a.source)
    work = os.path.abspath(a.work)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work + "/src")
    subprocess.run("git ls-files -z -co --exclude-standard | tar --null --ignore-failed-read -T - -cf - | tar -C %s/src -xf -"
                   % work, shell=True, cwd=src, check=True)
    tree = work + "/src"
    install_md = open(tree + "/docs/install.md").read()
    postfix_md = open(tree + "/docs/postfix.md").read()
    env = dict(os.environ, CCACHE_BASEDIR=tree, CCACHE_NOHASHDIR="1")
    if shutil.which("ccache"):
        env.update(CMAKE_CXX_COMPILER_LAUNCHER="ccache", CMAKE_C_COMPILER_LAUNCHER="ccache")
    saved = []
    for d in STATE:
        if os.path.exists(d):
            shutil.rmtree(d + ".installtest-saved", ignore_errors=True)
            os.rename(d, d + ".installtest-saved")
            saved.append(d)
    daemon = sink = None
    pf_dir = work + "/postfix"
    try:
        from_source = section(install_md, "From source")
        uninstall = section(install_md, "Uninstall (from source)")
        main_blocks = blocks(from_source.replace(uninstall, ""))
        check("install.md has from-source sh blocks", len(main_blocks) >= 3, str(len(main_blocks)))
        for i, b in enumerate(main_blocks):
            t0 = time.time()
            r = subprocess.run(["bash", "-euxc", b], cwd=tree, env=env, capture_output=True, text=True)
            if not check("install.md block %d ran (%.0f s): %s" % (i + 1, time.time() - t0, b.strip().splitlines()[0]),
                         r.returncode == 0, (r.stdout + r.stderr)[-3000:]):
                return 1
        unit = open("/usr/lib/systemd/system/sealmilter.service").read()
        exec_start = re.search(r"^ExecStart=(.*)$", unit, re.M).group(1).split()
        user = re.search(r"^User=(.*)$", unit, re.M).group(1)
        check("the unit's user exists", pwd.getpwnam(user) is not None)

        # The first test of docs/postfix.md through a private Postfix.
        first = section(postfix_md, "First test")
        milter_port, reinject_port, smtp_port, sink_port = free_port(), free_port(), free_port(), free_port()
        log = open(work + "/daemon.log", "w")
        daemon = subprocess.Popen(["setpriv", "--reuid=" + user, "--regid=" + user, "--init-groups", "--"] + exec_start +
                                  ["--milter.socket=inet:%d@127.0.0.1" % milter_port,
                                   "--milter.reinject=127.0.0.1:%d" % reinject_port],
                                  stdout=log, stderr=subprocess.STDOUT)
        if not check("daemon started from the unit's ExecStart as " + user,
                     wait_for(lambda: "listening on inet:%d@" % milter_port in open(work + "/daemon.log").read(), 15),
                     open(work + "/daemon.log").read()):
            return 1
        os.makedirs(pf_dir + "/etc")
        for d in ("queue", "data", "sink"):
            os.makedirs(pf_dir + "/" + d)
        subprocess.run(["cp", "-r", "/etc/postfix/.", pf_dir + "/etc/"], check=True)
        shutil.chown(pf_dir + "/data", "postfix")
        subst = lambda s: (s.replace("8891", str(milter_port)).replace("10027", str(reinject_port))
                           .replace("2525", str(sink_port)))
        main_cf_lines = subst(blocks(section(postfix_md, "Postfix"), "")[0])
        master_cf_lines = subst(blocks(section(postfix_md, "Postfix"), "")[1])
        first_main = subst(blocks(first, "")[0])
        with open(pf_dir + "/etc/main.cf", "w") as f:
            f.write("compatibility_level = 3.6\nqueue_directory = %s/queue\ndata_directory = %s/data\n"
                    "maillog_file = %s/maillog\nmaillog_file_prefixes = %s\ninet_interfaces = 127.0.0.1\n"
                    "inet_protocols = ipv4\nmyhostname = gw.test.example\nmydestination =\nmynetworks = 127.0.0.0/8\n"
                    "smtp_tls_security_level = none\nsmtpd_peername_lookup = no\nin_flow_delay = 0\nalias_maps =\n"
                    "alias_database =\n"
                    % (pf_dir, pf_dir, pf_dir, pf_dir))
            f.write("# docs/postfix.md\n" + main_cf_lines + first_main)
        master = open(pf_dir + "/etc/master.cf").read()
        master = re.sub(r"^smtp\s+inet.*$", "127.0.0.1:%d inet n - n - - smtpd" % smtp_port, master, flags=re.M)
        with open(pf_dir + "/etc/master.cf", "w") as f:
            f.write(master + "# docs/postfix.md\n" + master_cf_lines)
        # The sink block, its last line (smtp-sink ... &) run in the foreground of its own bash:
        # its PID is smtp-sink's, so it is stopped by PID.
        sink_lines = subst(blocks(first, "sh")[0]).replace("/tmp/sink", pf_dir + "/sink").strip().splitlines()
        sink_lines[-1] = "exec " + sink_lines[-1].rstrip("&").strip()
        sink = subprocess.Popen(["bash", "-ec", "\n".join(sink_lines)])
        r = subprocess.run(["postfix", "-c", pf_dir + "/etc", "start"], capture_output=True, text=True)
        if not check("private postfix started with the documented lines", r.returncode == 0,
                     r.stdout + r.stderr + (open(pf_dir + "/maillog").read() if os.path.exists(pf_dir + "/maillog") else "")):
            return 1
        def port_open(port):
            with socket.socket() as c:
                return c.connect_ex(("127.0.0.1", port)) == 0
        check("postfix listens on its SMTP and re-injection ports",
              wait_for(lambda: port_open(smtp_port) and port_open(reinject_port), 20))
        swaks = subst(blocks(first, "sh")[1]).strip().replace("127.0.0.1:25 ", "127.0.0.1:%d " % smtp_port)
        r = subprocess.run(["bash", "-c", swaks], capture_output=True, text=True, timeout=60)
        check("the first test's swaks line: 250 queued", r.returncode == 0 and "250 2.0.0 Ok: queued" in r.stdout,
              r.stdout[-2000:] + r.stderr)
        got = wait_for(lambda: os.listdir(pf_dir + "/sink"), 30)
        check("the message reached the next hop (smtp-sink)", got, open(pf_dir + "/maillog").read()[-3000:])
        dlog = open(work + "/daemon.log").read()
        qid = re.search(r"queue id (\w+)", dlog)
        check("the daemon mapped the session to Postfix's queue id", qid is not None, dlog)
        if qid:
            expected = re.search(r"```text\n(.*?)```", first, re.S).group(1).strip().splitlines()
            for line in expected:
                # The session id (S<n>) and the queue id differ from run to run; "..." ends what must match.
                pattern = re.sub(r"^S\d+", r"S\\d+", re.escape(line.split("...")[0].strip()))
                pattern = pattern.replace("4YbJ2m0Ql8z", re.escape(qid.group(1)))
                check("documented log line: " + line[:70], re.search(pattern, dlog) is not None, dlog)
            rcpt_line = [l for l in dlog.splitlines() if "rcpt=<someone@partner.example>" in l]
            check("the recipient's line starts with the queue id",
                  bool(rcpt_line) and all(l.startswith(qid.group(1) + ": ") for l in rcpt_line), dlog)
    finally:
        if os.path.exists(pf_dir + "/etc/main.cf"):
            subprocess.run(["postfix", "-c", pf_dir + "/etc", "stop"], capture_output=True)
        stop(sink)
        stop(daemon)
        try:
            if os.path.exists(tree + "/build/install_manifest.txt"):
                for i, b in enumerate(blocks(section(install_md, "Uninstall (from source)"))):
                    r = subprocess.run(["bash", "-euxc", b], cwd=tree, capture_output=True, text=True)
                    check("install.md uninstall block %d" % (i + 1), r.returncode == 0, r.stdout + r.stderr)
                left = [f for f in open(tree + "/build/install_manifest.txt").read().split() if os.path.exists(f)]
                left += [d for d in STATE if os.path.exists(d)]
                check("uninstall leaves nothing installed", not left, " ".join(left))
        finally:
            for d in saved:
                shutil.rmtree(d, ignore_errors=True)
                os.rename(d + ".installtest-saved", d)
    failed = results.count(False)
    print("install-doc: %d passed, %d failed" % (results.count(True), failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
