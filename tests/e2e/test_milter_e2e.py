#!/usr/bin/env python3
"""End to end through a real Postfix: business system -> Postfix (smtpd + sealmilter) -> smtp-sink.

usage: test_milter_e2e.py --sealmilter BIN --source REPO_DIR --group GROUP
Groups (each starts its own gateway, see gateway.py): basic, directory-down, large,
concurrency, kill, archive, ldap, dns, sendmail, metrics, decrypt. Prints 'e2e-GROUP: N passed, M failed' and exits 1 on any failure.
Every case asserts what the sink received (decrypted with `openssl cms` and NSS `cmsutil`) or
the SMTP reply the client got. After each group the harness checks every sink file: no
plaintext ever reached a `require` recipient.
"""
import argparse
import json
import os
import random
import re
import smtplib
import socket
import subprocess
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gateway import Results, Gateway, inner_expected, sink_body_equal, wire_form  # noqa: E402
import metrics_group  # noqa: E402
import sendmail_group  # noqa: E402
import issue_group  # noqa: E402
import sign_group  # noqa: E402

RESULTS = Results()
check = RESULTS.check
FAILED = RESULTS.failed
DATA = None  # tests/data/messages




def corpus(name):
    with open(os.path.join(DATA, name), "rb") as f:
        return f.read()


def fields_of(head):
    """Header fields (folded lines joined) of a header block with LF line ends."""
    fields = []
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\n" + line
        elif line:
            fields.append(line)
    return fields


def compose(template, msgid, to=(), cc=(), subject="Statement", extra=()):
    """A corpus message re-addressed: its own From/To/Cc/Subject/Message-ID replaced."""
    raw = corpus(template).replace(b"\r\n", b"\n")
    head, sep, body = raw.partition(b"\n\n")
    if not sep:
        head, body = raw.rstrip(b"\n"), b""
    drop = (b"from", b"to", b"cc", b"bcc", b"subject", b"message-id", b"return-path", b"received",
            b"dkim-signature")
    kept = [f for f in fields_of(head) if f.split(b":", 1)[0].strip().lower() not in drop]
    mine = [b"From: Statements <statements@bank.example>", b"Subject: " + subject.encode(),
            b"Message-ID: " + msgid.encode()]
    if to:
        mine.append(b"To: " + ", ".join(to).encode())
    if cc:
        mine.append(b"Cc: " + ", ".join(cc).encode())
    mine += [e.encode() for e in extra]
    return b"\n".join(mine + kept) + b"\n\n" + body


def new_id(tag):
    return f"<{tag}.{uuid.uuid4().hex[:12]}@e2e.bank.example>"


def reply_ok(r, addr=None):
    if addr is not None:
        return r["rcpt"].get(addr, (0,))[0] == 250
    return r["data"] is not None and r["data"][0] == 250


def check_decrypts(gw, name, delivery, ident_name, original, nss=True):
    ident = gw.ids[ident_name]
    want = inner_expected(original)
    ok, got = gw.openssl_decrypt(delivery, ident)
    check(f"{name}: openssl cms decrypts for {ident_name} to the original", ok and got == want,
          got[:300] if not ok else f"{len(got)} bytes vs {len(want)} expected")
    if nss:
        ok, got = gw.nss_decrypt(delivery, ident)
        check(f"{name}: NSS cmsutil decrypts for {ident_name} to the original", ok and got == want,
              got[:300] if not ok else f"{len(got)} bytes vs {len(want)} expected")


def by_rcpts(deliveries):
    return {tuple(sorted(d.rcpts)): d for d in deliveries}


def require_never_plain(gw, required):
    """Every sink file: a delivery to a `require` recipient is encrypted."""
    bad = []
    for d in gw.deliveries(new_only=False):
        for r in d.rcpts:
            if required(r) and not d.encrypted:
                bad.append(f"{os.path.basename(d.path)} to {r}")
    check("no plaintext reached a require recipient (every sink file)", not bad, ", ".join(bad[:5]))


# ------------------------------------------------------------------------------------------------
# basic: the per-message cases of the issue, one gateway
# ------------------------------------------------------------------------------------------------

def basic_recipients():
    return {"bob": ("bob@partner.example", "rsa"), "carol": ("carol@partner.example", "rsa"),
            "dave": ("dave@partner.example", "rsa"), "erin": ("erin@partner.example", "ec"),
            "frank": ("frank@secure.example", "rsa"), "pat": ("pat@partner.example", "rsa")}


BASIC_POLICY = "# e2e policy\n@secure.example require\n*                opportunistic\n"


def group_basic(gw):
    bob, carol, dave, erin = (gw.ids[n].addr for n in ("bob", "carol", "dave", "erin"))
    sender = "statements@bank.example"

    # One recipient with a certificate: encrypted, decrypts to the original (both decryptors).
    mid = new_id("single")
    msg = compose("05-alternative-text-html.eml", mid, to=[bob])
    r = gw.send(sender, [bob], msg)
    check("single: accepted", reply_ok(r), r)
    ds = gw.wait_deliveries(mid, 1)
    if check("single: one delivery", len(ds) == 1, [d.rcpts for d in ds]):
        d = ds[0]
        check("single: encrypted (application/pkcs7-mime)", d.encrypted, d.header("Content-Type"))
        check("single: envelope names bob only", gw.recipients_of(d) == ["bob"], gw.recipients_of(d))
        check("single: Subject and Message-ID kept outside", d.header("Subject") == "Statement", d.header("Subject"))
        check("single: plaintext not on the wire", b"Hello team" not in d.message)
        check_decrypts(gw, "single", d, "bob", msg)

    # require recipient without a certificate: 550 5.7.1 at RCPT; the others delivered.
    mid = new_id("require-miss")
    nobody = "nobody@secure.example"
    msg = compose("01-plain-ascii.eml", mid, to=[nobody, bob])
    r = gw.send(sender, [nobody, bob], msg)
    code, text = r["rcpt"][nobody]
    check("require miss: refused at RCPT with 550 5.7.1", code == 550 and text.startswith("5.7.1"), (code, text))
    check("require miss: the sentence names the reason", "certificate" in text.lower(), text)
    check("require miss: the other recipient accepted, message accepted", reply_ok(r, bob) and reply_ok(r), r)
    ds = gw.wait_deliveries(mid, 1)
    check("require miss: exactly one delivery, to bob only, encrypted",
          len(ds) == 1 and ds[0].rcpts == [bob] and ds[0].encrypted, [(d.rcpts, d.encrypted) for d in ds])

    # require recipient with a certificate: encrypted.
    frank = gw.ids["frank"].addr
    mid = new_id("require-hit")
    msg = compose("03-quoted-printable.eml", mid, to=[frank])
    r = gw.send(sender, [frank], msg)
    ds = gw.wait_deliveries(mid, 1)
    check("require hit: accepted and delivered encrypted",
          reply_ok(r) and len(ds) == 1 and ds[0].encrypted, (r, [(d.rcpts, d.encrypted) for d in ds]))
    if ds:
        check_decrypts(gw, "require hit", ds[0], "frank", msg, nss=False)

    # opportunistic recipient without a certificate: unchanged, byte-equal body.
    mid = new_id("opportunistic-miss")
    nocert = "nocert@partner.example"
    msg = compose("03-quoted-printable.eml", mid, to=[nocert])
    r = gw.send(sender, [nocert], msg)
    ds = gw.wait_deliveries(mid, 1)
    if check("opportunistic miss: accepted, one delivery", reply_ok(r) and len(ds) == 1, r):
        check("opportunistic miss: not encrypted", not ds[0].encrypted)
        check("opportunistic miss: body byte-equal", sink_body_equal(ds[0], msg))
        check("opportunistic miss: Content-Type unchanged",
              ds[0].header("Content-Type") == compose_header(msg, b"content-type"), ds[0].header("Content-Type"))

    # To + Cc with certificates, one Bcc: two envelopes; the Bcc's copy names only the Bcc.
    mid = new_id("bcc")
    msg = compose("06-mixed-related-inline-images.eml", mid, to=[bob], cc=[carol])
    r = gw.send(sender, [bob, carol, dave], msg)
    check("bcc: accepted", reply_ok(r), r)
    ds = by_rcpts(gw.wait_deliveries(mid, 2))
    check("bcc: two transactions, {bob, carol} and {dave}",
          sorted(ds) == [tuple(sorted([bob, carol])), (dave,)], sorted(ds))
    if (dave,) in ds and tuple(sorted([bob, carol])) in ds:
        visible, hidden = ds[tuple(sorted([bob, carol]))], ds[(dave,)]
        check("bcc: To/Cc envelope names bob and carol, not dave",
              gw.recipients_of(visible) == ["bob", "carol"], gw.recipients_of(visible))
        check("bcc: the Bcc's envelope names only dave", gw.recipients_of(hidden) == ["dave"],
              gw.recipients_of(hidden))
        check("bcc: dave's address appears nowhere in the To/Cc copy", dave.encode() not in visible.message)
        check_decrypts(gw, "bcc (To)", visible, "bob", msg)
        check_decrypts(gw, "bcc (Cc)", visible, "carol", msg, nss=False)
        check_decrypts(gw, "bcc (Bcc)", hidden, "dave", msg)

    # Mixed outcomes: RSA, EC (separate envelope), and plain (no certificate).
    mid = new_id("mixed")
    nocert2 = "plain.reader@partner.example"
    msg = compose("02-utf8-8bit.eml", mid, to=[bob, erin, nocert2])
    r = gw.send(sender, [bob, erin, nocert2], msg)
    check("mixed: accepted", reply_ok(r), r)
    ds = by_rcpts(gw.wait_deliveries(mid, 3))
    check("mixed: three transactions (RSA, EC, plain)", sorted(ds) == [(bob,), (erin,), (nocert2,)], sorted(ds))
    if len(ds) == 3 and (bob,) in ds:
        check("mixed: bob encrypted to bob", ds[(bob,)].encrypted and gw.recipients_of(ds[(bob,)]) == ["bob"])
        check("mixed: erin encrypted to erin (EC, own envelope)",
              ds[(erin,)].encrypted and gw.recipients_of(ds[(erin,)]) == ["erin"])
        check("mixed: the plain recipient gets the original", not ds[(nocert2,)].encrypted
              and sink_body_equal(ds[(nocert2,)], msg))
        check_decrypts(gw, "mixed (RSA)", ds[(bob,)], "bob", msg)
        check_decrypts(gw, "mixed (EC, openssl only: NSS 3.87 cannot do ECDH)", ds[(erin,)], "erin", msg, nss=False)

    # Subject trigger: tag removed, message raised to require.
    mid = new_id("trigger")
    msg = compose("01-plain-ascii.eml", mid, to=[bob], subject="[secure] Your statement")
    r = gw.send(sender, [bob], msg)
    ds = gw.wait_deliveries(mid, 1)
    if check("trigger: accepted, delivered once", reply_ok(r) and len(ds) == 1, r):
        check("trigger: encrypted", ds[0].encrypted)
        check("trigger: tag removed from Subject", ds[0].header("Subject") == "Your statement", ds[0].header("Subject"))
    mid = new_id("trigger-miss")
    msg = compose("01-plain-ascii.eml", mid, to=[nocert], subject="[secure] Your statement")
    r = gw.send(sender, [nocert], msg)
    check("trigger without certificate: refused 550 5.7.1 at end of data",
          r["data"] and r["data"][0] == 550 and r["data"][1].startswith("5.7.1"), r)
    mid2 = new_id("header-trigger")
    msg = compose("01-plain-ascii.eml", mid2, to=[bob], extra=["X-Sealmilter-Encrypt: yes"])
    r = gw.send(sender, [bob], msg)
    ds = gw.wait_deliveries(mid2, 1)
    if check("header trigger: delivered once", reply_ok(r) and len(ds) == 1, r):
        check("header trigger: encrypted, trigger header removed",
              ds[0].encrypted and ds[0].header("X-Sealmilter-Encrypt") is None, ds[0].head[:400])
    check("trigger without certificate: nothing delivered", not gw.wait_deliveries(mid, 1, timeout=2))

    # Already-encrypted input passes untouched; malformed MIME is encrypted as it stands.
    mid = new_id("already")
    msg = compose("24-smime-enveloped.eml", mid, to=[bob])
    r = gw.send(sender, [bob], msg)
    ds = gw.wait_deliveries(mid, 1)
    check("already encrypted: delivered once, body byte-equal",
          reply_ok(r) and len(ds) == 1 and sink_body_equal(ds[0], msg), r)
    mid = new_id("malformed")
    msg = compose("17-unclosed-boundary.eml", mid, to=[bob])
    r = gw.send(sender, [bob], msg)
    ds = gw.wait_deliveries(mid, 1)
    if check("malformed MIME: delivered once, encrypted", reply_ok(r) and len(ds) == 1 and ds[0].encrypted, r):
        check_decrypts(gw, "malformed MIME", ds[0], "bob", msg)

    # Automatic key exchange: partner Pat (in no directory) sends one signed message in; it is
    # delivered unchanged, and the next message to Pat leaves encrypted to Pat's certificate.
    pat = gw.ids["pat"]
    mid = new_id("inbound-signed")
    entity = os.path.join(gw.tmp, "entity.txt")
    with open(entity, "wb") as f:
        f.write(b"Content-Type: text/plain; charset=us-ascii\r\n\r\nHere are the figures you asked for.\r\n")
    signed = subprocess.run(["openssl", "cms", "-sign", "-binary", "-in", entity, "-signer", pat.cert, "-inkey", pat.key,
                             "-from", pat.addr, "-to", "colleague@bank.example", "-subject", "Figures"],
                            capture_output=True, check=True).stdout
    signed = b"Message-ID: " + mid.encode() + b"\n" + signed.replace(b"\r\n", b"\n")
    r = gw.send(pat.addr, ["colleague@bank.example"], signed)
    ds = gw.wait_deliveries(mid, 1)
    check("inbound signed: delivered once, unchanged", reply_ok(r) and len(ds) == 1 and not ds[0].encrypted
          and sink_body_equal(ds[0], signed), r)
    check("inbound signed: the milter kept Pat's certificate", f"harvest: kept <{pat.addr}>" in gw.log(), gw.log()[-600:])
    mid = new_id("to-pat")
    msg = compose("01-plain-ascii.eml", mid, to=[pat.addr])
    r = gw.send(sender, [pat.addr], msg)
    ds = gw.wait_deliveries(mid, 1)
    if check("next outbound to Pat: encrypted to the harvested certificate",
             reply_ok(r) and len(ds) == 1 and ds[0].encrypted and gw.recipients_of(ds[0]) == ["pat"],
             (r, [gw.recipients_of(d) for d in ds if d.encrypted])):
        check_decrypts(gw, "to Pat", ds[0], "pat", msg)

    # Internal domains are never encrypted.
    mid = new_id("internal")
    msg = compose("01-plain-ascii.eml", mid, to=["colleague@bank.example"])
    r = gw.send(sender, ["colleague@bank.example"], msg)
    ds = gw.wait_deliveries(mid, 1)
    check("internal domain: delivered unchanged", reply_ok(r) and len(ds) == 1 and not ds[0].encrypted
          and sink_body_equal(ds[0], msg), r)

    # The re-injection path is down: the whole message is tempfailed; once it is back, the
    # client's retry is delivered, each recipient exactly once.
    gw.set_reinject_service(False)
    mid = new_id("reinject-down")
    msg = compose("01-plain-ascii.eml", mid, to=[bob, nocert])
    r = gw.send(sender, [bob, nocert], msg)
    check("re-injection down: message tempfailed 451 4.x",
          r["data"] and r["data"][0] == 451 and r["data"][1].startswith("4."), r)
    check("re-injection down: nothing delivered", not gw.wait_deliveries(mid, 1, timeout=3))
    gw.set_reinject_service(True)
    r = gw.send(sender, [bob, nocert], msg)
    ds = by_rcpts(gw.wait_deliveries(mid, 2))
    check("re-injection back: retry accepted, bob encrypted and nocert plain, once each",
          reply_ok(r) and sorted(ds) == [(bob,), (nocert,)] and ds[(bob,)].encrypted
          and not ds[(nocert,)].encrypted, (r, sorted(ds)))

    # SIGHUP: a changed policy takes effect for the next message ...
    gw.write_policy(BASIC_POLICY + "@partner.example require\n")
    gw.write_policy("@secure.example require\n@partner.example require\n* opportunistic\n")
    gw.hup_milter()
    wait_log(gw, "reloaded the configuration", 1)
    mid = new_id("hup-policy")
    r = gw.send(sender, [nocert], compose("01-plain-ascii.eml", mid, to=[nocert]))
    check("SIGHUP: the new policy applies (partner.example now require -> 550 5.7.1)",
          r["rcpt"][nocert][0] == 550 and r["rcpt"][nocert][1].startswith("5.7.1"), r)
    # ... and a broken configuration keeps the running one.
    good = gw.conf_text()
    gw.write_conf(good + "[policy]\ndefault_mode = sometimes\n")
    gw.hup_milter()
    wait_log(gw, "reload failed", 1)
    check("SIGHUP with a broken config: logged, old one kept", "keeping the running configuration" in gw.log(),
          gw.log()[-500:])
    r = gw.send(sender, [nocert], compose("01-plain-ascii.eml", new_id("hup-broken"), to=[nocert]))
    check("SIGHUP with a broken config: still refusing per the running policy", r["rcpt"][nocert][0] == 550, r)
    mid = new_id("hup-alive")
    r = gw.send(sender, [bob], compose("01-plain-ascii.eml", mid, to=[bob]))
    check("SIGHUP with a broken config: the daemon keeps serving", reply_ok(r) and len(gw.wait_deliveries(mid, 1)) == 1, r)
    gw.write_conf(good)
    gw.write_policy(BASIC_POLICY)
    gw.hup_milter()
    wait_log(gw, "reloaded the configuration", 2)
    # Many reloads in a row: every SIGHUP is a reload, never a stop (libmilter's own signal
    # thread treats SIGHUP as "stop"; the daemon must keep it away from there).
    # Back to back, so that most arrive while a reload is running (signals may coalesce then).
    for _ in range(30):
        gw.hup_milter()
        time.sleep(0.002)
    time.sleep(2)
    check("30 SIGHUPs: the daemon is still running", gw.milter.poll() is None, gw.log()[-500:])
    check("30 SIGHUPs: reloaded", gw.log().count("reloaded the configuration") >= 3,
          gw.log().count("reloaded the configuration"))
    mid = new_id("after-hups")
    r = gw.send(sender, [bob], compose("01-plain-ascii.eml", mid, to=[bob]))
    check("30 SIGHUPs: still serving", reply_ok(r) and len(gw.wait_deliveries(mid, 1)) == 1, r)
    require_never_plain(gw, lambda a: a.endswith("@secure.example"))
    check("the milter logged one line per message with the queue id first",
          re.search(r"^[0-9A-F]{6,}: ", gw.log(), re.M) is not None, gw.log()[-800:])


def compose_header(msg, name):
    for f in fields_of(msg.partition(b"\n\n")[0]):
        if f.split(b":", 1)[0].strip().lower() == name:
            return f.split(b":", 1)[1].strip().decode()
    return None


def wait_log(gw, text, count, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline and gw.log().count(text) < count:
        time.sleep(0.1)


# ------------------------------------------------------------------------------------------------
# directory-down: nothing cached -> 451 4.7.1; stale cache -> encrypted with the stale certificate
# ------------------------------------------------------------------------------------------------

def group_directory_down(gw):
    bob, frank = gw.ids["bob"].addr, gw.ids["frank"].addr
    sender = "statements@bank.example"
    mid = new_id("warm")
    r = gw.send(sender, [bob], compose("01-plain-ascii.eml", mid, to=[bob]))
    check("directory up: bob encrypted (and cached)", reply_ok(r) and gw.wait_deliveries(mid, 1)[0].encrypted, r)
    time.sleep(2.5)  # cache.max_ttl = 1: bob's entry is now expired but within max_stale
    gw.stop_nginx()
    mid = new_id("down-nothing-cached")
    r = gw.send(sender, [frank], compose("01-plain-ascii.eml", mid, to=[frank]))
    code, text = r["rcpt"][frank]
    check("directory down, nothing cached: require -> 451 4.7.1 at RCPT", code == 451 and text.startswith("4.7.1"),
          (code, text))
    mid = new_id("down-stale")
    msg = compose("05-alternative-text-html.eml", mid, to=[bob])
    r = gw.send(sender, [bob], msg)
    ds = gw.wait_deliveries(mid, 1)
    if check("directory down, stale cache: accepted and delivered", reply_ok(r) and len(ds) == 1, r):
        check("directory down, stale cache: encrypted with the stale certificate",
              ds[0].encrypted and gw.recipients_of(ds[0]) == ["bob"])
        check_decrypts(gw, "stale", ds[0], "bob", msg)
    require_never_plain(gw, lambda a: True)


# ------------------------------------------------------------------------------------------------
# large: a 30 MB message
# ------------------------------------------------------------------------------------------------

def big_message(msgid, to, size):
    import base64
    import hashlib
    chunk = b"".join(hashlib.sha256(b"e2e-large" + i.to_bytes(4, "big")).digest() for i in range(4096))
    raw = (chunk * (size // len(chunk) + 1))[:size * 3 // 4]
    b64 = base64.encodebytes(raw)
    head = (f"From: statements@bank.example\nTo: {to}\nSubject: Annual archive\nMessage-ID: {msgid}\n"
            "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b1\"\n\n").encode()
    return (head + b"--b1\nContent-Type: text/plain\n\nThe archive is attached.\n\n--b1\n"
            b"Content-Type: application/octet-stream; name=\"archive.bin\"\nContent-Transfer-Encoding: base64\n"
            b"Content-Disposition: attachment; filename=\"archive.bin\"\n\n" + b64 + b"--b1--\n")


def group_large(gw):
    bob = gw.ids["bob"].addr
    mid = new_id("large")
    msg = big_message(mid, bob, 30 * 1024 * 1024)
    before = gw.milter_rss_peak_kib()
    t0 = time.time()
    r = gw.send("statements@bank.example", [bob], msg)
    ds = gw.wait_deliveries(mid, 1, timeout=240)
    took = time.time() - t0
    if check("30 MB: accepted, delivered once", reply_ok(r) and len(ds) == 1, r):
        check("30 MB: encrypted", ds[0].encrypted)
        check_decrypts(gw, "30 MB", ds[0], "bob", msg)
    peak = gw.milter_rss_peak_kib()
    print(f"figure: 30 MB message ({len(msg)} bytes) through Postfix+milter in {took:.1f} s; "
          f"milter peak RSS {peak} KiB (idle {before} KiB)")
    check("30 MB: milter peak RSS stays under 256 MiB", peak < 256 * 1024, f"{peak} KiB")
    # 38 MB of plaintext would be about 52 MB encrypted, over Postfix's message_size_limit of
    # 50 MiB (milter.mta_size_limit says so): refused with 552 5.3.4 and the reason, not delivered.
    mid = new_id("too-big-once-encrypted")
    msg = big_message(mid, bob, 38 * 1024 * 1024)
    r = gw.send("statements@bank.example", [bob], msg)
    check("38 MB: refused 552 5.3.4 saying encryption makes it larger",
          r["data"] and r["data"][0] == 552 and r["data"][1].startswith("5.3.4") and "1.4 times" in r["data"][1],
          r["data"])
    check("38 MB: nothing delivered", not gw.wait_deliveries(mid, 1, timeout=3))


# ------------------------------------------------------------------------------------------------
# concurrency: 50 sessions x 20 messages, every message accounted for
# ------------------------------------------------------------------------------------------------

def group_concurrency(gw, sessions=50, per_session=20):
    bob, carol = gw.ids["bob"].addr, gw.ids["carol"].addr
    plain = "plain.reader@partner.example"
    mixes = [[bob], [plain], [bob, plain], [bob, carol]]
    outcomes = {}  # msgid -> (rcpts, result or exception text)
    lock = threading.Lock()
    template = compose("01-plain-ascii.eml", "MSGID", to=["TO"])

    def session(n):
        try:
            with smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=120) as s:
                s.ehlo("app.bank.example")
                for i in range(per_session):
                    rcpts = mixes[(n + i) % len(mixes)]
                    mid = f"<c{n}.{i}.{uuid.uuid4().hex[:8]}@e2e.bank.example>"
                    msg = template.replace(b"MSGID", mid.encode()).replace(b"TO", ", ".join(rcpts).encode())
                    try:
                        s.sendmail("statements@bank.example", rcpts, wire_form(msg))
                        res = "accepted"
                    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError, smtplib.SMTPSenderRefused) as e:
                        res = f"refused: {e}"
                        s.rset()
                    with lock:
                        outcomes[mid] = (rcpts, res)
        except (OSError, smtplib.SMTPException) as e:
            with lock:
                outcomes[f"session-{n}"] = ([], f"session error: {e}")

    t0 = time.time()
    threads = [threading.Thread(target=session, args=(n,)) for n in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    elapsed = time.time() - t0
    accepted = {m: v for m, v in outcomes.items() if v[1] == "accepted"}
    other = {m: v for m, v in outcomes.items() if v[1] != "accepted"}
    check(f"{sessions}x{per_session}: every message got a reply",
          len(outcomes) == sessions * per_session and not any(m.startswith("session-") for m in outcomes),
          f"{len(outcomes)} outcomes; {list(other.items())[:3]}")
    expected_pairs = {(m, r) for m, (rcpts, _) in accepted.items() for r in rcpts}
    deadline = time.time() + 180
    while time.time() < deadline:
        got = [(d.message_id, r) for d in gw.deliveries(new_only=False) for r in d.rcpts]
        if len(got) >= len(expected_pairs):
            break
        time.sleep(1)
    time.sleep(1)
    deliveries = gw.deliveries(new_only=False)
    got = [(d.message_id, r) for d in deliveries for r in d.rcpts]
    dupes = len(got) - len(set(got))
    missing = expected_pairs - set(got)
    unexpected = set(got) - expected_pairs
    print(f"figure: {len(outcomes)} messages in {elapsed:.1f} s from {sessions} sessions; "
          f"{len(accepted)} accepted, {len(other)} refused/tempfailed; {len(got)} recipient deliveries")
    check("concurrency: no accepted message lost", not missing, f"{len(missing)} missing: {sorted(missing)[:3]}")
    check("concurrency: none duplicated", dupes == 0, f"{dupes} duplicates")
    check("concurrency: nothing delivered that was refused", not unexpected, sorted(unexpected)[:3])
    wrong = [d.path for d in deliveries if any(r in (bob, carol) for r in d.rcpts) != d.encrypted]
    check("concurrency: certificate holders got encrypted copies, the others plain", not wrong, wrong[:3])
    check("concurrency: all accepted (healthy gateway)", not other, list(other.items())[:3])


# ------------------------------------------------------------------------------------------------
# kill: the milter dies mid-transaction
# ------------------------------------------------------------------------------------------------

def group_kill(gw):
    bob = gw.ids["bob"].addr
    sender = "statements@bank.example"
    mid = new_id("kill")
    msg = compose("04-large-pdf-attachment.eml", mid, to=[bob])
    head, body = msg.split(b"\n\n", 1)
    s = smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=120)
    s.ehlo("app.bank.example")
    s.mail(sender)
    code, _ = s.rcpt(bob)
    check("kill: RCPT accepted", code == 250, code)
    s.putcmd("data")
    code, _ = s.getreply()
    check("kill: DATA 354", code == 354, code)
    wire = (head + b"\n\n" + body).replace(b"\n", b"\r\n")
    wire = re.sub(rb"(?m)^\.", b"..", wire)
    half = len(wire) // 2
    s.send(wire[:half])
    time.sleep(0.5)
    gw.kill_milter()
    s.send(wire[half:] + (b"" if wire.endswith(b"\r\n") else b"\r\n") + b".\r\n")
    code, text = s.getreply()
    s.close()
    check("kill: Postfix tempfails the message (milter_default_action = tempfail)", 400 <= code < 500,
          (code, text))
    check("kill: nothing delivered", not gw.wait_deliveries(mid, 1, timeout=3))
    # While the milter is down, new mail is tempfailed too, never passed through plain.
    mid2 = new_id("kill-down")
    msg2 = compose("01-plain-ascii.eml", mid2, to=[bob])
    r = gw.send(sender, [bob], msg2)
    refused = any(c >= 400 for c, _ in r["rcpt"].values()) or (r["data"] and r["data"][0] >= 400) or "mail" in r
    check("milter down: new mail tempfailed, not passed", refused, r)
    gw.start_milter()
    # The business system's MTA retries its queue: both arrive, encrypted, exactly once.
    for m, original in ((mid, msg), (mid2, msg2)):
        r = gw.send(sender, [bob], original)
        ds = gw.wait_deliveries(m, 1)
        if check(f"after restart: {m} accepted and delivered once, encrypted",
                 reply_ok(r) and len(ds) == 1 and ds[0].encrypted, (r, len(ds))):
            check_decrypts(gw, f"after restart {m}", ds[0], "bob", original, nss=(m == mid2))
    # A stream of messages while the milter is killed and restarted at random moments; the
    # clients retry what was tempfailed once the milter is back, as an MTA's queue would.
    results = []  # (msgid, message, accepted)
    stop = threading.Event()

    def sender_loop(n):
        i = 0
        while not stop.is_set() and i < 150:
            m = f"<k{n}.{i}.{uuid.uuid4().hex[:6]}@e2e.bank.example>"
            body = compose("01-plain-ascii.eml", m, to=[bob])
            try:
                ok = reply_ok(gw.send(sender, [bob], body))
            except (OSError, smtplib.SMTPException):
                ok = False
            results.append((m, body, ok))
            if not ok:
                time.sleep(0.1)  # a tempfailed client backs off
            i += 1

    threads = [threading.Thread(target=sender_loop, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    rng = random.Random(4711)
    kills = 0
    for _ in range(3):
        time.sleep(rng.uniform(0.3, 1.5))
        gw.kill_milter()
        kills += 1
        time.sleep(rng.uniform(0.1, 0.5))
        gw.start_milter()
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join(timeout=300)
    first = [m for m, _, ok in results if ok]
    retried = 0
    for m, body, ok in results:
        if not ok:
            r = gw.send(sender, [bob], body)
            retried += 1
            check(f"retry of {m} accepted", reply_ok(r), r)
    deadline = time.time() + 60
    while time.time() < deadline:
        got = {}
        for d in gw.deliveries(new_only=False):
            got[d.message_id] = got.get(d.message_id, 0) + 1
        if all(got.get(m) for m, _, _ in results):
            break
        time.sleep(0.5)
    time.sleep(1)
    got = {}
    for d in gw.deliveries(new_only=False):
        got[d.message_id] = got.get(d.message_id, 0) + 1
    wrong = [(m, got.get(m, 0)) for m, _, _ in results if got.get(m, 0) != 1]
    print(f"figure: kill loop: {len(results)} messages from 4 clients, {len(first)} accepted at once, "
          f"{retried} tempfailed and retried after recovery, {kills} SIGKILLs")
    check("kill loop: the milter was killed while mail was flowing", len(first) > 0 and retried > 0,
          f"{len(first)} accepted, {retried} tempfailed")
    check("kill loop: every message delivered exactly once (none lost, none duplicated)", not wrong, wrong[:5])
    require_never_plain(gw, lambda a: True)



# ------------------------------------------------------------------------------------------------
# archive: crypto.archive_cert — every encrypted envelope (the one Postfix keeps and each
# split-off Bcc envelope) also decrypts with the archive key; a bad archive refuses to start
# ------------------------------------------------------------------------------------------------

def refused_config(gw, name, archive_path, why):
    """`sealmilter run` with this archive certificate exits 78 naming the key and why."""
    conf = os.path.join(gw.tmp, f"bad-{name}.conf")
    with open(conf, "w") as f:
        f.write(gw.conf_text(extra=f"[crypto]\narchive_cert = {archive_path}\n").replace(
            f"inet:{gw.milter_port}@", f"inet:{gw.milter_port + 1}@"))
    p = subprocess.run([gw.bin, "run", "-c", conf], capture_output=True, timeout=60)
    out = (p.stdout + p.stderr).decode(errors="replace")
    check(f"archive {name}: run refuses to start (exit 78) naming crypto.archive_cert",
          p.returncode == 78 and "crypto.archive_cert" in out and why in out, f"exit {p.returncode}: {out[-400:]}")


def group_archive(gw):
    sender = "statements@bank.example"
    bob, hidden, archive = gw.ids["bob"], gw.ids["hidden"], gw.ids["archive"]
    garbage = os.path.join(gw.tmp, "garbage.pem")
    with open(garbage, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    refused_config(gw, "unparsable file", garbage, garbage)
    refused_config(gw, "missing file", os.path.join(gw.tmp, "absent.pem"), "absent.pem")
    # A certificate that does not chain to lookup.trust_anchors fails the validator like a
    # recipient's would.
    rogue_key, rogue = os.path.join(gw.tmp, "rogue.key"), os.path.join(gw.tmp, "rogue.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", rogue_key, "-out", rogue,
                    "-days", "30", "-subj", "/CN=rogue archive", "-addext", "subjectAltName=email:archive@bank.example",
                    "-addext", "keyUsage=critical,keyEncipherment", "-addext", "extendedKeyUsage=emailProtection"],
                   check=True, capture_output=True)
    refused_config(gw, "untrusted certificate", rogue, "not usable for <archive@bank.example>")

    # The running daemon takes the archive on reload.
    gw.extra_conf = f"[crypto]\narchive_cert = {archive.cert}\n"
    gw.write_conf()
    gw.hup_milter()
    wait_log(gw, "reloaded the configuration", 1)
    check("archive: reloaded with crypto.archive_cert", "reloaded the configuration" in gw.log(), gw.log()[-500:])

    mid = new_id("archive")
    msg = compose("01-plain-ascii.eml", mid, to=[bob.addr])
    r = gw.send(sender, [bob.addr, hidden.addr], msg)  # hidden is a Bcc: an envelope of its own
    check("archive: accepted", reply_ok(r), r)
    ds = by_rcpts(gw.wait_deliveries(mid, 2))
    for who in (bob, hidden):
        d = ds.get((who.addr,))
        if not check(f"archive: one delivery to {who.name}", d is not None, list(ds)):
            continue
        check(f"archive: {who.name}'s envelope names {who.name} and the archive",
              gw.recipients_of(d) == sorted([who.name, "archive"]), gw.recipients_of(d))
        check_decrypts(gw, f"archive ({who.name})", d, who.name, msg, nss=False)
        check_decrypts(gw, f"archive ({who.name}'s copy)", d, "archive", msg, nss=False)
    check("archive: the summary says so", "and the archive)" in gw.log(), gw.log()[-500:])


# ------------------------------------------------------------------------------------------------
# ldap: recipients known only in a real slapd (userCertificate;binary and userSMIMECertificate)
# ------------------------------------------------------------------------------------------------

def ldap_entry(cn, mail, attrs):
    import base64
    e = (f"dn: cn={cn},ou=people,dc=example,dc=test\nobjectClass: inetOrgPerson\ncn: {cn}\nsn: {cn}\n"
         f"mail: {mail}\n")
    for name, value in attrs:
        e += f"{name}:: {base64.b64encode(value).decode()}\n"
    return e + "\n"


def group_ldap(gw):
    sender = "statements@bank.example"
    lena, olaf, nina = gw.ids["lena"], gw.ids["olaf"], gw.ids["nina"]
    der = {i.name: must_out(["openssl", "x509", "-in", i.cert, "-outform", "DER"]) for i in (lena, nina)}
    # OpenLDAP's userSMIMECertificate: a certs-only SignedData (RFC 8551 §3.8).
    bundle = must_out(["openssl", "crl2pkcs7", "-nocrl", "-certfile", olaf.cert, "-outform", "DER"])
    gw.start_slapd(ldap_entry("lena", lena.addr, [("userCertificate;binary", der["lena"])]) +
                   ldap_entry("olaf", olaf.addr, [("userSMIMECertificate", bundle)]) +
                   ldap_entry("nina", nina.addr, [("userCertificate;binary", der["nina"])]) +
                   ldap_entry("nobody", "nobody@ldap.example", []))
    # Only LDAP knows these recipients (the directory serves nobody); StartTLS with the test CA.
    gw.extra_conf = (f"[lookup]\norder = cache,directory,ldap,harvest\n"
                     f"[ldap]\nuri = ldap://127.0.0.1:{gw.ldap_port}\nbase = ou=people,dc=example,dc=test\n"
                     f"ca_file = {gw.slapd_dir}/tls/ca.crt\nstarttls = true\ntimeout_ms = 3000\n")
    gw.write_conf()
    p = subprocess.run([gw.bin, "check-config", "-c", gw.conf], capture_output=True, timeout=60)
    check("ldap: check-config accepts the [ldap] section", p.returncode == 0, p.stdout[-500:] + p.stderr[-500:])
    p = subprocess.run([gw.bin, "lookup", "-c", gw.conf, olaf.addr, "--json"], capture_output=True, timeout=60)
    import json
    try:
        got = json.loads(p.stdout)
        got = got[0] if isinstance(got, list) else got
    except ValueError:
        got = {}
    check("ldap: `sealmilter lookup --json` names ldap as the source", got.get("source") == "ldap",
          p.stdout[-600:] + p.stderr[-300:])
    gw.hup_milter()
    wait_log(gw, "reloaded the configuration", 1)

    for who, template in ((lena, "01-plain-ascii.eml"), (olaf, "05-alternative-text-html.eml")):
        mid = new_id(f"ldap-{who.name}")
        msg = compose(template, mid, to=[who.addr])
        r = gw.send(sender, [who.addr], msg)
        ds = gw.wait_deliveries(mid, 1)
        if check(f"ldap: {who.name} (only in LDAP) accepted and delivered", reply_ok(r) and len(ds) == 1, r):
            check(f"ldap: {who.name} encrypted to the LDAP certificate",
                  ds[0].encrypted and gw.recipients_of(ds[0]) == [who.name], gw.recipients_of(ds[0]))
            # olaf is EC: openssl only (NSS 3.87 cannot do ECDH, as in the basic group)
            check_decrypts(gw, f"ldap {who.name}", ds[0], who.name, msg, nss=who.name != "olaf")
    mid = new_id("ldap-nobody")
    r = gw.send(sender, ["nobody@ldap.example"], compose("01-plain-ascii.eml", mid, to=["nobody@ldap.example"]))
    code, text = r["rcpt"]["nobody@ldap.example"]
    check("ldap: entry without a certificate, require -> 550 5.7.1 at RCPT", code == 550 and text.startswith("5.7.1"),
          (code, text))

    gw.stop_slapd()  # the server stopped mid-run: nina was never looked up, nothing is cached
    mid = new_id("ldap-down")
    r = gw.send(sender, [nina.addr], compose("01-plain-ascii.eml", mid, to=[nina.addr]))
    code, text = r["rcpt"][nina.addr]
    check("ldap: server down, require -> 451 4.7.1 at RCPT (never plain, never 550)",
          code == 451 and text.startswith("4.7.1"), (code, text))
    require_never_plain(gw, lambda a: True)


def must_out(cmd):
    p = subprocess.run(cmd, capture_output=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {p.stderr[-300:]}")
    return p.stdout


# dns: recipients known only in DNS (SMIMEA in a DNSSEC-signed zone served by a real NSD)
# ------------------------------------------------------------------------------------------------

DNS_ENTRIES = {"dana": 3, "dina": 1, "carla": "bogus"}


def lookup_json(gw, addr):
    p = subprocess.run([gw.bin, "lookup", "-c", gw.conf, "--json", addr], capture_output=True, timeout=60)
    try:
        return p.returncode, json.loads(p.stdout.decode())
    except ValueError:
        return p.returncode, {"raw": (p.stdout + p.stderr).decode(errors="replace")[-500:]}


def group_dns(gw):
    sender = "statements@bank.example"
    for name, usage in (("dana", "usage 3 (DANE-EE)"), ("dina", "usage 1 (PKIX-EE)")):
        ident = gw.ids[name]
        rc, out = lookup_json(gw, ident.addr)
        first = out[0] if isinstance(out, list) and out else {}  # one result per address
        check(f"dns: lookup --json {name} answers from dns (exit 0)", rc == 0 and first.get("source") == "dns",
              (rc, out))
        mid = new_id(f"dns-{name}")
        msg = compose("01-plain-ascii.eml", mid, to=[ident.addr])
        r = gw.send(sender, [ident.addr], msg)
        check(f"dns: {name} ({usage}, require) accepted", reply_ok(r), r)
        ds = gw.wait_deliveries(mid, 1)
        if check(f"dns: {name} one delivery, encrypted", len(ds) == 1 and ds[0].encrypted, [d.rcpts for d in ds]):
            check(f"dns: envelope names {name}", gw.recipients_of(ds[0]) == [name], gw.recipients_of(ds[0]))
            check_decrypts(gw, f"dns {name}", ds[0], name, msg, nss=False)
    # A broken signature: the directory says "none", DNS is bogus -> a source failure.
    carla = gw.ids["carla"].addr
    rc, out = lookup_json(gw, carla)
    check("dns: lookup of a bogus record exits 2 (source failure)", rc == 2, (rc, out))
    mid = new_id("dns-bogus")
    r = gw.send(sender, [carla], compose("01-plain-ascii.eml", mid, to=[carla]))
    code, text = r["rcpt"][carla]
    check("dns: bogus record, require -> 451 4.7.1 at RCPT", code == 451 and text.startswith("4.7.1"), (code, text))
    require_never_plain(gw, lambda a: a.endswith("@dane.example"))


def group_sendmail(gw):
    sendmail_group.run(gw, check, compose, new_id, reply_ok, check_decrypts, by_rcpts)


def group_metrics(gw):
    metrics_group.run(gw, check, compose, new_id, reply_ok)


# decrypt: keys.decrypt_inbound — inbound S/MIME to local users arrives decrypted with the trace
# header; to an unknown key unchanged with the reason; a local + external message is split (the
# external copy as sent); a forged trace header from outside is gone. Keys minted here (RSA,
# ECDH) and NSS's Bob.p12 (tests/data/nss-smime, password nss).
# ------------------------------------------------------------------------------------------------

def decrypt_recipients():
    return {"alice": ("alice@bank.example", "rsa"), "erin": ("erin@bank.example", "ec"),
            "bob": ("bob@partner.example", "rsa")}


def nopass_p12(gw, name, key, cert):
    """A PKCS#12 without password (what harvest.keys reads) from a key and its certificate."""
    out = os.path.join(gw.tmp, f"{name}-nopass.p12")
    subprocess.run(["openssl", "pkcs12", "-export", "-inkey", key, "-in", cert, "-passout", "pass:", "-out", out],
                   check=True, capture_output=True)
    return out


def cms_encrypt(gw, msgid, to_header, certs, inner, extra_head=b""):
    """Mail as an outside S/MIME client sends it: `openssl cms -encrypt` with From/To/Subject."""
    src = os.path.join(gw.tmp, "inner.txt")
    with open(src, "wb") as f:
        f.write(inner)
    p = subprocess.run(["openssl", "cms", "-encrypt", "-in", src, "-aes256", "-from", "carol@partner.example",
                        "-to", to_header, "-subject", "Contract", *certs], capture_output=True, check=True)
    # With a Date of its own: Postfix would add one, and the external copy must equal what was sent.
    date = __import__("email.utils").utils.formatdate(localtime=False).encode()
    return (extra_head + b"Message-ID: " + msgid.encode() + b"\nDate: " + date + b"\n" +
            p.stdout.replace(b"\r\n", b"\n"))


def strip_received(message):
    """The message without the Received fields the MTA put on top (LF line ends)."""
    lines = message.replace(b"\r\n", b"\n").split(b"\n")
    while lines and (lines[0].lower().startswith(b"received:") or (lines[0][:1] in (b" ", b"\t"))):
        lines.pop(0)
    return b"\n".join(lines)


def first_field(delivery):
    """The first header field after the MTA's Received fields."""
    return strip_received(delivery.message).split(b"\n", 1)[0].decode(errors="replace")


def group_decrypt(gw):
    alice, erin, bob = gw.ids["alice"], gw.ids["erin"], gw.ids["bob"]
    nss = os.path.join(gw.source, "tests", "data", "nss-smime")
    # NSS's Bob.p12 (legacy RC2/3DES) re-exported without password for harvest.keys.
    bob_pem = os.path.join(gw.tmp, "nss-bob.pem")
    subprocess.run(["openssl", "pkcs12", "-legacy", "-in", os.path.join(nss, "Bob.p12"), "-passin", "pass:nss",
                    "-nodes", "-out", bob_pem], check=True, capture_output=True)
    keys = [nopass_p12(gw, "alice", alice.key, alice.cert), nopass_p12(gw, "erin", erin.key, erin.cert),
            nopass_p12(gw, "nss-bob", bob_pem, bob_pem)]
    gw.extra_conf = (f"[keys]\ndecrypt_inbound = true\ndecrypt_domains = bank.example, example.com\n"
                     f"[harvest]\nkeys = {','.join(keys)}\n")
    gw.write_conf()
    gw.hup_milter()
    wait_log(gw, "reloaded the configuration", 1)
    check("decrypt: reloaded with keys.decrypt_inbound and 3 keys",
          "reloaded the configuration" in gw.log() and "inbound decryption: 3 key(s)" in gw.log(), gw.log()[-800:])
    sender = "carol@partner.example"
    inner = b"Content-Type: text/plain; charset=utf-8\n\nThe signed contract is attached.\n"

    # RSA and ECDH: the local user's copy arrives decrypted, the trace header first.
    for ident in (alice, erin):
        mid = new_id(f"decrypt-{ident.name}")
        msg = cms_encrypt(gw, mid, ident.addr, [ident.cert], inner)
        r = gw.send(sender, [ident.addr], msg)
        check(f"decrypt {ident.name}: accepted", reply_ok(r), r)
        ds = gw.wait_deliveries(mid, 1)
        if not check(f"decrypt {ident.name}: one delivery", len(ds) == 1, [d.rcpts for d in ds]):
            continue
        d = ds[0]
        check(f"decrypt {ident.name}: trace header first, naming the key",
              first_field(d) == f"X-Sealmilter-Decryption: result=decrypted; key={ident.fingerprint()}", first_field(d))
        check(f"decrypt {ident.name}: delivered plain (text/plain), not S/MIME", not d.encrypted and
              "text/plain" in (d.header("Content-Type") or ""), d.header("Content-Type"))
        check(f"decrypt {ident.name}: body is the original", sink_body_equal(d, inner), d.body[:200])
        check(f"decrypt {ident.name}: outer headers kept", d.header("Subject") == "Contract" and
              d.header("Message-ID") == mid, (d.header("Subject"), d.header("Message-ID")))

    # NSS corpus: Alice's message to Bob, opened with Bob.p12's key.
    with open(os.path.join(nss, "alice.env.eml"), "rb") as f:
        nss_msg = f.read().replace(b"\r\n", b"\n")
    mid = new_id("decrypt-nss")
    nss_msg = b"Message-ID: " + mid.encode() + b"\n" + nss_msg
    r = gw.send(sender, ["bob@example.com"], nss_msg)
    check("decrypt nss: accepted", reply_ok(r), r)
    ds = gw.wait_deliveries(mid, 1)
    if check("decrypt nss: one delivery", len(ds) == 1, [d.rcpts for d in ds]):
        with open(os.path.join(nss, "alice.mime"), "rb") as f:
            mime = f.read()
        check("decrypt nss: trace header first",
              first_field(ds[0]).startswith("X-Sealmilter-Decryption: result=decrypted; key="), first_field(ds[0]))
        check("decrypt nss: body is alice.mime's", sink_body_equal(ds[0], mime), ds[0].body[:200])

    # A key the store does not have: delivered unchanged, the header says why, the log too.
    mid = new_id("decrypt-nokey")
    msg = cms_encrypt(gw, mid, alice.addr, [bob.cert], inner)
    r = gw.send(sender, [alice.addr], msg)
    check("no key: accepted", reply_ok(r), r)
    ds = gw.wait_deliveries(mid, 1)
    if check("no key: one delivery", len(ds) == 1, [d.rcpts for d in ds]):
        d = ds[0]
        check("no key: header says why", first_field(d) == "X-Sealmilter-Decryption: result=failed; reason=no-key",
              first_field(d))
        rest = strip_received(strip_received(d.message).split(b"\n", 1)[1])
        check("no key: otherwise byte-equal to what was sent", rest.rstrip(b"\n") == msg.rstrip(b"\n"), rest[:300])
        check("no key: the log names the envelope's identifiers",
              "not decrypted (no-key): no key in the store matches: issuer=" in gw.log(), gw.log()[-600:])

    # One message to a local and an external recipient: split, the external copy as sent.
    mid = new_id("decrypt-split")
    msg = cms_encrypt(gw, mid, f"{alice.addr}, {bob.addr}", [alice.cert, bob.cert], inner)
    r = gw.send(sender, [alice.addr, bob.addr], msg)
    check("split: accepted", reply_ok(r), r)
    ds = by_rcpts(gw.wait_deliveries(mid, 2))
    local, external = ds.get((alice.addr,)), ds.get((bob.addr,))
    if check("split: one delivery each", local is not None and external is not None, list(ds)):
        check("split: the local copy decrypted",
              first_field(local).startswith("X-Sealmilter-Decryption: result=decrypted") and
              sink_body_equal(local, inner), first_field(local))
        got_ext = strip_received(external.message).rstrip(b"\n")
        if got_ext != msg.rstrip(b"\n") and os.environ.get("SEALMILTER_E2E_DEBUG"):
            import difflib
            print("\n".join(difflib.unified_diff(msg.decode().split("\n"), got_ext.decode().split("\n"), lineterm="")))
        check("split: the external copy byte-equal to what was sent", got_ext == msg.rstrip(b"\n"), got_ext[:300])
        ok, got = gw.openssl_decrypt(external, bob)
        check("split: the external copy still opens for bob", ok and got.replace(b"\r\n", b"\n") == inner, got[:200])

    # Forged trace headers from outside are gone (plain and encrypted mail).
    forged = b"X-Sealmilter-Decryption: result=decrypted; key=00; signature=valid; signer=ceo@bank.example\n"
    mid = new_id("decrypt-forged-plain")
    msg = forged + compose("01-plain-ascii.eml", mid, to=[alice.addr])
    r = gw.send(sender, [alice.addr], msg)
    ds = gw.wait_deliveries(mid, 1)
    if check("forged plain: one delivery", reply_ok(r) and len(ds) == 1, r):
        check("forged plain: the forged header is gone", not ds[0].headers("X-Sealmilter-Decryption"),
              ds[0].headers("X-Sealmilter-Decryption"))
        check("forged plain: the body unchanged", sink_body_equal(ds[0], msg), ds[0].body[:200])
    mid = new_id("decrypt-forged-enc")
    msg = cms_encrypt(gw, mid, alice.addr, [alice.cert], inner, extra_head=forged)
    r = gw.send(sender, [alice.addr], msg)
    ds = gw.wait_deliveries(mid, 1)
    if check("forged encrypted: one delivery", reply_ok(r) and len(ds) == 1, r):
        hs = ds[0].headers("X-Sealmilter-Decryption")
        check("forged encrypted: only our trace header", len(hs) == 1 and f"key={alice.fingerprint()}" in hs[0], hs)


GROUPS = {
    "basic": (basic_recipients, ["bob", "carol", "dave", "erin", "frank"], BASIC_POLICY, "", group_basic),
    "directory-down": (lambda: {"bob": ("bob@partner.example", "rsa"), "frank": ("frank@secure.example", "rsa")},
                       ["bob", "frank"], "* require\n", "cache_min_ttl", group_directory_down),
    "large": (lambda: {"bob": ("bob@partner.example", "rsa")}, ["bob"], "* require\n", "", group_large),
    "concurrency": (lambda: {"bob": ("bob@partner.example", "rsa"), "carol": ("carol@partner.example", "rsa")},
                    ["bob", "carol"], "* opportunistic\n", "", group_concurrency),
    "kill": (lambda: {"bob": ("bob@partner.example", "rsa")}, ["bob"], "* require\n", "", group_kill),
    "archive": (lambda: {"bob": ("bob@partner.example", "rsa"), "hidden": ("hidden@partner.example", "rsa"),
                         "archive": ("archive@bank.example", "rsa")},
                ["bob", "hidden"], "* opportunistic\n", "", group_archive),
    "ldap": (lambda: {"lena": ("lena@ldap.example", "rsa"), "olaf": ("olaf@ldap.example", "ec"),
                      "nina": ("nina@ldap.example", "rsa")},
             [], "* require\n", "", group_ldap),
    "dns": (lambda: {"dana": ("dana@dane.example", "rsa"), "dina": ("dina@dane.example", "ec"),
                     "carla": ("carla@dane.example", "rsa")},
            [], "@dane.example require\n* opportunistic\n", "dns", group_dns),
    # the basics through a private Sendmail 8.17 (tests/e2e/sendmail_group.py)
    "sendmail": (basic_recipients, ["bob", "dave", "frank"], BASIC_POLICY, "", group_sendmail),
    # metrics, the decision journal, the report, docs/logging.md (tests/e2e/metrics_group.py)
    "metrics": (metrics_group.recipients, metrics_group.PUBLISHED, metrics_group.POLICY, "", group_metrics),
    "decrypt": (decrypt_recipients, ["bob"], "* opportunistic\n", "", group_decrypt),
    # crypto.sign = always: To/Cc and Bcc signed, sign only, 8bit past a hop without 8BITMIME
    "sign": (sign_group.recipients, sign_group.PUBLISHED, sign_group.POLICY, "", lambda gw: sign_group.run(
        gw, check, new_id, reply_ok, DATA)),
    # certificates for anyone: issue, notice, pickup in headless Chromium (tests/e2e/issue_group.py)
    "issue": (issue_group.recipients, issue_group.PUBLISHED, issue_group.POLICY, "", lambda gw: issue_group.run(
        gw, check, new_id, reply_ok)),
}


def main():
    global DATA
    ap = argparse.ArgumentParser()
    ap.add_argument("--sealmilter", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--group", required=True, choices=sorted(GROUPS))
    a = ap.parse_args()
    DATA = os.path.join(a.source, "tests", "data", "messages")
    for tool in ("postfix", "smtp-sink", "openssl", "cmsutil", "nginx", "curl") + (("slapd",) if a.group == "ldap" else ()):
        if subprocess.run(["sh", "-c", f"command -v {tool} || test -x /usr/sbin/{tool}"],
                          capture_output=True).returncode != 0:
            print(f"e2e-{a.group}: missing tool {tool} (scripts/deps.sh installs it)")
            return 1
    recipients, published, policy, extra, fn = GROUPS[a.group]
    extra_conf = "[cache]\nmin_ttl = 0\nmax_ttl = 1\n" if extra == "cache_min_ttl" else ""
    postfix_extra = ""
    if a.group == "large":
        extra_conf = "[milter]\nmta_size_limit = 52428800\n"
        postfix_extra = "message_size_limit = 52428800\n"
    cls = sendmail_group.SendmailGateway if a.group == "sendmail" else Gateway
    gw = cls(a.sealmilter, a.source, recipients(), published, policy, extra_conf=extra_conf,
             postfix_extra=postfix_extra, dns_entries=DNS_ENTRIES if extra == "dns" else None)
    try:
        if a.group == "metrics":
            metrics_group.prepare(gw)
        if a.group == "sign":
            sign_group.prepare(gw)
        if a.group == "issue":
            issue_group.prepare(gw)
        gw.start()
        fn(gw)
    except Exception as e:  # a harness failure is a test failure, with the logs
        import traceback
        traceback.print_exc()
        FAILED.append(f"harness: {e}")
    finally:
        if FAILED:
            print("--- milter log (tail) ---\n" + gw.log()[-3000:])
            print("--- postfix maillog (tail) ---\n" + gw.maillog()[-3000:])
        for f in gw.stop():
            FAILED.append("sealmilter: " + f)
    return RESULTS.summary(f"e2e-{a.group}")


if __name__ == "__main__":
    sys.exit(main())
