#!/usr/bin/env python3
"""bench/slow_directory.py — the lookup benchmark's directory backend: answers every request
after a fixed delay, as a directory across a WAN would.

usage: slow_directory.py WWW_DIR DELAY_MS
Binds 127.0.0.1 on a free port, prints it as the first line of stdout, serves GET /slow/ADDRESS
with WWW_DIR/ADDRESS (application/json) or 404, each after DELAY_MS, many requests at once
(one thread each). Exits when its parent goes away. Stdlib only.
"""
import http.server
import os
import sys
import threading
import time
import urllib.parse


def main():
    www, delay = sys.argv[1], int(sys.argv[2]) / 1000.0

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # noqa: N802 (http.server's naming)
            time.sleep(delay)
            name = urllib.parse.unquote(self.path.rsplit("/", 1)[-1])
            path = os.path.join(www, os.path.basename(name))
            body, status = b"", 404
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    body, status = f.read(), 200
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    class Server(http.server.ThreadingHTTPServer):
        request_queue_size = 256  # 50 requests arrive at once; the default backlog of 5 drops SYNs

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(0.5)
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
