#!/usr/bin/env python3
"""sealmilter interoperability test suite.

Encrypts every test message with the `sealmilter encrypt` CLI and decrypts the result with two
independent S/MIME implementations, OpenSSL (`openssl cms -decrypt`) and NSS (`cmsutil -D`, the
engine of Thunderbird), and checks byte for byte that the decrypted content equals the inner
entity that this script computes itself from the original message (SPEC.md section 5).  It also
checks the outer message (headers, base64 layout), the CMS structure (own BER parser),
`sealmilter decrypt`, the error exit codes, pass-through of already-encrypted mail, and the
measured facts about what NSS 3.87 cannot decode.

Standard library only.  See README.md next to this file.  Usage:

    interop.py --sealmilter PATH --data tests/data --group NAME [--jobs 2] [--verbose]
    interop.py --list-groups
"""

import argparse
import base64
import binascii
import collections
import concurrent.futures
import functools
import glob
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

# --------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------

CONTENT_FIELDS = {
    b'content-type', b'content-transfer-encoding', b'content-disposition',
    b'content-id', b'content-description', b'content-language',
}

NEW_CT = {
    'enveloped': b'Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"',
    'authEnveloped': b'Content-Type: application/pkcs7-mime; smime-type=authEnveloped-data; name="smime.p7m"',
}
NEW_CTE = b'Content-Transfer-Encoding: base64'
NEW_CD = b'Content-Disposition: attachment; filename="smime.p7m"'

OID_DATA = '1.2.840.113549.1.7.1'
OID_SIGNED = '1.2.840.113549.1.7.2'
OID_ENVELOPED = '1.2.840.113549.1.7.3'
OID_AUTH_ENVELOPED = '1.2.840.113549.1.9.16.1.23'
OID_RSA = '1.2.840.113549.1.1.1'
OID_RSA_OAEP = '1.2.840.113549.1.1.7'
CIPHER_OIDS = {
    'aes-128-cbc': '2.16.840.1.101.3.4.1.2',
    'aes-256-cbc': '2.16.840.1.101.3.4.1.42',
    'aes-256-gcm': '2.16.840.1.101.3.4.1.46',
}
# ECDH key agreement schemes of RFC 5753 / SEC 1 (standard and cofactor, any KDF hash).
ECDH_OID_PREFIXES = ('1.3.132.1.11.', '1.3.132.1.14.')
ECDH_OIDS = {'1.3.133.16.840.63.0.2', '1.3.133.16.840.63.0.3'}

DEFAULT_CIPHER = 'aes-256-cbc'
DEFAULT_PADDING = 'pkcs1'

NSS_PASSWORD = 'nss'          # password of every .p12 in tests/data/nss-smime (ORIGIN.md)
SUBPROCESS_TIMEOUT = 180


# --------------------------------------------------------------------------------------------
# Measured NSS 3.87 (Debian 12, libnss3 2:3.87.1-1+deb12u4) behaviour.
#
# Each rule below was measured with `cmsutil -D` against envelopes made by `openssl cms -encrypt`
# (group `nss-facts` re-measures them on every run with openssl-made envelopes, independent of
# sealmilter).  The suite ASSERTS these failures: if a newer NSS starts decoding one of these
# variants the test fails, so that README.md, SPEC.md and this table get updated.
#
#   AuthEnvelopedData (aes-256-gcm, RFC 5083/5084)
#        -> "problem decoding: SEC_ERROR_UNRECOGNIZED_OID"
#   any ECDH KeyAgreeRecipientInfo in the envelope (RFC 5753), even when the NSS user holds the
#   key of an RSA KeyTransRecipientInfo of the same envelope
#        -> "problem decoding: SEC_ERROR_BAD_DER"
#   RSAES-OAEP KeyTransRecipientInfo (RFC 3560/8017), default SHA-1 or SHA-256 parameters
#        -> "problem decoding: SEC_ERROR_UNSUPPORTED_KEYALG"
#   Decoded fine: EnvelopedData with AES-128-CBC or AES-256-CBC and RSA PKCS#1 v1.5 key
#   transport, single or multiple recipients, RSA 2048/3072/4096.
# --------------------------------------------------------------------------------------------

def nss_expectation(cipher, padding, kinds):
    """(True, '') if NSS 3.87 is expected to decrypt, else (False, reason)."""
    if cipher == 'aes-256-gcm':
        return False, 'NSS 3.87 does not decode AuthEnvelopedData (aes-256-gcm)'
    if 'ec' in kinds:
        return False, 'NSS 3.87 does not decode an envelope containing an ECDH KeyAgreeRecipientInfo'
    if padding == 'oaep':
        return False, 'NSS 3.87 does not decode an RSAES-OAEP KeyTransRecipientInfo'
    return True, ''


# --------------------------------------------------------------------------------------------
# MIME helpers: an implementation of the contract, independent of sealmilter
# --------------------------------------------------------------------------------------------

def split_message(data):
    """Return (header_block, separator_line, body).  The header block ends at the first empty
    line (LF or CRLF); without an empty line everything is header and the body is empty."""
    pos = 0
    n = len(data)
    while pos < n:
        if data.startswith(b'\n', pos):
            return data[:pos], b'\n', data[pos + 1:]
        if data.startswith(b'\r\n', pos):
            return data[:pos], b'\r\n', data[pos + 2:]
        nl = data.find(b'\n', pos)
        if nl < 0:
            break
        pos = nl + 1
    return data, b'', b''


def header_fields(block):
    """Split a header block into raw fields (each with its folding and line ends)."""
    fields = []
    for line in block.splitlines(keepends=True):
        # splitlines() also splits at a lone CR and other separators; only LF ends a line here.
        if fields and not fields[-1].endswith(b'\n'):
            fields[-1] += line
        elif fields and line[:1] in (b' ', b'\t'):
            fields[-1] += line
        else:
            fields.append(line)
    return fields


def field_name(field):
    if b':' not in field:
        return None
    name = field.split(b':', 1)[0]
    if b'\n' in name:
        return None
    return name.rstrip(b' \t').lower()


def is_content_field(field):
    return field_name(field) in CONTENT_FIELDS


def unfold(field):
    """A field's text without its final line end and with folding line breaks removed."""
    f = re.sub(rb'\r?\n(?=[ \t])', b'', field)
    return re.sub(rb'\r?\n$', b'', f)


def field_value(field):
    return unfold(field).split(b':', 1)[1].strip()


def eol_of(data):
    """The message's line-ending convention: that of its first header line."""
    nl = data.find(b'\n')
    if nl > 0 and data[nl - 1:nl] == b'\r':
        return b'\r\n'
    return b'\n'


def canon_crlf(data):
    """Every bare LF becomes CRLF; CRLF stays; a lone CR stays."""
    return re.sub(rb'(?<!\r)\n', b'\r\n', data)


def norm_eol(data):
    return data.replace(b'\r\n', b'\n')


def ensure_eol(field):
    return field if field.endswith(b'\n') else field + b'\n'


def expected_inner(msg):
    """The inner entity (what a decryptor must yield) computed from the original message."""
    block, _sep, body = split_message(msg)
    content = [ensure_eol(f) for f in header_fields(block) if is_content_field(f)]
    return canon_crlf(b''.join(content) + b'\n' + body)


def outer_fields(msg):
    block, _sep, _body = split_message(msg)
    return [f for f in header_fields(block) if not is_content_field(f)]


def parse_ct(msg):
    """(media type, params dict) of the top-level Content-Type, lowercased; None if absent."""
    block, _sep, _body = split_message(msg)
    for f in header_fields(block):
        if field_name(f) == b'content-type':
            v = field_value(f).decode('latin-1')
            parts = _split_params(v)
            mt = parts[0].strip().lower()
            params = {}
            for p in parts[1:]:
                if '=' in p:
                    k, val = p.split('=', 1)
                    val = val.strip()
                    if len(val) >= 2 and val[0] == '"' and val[-1] == '"':
                        val = val[1:-1]
                    params[k.strip().lower()] = val.strip().lower()
            return mt, params
    return None


def _split_params(v):
    out, cur, q = [], '', False
    for ch in v:
        if ch == '"':
            q = not q
        if ch == ';' and not q:
            out.append(cur)
            cur = ''
        else:
            cur += ch
    out.append(cur)
    return out


def cms_content_type_of_body(msg):
    """OID of the CMS ContentInfo carried base64 in the body, or None."""
    _b, _s, body = split_message(msg)
    try:
        der = base64.b64decode(re.sub(rb'\s', b'', body), validate=True)
        node, _end = ber_read(der, 0)
        return oid_str(node.children[0].value)
    except Exception:
        return None


def signed_content(msg):
    """The encapsulated content of an opaque-signed (SignedData) body, or None."""
    _b, _s, body = split_message(msg)
    try:
        der = base64.b64decode(re.sub(rb'\s', b'', body), validate=True)
        top, _end = ber_read(der, 0)
        sd = top.children[1].children[0]
        eci = [c for c in sd.children if is_univ(c, 16)][0]
        octets = eci.children[1].children[0]

        def flatten(n):
            return n.value if not n.cons else b''.join(flatten(c) for c in n.children)
        return flatten(octets)
    except Exception:
        return None


def encrypted_reason(msg):
    """Why the message counts as already encrypted (contract of `sealmilter encrypt`), or None."""
    ct = parse_ct(msg)
    mt, params = ct if ct else ('text/plain', {})   # RFC 2045 default
    if mt in ('application/pkcs7-mime', 'application/x-pkcs7-mime'):
        st = params.get('smime-type')
        if st is not None:
            # The label alone is not enough: the body must be enveloped CMS.
            if st in ('enveloped-data', 'authenveloped-data') and \
                    cms_content_type_of_body(msg) in (OID_ENVELOPED, OID_AUTH_ENVELOPED):
                return '%s; smime-type=%s' % (mt, st)
            return None
        if params.get('name') == 'smime.p7m':
            if cms_content_type_of_body(msg) == OID_SIGNED:
                return None
            return '%s; name=smime.p7m without smime-type' % mt
        return None
    if mt == 'multipart/encrypted':
        # RFC 3156: only PGP/MIME that names its protocol counts.
        if params.get('protocol', '').lower() == 'application/pgp-encrypted':
            return 'multipart/encrypted'
        return None
    if mt == 'text/plain':
        # Inline PGP only when the whole body is one armored message (whitespace around it).
        _b, _s, body = split_message(msg)
        lines = [l.rstrip(b'\r \t') for l in body.replace(b'\r\n', b'\n').split(b'\n')]
        lines = [l for l in lines if l.strip(b' \t')] or [b'']
        if (lines[0] == b'-----BEGIN PGP MESSAGE-----' and lines[-1] == b'-----END PGP MESSAGE-----'
                and lines.count(b'-----END PGP MESSAGE-----') == 1):
            return 'text/plain with an inline PGP message'
    return None


# --------------------------------------------------------------------------------------------
# Minimal BER reader (definite and indefinite lengths) and CMS summary
# --------------------------------------------------------------------------------------------

Node = collections.namedtuple('Node', 'cls cons tag value children')


class BerError(Exception):
    pass


def ber_read(data, pos, depth=0):
    if depth > 64:
        raise BerError('nesting too deep')
    if pos >= len(data):
        raise BerError('truncated at %d' % pos)
    b = data[pos]
    pos += 1
    cls, cons, tag = b >> 6, bool(b & 0x20), b & 0x1f
    if tag == 0x1f:
        tag = 0
        while True:
            if pos >= len(data):
                raise BerError('truncated tag')
            c = data[pos]
            pos += 1
            tag = (tag << 7) | (c & 0x7f)
            if not c & 0x80:
                break
    if pos >= len(data):
        raise BerError('truncated length')
    ln = data[pos]
    pos += 1
    if ln == 0x80:
        if not cons:
            raise BerError('indefinite length on primitive at %d' % pos)
        kids = []
        while True:
            if data[pos:pos + 2] == b'\0\0':
                pos += 2
                break
            kid, pos = ber_read(data, pos, depth + 1)
            kids.append(kid)
        return Node(cls, cons, tag, None, kids), pos
    if ln & 0x80:
        nb = ln & 0x7f
        if nb == 0 or nb > 8 or pos + nb > len(data):
            raise BerError('bad length at %d' % pos)
        ln = int.from_bytes(data[pos:pos + nb], 'big')
        pos += nb
    end = pos + ln
    if end > len(data):
        raise BerError('length %d beyond end of data at %d' % (ln, pos))
    if cons:
        kids = []
        p = pos
        while p < end:
            kid, p = ber_read(data, p, depth + 1)
            kids.append(kid)
        if p != end:
            raise BerError('constructed element overruns at %d' % p)
        return Node(cls, cons, tag, None, kids), end
    return Node(cls, cons, tag, data[pos:end], None), end


def oid_str(v):
    if not v:
        raise BerError('empty OID')
    arcs, cur = [], 0
    for c in v:
        cur = (cur << 7) | (c & 0x7f)
        if not c & 0x80:
            arcs.append(cur)
            cur = 0
    first = min(arcs[0] // 40, 2)
    return '.'.join(str(a) for a in [first, arcs[0] - 40 * first] + arcs[1:])


def is_univ(n, tag):
    return n.cls == 0 and n.tag == tag


def cms_summary(der):
    """Parse an EnvelopedData/AuthEnvelopedData ContentInfo; return a dict or raise BerError."""
    top, end = ber_read(der, 0)
    if end != len(der):
        raise BerError('%d trailing bytes after the ContentInfo' % (len(der) - end))
    if not (is_univ(top, 16) and len(top.children) == 2 and is_univ(top.children[0], 6)):
        raise BerError('ContentInfo is not SEQUENCE { OID, [0] }')
    ctype = oid_str(top.children[0].value)
    wrap = top.children[1]
    if not (wrap.cls == 2 and wrap.tag == 0 and wrap.cons and len(wrap.children) == 1):
        raise BerError('ContentInfo content is not [0] EXPLICIT')
    body = wrap.children[0]
    if not is_univ(body, 16):
        raise BerError('content is not a SEQUENCE')
    kids = body.children
    i = 1                                         # skip version
    if i < len(kids) and kids[i].cls == 2 and kids[i].tag == 0:
        i += 1                                    # originatorInfo
    ris, eci = kids[i], kids[i + 1]
    if not is_univ(ris, 17):
        raise BerError('recipientInfos is not a SET')
    recips = []
    for ri in ris.children:
        if is_univ(ri, 16):                      # KeyTransRecipientInfo
            recips.append(('ktri', oid_str(ri.children[2].children[0].value), 1))
        elif ri.cls == 2 and ri.tag == 1:        # [1] KeyAgreeRecipientInfo
            alg = [c for c in ri.children if is_univ(c, 16)]
            if len(alg) != 2:
                raise BerError('unexpected KeyAgreeRecipientInfo layout')
            recips.append(('kari', oid_str(alg[0].children[0].value), len(alg[1].children)))
        else:
            recips.append(('other[%d]' % ri.tag, '', 1))
    if not is_univ(eci, 16):
        raise BerError('(auth)encryptedContentInfo is not a SEQUENCE')
    inner_type = oid_str(eci.children[0].value)
    cea = oid_str(eci.children[1].children[0].value)
    has_content = any(c.cls == 2 and c.tag == 0 for c in eci.children[2:])
    mac = None
    if ctype == OID_AUTH_ENVELOPED:
        tail = kids[i + 2:]
        octets = [c for c in tail if is_univ(c, 4)]
        mac = octets[0].value if octets else None
    return {'type': ctype, 'recipients': recips, 'inner_type': inner_type, 'cea': cea,
            'has_content': has_content, 'mac': mac}


def is_ecdh_oid(oid):
    return oid in ECDH_OIDS or oid.startswith(ECDH_OID_PREFIXES)


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------

class Results:
    def __init__(self, group, verbose):
        self.group, self.verbose = group, verbose
        self.passed = 0
        self.failed = []
        self.lock = threading.Lock()

    def ok(self, case, what):
        with self.lock:
            self.passed += 1
            if self.verbose:
                print('ok   %s | %s' % (case, what), flush=True)

    def fail(self, case, what, why):
        with self.lock:
            self.failed.append((case, what, why))
            print('FAIL %s | %s\n     %s' % (case, what, why.replace('\n', '\n     ')), flush=True)

    def check(self, case, what, errors):
        """errors: list of strings (empty = pass)."""
        if errors:
            self.fail(case, what, '\n'.join(errors))
        else:
            self.ok(case, what)
        return not errors


def diff_bytes(expected, got, label='bytes'):
    if expected == got:
        return None
    n = min(len(expected), len(got))
    i = next((k for k in range(n) if expected[k] != got[k]), n)
    lo = max(0, i - 30)
    return ('%s differ: expected %d bytes, got %d; first difference at offset %d\n'
            'expected[%d:]: %r\ngot[%d:]:      %r'
            % (label, len(expected), len(got), i, lo, expected[lo:i + 40], lo, got[lo:i + 40]))


# --------------------------------------------------------------------------------------------
# Process / PKI helpers
# --------------------------------------------------------------------------------------------

class Ctx:
    def __init__(self, args, tmp, results):
        self.bin = args.sealmilter
        self.data = args.data
        self.tmp = tmp
        self.res = results
        self.jobs = args.jobs
        self._n = 0
        self._lock = threading.Lock()
        self.ca = None
        self.ids = {}
        self.id_lock = threading.Lock()

    def tmpdir(self, prefix='t'):
        with self._lock:
            self._n += 1
            n = self._n
        d = os.path.join(self.tmp, '%s%05d' % (prefix, n))
        os.mkdir(d)
        return d

    def messages(self):
        return sorted(glob.glob(os.path.join(self.data, 'messages', '*.eml')))

    def nss_messages(self):
        return sorted(glob.glob(os.path.join(self.data, 'nss-smime', '*.eml')))

    def corpus(self):
        return self.messages() + self.nss_messages() + self.synthetic()

    def synthetic(self):
        """Edge cases of the contract that the corpus may lack, written to the temp dir."""
        with self._lock:
            if getattr(self, '_synthetic', None) is None:
                d = os.path.join(self.tmp, 'synthetic')
                os.mkdir(d)
                paths = []
                for name, data in synthetic_messages():
                    p = os.path.join(d, name)
                    write(p, data)
                    paths.append(p)
                self._synthetic = paths
            return self._synthetic


def synthetic_messages():
    h = [b'From: Sender <sender@interop.example>', b'To: rcpt@interop.example', b'Subject: synthetic edge case',
         b'Date: Mon, 02 Feb 2026 10:00:00 +0100', b'Message-ID: <edge@interop.example>']
    lf, crlf = b'\n', b'\r\n'
    rnd = random.Random(5322)
    binary = bytes(rnd.getrandbits(8) for _ in range(3000))
    return [
        ('synthetic-headers-only-lf.eml',                      # no empty line: all header, empty body
         lf.join(h + [b'MIME-Version: 1.0', b'Content-Type: text/plain; charset=us-ascii']) + lf),
        ('synthetic-headers-only-crlf-no-final-eol.eml',
         crlf.join(h + [b'Content-Type: text/plain;', b'\tcharset=us-ascii', b'X-Last: no line end'])),
        ('synthetic-lowercase-interleaved-content-fields.eml',
         lf.join([h[0], b'content-id: <part1@interop.example>', h[1], b'MIME-Version: 1.0',
                  b'content-TYPE: text/plain;', b'    charset="utf-8"', h[2], b'Content-description: a note',
                  b'CONTENT-LANGUAGE: de', h[3], b'content-transfer-encoding: 8bit', h[4], b'',
                  'Grüße aus dem Test.'.encode(), b'']) + lf),
        ('synthetic-crlf-with-bare-lf-and-cr-in-body.eml',
         crlf.join(h + [b'MIME-Version: 1.0', b'Content-Type: text/plain', b'', b'line 1']) + crlf
         + b'bare LF line\nlone CR\rhere' + crlf + b'\n\n\r\n' + b'end' + crlf),
        ('synthetic-binary-body-lf.eml',                        # NUL, 8-bit, CR/LF bytes at random
         lf.join(h + [b'MIME-Version: 1.0', b'Content-Type: application/octet-stream',
                      b'Content-Transfer-Encoding: binary', b'Content-Disposition: attachment; filename=x.bin',
                      b'']) + lf + binary),
    ]


def run(cmd, stdin=b'', timeout=SUBPROCESS_TIMEOUT, env=None):
    try:
        p = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, env=env)
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired:
        return -999, b'', ('timeout after %ds: %s' % (timeout, ' '.join(cmd))).encode()
    except OSError as e:
        return -998, b'', ('cannot run %s: %s' % (cmd[0], e)).encode()


def must(cmd, stdin=b''):
    rc, out, err = run(cmd, stdin)
    if rc != 0:
        raise RuntimeError('setup command failed (rc=%d): %s\n%s' % (rc, ' '.join(cmd), err.decode(errors='replace')))
    return out


def short(b, n=400):
    s = b.decode('utf-8', errors='replace').strip()
    return s if len(s) <= n else s[:n] + '...'


class Identity:
    """A recipient: certificate (PEM + DER), PEM private key, PKCS#12, lazily an NSS database."""

    def __init__(self, name, email, kind, d):
        self.name, self.email, self.kind, self.dir = name, email, kind, d
        self.cert_pem = os.path.join(d, name + '.crt.pem')
        self.cert_der = os.path.join(d, name + '.crt.der')
        self.key_pem = os.path.join(d, name + '.key.pem')
        self.p12 = os.path.join(d, name + '.p12')
        self.p12_pass_file = os.path.join(d, 'p12pass')
        self._nssdb = None
        self._lock = threading.Lock()

    def cert(self, form):
        return self.cert_der if form == 'der' else self.cert_pem

    def nssdb(self):
        """A fresh NSS database holding only this identity's key (and chain)."""
        with self._lock:
            if self._nssdb is None:
                db = os.path.join(self.dir, 'nssdb-' + self.name)
                os.mkdir(db)
                must(['certutil', '-N', '-d', 'sql:' + db, '--empty-password'])
                must(['pk12util', '-i', self.p12, '-d', 'sql:' + db, '-w', self.p12_pass_file, '-K', ''])
                self._nssdb = 'sql:' + db
            return self._nssdb


def write(path, data, mode=0o600):
    with open(path, 'wb') as f:
        f.write(data)
    os.chmod(path, mode)


def make_ca(ctx):
    d = os.path.join(ctx.tmp, 'ca')
    os.mkdir(d)
    key, crt = os.path.join(d, 'ca.key'), os.path.join(d, 'ca.crt')
    cfg = os.path.join(d, 'ca.cnf')
    write(cfg, b'[req]\ndistinguished_name=dn\n[dn]\n[v3ca]\nbasicConstraints=critical,CA:TRUE\n'
               b'keyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n')
    must(['openssl', 'genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key])
    must(['openssl', 'req', '-new', '-x509', '-key', key, '-out', crt, '-days', '3650', '-sha256',
          '-subj', '/O=sealmilter interop test/CN=Interop Test CA %d' % os.getpid(),
          '-config', cfg, '-extensions', 'v3ca'])
    ctx.ca = (key, crt)


def gen_identity(ctx, name, kind, size, key_usage=None, eku='emailProtection'):
    """A fresh key + certificate issued by the test CA.  kind 'rsa' (size=bits) or 'ec'
    (size=curve).  key_usage defaults to keyEncipherment (RSA) / keyAgreement (EC)."""
    if ctx.ca is None:
        make_ca(ctx)
    d = ctx.tmpdir('id-' + name + '-')
    email = '%s@interop.example' % name
    ident = Identity(name, email, kind, d)
    if kind == 'rsa':
        must(['openssl', 'genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:%d' % size,
              '-out', ident.key_pem])
    else:
        must(['openssl', 'genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:%s' % size,
              '-pkeyopt', 'ec_param_enc:named_curve', '-out', ident.key_pem])
    if key_usage is None:
        key_usage = 'keyEncipherment' if kind == 'rsa' else 'keyAgreement'
    ext = ('[ext]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,%s\n'
           'subjectAltName=email:%s\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n'
           % (key_usage, email))
    if eku:
        ext += 'extendedKeyUsage=%s\n' % eku
    cfg = os.path.join(d, 'ext.cnf')
    write(cfg, ext.encode())
    csr = os.path.join(d, 'req.csr')
    must(['openssl', 'req', '-new', '-key', ident.key_pem, '-subj', '/O=sealmilter interop test/CN=%s' % name,
          '-out', csr])
    must(['openssl', 'x509', '-req', '-in', csr, '-CA', ctx.ca[1], '-CAkey', ctx.ca[0],
          '-set_serial', str(random.getrandbits(63) | 1), '-days', '3650', '-sha256',
          '-extfile', cfg, '-extensions', 'ext', '-out', ident.cert_pem])
    must(['openssl', 'x509', '-in', ident.cert_pem, '-outform', 'DER', '-out', ident.cert_der])
    write(ident.p12_pass_file, b'interop\n')
    must(['openssl', 'pkcs12', '-export', '-inkey', ident.key_pem, '-in', ident.cert_pem,
          '-certfile', ctx.ca[1], '-name', name, '-passout', 'file:' + ident.p12_pass_file,
          '-out', ident.p12])
    return ident


def pkcs12_extract(p12, pwfile, extra):
    for legacy in ([], ['-legacy']):
        rc, out, err = run(['openssl', 'pkcs12', '-in', p12, '-passin', 'file:' + pwfile] + legacy + extra)
        if rc == 0:
            return out
    raise RuntimeError('cannot read %s with openssl pkcs12: %s' % (p12, short(err)))


def nss_identity(ctx, name):
    """An identity from NSS's own .p12 files (password `nss`)."""
    src = os.path.join(ctx.data, 'nss-smime', name + '.p12')
    d = ctx.tmpdir('id-' + name + '-')
    pw = os.path.join(d, 'p12pass')
    write(pw, (NSS_PASSWORD + '\n').encode())
    cert = pkcs12_extract(src, pw, ['-nokeys', '-clcerts'])
    key = pkcs12_extract(src, pw, ['-nocerts', '-nodes'])
    tmpc, tmpk = os.path.join(d, 'c.tmp'), os.path.join(d, 'k.tmp')
    write(tmpc, cert)
    write(tmpk, key)
    text = must(['openssl', 'x509', '-in', tmpc, '-noout', '-text']).decode()
    kind = 'ec' if 'id-ecPublicKey' in text else 'rsa'
    m = re.search(r'emailAddress\s*=\s*([^,\s/]+)', text)
    email = m.group(1) if m else name + '@example.com'
    ident = Identity(name, email, kind, d)
    ident.p12_pass_file = pw
    must(['openssl', 'x509', '-in', tmpc, '-out', ident.cert_pem])
    must(['openssl', 'x509', '-in', tmpc, '-outform', 'DER', '-out', ident.cert_der])
    must(['openssl', 'pkey', '-in', tmpk, '-out', ident.key_pem])
    shutil.copyfile(src, ident.p12)
    ident.sans = re.findall(r'email:([^,\s]+)', text)
    return ident


def identity(ctx, spec):
    """Cached identity by spec name: rsa2048, rsa3072, rsa4096, p256, p384, nss:Alice, ..."""
    with ctx.id_lock:
        if spec not in ctx.ids:
            if spec.startswith('nss:'):
                ctx.ids[spec] = nss_identity(ctx, spec[4:])
            elif spec.startswith('rsa'):
                ctx.ids[spec] = gen_identity(ctx, spec, 'rsa', int(spec[3:]))
            elif spec in ('p256', 'p384', 'p521'):
                ctx.ids[spec] = gen_identity(ctx, spec, 'ec', {'p256': 'P-256', 'p384': 'P-384',
                                                               'p521': 'P-521'}[spec])
            else:
                raise ValueError('unknown identity ' + spec)
        return ctx.ids[spec]


def get_identities(ctx, specs):
    return [identity(ctx, s) for s in specs]


# --------------------------------------------------------------------------------------------
# Decryptors
# --------------------------------------------------------------------------------------------

def openssl_decrypt(ctx, msg_file, ident, inform='SMIME'):
    """Decrypt with OpenSSL.  Returns (ok, plaintext or error text)."""
    d = ctx.tmpdir('ossl')
    out = os.path.join(d, 'dec')
    rc, _o, err = run(['openssl', 'cms', '-decrypt', '-binary', '-inform', inform, '-in', msg_file,
                       '-inkey', ident.key_pem, '-recip', ident.cert_pem, '-out', out])
    if rc != 0:
        return False, 'openssl cms -decrypt rc=%d: %s' % (rc, short(err))
    with open(out, 'rb') as f:
        return True, f.read()


def nss_decrypt(ctx, der_file, ident):
    """Decrypt with NSS cmsutil.  Returns (rc, plaintext, stderr)."""
    db = ident.nssdb()
    d = ctx.tmpdir('nss')
    out = os.path.join(d, 'dec')
    rc, _o, err = run(['cmsutil', '-D', '-d', db, '-i', der_file, '-o', out])
    data = b''
    if os.path.exists(out):
        with open(out, 'rb') as f:
            data = f.read()
    return rc, data, err


def check_nss(ctx, case, der_file, ident, expected, nss_ok, reason):
    """Run NSS and assert the expected outcome.  Returns a short description of what NSS did."""
    what = 'decryptor nss-cmsutil, recipient %s' % ident.name
    rc, data, err = nss_decrypt(ctx, der_file, ident)
    code = re.search(rb'(SEC_ERROR|PR|SSL_ERROR)_[A-Z0-9_]+', err)
    observed = ('decrypts' if rc == 0 and data == expected else
                'fails (%s)' % (code.group(0).decode() if code else 'rc=%d' % rc))
    if nss_ok:
        errs = []
        if rc != 0:
            errs.append('NSS cmsutil -D failed (rc=%d): %s' % (rc, short(err)))
        else:
            d = diff_bytes(expected, data, 'NSS plaintext vs expected inner entity')
            if d:
                errs.append(d)
        ctx.res.check(case, what, errs)
        return observed
    what += ' (expected to FAIL: %s)' % reason
    if rc == 0 and data == expected:
        errs = ['NSS cmsutil now DECRYPTS this variant correctly. The documented NSS limitation no longer '
                'holds: update nss_expectation() in interop.py, tests/interop/README.md and SPEC.md.']
    elif rc == 0:
        errs = ['NSS cmsutil exited 0 but yielded wrong plaintext: %s' % diff_bytes(expected, data)]
    elif b'decod' not in err.lower():
        errs = ['NSS failed, but not while decoding the message (setup problem?) rc=%d: %s' % (rc, short(err))]
    else:
        errs = []
    ctx.res.check(case, what, errs)
    return observed


# --------------------------------------------------------------------------------------------
# Checks of an encrypted message
# --------------------------------------------------------------------------------------------

B64_LINE = re.compile(rb'^[A-Za-z0-9+/]*={0,2}$')


def check_outer(orig, out, cipher):
    """Check the outer message of `sealmilter encrypt` output.  Returns (errors, der or None)."""
    errs = []
    eol = eol_of(orig)
    other = b'\n' if eol == b'\r\n' else b'\r\n'
    oblock, osep, obody = split_message(orig)
    block, sep, body = split_message(out)
    if not sep:
        return ['output has no empty line between header and body'], None
    if sep != eol:
        errs.append('empty line after the header uses %r, input convention is %r' % (sep, eol))
    ofields = header_fields(oblock)
    fields = header_fields(block)
    for f in fields:
        if not f.endswith(b'\n'):
            errs.append('output header field not terminated by a line end: %r' % f[:80])
    orig_outer = [f for f in ofields if not is_content_field(f)]
    out_content = [f for f in fields if is_content_field(f)]
    out_other = [f for f in fields if not is_content_field(f)]
    # MIME-Version
    orig_has_mv = any(field_name(f) == b'mime-version' for f in ofields)
    if not orig_has_mv:
        mv = [f for f in out_other if field_name(f) == b'mime-version']
        if len(mv) != 1:
            errs.append('original has no MIME-Version; output must add exactly one, has %d' % len(mv))
        else:
            if unfold(mv[0]) != b'MIME-Version: 1.0':
                errs.append('added MIME-Version field is %r, expected %r' % (unfold(mv[0]), b'MIME-Version: 1.0'))
            if not mv[0].endswith(eol) or (eol == b'\n' and mv[0].endswith(b'\r\n')):
                errs.append('added MIME-Version field has the wrong line end: %r' % mv[0])
            out_other = [f for f in out_other if f is not mv[0]]
    # Original non-content fields: same raw fields, same order, modulo line ends.
    a = [norm_eol(ensure_eol(f)) for f in orig_outer]
    b = [norm_eol(f) for f in out_other]
    if a != b:
        k = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
        errs.append('outer header fields differ from the original non-content fields (%d vs %d fields); '
                    'first difference at field #%d:\nexpected %r\ngot      %r'
                    % (len(a), len(b), k, a[k] if k < len(a) else None, b[k] if k < len(b) else None))
    # Exactly the three new content fields.
    kind = 'authEnveloped' if cipher == 'aes-256-gcm' else 'enveloped'
    want = {b'content-type': NEW_CT[kind], b'content-transfer-encoding': NEW_CTE,
            b'content-disposition': NEW_CD}
    names = [field_name(f) for f in out_content]
    if sorted(names) != sorted(want):
        errs.append('output content header fields are %r, expected exactly one each of %r'
                    % ([n.decode() for n in names], sorted(n.decode() for n in want)))
    for f in out_content:
        w = want.get(field_name(f))
        if w is not None and unfold(f) != w:
            errs.append('output field %r, expected %r' % (unfold(f), w))
        if eol == b'\n' and b'\r' in f or eol == b'\r\n' and re.search(rb'(?<!\r)\n', f):
            errs.append('new field %r does not use the input line-end convention %r' % (f, eol))
    # Body: base64, 76 columns, input line-end convention.
    if re.search(rb'(?<!\r)\n', body) if eol == b'\r\n' else b'\r' in body:
        errs.append('base64 body does not consistently use the input line-end convention %r' % eol)
        return errs, None
    lines = body.split(eol)
    if lines and lines[-1] == b'':
        lines.pop()
    if not lines:
        errs.append('empty body')
        return errs, None
    for i, ln in enumerate(lines):
        if not B64_LINE.match(ln):
            errs.append('body line %d is not base64: %r' % (i + 1, ln[:90]))
            return errs, None
        if i < len(lines) - 1 and len(ln) != 76:
            errs.append('body line %d has %d characters, expected 76 (every line but the last)' % (i + 1, len(ln)))
            break
        if i == len(lines) - 1 and not 1 <= len(ln) <= 76:
            errs.append('last body line has %d characters' % len(ln))
    joined = b''.join(lines)
    try:
        if len(joined) % 4:
            raise binascii.Error('length %d not a multiple of 4' % len(joined))
        der = base64.b64decode(joined, validate=True)
    except binascii.Error as e:
        errs.append('body is not valid base64: %s' % e)
        return errs, None
    # No plaintext leak: a distinctive chunk of the original body must not appear in the output.
    sample = obody.strip()[len(obody.strip()) // 2:][:64]
    if len(sample) >= 32 and sample in out and sample not in oblock:
        errs.append('a 64-byte chunk of the original body appears in clear in the output: %r' % sample)
    return errs, der


def check_cms(der, cipher, padding, idents):
    errs = []
    try:
        s = cms_summary(der)
    except (BerError, IndexError, AttributeError, TypeError) as e:
        return ['CMS structure cannot be parsed: %s' % e], None
    want_type = OID_AUTH_ENVELOPED if cipher == 'aes-256-gcm' else OID_ENVELOPED
    if s['type'] != want_type:
        errs.append('ContentInfo type %s, expected %s' % (s['type'], want_type))
    if s['cea'] != CIPHER_OIDS[cipher]:
        errs.append('content-encryption algorithm %s, expected %s (%s)' % (s['cea'], CIPHER_OIDS[cipher], cipher))
    if s['inner_type'] != OID_DATA:
        errs.append('encrypted content type %s, expected id-data' % s['inner_type'])
    if not s['has_content']:
        errs.append('no encryptedContent in the envelope')
    if s['type'] == OID_AUTH_ENVELOPED and not s['mac']:
        errs.append('AuthEnvelopedData without mac')
    n = sum(r[2] for r in s['recipients'])
    if n != len(idents):
        errs.append('envelope has %d recipients %r, expected %d' % (n, s['recipients'], len(idents)))
    want_rsa = OID_RSA_OAEP if padding == 'oaep' else OID_RSA
    n_rsa = sum(1 for i in idents if i.kind == 'rsa')
    n_ec = len(idents) - n_rsa
    ktri = [r for r in s['recipients'] if r[0] == 'ktri']
    kari = [r for r in s['recipients'] if r[0] == 'kari']
    if len(ktri) != n_rsa:
        errs.append('%d KeyTransRecipientInfos for %d RSA recipients' % (len(ktri), n_rsa))
    for r in ktri:
        if r[1] != want_rsa:
            errs.append('KeyTransRecipientInfo algorithm %s, expected %s (%s)' % (r[1], want_rsa, padding))
    if sum(r[2] for r in kari) != n_ec:
        errs.append('%d ECDH recipient keys for %d EC recipients' % (sum(r[2] for r in kari), n_ec))
    for r in kari:
        if not is_ecdh_oid(r[1]):
            errs.append('KeyAgreeRecipientInfo algorithm %s is not an RFC 5753 ECDH scheme' % r[1])
    return errs, s


# --------------------------------------------------------------------------------------------
# The encrypt + decrypt-twice case
# --------------------------------------------------------------------------------------------

class Variant:
    def __init__(self, label, idents, cipher=None, padding=None, forms=None, to=None, nss_check=True):
        self.label = label
        self.idents = idents
        self.cipher = cipher            # None: no option given, the default must be aes-256-cbc
        self.padding = padding          # None: no option given, the default must be PKCS#1 v1.5
        self.forms = forms or ['pem'] * len(idents)
        self.to = to or [i.email for i in idents]
        self.nss_check = nss_check

    def args(self):
        a = []
        for t in self.to:
            a += ['--to', t]
        for i, f in zip(self.idents, self.forms):
            a += ['--cert', i.cert(f)]
        if self.cipher:
            a.append('--crypto.cipher=' + self.cipher)
        if self.padding:
            a.append('--crypto.rsa_padding=' + self.padding)
        return a


def read(path):
    with open(path, 'rb') as f:
        return f.read()


def encrypt_case(ctx, msg_path, v):
    mname = os.path.basename(msg_path)
    case = '%s | %s' % (mname, v.label)
    orig = read(msg_path)
    rc, out, err = run([ctx.bin, 'encrypt'] + v.args(), orig)
    reason = encrypted_reason(orig)
    if reason:
        errs = []
        if rc != 0:
            errs.append('exit %d (expected 0): %s' % (rc, short(err)))
        elif out != orig:
            errs.append(diff_bytes(orig, out, 'pass-through output'))
        ctx.res.check(case, 'already encrypted (%s): passed through unchanged' % reason, errs)
        return
    if rc != 0:
        ctx.res.fail(case, 'sealmilter encrypt', 'exit %d: %s' % (rc, short(err)))
        return
    cipher = v.cipher or DEFAULT_CIPHER
    padding = v.padding or DEFAULT_PADDING
    errs, der = check_outer(orig, out, cipher)
    if der is not None:
        cerrs, _s = check_cms(der, cipher, padding, v.idents)
        errs += cerrs
    ctx.res.check(case, 'outer message + CMS structure', errs)
    if der is None:
        return
    d = ctx.tmpdir('enc')
    out_file, der_file = os.path.join(d, 'out.eml'), os.path.join(d, 'out.der')
    write(out_file, out)
    write(der_file, der)
    expected = expected_inner(orig)
    kinds = {i.kind for i in v.idents}
    nss_ok, nss_reason = nss_expectation(cipher, padding, kinds)
    for ident in v.idents:
        ok, data = openssl_decrypt(ctx, out_file, ident)
        e = [data] if not ok else ([diff_bytes(expected, data, 'OpenSSL plaintext vs expected inner entity')]
                                   if data != expected else [])
        ctx.res.check(case, 'decryptor openssl-cms, recipient %s' % ident.name, e)
        if v.nss_check:
            check_nss(ctx, case, der_file, ident, expected, nss_ok, nss_reason)
    return out


def run_parallel(ctx, fn, items):
    with concurrent.futures.ThreadPoolExecutor(max_workers=ctx.jobs) as ex:
        futs = {ex.submit(fn, *it): it for it in items}
        for fut in concurrent.futures.as_completed(futs):
            try:
                fut.result()
            except Exception as e:   # a harness bug or setup failure must be visible, not hidden
                import traceback
                ctx.res.fail(' | '.join(str(x) if not isinstance(x, Variant) else x.label
                                         for x in futs[fut]), 'harness exception',
                             '%s\n%s' % (e, traceback.format_exc()))


# --------------------------------------------------------------------------------------------
# Message selection
# --------------------------------------------------------------------------------------------

def representative_subset(paths, max_size=4 * 1024 * 1024):
    """A small set of messages chosen by properties (not by name), each property covered once."""
    msgs = [(p, read(p)) for p in paths]
    enc_in = [(p, m) for p, m in msgs if not encrypted_reason(m)]

    def body(m):
        return split_message(m)[2]

    def names(m):
        return [field_name(f) for f in header_fields(split_message(m)[0])]

    features = [
        ('LF line ends', lambda m: eol_of(m) == b'\n'),
        ('CRLF line ends', lambda m: eol_of(m) == b'\r\n'),
        ('mixed line ends', lambda m: b'\r\n' in m and re.search(rb'(?<!\r)\n', m)),
        ('no content header', lambda m: not any(n in CONTENT_FIELDS for n in names(m))),
        ('no MIME-Version', lambda m: b'mime-version' not in names(m)),
        ('folded content header', lambda m: any(is_content_field(f) and re.search(rb'\n[ \t]', f)
                                                for f in header_fields(split_message(m)[0]))),
        ('Content-ID', lambda m: b'content-id' in names(m)),
        ('Content-Description', lambda m: b'content-description' in names(m)),
        ('Content-Language', lambda m: b'content-language' in names(m)),
        ('Content-Disposition', lambda m: b'content-disposition' in names(m)),
        ('duplicate content field', lambda m: len([n for n in names(m) if n in CONTENT_FIELDS])
         > len({n for n in names(m) if n in CONTENT_FIELDS})),
        ('content fields interleaved with others', lambda m: re.search(
            rb'c+o+c', b''.join(b'c' if n in CONTENT_FIELDS else b'o' for n in names(m)))),
        ('header folded over 10+ lines', lambda m: any(
            len(re.findall(rb'\n[ \t]', f)) >= 10 for f in header_fields(split_message(m)[0]))),
        ('line longer than 998 octets', lambda m: any(len(x) > 998 for x in m.split(b'\n'))),
        ('multipart/mixed', lambda m: (parse_ct(m) or ('',))[0] == 'multipart/mixed'),
        ('multipart/signed', lambda m: (parse_ct(m) or ('',))[0] == 'multipart/signed'),
        ('opaque signed-data', lambda m: (parse_ct(m) or ('',))[0].endswith('pkcs7-mime')),
        ('no empty line', lambda m: split_message(m)[1] == b''),
        ('empty body', lambda m: split_message(m)[1] != b'' and body(m) == b''),
        ('lone CR', lambda m: re.search(rb'\r(?!\n)', m)),
        ('8-bit bytes', lambda m: re.search(rb'[\x80-\xff]', m)),
        ('NUL byte', lambda m: b'\0' in m),
        ('no final line end', lambda m: not m.endswith(b'\n')),
        ('lower/odd-case content header name', lambda m: any(
            is_content_field(f) and f.split(b':')[0].rstrip() not in (
                b'Content-Type', b'Content-Transfer-Encoding', b'Content-Disposition', b'Content-ID',
                b'Content-Description', b'Content-Language') for f in header_fields(split_message(m)[0]))),
    ]
    chosen = []
    for _label, pred in features:
        for p, m in enc_in:
            if len(m) <= max_size and pred(m):
                if p not in chosen:
                    chosen.append(p)
                break
    small = [(len(m), p) for p, m in enc_in if len(m) <= max_size]
    if small:
        big = max(small)[1]            # the largest message below the size cap
        if big not in chosen:
            chosen.append(big)
    return sorted(chosen)


# --------------------------------------------------------------------------------------------
# Groups
# --------------------------------------------------------------------------------------------

def corpus_group(ctx, spec, form, label=None):
    ident = get_identities(ctx, [spec])[0]
    v = Variant(label or '%s/default' % ident.name, [ident], forms=[form])
    run_parallel(ctx, functools.partial(encrypt_case, ctx), [(p, v) for p in ctx.corpus()])


def g_rsa2048(ctx):
    """Full corpus, fresh RSA-2048 certificate (PEM), no cipher options (defaults)."""
    corpus_group(ctx, 'rsa2048', 'pem')


def g_nss_alice(ctx):
    """Full corpus, NSS's Alice (RSA, address only in the subject DN), certificate as DER."""
    corpus_group(ctx, 'nss:Alice', 'der')


def g_nss_alice_ec(ctx):
    """Full corpus, NSS's Alice-ec (EC P-384): OpenSSL decrypts, NSS must fail (ECDH)."""
    corpus_group(ctx, 'nss:Alice-ec', 'pem')


def g_ec_p256(ctx):
    """Full corpus, fresh EC P-256 certificate (DER): OpenSSL decrypts, NSS must fail (ECDH)."""
    corpus_group(ctx, 'p256', 'der')


def g_rsa_variants(ctx):
    """Representative subset x RSA key sizes, NSS Fran/Eve, ciphers, padding, multi-recipient."""
    ids = dict(zip(['rsa2048', 'rsa3072', 'rsa4096', 'alice', 'fran', 'eve'],
                   get_identities(ctx, ['rsa2048', 'rsa3072', 'rsa4096', 'nss:Alice', 'nss:Fran', 'nss:Eve'])))
    eve = ids['eve']
    variants = [
        Variant('rsa3072/default', [ids['rsa3072']]),
        Variant('rsa4096/default', [ids['rsa4096']], forms=['der']),
        Variant('Fran/default', [ids['fran']]),
        Variant('Eve/default (to=SAN %s)' % eve.sans[-1], [eve], to=[eve.sans[-1]]),
        Variant('rsa2048/explicit aes-256-cbc+pkcs1', [ids['rsa2048']], cipher='aes-256-cbc', padding='pkcs1'),
        Variant('rsa2048/aes-128-cbc', [ids['rsa2048']], cipher='aes-128-cbc'),
        Variant('Alice/aes-128-cbc', [ids['alice']], cipher='aes-128-cbc', forms=['der']),
        Variant('rsa2048/oaep', [ids['rsa2048']], padding='oaep'),
        Variant('Alice/oaep', [ids['alice']], padding='oaep'),
        Variant('rsa4096/oaep+aes-128-cbc', [ids['rsa4096']], cipher='aes-128-cbc', padding='oaep'),
        Variant('rsa2048/aes-256-gcm', [ids['rsa2048']], cipher='aes-256-gcm'),
        Variant('Alice/aes-256-gcm', [ids['alice']], cipher='aes-256-gcm'),
        Variant('rsa3072/aes-256-gcm+oaep', [ids['rsa3072']], cipher='aes-256-gcm', padding='oaep'),
        Variant('multi-RSA x6/default', list(ids.values()), forms=['pem', 'der', 'pem', 'der', 'pem', 'der']),
        Variant('multi-RSA x3/aes-128-cbc+oaep', [ids['rsa2048'], ids['alice'], ids['fran']],
                cipher='aes-128-cbc', padding='oaep'),
    ]
    subset = representative_subset(ctx.corpus())
    print('interop %s: %d messages in the representative subset: %s'
          % (ctx.res.group, len(subset), ', '.join(os.path.basename(p) for p in subset)), flush=True)
    run_parallel(ctx, functools.partial(encrypt_case, ctx), [(p, v) for v in variants for p in subset])


def g_ec_variants(ctx):
    """Representative subset x EC P-384, NSS Fran-ec, GCM, AES-128, multi-recipient EC."""
    p256, p384, aec, fec = get_identities(ctx, ['p256', 'p384', 'nss:Alice-ec', 'nss:Fran-ec'])
    variants = [
        Variant('p384/default', [p384]),
        Variant('Fran-ec/default', [fec], forms=['der']),
        Variant('p384/aes-128-cbc', [p384], cipher='aes-128-cbc'),
        Variant('p256/aes-256-gcm', [p256], cipher='aes-256-gcm'),
        Variant('Alice-ec/aes-256-gcm', [aec], cipher='aes-256-gcm', forms=['der']),
        Variant('multi-EC x4/default', [p256, p384, aec, fec], forms=['pem', 'der', 'der', 'pem']),
        Variant('multi-EC x2/aes-256-gcm', [p256, fec], cipher='aes-256-gcm'),
    ]
    subset = representative_subset(ctx.corpus())
    print('interop %s: %d messages in the representative subset: %s'
          % (ctx.res.group, len(subset), ', '.join(os.path.basename(p) for p in subset)), flush=True)
    run_parallel(ctx, functools.partial(encrypt_case, ctx), [(p, v) for v in variants for p in subset])


# ---- decrypt / round trip / error codes ----

def expect_exit(ctx, case, cmd, stdin, want, secret=None, stderr_re=None):
    rc, out, err = run(cmd, stdin)
    errs = []
    if rc != want:
        errs.append('exit %d, expected %d; stderr: %s' % (rc, want, short(err)))
    if want != 0 and not err.strip():
        errs.append('no error message on stderr')
    if secret and len(secret) >= 16 and secret in out:
        errs.append('refused, but the plaintext body was written to stdout')
    if stderr_re and not re.search(stderr_re, err.decode('utf-8', 'replace'), re.I):
        errs.append('stderr does not match /%s/: %s' % (stderr_re, short(err)))
    ctx.res.check(case, 'exit code %d' % want, errs)
    return rc, out


def nss_enveloped_files(ctx):
    """NSS's own messages whose outermost layer is EnvelopedData (found by parsing)."""
    out = []
    for p in ctx.nss_messages():
        m = read(p)
        ct = parse_ct(m)
        if ct and ct[0].endswith('pkcs7-mime') and cms_content_type_of_body(m) == OID_ENVELOPED:
            out.append(p)
    return out


def check_decrypt_output(enc, got, inner, what_inner, source):
    """Contract of `sealmilter decrypt`: outer fields without S/MIME content fields, then the
    inner entity, in the input's line-end convention.  The line-end convention is checked when
    `source` (the original message, or what the output must contain) is itself consistent."""
    errs = []
    eol = eol_of(enc)
    want = b''.join(ensure_eol(f) for f in outer_fields(enc)) + inner
    d = diff_bytes(norm_eol(want), norm_eol(got), 'decrypt output vs outer fields + %s (modulo line ends)'
                   % what_inner)
    if d:
        errs.append(d)
    if eol == b'\r\n' and not re.search(rb'(?<!\r)\n', source) and re.search(rb'(?<!\r)\n', got):
        errs.append('input uses CRLF but the output contains bare LF line ends')
    if eol == b'\n' and b'\r' not in source and b'\r' in got:
        errs.append('input uses LF (and the original has no CR) but the output contains CR')
    return errs


def g_decrypt(ctx):
    """`sealmilter decrypt` on NSS's enveloped messages (Bob.p12 / PEM), round trips, errors."""
    bob, alice, rsa2048, rsa3072, p256 = get_identities(
        ctx, ['nss:Bob', 'nss:Alice', 'rsa2048', 'rsa3072', 'p256'])
    b = ctx.bin
    jobs = []

    # 1. NSS's own enveloped messages, decrypted with Bob's key: compare with openssl.
    def nss_env(path, keyargs, label):
        case = '%s | sealmilter decrypt %s' % (os.path.basename(path), label)
        enc = read(path)
        ok, ref = openssl_decrypt(ctx, path, bob)
        if not ok:
            ctx.res.fail(case, 'reference openssl decrypt', ref)
            return
        rc, out, err = run([b, 'decrypt'] + keyargs, enc)
        if rc != 0:
            ctx.res.fail(case, 'exit code', 'exit %d: %s' % (rc, short(err)))
            return
        ctx.res.check(case, 'output == outer fields + openssl-decrypted entity',
                      check_decrypt_output(enc, out, ref, 'openssl cms -decrypt output',
                                           b''.join(outer_fields(enc)) + ref))

    env_files = nss_enveloped_files(ctx)
    if not env_files:
        ctx.res.fail('nss-smime', 'enveloped messages', 'no NSS enveloped message found in %s' % ctx.data)
    for p in env_files:
        jobs.append((nss_env, p, ['--key', bob.p12, '--pass-file', bob.p12_pass_file], 'Bob.p12 --pass-file'))
    for p in env_files[:3]:
        jobs.append((nss_env, p, ['--key', bob.key_pem, '--cert', bob.cert_pem], 'Bob PEM key + --cert'))
        jobs.append((nss_env, p, ['--key', bob.key_pem], 'Bob PEM key'))

    # 2. Round trips: sealmilter encrypt, then sealmilter decrypt.
    def round_trip(path, ident, keyargs, label, extra):
        case = '%s | round trip %s' % (os.path.basename(path), label)
        orig = read(path)
        if encrypted_reason(orig):
            return
        rc, enc, err = run([b, 'encrypt', '--to', ident.email, '--cert', ident.cert_pem] + extra, orig)
        if rc != 0:
            ctx.res.fail(case, 'sealmilter encrypt', 'exit %d: %s' % (rc, short(err)))
            return
        rc, out, err = run([b, 'decrypt'] + keyargs, enc)
        if rc != 0:
            ctx.res.fail(case, 'sealmilter decrypt', 'exit %d: %s' % (rc, short(err)))
            return
        errs = check_decrypt_output(enc, out, expected_inner(orig), 'expected inner entity', orig)
        # and against the original itself: same fields modulo line ends, content fields moved after
        # the others, MIME-Version possibly added; same body.
        oblock, _s, obody = split_message(orig)
        block, _s2, body = split_message(out)
        of, f = header_fields(oblock), header_fields(block)
        want = ([norm_eol(ensure_eol(x)) for x in of if not is_content_field(x)]
                + ([b'MIME-Version: 1.0\n'] if not any(field_name(x) == b'mime-version' for x in of) else [])
                + [norm_eol(ensure_eol(x)) for x in of if is_content_field(x)])
        if sorted(want) != sorted(norm_eol(x) for x in f):
            errs.append('round-trip header fields differ from the original ones:\nexpected %r\ngot      %r'
                        % (want, [norm_eol(x) for x in f]))
        d = diff_bytes(norm_eol(canon_crlf(obody)), norm_eol(canon_crlf(body)), 'round-trip body (modulo line ends)')
        if d:
            errs.append(d)
        ctx.res.check(case, 'decrypt(encrypt(m)) == m modulo CRLF and replaced MIME headers', errs)

    for p in ctx.corpus():
        jobs.append((round_trip, p, rsa2048, ['--key', rsa2048.key_pem], 'rsa2048 PEM key', []))
    for p in representative_subset(ctx.corpus()):
        jobs.append((round_trip, p, p256, ['--key', p256.key_pem, '--cert', p256.cert_pem], 'p256 PEM key', []))
        jobs.append((round_trip, p, alice, ['--key', alice.p12, '--pass-file', alice.p12_pass_file],
                     'Alice.p12 aes-256-gcm', ['--crypto.cipher=aes-256-gcm']))
        jobs.append((round_trip, p, rsa3072, ['--key', rsa3072.p12, '--pass-file', rsa3072.p12_pass_file],
                     'rsa3072.p12 oaep', ['--crypto.rsa_padding=oaep']))

    with concurrent.futures.ThreadPoolExecutor(max_workers=ctx.jobs) as ex:
        futs = [ex.submit(j[0], *j[1:]) for j in jobs]
        for fut in futs:
            try:
                fut.result()
            except Exception as e:
                import traceback
                ctx.res.fail('decrypt group', 'harness exception', '%s\n%s' % (e, traceback.format_exc()))

    # 3. Error exit codes.
    plain = next(p for p in ctx.corpus() if not encrypted_reason(read(p)) and len(read(p)) > 200)
    pm = read(plain)
    secret = split_message(pm)[2].strip()[:64]
    pn = os.path.basename(plain)
    if env_files:
        expect_exit(ctx, '%s | decrypt with a non-recipient key (Alice.p12)' % os.path.basename(env_files[0]),
                    [b, 'decrypt', '--key', alice.p12, '--pass-file', alice.p12_pass_file], read(env_files[0]), 65)
    rc, enc, err = run([b, 'encrypt', '--to', rsa2048.email, '--cert', rsa2048.cert_pem], pm)
    if rc == 0:
        expect_exit(ctx, '%s | decrypt rsa2048 envelope with the rsa3072 key' % pn,
                    [b, 'decrypt', '--key', rsa3072.key_pem], enc, 65, secret)
        expect_exit(ctx, '%s | decrypt rsa2048 envelope with an EC key' % pn,
                    [b, 'decrypt', '--key', p256.key_pem], enc, 65, secret)
    else:
        ctx.res.fail('%s | encrypt for wrong-key test' % pn, 'sealmilter encrypt', 'exit %d: %s' % (rc, short(err)))
    expect_exit(ctx, '%s | decrypt of a plain (unencrypted) message' % pn,
                [b, 'decrypt', '--key', rsa2048.key_pem], pm, 65)
    # An opaque-signed message with no enveloped layer anywhere inside it (found by parsing).
    signed = next((p for p in ctx.nss_messages() if cms_content_type_of_body(read(p)) == OID_SIGNED
                   and not re.search(rb'(?i)enveloped-data|smime\.p7m', signed_content(read(p)) or b'smime.p7m')),
                  None)
    if signed:
        expect_exit(ctx, '%s | decrypt of an opaque-signed message without any envelope inside'
                    % os.path.basename(signed), [b, 'decrypt', '--key', bob.key_pem], read(signed), 65)
    else:
        ctx.res.fail('nss-smime', 'opaque-signed message', 'no opaque-signed message without an envelope found')
    missing = os.path.join(ctx.tmp, 'does-not-exist.pem')
    expect_exit(ctx, '%s | encrypt with a nonexistent --cert file' % pn,
                [b, 'encrypt', '--to', 'x@interop.example', '--cert', missing], pm, 66, secret)
    expect_exit(ctx, '%s | encrypt with a nonexistent second --cert file' % pn,
                [b, 'encrypt', '--to', rsa2048.email, '--cert', rsa2048.cert_pem, '--to', 'x@interop.example',
                 '--cert', missing], pm, 66, secret)
    expect_exit(ctx, '%s | decrypt with a nonexistent --key file' % pn,
                [b, 'decrypt', '--key', missing], pm, 66)
    # Certificates lacking the key usage needed for encryption, and a weak key.
    bad = [('rsa2048 with keyUsage=digitalSignature only', 'rsa', 2048, 'digitalSignature'),
           ('EC P-256 with keyUsage=digitalSignature only', 'ec', 'P-256', 'digitalSignature'),
           ('RSA with keyUsage=keyAgreement (EC usage) only', 'rsa', 2048, 'keyAgreement'),
           ('RSA-1024 (weak key) with keyEncipherment', 'rsa', 1024, 'keyEncipherment')]
    for k, (label, kind, size, ku) in enumerate(bad):
        ident = gen_identity(ctx, 'bad%d' % k, kind, size, key_usage=ku)
        expect_exit(ctx, '%s | encrypt to %s' % (pn, label),
                    [b, 'encrypt', '--to', ident.email, '--cert', ident.cert_pem], pm, 65, secret)
    garbage = os.path.join(ctx.tmp, 'garbage.pem')
    write(garbage, b'this is not a certificate\n')
    expect_exit(ctx, '%s | encrypt with a --cert file that is not a certificate' % pn,
                [b, 'encrypt', '--to', 'x@interop.example', '--cert', garbage], pm, 65, secret)
    # Usage errors.
    expect_exit(ctx, 'usage | unknown subcommand', [b, 'no-such-subcommand'], pm, 64)
    expect_exit(ctx, 'usage | unknown option', [b, 'encrypt', '--no-such-option', '--to', rsa2048.email,
                                                '--cert', rsa2048.cert_pem], pm, 64, secret)
    expect_exit(ctx, 'usage | invalid --crypto.cipher value',
                [b, 'encrypt', '--to', rsa2048.email, '--cert', rsa2048.cert_pem, '--crypto.cipher=des-ede3-cbc'],
                pm, 64, secret)
    expect_exit(ctx, 'usage | invalid --crypto.rsa_padding value',
                [b, 'encrypt', '--to', rsa2048.email, '--cert', rsa2048.cert_pem, '--crypto.rsa_padding=none'],
                pm, 64, secret)


# ---- pass-through, mixed RSA+EC refusal ----

def synthetic_encrypted(ctx, base, eol):
    """Already-encrypted messages built here from a real envelope (one per contract rule)."""
    rc, env, err = run(['openssl', 'cms', '-encrypt', '-binary', '-outform', 'DER', '-aes-256-cbc',
                        '-recip', base.cert_pem], b'Content-Type: text/plain\r\n\r\nsecret\r\n')
    if rc != 0:
        raise RuntimeError('openssl cms -encrypt failed: %s' % short(err))
    b64 = base64.encodebytes(env).replace(b'\n', eol)
    hdr = [b'From: a@interop.example', b'To: b@interop.example', b'Subject: synthetic', b'MIME-Version: 1.0']

    def msg(ct, body, extra=()):
        return eol.join(hdr + list(extra) + [ct, b'']) + eol + body

    return {
        'x-pkcs7-mime enveloped-data': msg(b'Content-Type: application/x-pkcs7-mime; smime-type=enveloped-data;'
                                           + eol + b'\tname=smime.p7m', b64,
                                           [b'Content-Transfer-Encoding: base64']),
        'pkcs7-mime authEnveloped-data': msg(b'Content-Type: application/pkcs7-mime; '
                                             b'smime-type="authEnveloped-data"; name="smime.p7m"', b64,
                                             [b'Content-Transfer-Encoding: base64']),
        'pkcs7-mime name=smime.p7m, no smime-type': msg(b'Content-Type: application/pkcs7-mime; name="smime.p7m"',
                                                        b64, [b'Content-Transfer-Encoding: base64']),
        'upper-case APPLICATION/PKCS7-MIME': msg(b'CONTENT-TYPE: APPLICATION/PKCS7-MIME; SMIME-TYPE=ENVELOPED-DATA',
                                                 b64),
        'multipart/encrypted (PGP/MIME)': msg(
            b'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="b1"',
            eol.join([b'--b1', b'Content-Type: application/pgp-encrypted', b'', b'Version: 1', b'',
                      b'--b1', b'Content-Type: application/octet-stream', b'', b'-----BEGIN PGP MESSAGE-----',
                      b'', b'hQEMA1234', b'-----END PGP MESSAGE-----', b'', b'--b1--', b''])),
        'text/plain inline PGP': msg(b'Content-Type: text/plain; charset=us-ascii',
                                     eol.join([b'', b'-----BEGIN PGP MESSAGE-----', b'', b'hQEMA5678',
                                               b'-----END PGP MESSAGE-----', b''])),

    }


def readme_encrypted(ctx):
    """Files that tests/data/messages/README.md declares already encrypted, or None."""
    mdir = os.path.join(ctx.data, 'messages')
    readme = os.path.join(mdir, 'README.md')
    if not os.path.exists(readme):
        return None
    files = sorted(os.listdir(mdir))
    found = set()
    section = False
    for line in read(readme).decode('utf-8', 'replace').splitlines():
        if line.startswith('#'):
            section = bool(re.search(r'already encrypted', line, re.I))
            continue
        if line.startswith('|') and re.search(r'already encrypted', line, re.I):
            for name in re.findall(r'[\w.-]+\.eml', line):
                if name in files:
                    found.add(os.path.join(mdir, name))
        elif section:
            for num in re.findall(r'\b(\d{1,3})\b', line):
                for f in files:
                    if f.endswith('.eml') and re.match(r'0*%d-' % int(num), f):
                        found.add(os.path.join(mdir, f))
    return found or None


def g_passthrough(ctx):
    """Already-encrypted input unchanged for several certificate sets; mixed RSA+EC refused."""
    rsa, p256, alice, aec = get_identities(ctx, ['rsa2048', 'p256', 'nss:Alice', 'nss:Alice-ec'])
    b = ctx.bin
    items = []
    corpus = ctx.corpus()
    enc = [p for p in corpus if encrypted_reason(read(p))]
    print('interop %s: %d already-encrypted messages in the corpus' % (ctx.res.group, len(enc)), flush=True)
    if not enc:
        ctx.res.fail('corpus', 'already-encrypted messages', 'none found')
    # Cross-check with the corpus README, which names the already-encrypted messages (table rows
    # marked "already encrypted" and the numbers listed under the "Already encrypted" heading).
    readme_enc = readme_encrypted(ctx)
    if readme_enc is None:
        print('interop %s: messages/README.md names no already-encrypted message; cross-check skipped'
              % ctx.res.group, flush=True)
    else:
        ours = {p for p in enc if os.path.dirname(p) == os.path.join(ctx.data, 'messages')}
        errs = []
        for p in sorted(readme_enc - ours):
            errs.append('%s: README says already encrypted, but it does not meet the contract\'s rules'
                        % os.path.basename(p))
        for p in sorted(ours - readme_enc):
            errs.append('%s: meets the already-encrypted rules (%s), but README does not list it'
                        % (os.path.basename(p), encrypted_reason(read(p))))
        ctx.res.check('messages/README.md', 'already-encrypted list agrees with the contract rules (%d files)'
                      % len(readme_enc), errs)
    sets = [('rsa2048', ['--to', rsa.email, '--cert', rsa.cert_pem]),
            ('p256 aes-256-gcm', ['--to', p256.email, '--cert', p256.cert_der, '--crypto.cipher=aes-256-gcm']),
            ('Alice+rsa2048 oaep', ['--to', alice.email, '--cert', alice.cert_der, '--to', rsa.email,
                                    '--cert', rsa.cert_pem, '--crypto.rsa_padding=oaep'])]

    def pt(name, data, label, args):
        case = '%s | pass-through %s' % (name, label)
        rc, out, err = run([b, 'encrypt'] + args, data)
        errs = []
        if rc != 0:
            errs.append('exit %d (expected 0): %s' % (rc, short(err)))
        elif out != data:
            errs.append(diff_bytes(data, out, 'pass-through output'))
        ctx.res.check(case, 'unchanged byte for byte (%s)' % encrypted_reason(data), errs)

    for p in enc:
        for label, args in sets:
            items.append((os.path.basename(p), read(p), label, args))
    for eol, eoln in ((b'\r\n', 'CRLF'), (b'\n', 'LF')):
        for name, data in synthetic_encrypted(ctx, rsa, eol).items():
            assert encrypted_reason(data), name
            items.append(('synthetic %s %s' % (name, eoln), data, 'rsa2048', sets[0][1]))
    run_parallel(ctx, pt, items)

    # Look-alikes are plaintext and get encrypted: text around an armored block, a
    # multipart/encrypted that does not name PGP/MIME, an S/MIME label over a non-CMS body.
    lookalikes = {
        'text/plain quoting PGP': b'Content-Type: text/plain; charset=us-ascii\r\n\r\nHi, account 4711.\r\n\r\n'
                                  b'-----BEGIN PGP MESSAGE-----\r\n\r\nhQEMA5678\r\n-----END PGP MESSAGE-----\r\n',
        'multipart/encrypted without protocol': b'Content-Type: multipart/encrypted; boundary="b2"\r\n\r\n--b2\r\n'
                                                b'\r\nplain text 4711\r\n--b2--\r\n',
        'S/MIME label over plaintext': b'Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n\r\n'
                                       b'The balance is 4711 EUR.\r\n',
    }
    for name, data in lookalikes.items():
        assert not encrypted_reason(data), name
        rc, out, err = run([b, 'encrypt', '--to', rsa.email, '--cert', rsa.cert_pem], data)
        errs = []
        if rc != 0:
            errs.append('exit %d: %s' % (rc, short(err)))
        elif b'4711' in out or b'application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"' not in out:
            errs.append('not encrypted: %s' % short(out))
        ctx.res.check('look-alike %s' % name, 'encrypted, not passed through', errs)

    # Mixed RSA + EC recipients in one call: refused with 65, message mentions NSS/Thunderbird.
    plain = [p for p in corpus if not encrypted_reason(read(p))][:3]
    for p in plain:
        m = read(p)
        secret = split_message(m)[2].strip()[:64]
        for label, args in (('rsa2048+p256', ['--to', rsa.email, '--cert', rsa.cert_pem,
                                              '--to', p256.email, '--cert', p256.cert_pem]),
                            ('Alice-ec+Alice (DER)', ['--to', aec.email, '--cert', aec.cert_der,
                                                      '--to', alice.email, '--cert', alice.cert_der])):
            expect_exit(ctx, '%s | mixed RSA+EC recipients %s' % (os.path.basename(p), label),
                        [b, 'encrypt'] + args, m, 65, secret, stderr_re=r'NSS|Thunderbird')


# ---- the NSS facts, measured with openssl-made envelopes (independent of sealmilter) ----

def g_nss_facts(ctx):
    """Re-measure what NSS 3.87 decodes, using envelopes made by `openssl cms -encrypt`."""
    rsa, alice, bob, aec, p256 = get_identities(ctx, ['rsa2048', 'nss:Alice', 'nss:Bob', 'nss:Alice-ec', 'p256'])
    inner = b'Content-Type: text/plain; charset=us-ascii\r\n\r\nNSS interop probe ' + os.urandom(8).hex().encode() + b'\r\n'
    src = os.path.join(ctx.tmp, 'probe.txt')
    write(src, inner)
    facts = [
        # label, cipher, padding, recipients (who encrypts to), decrypting identities
        ('aes-256-cbc, RSA PKCS#1 v1.5', 'aes-256-cbc', 'pkcs1', [alice], [alice]),
        ('aes-128-cbc, RSA PKCS#1 v1.5', 'aes-128-cbc', 'pkcs1', [rsa], [rsa]),
        ('aes-256-cbc, 2 RSA recipients', 'aes-256-cbc', 'pkcs1', [alice, bob], [alice, bob]),
        ('aes-256-cbc, RSA-OAEP (SHA-1)', 'aes-256-cbc', 'oaep', [alice], [alice]),
        ('aes-256-cbc, RSA-OAEP (SHA-256)', 'aes-256-cbc', 'oaep256', [rsa], [rsa]),
        ('aes-256-gcm AuthEnvelopedData, RSA PKCS#1 v1.5', 'aes-256-gcm', 'pkcs1', [alice], [alice]),
        ('aes-256-cbc, ECDH (Alice-ec)', 'aes-256-cbc', 'pkcs1', [aec], [aec]),
        ('aes-256-cbc, ECDH (P-256)', 'aes-256-cbc', 'pkcs1', [p256], [p256]),
        ('aes-256-cbc, ECDH with SHA-256 KDF (P-256)', 'aes-256-cbc', 'ecdh-sha256', [p256], [p256]),
        ('aes-128-cbc, ECDH cofactor mode (Alice-ec)', 'aes-128-cbc', 'ecdh-cofactor', [aec], [aec]),
        ('aes-256-cbc, RSA + ECDH in one envelope (RSA first)', 'aes-256-cbc', 'pkcs1', [alice, aec], [alice, aec]),
        ('aes-256-cbc, ECDH + RSA in one envelope (EC first)', 'aes-256-cbc', 'pkcs1', [aec, alice], [alice]),
    ]

    def probe(label, cipher, padding, recips, decs):
        case = 'openssl-made envelope: %s' % label
        d = ctx.tmpdir('fact')
        der = os.path.join(d, 'env.der')
        cmd = ['openssl', 'cms', '-encrypt', '-binary', '-outform', 'DER', '-in', src, '-out', der, '-' + cipher]
        for r in recips:
            cmd += ['-recip', r.cert_pem]
            if r.kind == 'rsa' and padding.startswith('oaep'):
                cmd += ['-keyopt', 'rsa_padding_mode:oaep']
                if padding == 'oaep256':
                    cmd += ['-keyopt', 'rsa_oaep_md:sha256', '-keyopt', 'rsa_mgf1_md:sha256']
            if r.kind == 'ec' and padding == 'ecdh-sha256':
                cmd += ['-keyopt', 'ecdh_kdf_md:sha256']
            if r.kind == 'ec' and padding == 'ecdh-cofactor':
                cmd += ['-keyopt', 'ecdh_cofactor_mode:1']
        must(cmd)
        kinds = {r.kind for r in recips}
        nss_ok, reason = nss_expectation(cipher, 'oaep' if padding.startswith('oaep') else padding, kinds)
        for ident in decs:
            ok, data = openssl_decrypt(ctx, der, ident, inform='DER')
            e = [data] if not ok else ([diff_bytes(inner, data)] if data != inner else [])
            ctx.res.check(case, 'decryptor openssl-cms, recipient %s' % ident.name, e)
            observed = check_nss(ctx, case, der, ident, inner, nss_ok, reason)
            print('interop %s: NSS %s: %s, key of %s: %s' % (ctx.res.group, nss_version(), label, ident.name,
                                                             observed), flush=True)

    run_parallel(ctx, probe, facts)


def nss_version():
    rc, out, _err = run(['dpkg-query', '-W', '-f', '${Version}', 'libnss3'])
    return out.decode() if rc == 0 and out else 'version unknown'



GROUPS = collections.OrderedDict([
    ('rsa2048', g_rsa2048),
    ('nss-alice', g_nss_alice),
    ('nss-alice-ec', g_nss_alice_ec),
    ('ec-p256', g_ec_p256),
    ('rsa-variants', g_rsa_variants),
    ('ec-variants', g_ec_variants),
    ('decrypt', g_decrypt),
    ('passthrough', g_passthrough),
    ('nss-facts', g_nss_facts),
])


# --------------------------------------------------------------------------------------------

def preflight(args):
    problems = []
    for tool in ('openssl', 'cmsutil', 'certutil', 'pk12util'):
        if not shutil.which(tool):
            problems.append('required tool %r not found (openssl / libnss3-tools)' % tool)
    if not (os.path.isfile(args.sealmilter) and os.access(args.sealmilter, os.X_OK)):
        problems.append('sealmilter binary %r is not an executable file' % args.sealmilter)
    for sub in ('messages', 'nss-smime'):
        if not os.path.isdir(os.path.join(args.data, sub)):
            problems.append('data directory %r has no %s/' % (args.data, sub))
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--sealmilter', help='path of the sealmilter CLI binary under test')
    ap.add_argument('--data', help='tests/data directory (messages/ and nss-smime/)')
    ap.add_argument('--group', action='append', help='group to run (repeatable; "all" = every group)')
    ap.add_argument('--jobs', type=int, default=2, help='parallel workers inside a group (default 2)')
    ap.add_argument('--verbose', '-v', action='store_true', help='print every passing check too')
    ap.add_argument('--keep-temp', action='store_true', help='do not delete the temporary directory')
    ap.add_argument('--list-groups', action='store_true')
    args = ap.parse_args()
    if args.list_groups:
        for name, fn in GROUPS.items():
            print('%-14s %s' % (name, fn.__doc__.strip()))
        return 0
    if not (args.sealmilter and args.data and args.group):
        ap.error('--sealmilter, --data and --group are required')
    groups = list(GROUPS) if 'all' in args.group else args.group
    for g in groups:
        if g not in GROUPS:
            ap.error('unknown group %r; known: %s' % (g, ', '.join(GROUPS)))
    args.sealmilter = os.path.abspath(args.sealmilter)
    args.data = os.path.abspath(args.data)
    problems = preflight(args)
    if problems:
        for p in problems:
            print('interop: ERROR: %s' % p)
        print('interop %s: 0 passed, %d failed' % ('+'.join(groups), len(problems)))
        return 1
    rc = 0
    for g in groups:
        res = Results(g, args.verbose)
        tmp = tempfile.mkdtemp(prefix='sealmilter-interop-%s-' % g)
        t0 = time.time()
        try:
            ctx = Ctx(args, tmp, res)
            GROUPS[g](ctx)
        except Exception as e:
            import traceback
            res.fail(g, 'harness', '%s\n%s' % (e, traceback.format_exc()))
        finally:
            if args.keep_temp:
                print('interop %s: temporary files kept in %s' % (g, tmp))
            else:
                shutil.rmtree(tmp, ignore_errors=True)
        print('interop %s: %d passed, %d failed (%.1fs)' % (g, res.passed, len(res.failed), time.time() - t0),
              flush=True)
        if res.failed:
            rc = 1
            print('interop %s: failed checks:' % g)
            for case, what, why in res.failed:
                print('  - %s | %s: %s' % (case, what, why.split('\n')[0]))
    return rc


if __name__ == '__main__':
    sys.exit(main())
