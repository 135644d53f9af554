"""e2e group `sign` (issue 12, docs/signing.md): crypto.sign = always through the real Postfix.

The sender alice@bank.example has an active key in the key store (keys.dir, imported with
`sealmilter keys import` before the daemon starts). One message To bob (certificate in the
directory), Cc plain@ (no certificate: a signed message, sign only), Bcc hidden@ (certificate:
its own envelope): every delivery must carry a valid signature by alice, verified with
`openssl cms -verify` against the test CA (after decryption for the encrypted ones) and with NSS
`cmsutil`. The next hop (smtp-sink -8) does not announce 8BITMIME, so Postfix downgrades 8bit
mail to 7bit on the way out: a message with an 8bit part must still verify (we re-encode before
signing). An 8bit message to plain@ alone is the sign-only case of that.
"""

import base64
import os
import re
import subprocess

PUBLISHED = ["bob", "hidden"]
POLICY = "* opportunistic\n"


def recipients():
    return {"alice": ("alice@bank.example", "rsa"), "bob": ("bob@partner.example", "rsa"),
            "hidden": ("hidden@partner.example", "rsa"), "plain": ("plain@partner.example", "rsa")}


def prepare(gw):
    """Before start: a key store holding alice's key, crypto.sign = always, a next hop without 8BITMIME."""
    master = os.path.join(gw.tmp, "master.key")
    keys_dir = os.path.join(gw.tmp, "keys")
    gw.extra_conf = (f"[keys]\ndir = {keys_dir}\nmaster_key_file = {master}\n"
                     f"[crypto]\nsign = always\n")
    gw.write_conf()
    subprocess.run([gw.bin, "keys", "new-master-key", master], check=True, capture_output=True)
    r = subprocess.run([gw.bin, "keys", "-c", gw.conf, "import", gw.ids["alice"].p12, "--pass-file",
                        os.path.join(gw.pki_dir, "p12pass")], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("keys import: " + r.stderr)
    gw.sink_extra = ["-8"]  # the next hop does not announce 8BITMIME: Postfix downgrades 8bit to 7bit


def _openssl_verify(gw, data):
    r = subprocess.run(["openssl", "cms", "-verify", "-CAfile", gw.ca, "-purpose", "smimesign"], input=data,
                       capture_output=True, timeout=60)
    return r.returncode == 0, r.stdout, r.stderr.decode(errors="replace")[-300:]


def _nss_verify(gw, data):
    """cmsutil -D over the detached signature of a CRLF multipart/signed entity."""
    db = os.path.join(gw.tmp, "nss-sign")
    if not os.path.isdir(db):
        os.mkdir(db)
        subprocess.run(["certutil", "-N", "-d", "sql:" + db, "--empty-password"], check=True, capture_output=True)
        subprocess.run(["certutil", "-A", "-d", "sql:" + db, "-n", "ca", "-t", "C,C,C", "-i", gw.ca], check=True,
                       capture_output=True)
    head, body = data.split(b"\r\n\r\n", 1)
    b = re.search(rb'boundary="([^"]+)"', head).group(1)
    start = body.index(b"--" + b + b"\r\n") + len(b) + 4
    end = body.index(b"\r\n--" + b + b"\r\n", start)
    sig = body[end + len(b) + 6:].split(b"\r\n\r\n", 1)[1].split(b"--" + b + b"--")[0]
    cfile, sfile = os.path.join(gw.tmp, "nss.content"), os.path.join(gw.tmp, "nss.sig")
    with open(cfile, "wb") as f:
        f.write(body[start:end])
    with open(sfile, "wb") as f:
        f.write(base64.b64decode(sig))
    r = subprocess.run(["cmsutil", "-D", "-i", sfile, "-c", cfile, "-d", "sql:" + db, "-u", "4", "-o", "/dev/null"],
                       capture_output=True, timeout=60)
    return r.returncode == 0, (r.stdout + r.stderr).decode(errors="replace")[-300:]


def _signed_entity(gw, d, ident_name):
    """The signed entity (CRLF) of a delivery: the message itself, or what the envelope holds."""
    msg = d.message.replace(b"\n", b"\r\n")
    if not d.encrypted:
        return msg
    ident = gw.ids[ident_name]
    r = subprocess.run(["openssl", "cms", "-decrypt", "-recip", ident.cert, "-inkey", ident.key, "-binary"],
                       input=msg, capture_output=True, timeout=60)
    return r.stdout if r.returncode == 0 else b""


def run(gw, check, new_id, reply_ok, data_dir):
    alice = "alice@bank.example"
    mid = new_id("sign")
    msg = (f"From: Alice <{alice}>\nTo: bob@partner.example\nCc: plain@partner.example\nSubject: Statement\n"
           f"Message-ID: {mid}\nMIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n"
           "Your statement for November is ready.\n").encode()
    r = gw.send(alice, ["bob@partner.example", "plain@partner.example", "hidden@partner.example"], msg)
    check("sign: accepted", reply_ok(r), r)
    ds = gw.wait_deliveries(mid, 3)
    check("sign: three deliveries (To+Cc split by encryption, Bcc its own)", len(ds) == 3, [d.rcpts for d in ds])
    for d in ds:
        who = d.rcpts[0] if d.rcpts else "?"
        name = who.split("@")[0]
        entity = _signed_entity(gw, d, name)
        check(f"sign {who}: encrypted iff a certificate", d.encrypted == (name in ("bob", "hidden")), d.header("Content-Type"))
        check(f"sign {who}: the entity is multipart/signed",
              b"multipart/signed" in entity.split(b"\r\n\r\n", 1)[0].lower(), entity[:300])
        ok, content, err = _openssl_verify(gw, entity)
        check(f"sign {who}: openssl cms -verify against the CA", ok, err)
        check(f"sign {who}: verified content is the original", b"Your statement for November is ready." in content,
              content[:200])
        is_signed = b"multipart/signed" in entity.split(b"\r\n\r\n", 1)[0].lower()
        nss_ok, nss_err = _nss_verify(gw, entity) if is_signed else (False, "not multipart/signed")
        check(f"sign {who}: NSS cmsutil verifies", nss_ok, nss_err)
    check("sign: the log names the signer", f"signed by <{alice}> (sender" in gw.log(), gw.log()[-1500:])
    import metrics_group  # docs/logging.md's patterns, read the way the metrics group reads them
    patterns = [p for p, _e, _must, heading in metrics_group.documented_patterns(gw.source) if heading == "Signing"]
    lines = [ln for ln in gw.log().splitlines() if ": signed by <" in ln]
    check("sign: every signing line matches docs/logging.md", lines and patterns and
          all(any(p.match(ln) for p in patterns) for ln in lines), (lines, [p.pattern for p in patterns]))

    # 8bit through a next hop without 8BITMIME: Postfix downgrades what is 8bit; ours is 7-bit already.
    with open(os.path.join(data_dir, "02-utf8-8bit.eml"), "rb") as f:
        raw = f.read()
    mid8 = new_id("sign-8bit")
    raw = re.sub(rb"(?m)^Message-ID:.*\n", b"", raw, count=1)
    raw = re.sub(rb"(?m)^From:.*\n", f"From: Alice <{alice}>\nMessage-ID: {mid8}\n".encode(), raw, count=1)
    r = gw.send(alice, ["plain@partner.example"], raw)
    check("sign 8bit: accepted", reply_ok(r), r)
    ds = gw.wait_deliveries(mid8, 1)
    if check("sign 8bit: one delivery", len(ds) == 1, [d.rcpts for d in ds]):
        entity = ds[0].message.replace(b"\n", b"\r\n")
        check("sign 8bit: delivered 7-bit", all(c < 0x80 for c in ds[0].body), "8-bit byte in the body")
        ok, content, err = _openssl_verify(gw, entity)
        check("sign 8bit: signature verifies after the 8BITMIME-less hop (openssl)", ok, err)
        nss_ok, nss_err = _nss_verify(gw, entity)
        check("sign 8bit: NSS cmsutil verifies", nss_ok, nss_err)
