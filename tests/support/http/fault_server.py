#!/usr/bin/env python3
"""tests/support/http/fault_server.py -- a scripted, misbehaving HTTP/1.1 server for the
directory tests: the answers nginx will not give (hangs, cut bodies, lying lengths, junk).

Usage: fault_server.py [--lifetime SECONDS]
Binds 127.0.0.1 on a free port and prints that port as the first line of stdout; the test
stops it with SIGTERM; it exits by itself when its parent goes away or after --lifetime
seconds (default 120), should the test die first. Stdlib only. Every response closes its connection.

Routes (by path prefix; the rest of the path is the expanded address and is ignored):
  /hang/            read the request, never answer (until the lifetime ends)
  /status/NNN/      answer NNN with an empty body
  /cut/             announce 1000 bytes of JSON, send 100, close
  /junk/            10 MB of junk, close-delimited (no Content-Length)
  /junk-chunked/    10 MB of junk, chunked
  /huge-length/     announce Content-Length: 2147483648, send a little, then stall
  /many/            JSON with 1,000 certificate entries
  /redirect/        302 to another host and port
  /redirect-local/  302 to /status/404/ on this server (relative)
  /redirect-file/   302 to file:///etc/passwd
  /gzip/            a gzip bomb (10 MB of zeros, ~10 kB) labelled Content-Encoding: gzip
  /deep/            JSON nested 100,000 levels deep
  /xml/             an XML document labelled application/xml
  /html/            an HTML error page labelled text/html, status 200
  /slow/            wait 100 ms, then answer 404; counted while waiting (to see how many
                    requests the client has outstanding at once)
  /stats/           JSON {"max_concurrent": N, "connections": M}: the most /slow/ requests
                    outstanding at once, and how many connections were accepted before this one
  /NAME/            with --www DIR, any other first segment: DIR/NAME.json as application/json
                    when it exists (certificates the test made), else 400
"""
import argparse
import gzip
import os
import socket
import socketserver
import sys
import threading
import time

STALL_SECONDS = 30
WWW = None  # --www: directory of NAME.json answers for /file/NAME/
JUNK_BYTES = 10 * 1024 * 1024


def head(status, reason, headers):
    lines = ["HTTP/1.1 %d %s" % (status, reason)]
    lines += ["%s: %s" % kv for kv in headers]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def simple(status, reason, body=b"", ctype="application/json", extra=()):
    hdrs = [("Content-Type", ctype), ("Content-Length", str(len(body)))] + list(extra)
    return head(status, reason, hdrs) + body


GZIP_BOMB = gzip.compress(b"\0" * JUNK_BYTES, compresslevel=9)
MANY = ('{"certificates":['
        + ",".join(['{"pem":"-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n"}'] * 1000)
        + "]}").encode("ascii")
DEEP = b'{"certificates":' + b"[" * 100000 + b"]" * 100000 + b"}"


STATS_LOCK = threading.Lock()
STATS = {"open": 0, "max_concurrent": 0, "connections": 0}


class Handler(socketserver.StreamRequestHandler):
    def setup(self):
        with STATS_LOCK:
            STATS["connections"] += 1
        super().setup()

    def slow(self):
        # Counted from the request's arrival until just before its answer is written: a client
        # that honours a cap can send another request only after reading an answer, so teardown
        # of the old connection never inflates the figure.
        with STATS_LOCK:
            STATS["open"] += 1
            STATS["max_concurrent"] = max(STATS["max_concurrent"], STATS["open"])
        time.sleep(0.1)
        with STATS_LOCK:
            STATS["open"] -= 1

    def read_request(self):
        first = self.rfile.readline(8192).decode("latin-1")
        for _ in range(200):  # bounded header read
            line = self.rfile.readline(8192)
            if line in (b"\r\n", b"\n", b""):
                break
        parts = first.split()
        return parts[1] if len(parts) >= 2 else "/"

    def stall(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(0.1)

    def junk(self, chunked):
        sent = 0
        block = b"x" * 65536
        while sent < JUNK_BYTES:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
            sent += len(block)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def handle(self):
        try:
            self.route(self.read_request())
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            pass

    def route(self, path):
        w = self.wfile.write
        if path.startswith("/hang/"):
            self.stall(STALL_SECONDS)
        elif path.startswith("/slow/"):
            self.slow()
            w(simple(404, "Not Found", b""))
        elif path.startswith("/stats/"):
            with STATS_LOCK:
                body = ('{"max_concurrent": %d, "connections": %d}'
                        % (STATS["max_concurrent"], STATS["connections"] - 1)).encode("ascii")
            w(simple(200, "OK", body))
        elif path.startswith("/status/"):
            code = int(path.split("/")[2])
            w(simple(code, "Scripted", b""))
        elif path.startswith("/cut/"):
            w(head(200, "OK", [("Content-Type", "application/json"), ("Content-Length", "1000")]))
            w(b'{"certificates":[{"pem":"' + b"A" * 75)
        elif path.startswith("/junk/"):
            w(head(200, "OK", [("Content-Type", "application/json")]))
            self.junk(False)
        elif path.startswith("/junk-chunked/"):
            w(head(200, "OK", [("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")]))
            self.junk(True)
        elif path.startswith("/huge-length/"):
            w(head(200, "OK", [("Content-Type", "application/json"), ("Content-Length", "2147483648")]))
            w(b"[" * 1024)
            self.wfile.flush()
            self.stall(STALL_SECONDS)
        elif path.startswith("/many/"):
            w(simple(200, "OK", MANY))
        elif path.startswith("/redirect/"):
            w(simple(302, "Found", extra=[("Location", "https://127.0.0.2:9/elsewhere")]))
        elif path.startswith("/redirect-local/"):
            w(simple(302, "Found", extra=[("Location", "/status/404/x")]))
        elif path.startswith("/redirect-file/"):
            w(simple(302, "Found", extra=[("Location", "file:///etc/passwd")]))
        elif path.startswith("/gzip/"):
            w(simple(200, "OK", GZIP_BOMB, extra=[("Content-Encoding", "gzip")]))
        elif path.startswith("/deep/"):
            w(simple(200, "OK", DEEP))
        elif path.startswith("/xml/"):
            w(simple(200, "OK", b'<?xml version="1.0"?><certificates><pem>MIIB</pem></certificates>', "application/xml"))
        elif path.startswith("/html/"):
            w(simple(200, "OK", b"<html><body><h1>Service temporarily unavailable</h1></body></html>", "text/html"))
        elif WWW is not None and os.path.isfile(os.path.join(WWW, os.path.basename(path.split("/")[1]) + ".json")):
            with open(os.path.join(WWW, os.path.basename(path.split("/")[1]) + ".json"), "rb") as f:
                w(simple(200, "OK", f.read()))
        else:
            w(simple(400, "Bad Request", b"unknown route", "text/plain"))


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lifetime", type=float, default=120.0)
    ap.add_argument("--www", default=None)
    args = ap.parse_args()
    global WWW
    WWW = args.www
    server = Server(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # Never outlive the test that started us (nor --lifetime seconds).
    parent = os.getppid()
    end = time.monotonic() + args.lifetime
    while time.monotonic() < end and os.getppid() == parent:
        time.sleep(0.5)
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
