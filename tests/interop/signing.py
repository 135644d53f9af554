#!/usr/bin/env python3
"""sealmilter signing interop (issue 12, docs/signing.md).

Every message shape of tests/data/messages is signed by `sealmilter sign` (detached
multipart/signed and opaque signed-data) and signed-then-encrypted by `sealmilter encrypt
--sign`, and checked by two independent implementations against the test organisation's CA:

  - OpenSSL `openssl cms -verify -CAfile` (and `-decrypt` first for sign-then-encrypt);
  - NSS `cmsutil -D` (Thunderbird's engine) with the CA trusted in its database (decrypting
    first for sign-then-encrypt, with the recipient's key in the database).

The verified content must equal the original entity: byte for byte (CRLF canonical) when the
message is 7-bit; for a message with 8bit/binary parts (re-encoded before signing) every leaf
part must decode to the original's bytes and the signed content must be 7-bit. `sealmilter
verify` must report the signer, the capabilities and the encryption key preference.

Standard library only.  Usage: signing.py --sealmilter PATH --data tests/data [--keep]
"""

import argparse
import base64
import email
import email.policy
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

TIMEOUT = 120
FAILURES = []


def run(cmd, stdin=b'', ok=(0,)):
    p = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT)
    if p.returncode not in ok:
        raise RuntimeError('%s -> %d: %s' % (' '.join(cmd), p.returncode, p.stderr.decode(errors='replace')[-600:]))
    return p


def fail(what, why):
    FAILURES.append('%s: %s' % (what, why))
    print('FAIL %s: %s' % (what, why), flush=True)


def make_pki(d):
    """CA, signer alice@bank.example (RSA, signs and receives), EC signer, recipient bob."""
    def w(name, text):
        with open(os.path.join(d, name), 'w') as f:
            f.write(text)
    w('ext.cnf', '[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n'
      'subjectKeyIdentifier=hash\n'
      '[signer]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n'
      'extendedKeyUsage=emailProtection\nsubjectAltName=email:alice@bank.example\n'
      'subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n'
      '[ecsigner]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n'
      'extendedKeyUsage=emailProtection\nsubjectAltName=email:noreply@bank.example\n'
      'subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n'
      '[pss]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n'
      'extendedKeyUsage=emailProtection\nsubjectAltName=email:pss@bank.example\n'
      'subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n'
      '[rcpt]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n'
      'extendedKeyUsage=emailProtection\nsubjectAltName=email:bob@partner.example\n'
      'subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n')
    p = lambda n: os.path.join(d, n)
    run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', p('ca.key'), '-out', p('ca.pem'),
         '-subj', '/O=sealmilter signing test/CN=Signing Test CA %d' % os.getpid(), '-days', '30',
         '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'])
    for name, ext, key in (('alice', 'signer', ['-newkey', 'rsa:2048']),
                           ('noreply', 'ecsigner', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']),
                           ('bob', 'rcpt', ['-newkey', 'rsa:2048'])):
        run(['openssl', 'req', '-new', '-nodes'] + key + ['-keyout', p(name + '.key'), '-out', p(name + '.csr'),
                                                         '-subj', '/O=sealmilter signing test/CN=' + name])
        run(['openssl', 'x509', '-req', '-in', p(name + '.csr'), '-CA', p('ca.pem'), '-CAkey', p('ca.key'),
             '-set_serial', str(abs(hash(name)) % 100000 + 2), '-days', '30', '-extfile', p('ext.cnf'),
             '-extensions', ext, '-out', p(name + '.pem')])
        with open(p(name + '.signer.pem'), 'wb') as f:
            f.write(open(p(name + '.key'), 'rb').read() + open(p(name + '.pem'), 'rb').read())
    # An RSASSA-PSS key (id-RSASSA-PSS SubjectPublicKeyInfo): the signature is RSA-PSS.
    run(['openssl', 'genpkey', '-algorithm', 'RSA-PSS', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', p('pss.key')])
    run(['openssl', 'req', '-new', '-key', p('pss.key'), '-out', p('pss.csr'), '-subj', '/O=sealmilter signing test/CN=pss'])
    run(['openssl', 'x509', '-req', '-in', p('pss.csr'), '-CA', p('ca.pem'), '-CAkey', p('ca.key'), '-set_serial', '9',
         '-days', '30', '-extfile', p('ext.cnf'), '-extensions', 'pss', '-out', p('pss.pem')])
    with open(p('pss.signer.pem'), 'wb') as f:
        f.write(open(p('pss.key'), 'rb').read() + open(p('pss.pem'), 'rb').read())
    run(['openssl', 'pkcs12', '-export', '-inkey', p('bob.key'), '-in', p('bob.pem'), '-passout', 'pass:',
         '-out', p('bob.p12')])
    os.mkdir(p('nss'))
    db = 'sql:' + p('nss')
    run(['certutil', '-N', '-d', db, '--empty-password'])
    run(['certutil', '-A', '-d', db, '-n', 'ca', '-t', 'C,C,C', '-i', p('ca.pem')])
    run(['pk12util', '-i', p('bob.p12'), '-d', db, '-W', '', '-K', ''])
    return p, db


def split_detached(raw):
    """(signed content bytes, signature DER) of a CRLF multipart/signed entity or message."""
    head, body = raw.split(b'\r\n\r\n', 1)
    b = re.search(rb'boundary="([^"]+)"', head).group(1)
    start = body.index(b'--' + b + b'\r\n') + len(b) + 4
    end = body.index(b'\r\n--' + b + b'\r\n', start)
    sig_part = body[end + len(b) + 6:]
    sig_b64 = sig_part.split(b'\r\n\r\n', 1)[1].split(b'--' + b + b'--')[0]
    return body[start:end], base64.b64decode(sig_b64)


def to_crlf(data):
    return re.sub(rb'(?<!\r)\n', b'\r\n', data)


def expected_entity(orig):
    """The inner entity as SPEC §5 defines it: content fields as they stand, CRLF, then the body."""
    data = to_crlf(orig)
    if b'\r\n\r\n' in data:
        head, body = data.split(b'\r\n\r\n', 1)
    else:
        head, body = data, b''
    fields, cur = [], None
    for line in head.split(b'\r\n'):
        if line[:1] in (b' ', b'\t') and cur is not None:
            cur.append(line)
        else:
            cur = [line]
            fields.append(cur)
    keep = [b'\r\n'.join(f) for f in fields
            if f[0].split(b':', 1)[0].strip().lower().startswith(b'content-')]
    return b''.join(k + b'\r\n' for k in keep) + b'\r\n' + body


def seven_bit(data):
    return all(b < 0x80 and b != 0 for b in data) and all(len(l) <= 998 for l in data.split(b'\r\n'))


def leaves(entity):
    msg = email.message_from_bytes(entity, policy=email.policy.compat32)
    out = []
    for part in msg.walk():
        if not part.is_multipart():
            payload = part.get_payload(decode=True) or b''
            out.append(payload.replace(b'\r\n', b'\n'))
    return out


def check_content(what, orig, content):
    want = expected_entity(orig)
    if seven_bit(want):
        if content != want:
            fail(what, 'verified content differs from the original entity (%d vs %d bytes)' % (len(content), len(want)))
    else:
        if not seven_bit(content):
            fail(what, 'signed content is not 7-bit')
        if leaves(content) != leaves(want):
            fail(what, 'a re-encoded part does not decode to the original bytes')


def openssl_verify(p, data, what):
    # No -binary: with it OpenSSL 3.0 reads a multipart/signed part's lines without their CR.
    r = subprocess.run(['openssl', 'cms', '-verify', '-CAfile', p('ca.pem'), '-purpose', 'smimesign'],
                       input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT)
    if r.returncode != 0:
        fail(what, 'openssl cms -verify: ' + r.stderr.decode(errors='replace')[-300:])
        return None
    return r.stdout


def nss_verify(p, db, data, what, tmp):
    """NSS: detached (multipart/signed) or opaque (base64 body); returns the content."""
    head = data.split(b'\r\n\r\n', 1)[0].lower()
    sig = os.path.join(tmp, 'sig.der')
    out = os.path.join(tmp, 'nss.out')
    if b'multipart/signed' in head:
        content, der = split_detached(data)
        with open(sig, 'wb') as f:
            f.write(der)
        cfile = os.path.join(tmp, 'content.bin')
        with open(cfile, 'wb') as f:
            f.write(content)
        cmd = ['cmsutil', '-D', '-i', sig, '-c', cfile, '-d', db, '-u', '4', '-o', out]
        result = content
    else:
        with open(sig, 'wb') as f:
            f.write(base64.b64decode(data.split(b'\r\n\r\n', 1)[1]))
        cmd = ['cmsutil', '-D', '-i', sig, '-d', db, '-u', '4', '-o', out]
        result = None
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT)
    if r.returncode != 0:
        fail(what, 'cmsutil -D: ' + (r.stdout + r.stderr).decode(errors='replace')[-300:])
        return None
    return result if result is not None else open(out, 'rb').read()


def key_exchange(a, p, tmp):
    """Two gateways, bank.example (A, signer alice) and partner.example (B, signer bob), each with
    its own harvest store and lookup.order = harvest: A's signed mail teaches B alice's
    encryption certificate; B answers sign-then-encrypted to it (A opens it and harvests bob
    from inside the envelope); A then encrypts to bob. Both directions, no certificate handed over."""
    confs = {}
    for g in ('A', 'B'):
        os.mkdir(os.path.join(tmp, g))
        confs[g] = os.path.join(tmp, g, 'sealmilter.conf')
        with open(confs[g], 'w') as f:
            f.write('[lookup]\norder = harvest\ntrust_anchors = %s\n[harvest]\ndir = %s\n[cache]\npath = %s\n'
                    % (p('ca.pem'), os.path.join(tmp, g, 'harvested'), os.path.join(tmp, g, 'cache.db')))
    to_bob = b'From: Alice <alice@bank.example>\nTo: bob@partner.example\nSubject: Statement\n\nYour statement.\n'
    signed = run([a.sealmilter, 'sign', '--key', p('alice.signer.pem')], to_bob).stdout
    r = subprocess.run([a.sealmilter, 'harvest', '-c', confs['B'], '--sender', 'alice@bank.example'], input=signed,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT)
    if r.returncode != 0:
        return fail('key exchange A->B', 'B did not harvest alice: ' + (r.stdout + r.stderr).decode()[-300:])
    meta = glob.glob(os.path.join(tmp, 'B', 'harvested', 'alice@bank.example', '*.json'))
    text = open(meta[0]).read() if meta else ''
    if not all(c in text for c in ('aes256-gcm', 'aes256-cbc', 'aes128-cbc', 'rsaes-oaep')):
        fail('key exchange A->B', 'B did not keep alice\'s capabilities: ' + text[-300:])
    to_alice = b'From: Bob <bob@partner.example>\nTo: alice@bank.example\nSubject: Re: Statement\n\nThanks.\n'
    r = subprocess.run([a.sealmilter, 'encrypt', '-c', confs['B'], '--sign', '--key', p('bob.signer.pem'),
                        '--to', 'alice@bank.example'], input=to_alice, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=TIMEOUT)
    if r.returncode != 0:
        return fail('key exchange B->A', 'B cannot encrypt to alice: ' + r.stderr.decode()[-300:])
    enc = r.stdout
    d = subprocess.run(['openssl', 'cms', '-decrypt', '-recip', p('alice.pem'), '-inkey', p('alice.key')], input=enc,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT)
    if d.returncode != 0 or openssl_verify(p, d.stdout, 'key exchange B->A signature') is None:
        return fail('key exchange B->A', 'alice cannot open and verify B\'s answer: ' + d.stderr.decode()[-300:])
    r = subprocess.run([a.sealmilter, 'harvest', '-c', confs['A'], '--key', p('alice.signer.pem'),
                        '--sender', 'bob@partner.example'], input=enc, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=TIMEOUT)
    if r.returncode != 0:
        return fail('key exchange B->A', 'A did not harvest bob from inside the envelope: ' + r.stderr.decode()[-300:])
    r = subprocess.run([a.sealmilter, 'encrypt', '-c', confs['A'], '--to', 'bob@partner.example'], input=to_bob,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT)
    d = subprocess.run(['openssl', 'cms', '-decrypt', '-recip', p('bob.pem'), '-inkey', p('bob.key')], input=r.stdout,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT)
    if r.returncode != 0 or d.returncode != 0 or b'Your statement.' not in d.stdout:
        return fail('key exchange A->B encrypted', 'A cannot encrypt to bob with what it harvested: ' +
                    (r.stderr + d.stderr).decode()[-300:])
    print('ok   key exchange in both directions (A signs, B harvests and answers encrypted, A harvests and encrypts)')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--sealmilter', required=True)
    ap.add_argument('--data', required=True)
    ap.add_argument('--keep', action='store_true')
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix='sealmilter-signing-')
    try:
        p, db = make_pki(tmp)
        msgs = sorted(glob.glob(os.path.join(a.data, 'messages', '*.eml')))
        checked = 0
        for path in msgs:
            name = os.path.basename(path)
            orig = open(path, 'rb').read()
            for fmt, signer, frm in (('detached', 'alice', 'alice@bank.example'),
                                     ('opaque', 'alice', 'alice@bank.example'),
                                     ('detached', 'noreply', 'noreply@bank.example')):
                what = '%s sign %s %s' % (name, fmt, signer)
                signed = run([a.sealmilter, 'sign', '--key', p(signer + '.signer.pem'), '--from', frm,
                              '--crypto.sign_format=' + fmt], orig).stdout
                content = openssl_verify(p, signed, what + ' openssl')
                if content is not None:
                    check_content(what + ' openssl', orig, content)
                nss = nss_verify(p, db, signed, what + ' nss', tmp)
                if nss is not None:
                    check_content(what + ' nss', orig, nss)
                v = subprocess.run([a.sealmilter, 'verify', '--ca', p('ca.pem')], input=signed,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT)
                report = v.stdout.decode(errors='replace')
                if v.returncode != 0 or 'chain: trusted' not in report or \
                        'capabilities: aes256-gcm aes256-cbc aes128-cbc rsaes-oaep' not in report or \
                        (signer == 'alice' and 'encryption-key-preference: ' not in report):
                    fail(what + ' sealmilter verify', 'rc=%d %s' % (v.returncode, report[-400:]))
                checked += 1
            # sign-then-encrypt
            what = '%s sign+encrypt' % name
            enc = run([a.sealmilter, 'encrypt', '--sign', '--key', p('alice.signer.pem'), '--from', 'alice@bank.example',
                       '--to', 'bob@partner.example', '--cert', p('bob.pem')], orig).stdout
            if enc == orig:
                continue  # already encrypted: passed through unchanged
            r = subprocess.run(['openssl', 'cms', '-decrypt', '-recip', p('bob.pem'), '-inkey', p('bob.key'), '-binary'],
                               input=enc, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT)
            if r.returncode != 0:
                fail(what, 'openssl cms -decrypt: ' + r.stderr.decode(errors='replace')[-300:])
                continue
            inner = r.stdout
            if not inner.lower().startswith(b'content-type: multipart/signed'):
                fail(what, 'the envelope does not hold a multipart/signed entity')
            content = openssl_verify(p, inner, what + ' openssl')
            if content is not None:
                check_content(what + ' openssl', orig, content)
            envder = os.path.join(tmp, 'env.der')
            with open(envder, 'wb') as f:
                f.write(base64.b64decode(to_crlf(enc).split(b'\r\n\r\n', 1)[1]))
            out = os.path.join(tmp, 'inner.nss')
            r = subprocess.run(['cmsutil', '-D', '-i', envder, '-d', db, '-o', out], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=TIMEOUT)
            if r.returncode != 0:
                fail(what, 'cmsutil -D (decrypt): ' + r.stderr.decode(errors='replace')[-300:])
                continue
            nss_inner = open(out, 'rb').read()
            if nss_inner != inner:
                fail(what, 'NSS and OpenSSL decrypt to different entities')
            nss = nss_verify(p, db, nss_inner, what + ' nss', tmp)
            if nss is not None:
                check_content(what + ' nss', orig, nss)
            checked += 1
        # RSA-PSS: OpenSSL verifies it and sees rsassaPss. NSS 3.87 (Debian 12) reports BadSignature
        # for every CMS RSA-PSS signature, openssl-made ones too (measured): asserted, so a newer
        # NSS that verifies it makes this fail and docs/signing.md gets updated.
        for path in msgs[:3]:
            orig = open(path, 'rb').read()
            what = '%s sign rsa-pss' % os.path.basename(path)
            signed = run([a.sealmilter, 'sign', '--key', p('pss.signer.pem'), '--from', 'pss@bank.example'], orig).stdout
            content = openssl_verify(p, signed, what + ' openssl')
            if content is not None:
                check_content(what + ' openssl', orig, content)
            _c, der = split_detached(signed)
            r = subprocess.run(['openssl', 'cms', '-cmsout', '-print', '-inform', 'DER'], input=der,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT)
            if b'rsassaPss' not in r.stdout:
                fail(what, 'the signature algorithm is not rsassaPss')
            content_bytes, _der = split_detached(signed)
            cfile, sfile = os.path.join(tmp, 'pss.content'), os.path.join(tmp, 'pss.sig')
            with open(cfile, 'wb') as f:
                f.write(content_bytes)
            with open(sfile, 'wb') as f:
                f.write(der)
            r = subprocess.run(['cmsutil', '-D', '-i', sfile, '-c', cfile, '-d', db, '-u', '4', '-o', os.devnull],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT)
            if r.returncode == 0:
                fail(what + ' nss', 'NSS now verifies RSA-PSS: update docs/signing.md and this test')
            elif b'BadSignature' not in r.stdout + r.stderr:
                fail(what + ' nss', 'NSS fails RSA-PSS differently than measured: ' + (r.stdout + r.stderr).decode()[-200:])
            checked += 1
        key_exchange(a, p, tmp)
        # A changed byte must fail both.
        signed = run([a.sealmilter, 'sign', '--key', p('alice.signer.pem'), '--from', 'alice@bank.example'],
                     open(msgs[0], 'rb').read()).stdout
        content, _sig = split_detached(signed)
        changed = content[:-3] + bytes([content[-3] ^ 1]) + content[-2:]
        tampered = signed.replace(content, changed, 1)
        if subprocess.run(['openssl', 'cms', '-verify', '-CAfile', p('ca.pem'), '-binary'], input=tampered,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
            fail('tampered', 'openssl verified a changed message')
        if subprocess.run([a.sealmilter, 'verify', '--ca', p('ca.pem')], input=tampered, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode != 1:
            fail('tampered', 'sealmilter verify did not exit 1')
        # An unsigned message and an untrusted chain exit 1.
        if subprocess.run([a.sealmilter, 'verify', '--ca', p('ca.pem')], input=open(msgs[0], 'rb').read(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 1:
            fail('unsigned', 'sealmilter verify did not exit 1')
        if subprocess.run([a.sealmilter, 'verify', '--ca', p('bob.pem')], input=signed, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode != 1:
            fail('untrusted', 'sealmilter verify trusted a chain to the wrong anchor')
        print('%d signed forms checked, %d failures' % (checked, len(FAILURES)))
        return 1 if FAILURES or checked == 0 else 0
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print('kept', tmp)


if __name__ == '__main__':
    sys.exit(main())
