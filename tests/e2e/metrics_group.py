"""tests/e2e/metrics_group.py — the `metrics` e2e group: metrics, decision journal, report, logs.

One gateway (gateway.py) with metrics.listen, log.decisions, lookup.expiry_warn_days and an
archive certificate. Known traffic goes through the real Postfix; then
  * `curl` scrapes /metrics and every series the traffic touches is checked exactly;
  * the daemon is switched to dry run (SIGHUP) and more traffic goes through: the mail is
    delivered unchanged, the dry-run counters and the journal say what would have happened;
  * `sealmilter report --json` over that journal gives exact per-domain/mode counts; the table
    form is checked for its rows;
  * every per-message line the daemon logged matches a pattern documented in docs/logging.md,
    and every documented example matches its own pattern (the doc stays true).
"""
import calendar
import json
import os
import re
import subprocess
import time

from gateway import free_port, must

POLICY = "@secure.example require\n* opportunistic\n"


def recipients():
    return {"bob": ("bob@partner.example", "rsa"), "frank": ("frank@secure.example", "rsa"),
            "archive": ("archive@bank.example", "rsa")}


PUBLISHED = ["bob", "frank"]


def prepare(gw):
    """Before start: the keys this group is about (metrics.listen is read at start only)."""
    gw.metrics_port = free_port()
    gw.journal = os.path.join(gw.tmp, "decisions.jsonl")
    gw.extra_conf = (f"[milter]\nmemory_threshold = 1024\n"
                     f"[metrics]\nlisten = 127.0.0.1:{gw.metrics_port}\n"
                     f"[log]\ndecisions = {gw.journal}\n"
                     f"[lookup]\nexpiry_warn_days = 40\n"
                     f"[crypto]\narchive_cert = {gw.ids['archive'].cert}\n")
    gw.write_conf()


def scrape(gw):
    """{(name, ((label, value), ...)): float} from one curl of /metrics."""
    p = subprocess.run(["curl", "-sS", "--max-time", "10", f"http://127.0.0.1:{gw.metrics_port}/metrics"],
                       capture_output=True, timeout=30)
    if p.returncode != 0:
        raise RuntimeError("curl failed: " + p.stderr.decode(errors="replace"))
    out = {}
    for line in p.stdout.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$', line)
        if not m:
            continue
        labels = tuple(sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or "")))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def val(metrics, name, **labels):
    return metrics.get((name, tuple(sorted(labels.items()))))


def not_after(cert):
    out = must(["openssl", "x509", "-in", cert, "-noout", "-enddate"]).decode().strip().split("=", 1)[1]
    return calendar.timegm(time.strptime(out, "%b %d %H:%M:%S %Y %Z"))


def big_body(lines=40):
    """40 lines of 98 characters: 4,000 bytes with CRLF, past memory_threshold = 1024."""
    return b"".join(b"%02d" % i + b"x" * 96 + b"\n" for i in range(lines))


def documented_patterns(source):
    """docs/logging.md: under each `### Kind` heading, pairs of `- pattern: `RX`` and
    `- example: `LINE``; a heading ending in "(e2e)" names a kind this run must produce."""
    with open(os.path.join(source, "docs", "logging.md")) as f:
        doc = f.read()
    kinds, heading = [], ""
    lines = doc.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("### "):
            heading = line[4:]
        m = re.match(r"^- pattern: `(.+)`$", line)
        e = re.match(r"^- example: `(.+)`$", lines[i + 1]) if m and i + 1 < len(lines) else None
        if m and e:
            kinds.append((re.compile(m.group(1)), e.group(1), heading.endswith("(e2e)"), heading))
    return kinds


def run(gw, check, compose, new_id, reply_ok):
    sender = "statements@bank.example"
    bob, frank = gw.ids["bob"].addr, gw.ids["frank"].addr
    nocert, nobody, colleague = "nocert@partner.example", "nobody@secure.example", "colleague@bank.example"

    m0 = scrape(gw)
    check("metrics: served on metrics.listen, nothing counted yet",
          val(m0, "sealmilter_messages_in_flight") == 0 and
          not any(k[0] == "sealmilter_messages_total" for k in m0), sorted(k[0] for k in m0)[:20])

    # Known traffic (live).
    sent = []

    def send(tag, rcpts, to, expect):
        mid = new_id(tag)
        msg = compose("01-plain-ascii.eml", mid, to=to)
        r = gw.send(sender, rcpts, msg)
        ds = gw.wait_deliveries(mid, expect)
        sent.append((tag, r, ds))
        return r, ds, msg

    r, ds, _ = send("m-bob", [bob], [bob], 1)
    check("traffic: bob encrypted", reply_ok(r) and len(ds) == 1 and ds[0].encrypted, r)
    r, ds, _ = send("m-nocert", [nocert], [nocert], 1)
    check("traffic: nocert plain", reply_ok(r) and len(ds) == 1 and not ds[0].encrypted, r)
    r, ds, _ = send("m-refused", [nobody, bob], [nobody, bob], 1)
    check("traffic: nobody@secure refused at RCPT, bob encrypted",
          r["rcpt"][nobody][0] == 550 and reply_ok(r) and len(ds) == 1 and ds[0].encrypted, r)
    r, ds, _ = send("m-internal", [colleague], [colleague], 1)
    check("traffic: internal plain", reply_ok(r) and len(ds) == 1 and not ds[0].encrypted, r)
    r, ds, _ = send("m-bcc", [bob, frank], [bob], 2)  # frank is a Bcc: split, re-injected
    check("traffic: bob + Bcc frank, two encrypted deliveries", reply_ok(r) and len(ds) == 2
          and all(d.encrypted for d in ds), (r, [(d.rcpts, d.encrypted) for d in ds]))
    mid = new_id("m-big")
    msg = compose("01-plain-ascii.eml", mid, to=[bob]).partition(b"\n\n")[0] + b"\n\n" + big_body()
    r = gw.send(sender, [bob], msg)
    ds = gw.wait_deliveries(mid, 1)
    check("traffic: a 4,000-byte body to bob, encrypted", reply_ok(r) and len(ds) == 1 and ds[0].encrypted, r)

    time.sleep(0.5)
    m = scrape(gw)
    exact = [
        ("sealmilter_messages_total", {"outcome": "encrypted"}, 4),
        ("sealmilter_messages_total", {"outcome": "plain"}, 2),
        ("sealmilter_recipients_total", {"mode": "opportunistic", "outcome": "encrypted"}, 4),
        ("sealmilter_recipients_total", {"mode": "opportunistic", "outcome": "plain"}, 1),
        ("sealmilter_recipients_total", {"mode": "require", "outcome": "refused"}, 1),
        ("sealmilter_recipients_total", {"mode": "require", "outcome": "encrypted"}, 1),
        ("sealmilter_recipients_total", {"mode": "never", "outcome": "plain"}, 1),
        ("sealmilter_encryption_coverage_ratio", {"class": "all"}, 5 / 6),
        ("sealmilter_encryption_coverage_ratio", {"class": "opportunistic"}, 4 / 5),
        ("sealmilter_encryption_coverage_ratio", {"class": "require"}, 1.0),
        ("sealmilter_messages_in_flight", {}, 0),
        ("sealmilter_certificate_not_after_earliest_timestamp_seconds", {"set": "used"},
         min(not_after(gw.ids["bob"].cert), not_after(gw.ids["frank"].cert))),
        ("sealmilter_certificate_not_after_earliest_timestamp_seconds", {"set": "own"},
         not_after(gw.ids["archive"].cert)),
        # bob: miss then directory, later cache hits (4 more); frank: miss, directory; nocert and
        # nobody: miss, directory 404, harvest none (harvest is asked beside the directory).
        ("sealmilter_lookups_total", {"source": "directory", "result": "found"}, 2),
        ("sealmilter_lookups_total", {"source": "cache", "result": "found"}, 3),
        ("sealmilter_lookups_total", {"source": "none", "result": "not-found"}, 2),
        ("sealmilter_cache_lookups_total", {"result": "miss"}, 4),
        ("sealmilter_cache_lookups_total", {"result": "hit"}, 3),
        ("sealmilter_lookup_duration_seconds_count", {"source": "directory"}, 4),
        # directory and harvest are consecutive sources, asked at once (lookup/chain): each of
        # the 4 cache misses asks both, whichever answer then counts.
        ("sealmilter_lookup_duration_seconds_count", {"source": "harvest"}, 4),
        ("sealmilter_transform_duration_seconds_count", {"size_class": "<100k"}, 4),
        ("sealmilter_reinjections_total", {"result": "ok"}, 1),
        ("sealmilter_reinjections_total", {"result": "failed"}, 0),
        ("sealmilter_spooled_messages_total", {}, 1),
        ("sealmilter_certificate_expiry_warnings_total", {}, 2),
        ("sealmilter_harvested_certificates_total", {}, 0),
    ]
    for name, labels, want in exact:
        got = val(m, name, **labels)
        check(f"metrics: {name}{labels} == {want:g}", got is not None and abs(got - want) < 1e-9, got)
    spooled = val(m, "sealmilter_spooled_bytes_total")
    check("metrics: spooled bytes >= the 4,000-byte body (headers are not body)",
          spooled is not None and 4000 <= spooled < 4100, spooled)
    log = gw.log()
    check("expiry nudge: one line per certificate (bob, frank)",
          log.count("certificate expires soon") == 2 and f"rcpt=<{bob}> certificate expires soon" in log, log[-800:])

    # Dry run: the mail is not changed, the journal and the dry-run counters say what would have been.
    gw.extra_conf += "[milter]\ndry_run = true\n"
    gw.write_conf()
    gw.hup_milter()
    deadline = time.time() + 10
    while time.time() < deadline and gw.log().count("reloaded the configuration") < 1:
        time.sleep(0.1)
    r, ds, _ = send("d-refuse", [nobody, bob], [nobody, bob], 1)
    check("dry run: require miss not refused at RCPT; delivered unchanged to both",
          reply_ok(r, nobody) and reply_ok(r) and len(ds) == 1 and sorted(ds[0].rcpts) == sorted([nobody, bob])
          and not ds[0].encrypted, (r, [(d.rcpts, d.encrypted) for d in ds]))
    r, ds, _ = send("d-nocert", [nocert], [nocert], 1)
    check("dry run: nocert delivered plain", reply_ok(r) and len(ds) == 1 and not ds[0].encrypted, r)
    r, ds, _ = send("d-bob", [bob], [bob], 1)
    check("dry run: bob delivered unchanged (would be encrypted)", reply_ok(r) and len(ds) == 1
          and not ds[0].encrypted, r)
    time.sleep(0.5)
    m = scrape(gw)
    for name, labels, want in [
        ("sealmilter_messages_total", {"outcome": "dry-run"}, 3),
        ("sealmilter_dry_run_recipients_total", {"mode": "require", "outcome": "refused"}, 1),
        ("sealmilter_dry_run_recipients_total", {"mode": "opportunistic", "outcome": "refused"}, 1),
        ("sealmilter_dry_run_recipients_total", {"mode": "opportunistic", "outcome": "plain"}, 1),
        ("sealmilter_dry_run_recipients_total", {"mode": "opportunistic", "outcome": "encrypted"}, 1),
        ("sealmilter_recipients_total", {"mode": "opportunistic", "outcome": "encrypted"}, 4),
        ("sealmilter_messages_total", {"outcome": "encrypted"}, 4),
    ]:
        got = val(m, name, **labels)
        check(f"metrics after dry run: {name}{labels} == {want:g}", got == want, got)

    # The journal: one line per recipient decision.
    with open(gw.journal) as f:
        lines = [json.loads(x) for x in f if x.strip()]
    check("journal: 12 decision lines (8 live, one of them at RCPT; 4 in dry run)",
          len(lines) == 12, len(lines))
    rcpt_stage = [x for x in lines if x["stage"] == "rcpt"]
    check("journal: the RCPT refusal is a line of its own", len(rcpt_stage) == 1 and rcpt_stage[0]["rcpt"] == nobody
          and rcpt_stage[0]["outcome"] == "refused" and not rcpt_stage[0]["dry_run"], rcpt_stage)
    check("journal: every line has the documented fields",
          all(set(x) >= {"time", "unix", "queue_id", "stage", "dry_run", "rcpt", "domain", "mode", "decision",
                         "outcome", "bcc", "certificates", "reason"} for x in lines), lines[:1])
    qids = {x["queue_id"] for x in lines if x["stage"] == "data"}
    check("journal: data lines carry the Postfix queue id", all(re.match(r"^[0-9A-F]{6,}$", q) for q in qids), qids)

    # The report over the real journal.
    p = subprocess.run([gw.bin, "report", "-c", gw.conf, "--since", "1h", "--json"], capture_output=True, timeout=60)
    check("report --json: exit 0", p.returncode == 0, p.stderr.decode(errors="replace"))
    rep = json.loads(p.stdout or b"{}")
    rows = {(x["domain"], x["mode"], x["dry_run"]): x for x in rep.get("rows", [])}

    def counts(key):
        x = rows.get(key)
        return None if x is None else (x["encrypted"], x["plain"], x["refused"], x["tempfailed"])

    want_rows = {
        ("partner.example", "opportunistic", False): (4, 1, 0, 0),
        ("secure.example", "require", False): (1, 0, 1, 0),
        ("bank.example", "never", False): (0, 1, 0, 0),
        ("partner.example", "opportunistic", True): (1, 1, 1, 0),
        ("secure.example", "require", True): (0, 0, 1, 0),
    }
    for key, want in want_rows.items():
        check(f"report: {key} = {want}", counts(key) == want, counts(key))
    check("report: no other rows", set(rows) == set(want_rows), sorted(rows))
    dry_require = rows.get(("secure.example", "require", True), {})
    reasons = [x["reason"] for x in dry_require.get("top_reasons", [])]
    check("report: the dry-run refusal names its reason", any("HTTP 404" in x or "certificate" in x for x in reasons),
          reasons)
    p = subprocess.run([gw.bin, "report", "-c", gw.conf, "--since", "1h"], capture_output=True, timeout=60)
    table = p.stdout.decode(errors="replace")
    check("report table: header and a row per domain/mode", p.returncode == 0 and
          re.search(r"^domain\s+mode\s+run\s+encrypted\s+plain\s+refused\s+tempfailed$", table, re.M) and
          re.search(r"^partner\.example\s+opportunistic\s+live\s+4\s+1\s+0\s+0$", table, re.M) and
          re.search(r"^secure\.example\s+require\s+dry-run\s+0\s+0\s+1\s+0$", table, re.M), table)

    # docs/logging.md stays true: every per-message line matches a documented pattern, every
    # documented example matches its pattern, every pattern met a real line.
    kinds = documented_patterns(gw.source)
    check("logging.md: documents line kinds with pattern and example", len(kinds) >= 10, len(kinds))
    for rx, example, _, heading in kinds:
        check(f"logging.md: the example matches its pattern ({heading}): {example[:50]}", rx.search(example) is not None)
    tagged = [x for x in gw.log().splitlines() if re.match(r"^(S\d+|[0-9A-F]{6,}): ", x)]
    unmatched = [x for x in tagged if not any(rx.search(x) for rx, _, _, _ in kinds)]
    check("logging.md: every per-message line of the run matches a documented pattern", tagged and not unmatched,
          unmatched[:5])
    missing = sorted({h for rx, _, e2e, h in kinds if e2e and not any(rx.search(x) for x in tagged)})
    check("logging.md: every kind marked (e2e) occurred in the run", not missing, missing)
