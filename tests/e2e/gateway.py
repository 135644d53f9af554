"""tests/e2e/gateway.py — a whole mail gateway on loopback for the end-to-end tests.

One Gateway owns a private temporary directory and, inside it:
  * a test PKI (a recipient CA, RSA and EC recipients with keys, PKCS#12 files for NSS);
  * a real nginx with TLS serving the certificate directory (tests/support/http/start_nginx.sh);
  * a real Postfix started from a private config directory (`postfix -c DIR`) on loopback ports:
    an SMTP service that runs the milter and the documented milter-bypassing re-injection
    service (docs/postfix.md), relaying everything to
  * a capturing next hop: Postfix's own `smtp-sink -d`, one file per delivered transaction;
  * `sealmilter run` with a config and a policy table written here.
Nothing outlives stop(): Postfix is stopped with `postfix -c DIR stop`, the other processes are
ours and stopped by PID. Standard library only.
"""
import email
import email.policy
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time

POSTFIX_START_TRIES = 3


class Results:
    """Named checks of one test script: `check(name, cond, detail)`, then `summary(label)`."""

    def __init__(self):
        self.passed, self.failed = 0, []

    def check(self, name, cond, detail=""):
        if cond:
            self.passed += 1
            print(f"ok   {name}", flush=True)
        else:
            self.failed.append(f"{name}: {detail}")
            print(f"FAIL {name}: {detail}", flush=True)
        return cond

    def summary(self, label):
        print(f"{label}: {self.passed} passed, {len(self.failed)} failed")
        for f in self.failed:
            print("  " + f)
        return 1 if self.failed else 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def open_text(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def must(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, timeout=120, **kw)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({p.returncode}): "
                           f"{p.stderr.decode(errors='replace')[-800:]}")
    return p.stdout


class Identity:
    """A recipient: address, certificate, key, PKCS#12 (password 'e2e') and a lazy NSS db."""

    def __init__(self, name, addr, d):
        self.name, self.addr, self.dir = name, addr, d
        self.cert = os.path.join(d, f"{name}.pem")
        self.key = os.path.join(d, f"{name}.key")
        self.p12 = os.path.join(d, f"{name}.p12")
        self._nssdb = None

    def pem(self):
        with open(self.cert) as f:
            return f.read()

    def fingerprint(self):
        out = must(["openssl", "x509", "-in", self.cert, "-noout", "-fingerprint", "-sha256"]).decode()
        return out.strip().split("=", 1)[1].replace(":", "").lower()

    def nssdb(self):
        if self._nssdb is None:
            db = os.path.join(self.dir, f"nssdb-{self.name}")
            os.makedirs(db)
            pw = os.path.join(self.dir, "p12pass")
            must(["certutil", "-N", "-d", f"sql:{db}", "--empty-password"])
            must(["pk12util", "-i", self.p12, "-d", f"sql:{db}", "-w", pw, "-K", ""])
            self._nssdb = f"sql:{db}"
        return self._nssdb


def make_pki(d, recipients):
    """recipients: {name: (address, 'rsa'|'ec')}. Returns {name: Identity} and the CA path."""
    ca_key, ca = os.path.join(d, "ca.key"), os.path.join(d, "ca.pem")
    must(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca,
          "-days", "30", "-subj", "/CN=sealmilter e2e recipient CA",
          "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    with open(os.path.join(d, "p12pass"), "w") as f:
        f.write("e2e\n")
    out = {}
    for serial, (name, (addr, kind)) in enumerate(sorted(recipients.items()), start=100):
        ident = Identity(name, addr, d)
        newkey = (["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"] if kind == "ec"
                  else ["-newkey", "rsa:2048"])
        csr = os.path.join(d, f"{name}.csr")
        must(["openssl", "req", "-new", *newkey, "-nodes", "-keyout", ident.key, "-out", csr,
              "-subj", f"/CN={name}"])
        ext = os.path.join(d, f"{name}.ext")
        ku = "keyAgreement" if kind == "ec" else "keyEncipherment"
        with open(ext, "w") as f:
            f.write(f"basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,{ku}\n"
                    f"extendedKeyUsage=emailProtection\nsubjectAltName=email:{addr}\n")
        must(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-set_serial", str(serial),
              "-days", "30", "-extfile", ext, "-out", ident.cert])
        must(["openssl", "pkcs12", "-export", "-inkey", ident.key, "-in", ident.cert, "-certfile", ca,
              "-name", name, "-passout", f"file:{os.path.join(d, 'p12pass')}", "-out", ident.p12])
        out[name] = ident
    return out, ca


# ------------------------------------------------------------------------------------------------
# What the sink received
# ------------------------------------------------------------------------------------------------

class Delivery:
    """One smtp-sink dump file: the envelope recipients and the message as delivered."""

    def __init__(self, path, light=False):
        self.path = path
        self._mid = self._enc = None
        with open(path, "rb") as f:
            raw = f.read()
        self.rcpts, self.mail_from = [], None
        pos = 0
        # smtp-sink's own X-... lines (envelope) come first, then the message with a Received line.
        while True:
            end = raw.index(b"\n", pos)
            line = raw[pos:end]
            if line.startswith(b"X-Rcpt-Args: "):
                self.rcpts.append(re.sub(rb"^<|>.*$", b"", line[13:]).decode().lower())
            elif line.startswith(b"X-Mail-Args: "):
                self.mail_from = re.sub(rb"^<|>.*$", b"", line[13:]).decode()
            elif not line.startswith(b"X-"):
                break
            pos = end + 1
        self.message = raw[pos:].replace(b"\r\n", b"\n")
        head, _, body = self.message.partition(b"\n\n")
        self.head = head + b"\n"
        self.body = body
        self.parsed = email.message_from_bytes(self.message, policy=email.policy.compat32)
        if light:  # keep only the facts (the soak reads tens of thousands of deliveries)
            import hashlib
            self._mid, self._enc = self.message_id, self.encrypted
            body = self.body[:-1] if self.body.endswith(b"\n") else self.body
            self.body_sha256 = hashlib.sha256(body).hexdigest()
            del self.message, self.head, self.body, self.parsed

    def header(self, name):
        return self.parsed.get(name)

    def headers(self, name):
        return self.parsed.get_all(name) or []

    @property
    def message_id(self):
        if self._mid is not None:
            return self._mid
        return (self.header("Message-ID") or "").strip()

    @property
    def encrypted(self):
        if self._enc is not None:
            return self._enc
        ct = (self.header("Content-Type") or "").lower()
        return "application/pkcs7-mime" in ct or "application/x-pkcs7-mime" in ct

    def der(self):
        """The CMS object of an encrypted delivery."""
        return self.parsed.get_payload(decode=True)


def wire_form(message):
    """CRLF line ends, as on the wire (smtplib sends bytes as given: a bare LF would arrive as
    a line end, and a final bare LF would gain an extra empty line)."""
    return message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def sink_body_equal(delivery, original):
    """Byte-equality of the body (line ends normalised to LF, as the SMTP path does)."""
    body = original.replace(b"\r\n", b"\n").partition(b"\n\n")[2]
    # smtp-sink -d writes the end-of-data line as one extra empty line after the message.
    got = delivery.body[:-1] if delivery.body.endswith(b"\n") else delivery.body
    if got != body and os.environ.get("SEALMILTER_E2E_DEBUG"):
        print("body differs:", repr(got[-60:]), repr(body[-60:]))
    return got == body


# ------------------------------------------------------------------------------------------------
# The gateway
# ------------------------------------------------------------------------------------------------

class Gateway:
    def __init__(self, sealmilter, source, recipients, directory_entries, policy, extra_conf="",
                 postfix_extra="", sink_dump=True, dns_entries=None, share_pki=None):
        self.bin, self.source = sealmilter, source
        # dns_entries: {name: usage} published as SMIMEA in a DNSSEC-signed zone (start_nsd);
        # {name: "bogus"} publishes a usage 3 record whose signature is then corrupted.
        self.dns_entries = dns_entries or {}
        self.nsd = None
        self.sink_dump = sink_dump  # False: smtp-sink only counts (benchmarks)
        self.tmp = tempfile.mkdtemp(prefix="sealmilter-e2e-")
        os.chmod(self.tmp, 0o755)  # Postfix's unprivileged processes must reach the queue
        self.pki_dir = os.path.join(self.tmp, "pki")
        os.makedirs(self.pki_dir)
        # share_pki: another Gateway whose PKI this one uses (two nodes of one organisation).
        self.ids, self.ca = (share_pki.ids, share_pki.ca) if share_pki else make_pki(self.pki_dir, recipients)
        self.nginx = self.milter = self.sink = None
        self.slapd = None  # started only by the groups that need it (start_slapd)
        self.postfix_up = False
        self.milter_log = os.path.join(self.tmp, "milter.log")
        self.sink_dir = os.path.join(self.tmp, "sink")
        os.makedirs(self.sink_dir)
        self.smtp_port, self.reinject_port, self.sink_port = free_port(), free_port(), free_port()
        self.milter_port, self.http_port = free_port(), free_port()
        self.nsd_dir = os.path.join(self.tmp, "nsd")
        self.dns_port = free_port() if self.dns_entries else 0
        self.extra_conf, self.postfix_extra = extra_conf, postfix_extra
        self.policy_path = os.path.join(self.tmp, "policy")
        self.write_policy(policy)
        self.www = os.path.join(self.tmp, "nginx", "www", "json")
        os.makedirs(self.www)
        for name in directory_entries:
            self.publish(name)
        self.conf = os.path.join(self.tmp, "sealmilter.conf")
        self.write_conf()
        self.pf = os.path.join(self.tmp, "postfix")
        self.seen = set()

    # ---- configuration ----------------------------------------------------------------------
    def publish(self, name):
        ident = self.ids[name]
        with open(os.path.join(self.www, ident.addr), "w") as f:
            f.write('{"certificates":[{"pem":%s}]}' % __import__("json").dumps(ident.pem()))

    def unpublish(self, name):
        os.unlink(os.path.join(self.www, self.ids[name].addr))

    def write_policy(self, text):
        with open(self.policy_path, "w") as f:
            f.write(text)

    def conf_text(self, extra=None):
        spool = os.path.join(self.tmp, "spool")
        os.makedirs(spool, exist_ok=True)
        return (f"[milter]\nsocket = inet:{self.milter_port}@127.0.0.1\n"
                f"reinject = 127.0.0.1:{getattr(self, 'reinject_target', None) or self.reinject_port}\n"
                f"spool_dir = {spool}\n"
                f"reinject_timeout_ms = 5000\n"
                f"[policy]\nfile = {self.policy_path}\ninternal_domains = bank.example\n"
                f"[lookup]\norder = cache,directory{',dns' if self.dns_entries else ''},harvest\n"
                f"trust_anchors = {self.ca}\n"
                f"[harvest]\ndir = {self.tmp}/harvested\n"
                f"[directory]\nurl = https://127.0.0.1:{self.http_port}/json/{{email}}\n"
                f"ca_file = {self.tmp}/nginx/tls/ca.crt\ntimeout_ms = 3000\n"
                f"[cache]\npath = {self.tmp}/cache.db\n"
                + (f"[dns]\ntrust_anchor = {self.nsd_dir}/trust_anchor.ds\n"
                   f"forwarders = 127.0.0.1@{self.dns_port}\ntimeout_ms = 3000\n" if self.dns_entries else "")
                + (self.extra_conf if extra is None else extra))

    def write_conf(self, text=None):
        with open(self.conf, "w") as f:
            f.write(self.conf_text() if text is None else text)

    # ---- processes --------------------------------------------------------------------------
    def start(self):
        if self.dns_entries:
            self.start_nsd()
        self.start_nginx()
        self.start_sink()
        self.start_milter()
        self.start_postfix()
        return self

    def start_nginx(self):
        prefix = os.path.join(self.tmp, "nginx")
        self.nginx = subprocess.Popen(
            ["bash", os.path.join(self.source, "tests/support/http/start_nginx.sh"), prefix, str(self.http_port)],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.tmp, "nginx.err"), "wb"))
        self._wait(self.http_port, self.nginx, "nginx", os.path.join(prefix, "nginx.pid"))

    def start_nsd(self):
        """A real NSD serving dane.example. signed with ldns-signzone (tests/support/dns/start_nsd.sh),
        the SMIMEA records of dns_entries in it; the daemon's libunbound forwards to it with the
        zone's DS as trust anchor. Ours once its pid file names our child and its log says so."""
        import hashlib
        os.makedirs(os.path.join(self.nsd_dir, "records"), exist_ok=True)
        lines, tamper = [], []
        for name, usage in sorted(self.dns_entries.items()):
            ident = self.ids[name]
            local, domain = ident.addr.rsplit("@", 1)
            owner = hashlib.sha256(local.encode()).hexdigest()[:56] + "._smimecert." + domain + "."
            der = must(["openssl", "x509", "-in", ident.cert, "-outform", "DER"])
            rdata = bytes([3 if usage == "bogus" else int(usage), 0, 0]) + der
            lines.append(f"{owner} 300 IN TYPE53 \\# {len(rdata)} {rdata.hex()}\n")
            if usage == "bogus":
                tamper.append(owner + "\n")
        with open(os.path.join(self.nsd_dir, "records", "dane.example"), "w") as f:
            f.writelines(lines)
        with open(os.path.join(self.nsd_dir, "records", "insecure.dane.example"), "w") as f:
            f.write("")
        with open(os.path.join(self.nsd_dir, "tamper"), "w") as f:
            f.writelines(tamper)
        for _ in range(5):  # another process may take the port first: pick another
            self.nsd = subprocess.Popen(
                ["bash", os.path.join(self.source, "tests/support/dns/start_nsd.sh"), self.nsd_dir,
                 str(self.dns_port)],
                stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.tmp, "nsd.err"), "ab"))
            deadline = time.time() + 30
            while time.time() < deadline and self.nsd.poll() is None:
                if (read_pid(os.path.join(self.nsd_dir, "nsd.pid")) == self.nsd.pid
                        and "nsd started" in open_text(os.path.join(self.nsd_dir, "nsd.log"))):
                    self.write_conf()  # the trust anchor file exists now
                    return
                time.sleep(0.1)
            self._stop(self.nsd)
            self.dns_port = free_port()
        raise RuntimeError("nsd did not start: " + open_text(os.path.join(self.tmp, "nsd.err"))[-500:])

    def stop_nginx(self):
        self._stop(self.nginx)
        self.nginx = None

    def start_slapd(self, ldif):
        """A real slapd (tests/support/ldap/start_slapd.sh) with `ldif` under
        ou=people,dc=example,dc=test; ldap:// (StartTLS) and ldaps:// on fresh loopback ports,
        TLS from its own test CA (self.slapd_dir/tls/ca.crt). Stopped by PID in stop()."""
        self.slapd_dir = os.path.join(self.tmp, "slapd")
        os.makedirs(self.slapd_dir, exist_ok=True)
        with open(os.path.join(self.slapd_dir, "data.ldif"), "w") as f:
            f.write(ldif)
        for _ in range(3):  # a port taken between free_port() and slapd's bind: slapd exits, retry
            self.ldap_port, self.ldaps_port = free_port(), free_port()
            self.slapd = subprocess.Popen(
                ["bash", os.path.join(self.source, "tests/support/ldap/start_slapd.sh"), self.slapd_dir,
                 str(self.ldap_port), str(self.ldaps_port)],
                stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.tmp, "slapd.err"), "ab"))
            try:  # slapd writes its pid file once it listens
                self._wait(self.ldaps_port, self.slapd, "slapd", os.path.join(self.slapd_dir, "slapd.pid"))
                return
            except RuntimeError:
                self._stop(self.slapd)
        raise RuntimeError("slapd did not start: " + open(os.path.join(self.tmp, "slapd.err")).read()[-1000:])

    def stop_slapd(self):
        self._stop(self.slapd)
        self.slapd = None

    def start_sink(self):
        # One file per transaction; %Y... plus smtp-sink's random suffix keeps names unique.
        dump = ["-d", os.path.join(self.sink_dir, "%H%M%S.")] if self.sink_dump else []
        self.sink = subprocess.Popen(
            ["smtp-sink", *dump, *getattr(self, "sink_extra", []), "-u", "root", f"127.0.0.1:{self.sink_port}", "256"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.tmp, "sink.err"), "wb"))
        self._wait(self.sink_port, self.sink, "smtp-sink")

    def start_milter(self, wait=True):
        self.milter_out = open(self.milter_log, "ab")
        self.milter = subprocess.Popen([self.bin, "run", "-c", self.conf], stdout=self.milter_out,
                                       stderr=subprocess.STDOUT)
        if wait:
            self._wait(self.milter_port, self.milter, "sealmilter run")

    def set_reinject(self, port):
        """Points milter.reinject at another port (a fault-injecting proxy); restart to apply."""
        self.reinject_target = port

    def kill_milter(self):
        """SIGKILL: no clean-up, as a crash would."""
        if self.milter and self.milter.poll() is None:
            self.milter.kill()
            self.milter.wait(timeout=10)
        self.milter = None

    def stop_milter(self):
        self._stop(self.milter)
        self.milter = None

    def milter_status_kib(self, field):
        """A /proc/PID/status figure of the daemon in KiB: VmHWM (peak RSS) or VmRSS."""
        with open(f"/proc/{self.milter.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return None

    def milter_rss_peak_kib(self):
        return self.milter_status_kib("VmHWM")

    def milter_rss_kib(self):
        return self.milter_status_kib("VmRSS")

    def hup_milter(self):
        os.kill(self.milter.pid, signal.SIGHUP)

    def log(self):
        with open(self.milter_log, "rb") as f:
            return f.read().decode(errors="replace")

    def postfix_cf(self):
        return f"""compatibility_level = 3.6
queue_directory = {self.pf}/queue
data_directory = {self.pf}/data
maillog_file = {self.pf}/maillog
maillog_file_prefixes = /tmp, /var, /dev/stdout
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = gw.e2e.example
mydestination =
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:{self.sink_port}
smtp_tls_security_level = none
smtpd_peername_lookup = no
alias_maps =
alias_database =
in_flow_delay = 0
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
smtpd_milters = inet:127.0.0.1:{self.milter_port}
non_smtpd_milters = $smtpd_milters
milter_default_action = tempfail
milter_protocol = 6
milter_connect_timeout = 10s
milter_command_timeout = 60s
milter_content_timeout = 300s
milter_end_of_data_macros = i
{self.postfix_extra or 'message_size_limit = 104857600'}
"""

    def postfix_master(self, with_reinject=True):
        with open("/etc/postfix/master.cf") as f:
            lines = f.read().splitlines()
        out = []
        for line in lines:
            if re.match(r"^smtp\s+inet\s", line):
                out.append(f"127.0.0.1:{self.smtp_port} inet n - n - - smtpd")
                if with_reinject:  # exactly the service docs/postfix.md documents
                    out += [f"127.0.0.1:{self.reinject_port} inet n - n - - smtpd",
                            "  -o smtpd_milters=", "  -o non_smtpd_milters=",
                            "  -o smtpd_recipient_restrictions=permit_mynetworks,reject",
                            "  -o mynetworks=127.0.0.0/8"]
            else:
                out.append(line)
        return "\n".join(out) + "\n"

    def start_postfix(self):
        etc = os.path.join(self.pf, "etc")
        for d in ("etc", "queue", "data"):
            os.makedirs(os.path.join(self.pf, d), exist_ok=True)
        shutil.copytree("/etc/postfix", etc, dirs_exist_ok=True)
        shutil.chown(os.path.join(self.pf, "data"), "postfix")
        with open(os.path.join(etc, "main.cf"), "w") as f:
            f.write(self.postfix_cf())
        with open(os.path.join(etc, "master.cf"), "w") as f:
            f.write(self.postfix_master())
        must(["postfix", "-c", etc, "check"])
        must(["postfix", "-c", etc, "start"])
        self.postfix_up = True
        deadline = time.time() + 20
        while time.time() < deadline and not (port_open(self.smtp_port) and port_open(self.reinject_port)):
            time.sleep(0.1)
        if not port_open(self.smtp_port):
            raise RuntimeError("postfix did not listen: " + self.maillog()[-2000:])

    def set_reinject_service(self, enabled):
        """Removes / restores the re-injection service and reloads Postfix."""
        etc = os.path.join(self.pf, "etc")
        with open(os.path.join(etc, "master.cf"), "w") as f:
            f.write(self.postfix_master(with_reinject=enabled))
        must(["postfix", "-c", etc, "reload"])
        deadline = time.time() + 20
        while time.time() < deadline and port_open(self.reinject_port) != enabled:
            time.sleep(0.1)
        if port_open(self.reinject_port) != enabled:
            raise RuntimeError(f"re-injection service did not become {'up' if enabled else 'down'}")

    def flush(self):
        must(["postfix", "-c", os.path.join(self.pf, "etc"), "flush"])

    def queue_empty(self):
        out = must(["postqueue", "-c", os.path.join(self.pf, "etc"), "-p"]).decode()
        return "Mail queue is empty" in out

    def maillog(self):
        try:
            with open(os.path.join(self.pf, "maillog"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.postfix_up:
            subprocess.run(["postfix", "-c", os.path.join(self.pf, "etc"), "stop"], capture_output=True,
                           timeout=60)
            self.postfix_up = False
        milter_rc = None
        if self.milter is not None:
            self._stop(self.milter)
            milter_rc = self.milter.returncode
        for p in (self.sink, self.nginx, self.slapd, self.nsd):
            self._stop(p)
        # Under ASan/UBSan (run-tests.sh's second pass) the daemon reports into its log; a report
        # or an unclean exit on SIGTERM is a failure of the test.
        findings = []
        log = self.log() if os.path.exists(self.milter_log) else ""
        for pat in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            if pat in log:
                i = log.index(pat)
                findings.append(log[max(0, i - 200):i + 2000])
        if milter_rc not in (None, 0):
            findings.append(f"sealmilter run exited with {milter_rc} on SIGTERM")
        if os.environ.get("SEALMILTER_E2E_KEEP"):
            print(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        return findings

    @staticmethod
    def _stop(p):
        if p is None or p.poll() is not None:
            return
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)

    @staticmethod
    def _wait(port, proc, what, pid_file=None):
        """Until proc listens on port. With pid_file (nginx writes it after binding), the port
        counts only once that file names proc: otherwise another test's server that won the
        race for the port would pass for ours."""
        deadline = time.time() + 20
        while time.time() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited with {proc.returncode}")
            if (pid_file is None or read_pid(pid_file) == proc.pid) and port_open(port):
                return
            time.sleep(0.05)
        raise RuntimeError(f"{what} did not listen on {port}")

    # ---- mail in, mail out ------------------------------------------------------------------
    def send(self, mail_from, rcpts, message, port=None):
        """One SMTP transaction as a business system sends it. Returns
        {'rcpt': {addr: (code, text)}, 'data': (code, text) or None}."""
        result = {"rcpt": {}, "data": None}
        message = wire_form(message)
        with smtplib.SMTP("127.0.0.1", port or self.smtp_port, timeout=120) as s:
            s.ehlo("app.bank.example")
            code, text = s.mail(mail_from)
            if code != 250:
                result["mail"] = (code, text.decode(errors="replace"))
                s.rset()
                return result
            accepted = 0
            for r in rcpts:
                code, text = s.rcpt(r)
                result["rcpt"][r] = (code, text.decode(errors="replace"))
                accepted += code in (250, 251)
            if accepted:
                try:
                    code, text = s.data(message)
                except smtplib.SMTPDataError as e:
                    code, text = e.smtp_code, e.smtp_error
                result["data"] = (code, text.decode(errors="replace") if isinstance(text, bytes) else text)
            else:
                s.rset()
        return result

    def deliveries(self, new_only=True, light=False):
        out = []
        for name in sorted(os.listdir(self.sink_dir)):
            path = os.path.join(self.sink_dir, name)
            if new_only and path in self.seen:
                continue
            if name.endswith((".der", ".nss")):
                continue
            # smtp-sink writes the file while the transaction runs: only settled files count.
            try:
                if time.time() - os.stat(path).st_mtime < 0.5:
                    continue
                out.append(Delivery(path, light))
            except (OSError, ValueError):
                continue
        return out

    def wait_deliveries(self, message_id, count, timeout=60):
        """Waits until `count` transactions carrying Message-ID `message_id` reached the sink
        (and returns them); a little longer to catch an unexpected extra one."""
        deadline = time.time() + timeout
        found = []
        while time.time() < deadline:
            found = [d for d in self.deliveries(new_only=False) if d.message_id == message_id]
            if len(found) >= count:
                time.sleep(0.5)
                found = [d for d in self.deliveries(new_only=False) if d.message_id == message_id]
                break
            time.sleep(0.1)
        return found

    # ---- independent decryptors -------------------------------------------------------------
    def openssl_decrypt(self, delivery, ident):
        p = subprocess.run(["openssl", "cms", "-decrypt", "-binary", "-in", delivery.path, "-inkey", ident.key,
                            "-recip", ident.cert], capture_output=True, timeout=120)
        return p.returncode == 0, p.stdout if p.returncode == 0 else p.stderr

    def nss_decrypt(self, delivery, ident):
        der = delivery.path + ".der"
        with open(der, "wb") as f:
            f.write(delivery.der())
        out = delivery.path + ".nss"
        p = subprocess.run(["cmsutil", "-D", "-d", ident.nssdb(), "-i", der, "-o", out], capture_output=True,
                           timeout=120)
        data = b""
        if os.path.exists(out):
            with open(out, "rb") as f:
                data = f.read()
            os.unlink(out)
        os.unlink(der)
        return p.returncode == 0, data if p.returncode == 0 else p.stderr

    def recipients_of(self, delivery):
        """Which of our identities the envelope is encrypted to (by issuer+serial)."""
        p = subprocess.run(["openssl", "cms", "-cmsout", "-print", "-inform", "DER"], input=delivery.der(),
                           capture_output=True, timeout=60)
        text = p.stdout.decode(errors="replace")
        serials = set(int(m, 16) if m.startswith("0x") else int(m)
                      for m in re.findall(r"serialNumber:\s*(0x[0-9A-Fa-f]+|\d+)", text))
        names = []
        for name, ident in self.ids.items():
            out = must(["openssl", "x509", "-in", ident.cert, "-noout", "-serial"]).decode()
            if int(out.strip().split("=", 1)[1], 16) in serials:
                names.append(name)
        return sorted(names)


def inner_expected(original):
    """The inner entity the transform encrypts: content header fields, blank line, body, CRLF."""
    msg = original.replace(b"\r\n", b"\n")
    head, _, body = msg.partition(b"\n\n")
    fields, cur = [], None
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and cur is not None:
            cur.append(line)
        else:
            cur = [line]
            fields.append(cur)
    content = [b"\n".join(f) for f in fields
               if f[0].split(b":", 1)[0].strip().lower().startswith(b"content-")]
    inner = (b"\n".join(content) + b"\n\n" if content else b"\n") + body
    return inner.replace(b"\n", b"\r\n")
