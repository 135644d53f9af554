"""e2e group `issue` (issue 13, docs/issuing.md): a recipient with no certificate reads the first
message in their own mail client after picking the key up in a real browser.

The gateway has a key store, a CA made by `sealmilter ca init`, `@customers.example issue` in the
policy, issue.publish to the nginx directory, and the pickup service on loopback (HTTPS with a
throw-away certificate). Through the real Postfix:
  1. a message to new@customers.example (no certificate anywhere) is accepted, encrypted to a
     certificate our CA issued for that address, and a separate pickup notice (signed, never
     encrypted) arrives at the sink;
  2. headless Chromium (Debian chromium + chromium-driver, driven by python3-selenium) opens the
     link in the notice, asks for a code, the code is read from the code mail at the sink, typed
     in with a password, and the PKCS#12 is downloaded from the key-ready page's one-time link; a screenshot of every page is kept in
     <build>/tests/e2e/artifacts/issue/;
  3. that PKCS#12 decrypts the first message with `openssl cms` and, imported with `pk12util`,
     with NSS `cmsutil`; it holds the key, the certificate and the CA;
  4. the next message to that address is encrypted to the same certificate and sends no notice;
  5. a second new address: the daemon is restarted between notice and pickup, the pickup works;
  6. the recipient's own certificate appears in the directory: later mail goes to it, the issued
     key is retired (`issued list`) and still opens the first message (`sealmilter decrypt`).
Runs under Debian's /usr/bin/python3 (python3-selenium is a Debian package).
"""

import json
import os
import re
import shutil
import struct
import subprocess
import time
import zlib

PUBLISHED = []
POLICY = "@customers.example issue\n* opportunistic\n"
NOTICE_FROM = "secure-mail@bank.example"
PASSWORD = "Correct horse 42"
ARTIFACTS = os.path.abspath(os.path.join("artifacts", "issue"))


def recipients():
    # "own": the certificate new@customers.example later gets from elsewhere (published in step 6);
    # "notice": the key of issue.notice_from in the key store, so notices and code mails are signed.
    return {"alice": ("alice@bank.example", "rsa"), "own": ("new@customers.example", "rsa"),
            "notice": (NOTICE_FROM, "rsa")}


def _logo(path):
    """A 96x32 PNG in the bank's blue (zlib + struct: no imaging library needed)."""
    width, height = 96, 32
    raw = b"".join(b"\x00" + bytes((0x0b, 0x3d, 0x6e)) * width for _ in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def prepare(gw):
    """Before start: key store, CA, issue policy, pickup service with a TLS certificate."""
    master = os.path.join(gw.tmp, "master.key")
    keys_dir = os.path.join(gw.tmp, "keys")
    tls_key, tls_cert = os.path.join(gw.tmp, "pickup.key"), os.path.join(gw.tmp, "pickup.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", tls_key, "-out",
                    tls_cert, "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    os.chmod(tls_key, 0o600)
    logo = os.path.join(gw.tmp, "logo.png")
    _logo(logo)
    gw.pickup_port = __import__("gateway").free_port()
    gw.extra_conf = (f"[keys]\ndir = {keys_dir}\nmaster_key_file = {master}\n"
                     f"[issue]\norg_name = Example Bank\nnotice_from = {NOTICE_FROM}\nnotice_interval = 3600\n"
                     f"logo_file = {logo}\n"
                     f"[pickup]\nlisten = 127.0.0.1:{gw.pickup_port}\nurl = https://127.0.0.1:{gw.pickup_port}\n"
                     f"cert_file = {tls_cert}\nkey_file = {tls_key}\n"
                     f"[cache]\nnegative_ttl = 0\n"
                     # issue.publish: every issued certificate is POSTed to the directory (nginx 204)
                     f"[directory]\npublish_url = https://127.0.0.1:{gw.http_port}/publish/{{email}}\n"
                     f"[issue]\npublish = true\n")
    gw.write_conf()
    # The order with the issued step (conf_text's default names none).
    gw.write_conf(gw.conf_text().replace("order = cache,directory", "order = issued,cache,directory"))
    subprocess.run([gw.bin, "keys", "new-master-key", master], check=True, capture_output=True)
    r = subprocess.run([gw.bin, "keys", "-c", gw.conf, "import", gw.ids["notice"].p12, "--pass-file",
                        os.path.join(gw.pki_dir, "p12pass")], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("keys import: " + r.stderr)
    r = subprocess.run([gw.bin, "ca", "init", "-c", gw.conf], capture_output=True, text=True)
    if r.returncode != 0 or "BEGIN CERTIFICATE" not in r.stdout:
        raise RuntimeError("ca init: " + r.stderr)
    gw.issuing_ca = os.path.join(gw.tmp, "issuing-ca.pem")
    with open(gw.issuing_ca, "w") as f:
        f.write(r.stdout)


# ---- mail at the sink ---------------------------------------------------------------------------

def _text_of(d):
    """Every text/plain and text/html part of a delivery, decoded, joined."""
    out = []
    for part in d.parsed.walk():
        if part.get_content_maintype() == "text":
            payload = part.get_payload(decode=True) or b""
            out.append(payload.decode(part.get_content_charset() or "utf-8", errors="replace"))
    return "\n".join(out)


def _plain_of(d):
    for part in d.parsed.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True) or b""
            return payload.decode(part.get_content_charset() or "utf-8", errors="replace")
    return ""


def _from_gateway(gw, to, seen, timeout=60):
    """New deliveries from issue.notice_from to `to` not in `seen` (waits for at least one)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = [d for d in gw.deliveries(new_only=False)
               if d.path not in seen and d.mail_from == NOTICE_FROM and to in d.rcpts]
        if got:
            return got
        time.sleep(0.2)
    return []


def _link_of(gw, d):
    m = re.search(r"https://127\.0\.0\.1:%d/p/[A-Za-z0-9_-]{43}" % gw.pickup_port, _text_of(d))
    return m.group(0) if m else None


def _code_of(d):
    """The code: the one token of >= 8 letters or digits directly after the word "code"."""
    m = re.search(r"\bcode\b\W{0,3}([A-Za-z0-9]{8,})\b", _plain_of(d), re.IGNORECASE)
    return m.group(1) if m else None


def _signed_by_notice_key(gw, d):
    """openssl cms -verify of a multipart/signed gateway mail against the test CA."""
    if "multipart/signed" not in (d.header("Content-Type") or "").lower():
        return False, d.header("Content-Type")
    r = subprocess.run(["openssl", "cms", "-verify", "-CAfile", gw.ca, "-purpose", "smimesign"],
                       input=d.message.replace(b"\n", b"\r\n"), capture_output=True, timeout=60)
    return r.returncode == 0, r.stderr.decode(errors="replace")[-300:]


def _nginx_log(gw):
    try:
        with open(os.path.join(gw.tmp, "nginx", "logs", "access.log")) as f:
            return f.read()
    except OSError:
        return ""


def _wait_for(cond, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.2)
    return cond()


def _serials(der):
    p = subprocess.run(["openssl", "cms", "-cmsout", "-print", "-inform", "DER"], input=der, capture_output=True,
                       timeout=60)
    text = p.stdout.decode(errors="replace")
    return sorted(int(m, 16) if m.startswith("0x") else int(m)
                  for m in re.findall(r"serialNumber:\s*(0x[0-9A-Fa-f]+|\d+)", text))


def _serial_of_pem(pem_path):
    out = subprocess.run(["openssl", "x509", "-in", pem_path, "-noout", "-serial"], capture_output=True, text=True)
    return int(out.stdout.strip().split("=", 1)[1], 16)


# ---- the browser --------------------------------------------------------------------------------

class Browser:
    """Headless Chromium through chromedriver; downloads land in `downloads`."""

    def __init__(self, downloads):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        o = webdriver.ChromeOptions()
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--window-size=1100,1000", "--lang=en-GB"):
            o.add_argument(a)
        o.binary_location = "/usr/bin/chromium"
        o.accept_insecure_certs = True  # the pickup service's throw-away certificate
        o.add_experimental_option("prefs", {"download.default_directory": downloads,
                                            "download.prompt_for_download": False})
        self.downloads = downloads
        self.driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
        self.driver.set_page_load_timeout(60)
        self.driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": downloads})
        self.shots = 0

    def shot(self, name):
        os.makedirs(ARTIFACTS, exist_ok=True)
        self.shots += 1
        path = os.path.join(ARTIFACTS, f"{self.shots:02d}-{name}.png")
        self.driver.save_screenshot(path)
        return path

    def form(self, action_suffix):
        from selenium.webdriver.common.by import By
        for f in self.driver.find_elements(By.TAG_NAME, "form"):
            if (f.get_attribute("action") or "").endswith(action_suffix):
                return f
        return None

    def submit(self, form):
        from selenium.webdriver.common.by import By
        form.find_element(By.CSS_SELECTOR, "button[type=submit],input[type=submit]").click()

    def wait_download(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            done = [n for n in os.listdir(self.downloads) if n.endswith(".p12")]
            if done:
                return os.path.join(self.downloads, done[0])
            time.sleep(0.2)
        return None

    def quit(self):
        self.driver.quit()


def _pickup(gw, check, browser, link, address, seen, tag):
    """Link -> send me a code -> code from the sink -> code + password -> PKCS#12 file."""
    from selenium.webdriver.common.by import By
    browser.driver.get(link)
    browser.shot(f"{tag}-link")
    check(f"{tag}: the link opens the pickup page (HTTPS)", browser.driver.current_url.startswith("https://"),
          browser.driver.current_url)
    page = browser.driver.page_source
    check(f"{tag}: the page names the organisation", "Example Bank" in page, page[:400])
    check(f"{tag}: opening the link sent no code mail", not _from_gateway(gw, address, seen, timeout=2))
    f = browser.form("/code")
    if not check(f"{tag}: the page has a 'send me a code' form", f is not None, page[:800]):
        return None
    browser.submit(f)
    browser.shot(f"{tag}-code-sent")
    mails = _from_gateway(gw, address, seen)
    if not check(f"{tag}: a code mail arrived", len(mails) == 1, [m.path for m in mails]):
        return None
    code_mail = mails[0]
    seen.add(code_mail.path)
    check(f"{tag}: the code mail is not encrypted", not code_mail.encrypted, code_mail.header("Content-Type"))
    ok, why = _signed_by_notice_key(gw, code_mail)
    check(f"{tag}: the code mail is signed by issue.notice_from's key", ok, why)
    code = _code_of(code_mail)
    if not check(f"{tag}: the code mail carries a code after the word 'code'", code is not None,
                 _plain_of(code_mail)[:400]):
        return None
    f = browser.form("/download")
    if not check(f"{tag}: the code page has the download form", f is not None, browser.driver.page_source[:800]):
        return None
    texts = [i for i in f.find_elements(By.CSS_SELECTOR, "input") if (i.get_attribute("type") or "text") == "text"]
    passwords = f.find_elements(By.CSS_SELECTOR, "input[type=password]")
    if not check(f"{tag}: a code field and two password fields", len(texts) >= 1 and len(passwords) == 2,
                 (len(texts), len(passwords))):
        return None
    texts[0].send_keys(code)
    for p in passwords:
        p.send_keys(PASSWORD)
    browser.shot(f"{tag}-code-entered")
    browser.submit(f)
    browser.shot(f"{tag}-key-ready")
    # The key-ready page offers the file behind a one-time link (/d/<id>).
    links = [a for a in browser.driver.find_elements(By.TAG_NAME, "a") if "/d/" in (a.get_attribute("href") or "")]
    if not check(f"{tag}: the key-ready page has the download link", len(links) == 1,
                 browser.driver.page_source[:800]):
        return None
    links[0].click()
    p12 = browser.wait_download()
    check(f"{tag}: the browser downloaded a PKCS#12", p12 is not None, os.listdir(browser.downloads))
    return p12


def _p12_parts(gw, p12, tag, check):
    """Key and certificate PEM files out of the downloaded PKCS#12 (with the chosen password)."""
    pem = subprocess.run(["openssl", "pkcs12", "-in", p12, "-nodes", "-passin", f"pass:{PASSWORD}"],
                         capture_output=True, text=True, timeout=60)
    if not check(f"{tag}: the PKCS#12 opens with the chosen password", pem.returncode == 0, pem.stderr[-300:]):
        return None, None
    info = subprocess.run(["openssl", "pkcs12", "-in", p12, "-info", "-noout", "-passin", f"pass:{PASSWORD}"],
                          capture_output=True, text=True, timeout=60)
    check(f"{tag}: the PKCS#12 is AES-256-CBC with PBKDF2", "AES-256-CBC" in info.stderr and "PBKDF2" in info.stderr,
          info.stderr[-400:])
    certs = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", pem.stdout, re.S)
    keys = re.findall(r"-----BEGIN PRIVATE KEY-----.*?-----END PRIVATE KEY-----", pem.stdout, re.S)
    check(f"{tag}: the PKCS#12 holds one key and the certificate with the CA", len(keys) == 1 and len(certs) >= 2,
          (len(keys), len(certs)))
    base = p12[:-4]
    with open(base + ".key", "w") as f:
        f.write(keys[0] + "\n" if keys else "")
    leaf = None
    for c in certs:
        path = base + f".{len(c)}.pem"
        with open(path, "w") as f:
            f.write(c + "\n")
        sub = subprocess.run(["openssl", "x509", "-in", path, "-noout", "-ext", "basicConstraints"],
                             capture_output=True, text=True)
        if "CA:TRUE" not in sub.stdout:
            leaf = path
    return base + ".key", leaf


def _nss_decrypts(gw, p12, delivery, tag):
    db = os.path.join(gw.tmp, f"nss-{tag}")
    os.makedirs(db, exist_ok=True)
    subprocess.run(["certutil", "-N", "-d", f"sql:{db}", "--empty-password"], check=True, capture_output=True)
    pw = os.path.join(gw.tmp, f"p12pw-{tag}")
    with open(pw, "w") as f:
        f.write(PASSWORD + "\n")
    r = subprocess.run(["pk12util", "-i", p12, "-d", f"sql:{db}", "-w", pw, "-K", ""], capture_output=True, text=True)
    if r.returncode != 0:
        return False, b"pk12util: " + (r.stdout + r.stderr).encode()
    der = os.path.join(gw.tmp, f"{tag}.der")
    with open(der, "wb") as f:
        f.write(delivery.der())
    out = subprocess.run(["cmsutil", "-D", "-d", f"sql:{db}", "-i", der], capture_output=True, timeout=60)
    return out.returncode == 0, out.stdout if out.returncode == 0 else out.stderr


def _send(gw, new_id, to, label, body):
    mid = new_id(label)
    msg = (f"From: Statements <alice@bank.example>\nTo: {to}\nSubject: Your statement\nMessage-ID: {mid}\n"
           f"MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n{body}\n").encode()
    return mid, gw.send("alice@bank.example", [to], msg)


def _issued_list(gw):
    r = subprocess.run([gw.bin, "issued", "list", "-c", gw.conf, "--json"], capture_output=True, text=True)
    try:
        return json.loads(r.stdout)
    except ValueError:
        return []


def run(gw, check, new_id, reply_ok):
    new = "new@customers.example"
    seen = set()
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    os.makedirs(ARTIFACTS)

    # 1. the first message to an address with no certificate anywhere
    mid, r = _send(gw, new_id, new, "issue-1", "Your statement for November is ready.")
    check("issue: the first message is accepted", reply_ok(r), r)
    ds = gw.wait_deliveries(mid, 1)
    if not check("issue: the first message is delivered once", len(ds) == 1, [d.rcpts for d in ds]):
        return
    first = ds[0]
    seen.add(first.path)
    check("issue: the first message is encrypted", first.encrypted, first.header("Content-Type"))
    notices = _from_gateway(gw, new, seen)
    if not check("issue: one pickup notice arrives", len(notices) == 1, [n.path for n in notices]):
        return
    notice = notices[0]
    seen.add(notice.path)
    check("issue: the notice is not encrypted", not notice.encrypted, notice.header("Content-Type"))
    ok, why = _signed_by_notice_key(gw, notice)
    check("issue: the notice is signed by issue.notice_from's key (verifies against the CA)", ok, why)
    check("issue: the notice carries the logo", any(p.get_content_type() == "image/png" for p in notice.parsed.walk()),
          [p.get_content_type() for p in notice.parsed.walk()])
    check("issue: the notice has a text and an HTML part",
          {"text/plain", "text/html"} <= {p.get_content_type() for p in notice.parsed.walk()},
          [p.get_content_type() for p in notice.parsed.walk()])
    link = _link_of(gw, notice)
    check("issue: the notice carries the pickup link", link is not None, _text_of(notice)[:600])
    published = _wait_for(lambda: "POST /publish/new%40customers.example" in _nginx_log(gw))
    check("issue: issue.publish POSTed the issued certificate to directory.publish_url", published,
          _nginx_log(gw)[-600:])
    records = _issued_list(gw)
    rec = next((x for x in records if x.get("address") == new), None)
    check("issue: `issued list` shows the address escrowed", rec is not None and rec.get("state") == "escrowed",
          records)
    issued_pem = os.path.join(gw.tmp, "issued-new.pem")
    if link is None:
        return

    downloads = os.path.join(gw.tmp, "downloads")
    os.makedirs(downloads, exist_ok=True)
    browser = Browser(downloads)
    try:
        # 2. the pickup in the browser
        p12 = _pickup(gw, check, browser, link, new, seen, "pickup")
        if p12 is None:
            return
        key, cert = _p12_parts(gw, p12, "pickup", check)
        # 3. the downloaded key opens the first message (openssl and NSS)
        if key and cert:
            with open(issued_pem, "w") as f:
                f.write(open(cert).read())
            dec = subprocess.run(["openssl", "cms", "-decrypt", "-binary", "-in", first.path, "-inkey", key,
                                  "-recip", cert], capture_output=True, timeout=60)
            check("issue: openssl cms opens the first message with the picked-up key",
                  dec.returncode == 0 and b"Your statement for November is ready." in dec.stdout,
                  dec.stderr[-300:])
            check("issue: the first message is encrypted to the issued certificate",
                  _serial_of_pem(cert) in _serials(first.der()), (_serials(first.der()), _serial_of_pem(cert)))
            verify = subprocess.run(["openssl", "verify", "-CAfile", gw.issuing_ca, "-purpose", "smimeencrypt", cert],
                                    capture_output=True, text=True)
            check("issue: the issued certificate verifies against the CA for S/MIME encryption",
                  verify.returncode == 0, verify.stdout + verify.stderr)
        ok, out = _nss_decrypts(gw, p12, first, "pickup")
        check("issue: NSS cmsutil opens the first message with the picked-up PKCS#12",
              ok and b"Your statement for November is ready." in out, out[-300:])
        base = link.split("/p/")[0]
        browser.driver.get(base + "/help")
        browser.shot("help")
        page = browser.driver.page_source
        check("issue: the help page has illustrated steps for Outlook, Thunderbird, Apple Mail and iOS",
              all(w in page for w in ("Outlook", "Thunderbird", "Apple Mail", "iPhone")) and
              ("<svg" in page or "<img" in page), page[:600])
        browser.driver.get(link)
        browser.shot("link-again")
        check("issue: opening the link again offers a new code, never the key",
              browser.form("/code") is not None and browser.form("/download") is None,
              browser.driver.page_source[:600])

        # 4. the next message: same certificate, no notice
        mid2, r = _send(gw, new_id, new, "issue-2", "Your statement for December is ready.")
        check("issue: the second message is accepted", reply_ok(r), r)
        ds = gw.wait_deliveries(mid2, 1)
        if check("issue: the second message is delivered once", len(ds) == 1, [d.rcpts for d in ds]):
            seen.add(ds[0].path)
            check("issue: the second message is encrypted to the same certificate",
                  ds[0].encrypted and key and _serial_of_pem(cert) in _serials(ds[0].der()),
                  _serials(ds[0].der()) if ds[0].encrypted else ds[0].header("Content-Type"))
        check("issue: no second notice", not _from_gateway(gw, new, seen, timeout=4))

        # 5. a second new address; the daemon restarts between notice and pickup
        other = "second@customers.example"
        mid3, r = _send(gw, new_id, other, "issue-3", "Welcome to online banking.")
        check("issue restart: accepted", reply_ok(r), r)
        ds = gw.wait_deliveries(mid3, 1)
        notices = _from_gateway(gw, other, seen)
        check("issue restart: message and notice arrive", len(ds) == 1 and len(notices) == 1,
              (len(ds), len(notices)))
        for d in ds + notices:
            seen.add(d.path)
        gw.stop_milter()
        gw.start_milter()
        link2 = _link_of(gw, notices[0]) if notices else None
        if check("issue restart: the notice has a link", link2 is not None):
            for n in os.listdir(downloads):
                os.unlink(os.path.join(downloads, n))
            p12b = _pickup(gw, check, browser, link2, other, seen, "restart")
            if p12b and ds:
                keyb, certb = _p12_parts(gw, p12b, "restart", check)
                dec = subprocess.run(["openssl", "cms", "-decrypt", "-binary", "-in", ds[0].path, "-inkey", keyb,
                                      "-recip", certb], capture_output=True, timeout=60)
                check("issue restart: the key picked up after the restart opens the message",
                      dec.returncode == 0 and b"Welcome to online banking." in dec.stdout, dec.stderr[-300:])
    finally:
        browser.quit()

    # 6. the recipient's own certificate appears in the directory
    gw.publish("own")
    mid4, r = _send(gw, new_id, new, "issue-4", "Your statement for January is ready.")
    check("issue own: accepted", reply_ok(r), r)
    ds = gw.wait_deliveries(mid4, 1)
    if check("issue own: delivered once", len(ds) == 1, [d.rcpts for d in ds]):
        seen.add(ds[0].path)
        check("issue own: later mail goes to the recipient's own certificate",
              ds[0].encrypted and gw.recipients_of(ds[0]) == ["own"],
              gw.recipients_of(ds[0]) if ds[0].encrypted else ds[0].header("Content-Type"))
    check("issue own: no notice for the retired certificate", not _from_gateway(gw, new, seen, timeout=3))
    records = _issued_list(gw)
    rec = next((x for x in records if x.get("address") == new), None)
    check("issue own: the issued certificate is retired", rec is not None and rec.get("state") == "retired", records)
    with open(first.path, "rb") as f:
        dec = subprocess.run([gw.bin, "decrypt", "-c", gw.conf], stdin=f, capture_output=True, timeout=60)
    check("issue own: the store's issued key still opens the first message",
          dec.returncode == 0 and b"Your statement for November is ready." in dec.stdout, dec.stderr[-300:])
    import metrics_group  # docs/logging.md's patterns, read the way the metrics group reads them
    patterns = [p for p, _e, _must, heading in metrics_group.documented_patterns(gw.source)
                if heading.startswith(("Certificate issued", "Pickup notices"))]
    lines = [ln for ln in gw.log().splitlines()
             if "certificate issued:" in ln or ln.startswith(("notices: ", "issue: <"))]
    check("issue: the issuing and notice lines match docs/logging.md", lines and patterns and
          all(any(p.match(ln) for p in patterns) for ln in lines),
          ([ln for ln in lines if not any(p.match(ln) for p in patterns)][:5], len(patterns)))
    shots = sorted(os.listdir(ARTIFACTS))
    check("issue: a screenshot of every page is kept", len(shots) >= 8, shots)
