#!/usr/bin/env python3
"""Regenerate 04-large-pdf-attachment.eml (about 2 MB of PDF-like binary, base64).

The .eml file is committed; this script only documents how it was made and lets
anyone rebuild it byte for byte. The "PDF" is a real-looking PDF header/trailer
around deterministic pseudo-random bytes (SHA-256 in counter mode, fixed seed),
so the output is identical on every Python version and platform.

Usage: python3 gen_large.py [OUTPUT]   (default: 04-large-pdf-attachment.eml
next to this script)
"""
import base64
import hashlib
import os
import sys

SEED = b"sealmilter-test-corpus-04-large-pdf"
PAYLOAD_BYTES = 2 * 1024 * 1024  # pseudo-random stream content
BOUNDARY = "----=_Part_448812_1783203617.1769853123456"


def prng_bytes(n):
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(SEED + counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:n])


def build_pdf():
    payload = prng_bytes(PAYLOAD_BYTES)
    head = (
        b"%PDF-1.7\n"
        b"%\xe2\xe3\xcf\xd3\n"
        b"1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
        b"2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n"
        b"3 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /XObject << /Im0 4 0 R >> >> /Contents 5 0 R >>\nendobj\n"
        b"4 0 obj\n<< /Type /XObject /Subtype /Image /Width 2480 /Height 3508 "
        b"/ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /FlateDecode "
        b"/Length " + str(len(payload)).encode() + b" >>\nstream\n"
    )
    tail = (
        b"\nendstream\nendobj\n"
        b"5 0 obj\n<< /Length 35 >>\nstream\nq 595 0 0 842 0 0 cm /Im0 Do Q\n\nendstream\nendobj\n"
        b"6 0 obj\n<< /Producer (Statement Renderer 4.2) /CreationDate (D:20260131093205+01'00') >>\nendobj\n"
    )
    body = head + payload + tail
    xref_pos = len(body)
    trailer = (
        b"xref\n0 7\n0000000000 65535 f \n"
        b"trailer\n<< /Size 7 /Root 1 0 R /Info 6 0 R >>\n"
        b"startxref\n" + str(xref_pos).encode() + b"\n%%EOF\n"
    )
    return body + trailer


def b64_lines(data, width=76):
    enc = base64.b64encode(data).decode("ascii")
    return "\n".join(enc[i:i + width] for i in range(0, len(enc), width)) + "\n"


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "04-large-pdf-attachment.eml")
    pdf = build_pdf()
    msg = (
        "Return-Path: <statements@bank.example>\n"
        "Received: from mta-out-03.bank.example (mta-out-03.bank.example [192.0.2.33])\n"
        "\tby mx1.customers.bank.example (Postfix) with ESMTPS id 4Y7kQ21TZPz9sRw\n"
        "\tfor <j.doe@customers.bank.example>; Sat, 31 Jan 2026 09:32:07 +0100 (CET)\n"
        "Received: from docgen-07.internal.bank.example (docgen-07.internal.bank.example [10.20.4.17])\n"
        "\tby mta-out-03.bank.example (Postfix) with ESMTP id 9F2A31C0042\n"
        "\tfor <j.doe@customers.bank.example>; Sat, 31 Jan 2026 09:32:05 +0100 (CET)\n"
        "Date: Sat, 31 Jan 2026 09:32:03 +0100 (CET)\n"
        "From: Bank Example Statements <statements@bank.example>\n"
        "To: Jordan Doe <j.doe@customers.bank.example>\n"
        "Message-ID: <1769853123456.448812.statements@docgen-07.internal.bank.example>\n"
        "Subject: Your annual account statement 2025 (scanned archive copy)\n"
        "MIME-Version: 1.0\n"
        "Content-Type: multipart/mixed; \n"
        "\tboundary=\"" + BOUNDARY + "\"\n"
        "X-Mailer: JavaMail 1.6.2 (DocGen Statement Service)\n"
        "X-Bank-Document-Class: STATEMENT-ANNUAL\n"
        "\n"
        "--" + BOUNDARY + "\n"
        "Content-Type: text/plain; charset=UTF-8\n"
        "Content-Transfer-Encoding: 7bit\n"
        "\n"
        "Dear Jordan Doe,\n"
        "\n"
        "please find attached the scanned archive copy of your annual account\n"
        "statement for 2025 (account ending 4417).\n"
        "\n"
        "This is an automatically generated message. Please do not reply.\n"
        "\n"
        "Bank Example AG\n"
        "\n"
        "--" + BOUNDARY + "\n"
        "Content-Type: application/pdf; name=Annual_Statement_2025_4417.pdf\n"
        "Content-Transfer-Encoding: base64\n"
        "Content-Disposition: attachment; filename=Annual_Statement_2025_4417.pdf\n"
        "\n"
        + b64_lines(pdf) +
        "--" + BOUNDARY + "--\n"
    )
    with open(out, "w", encoding="ascii", newline="\n") as f:
        f.write(msg)
    print("wrote %s (%d bytes, attachment %d bytes)" % (out, len(msg), len(pdf)))


if __name__ == "__main__":
    main()
