#!/usr/bin/env python3
"""tests/support/http/publish_recorder.py -- the directory's publish endpoint for the
publisher tests: accepts POSTs and keeps each one as a file.

Usage: publish_recorder.py PORT DIR
Binds 127.0.0.1:PORT, prints PORT as the first line of stdout; every POST is answered 201 and
written to DIR/N.req as "PATH\\nCONTENT-TYPE\\nAUTHORIZATION\\n\\nBODY". Exits when its parent
goes away (or after 300 s). Stdlib only.
"""
import http.server
import os
import sys
import threading
import time


def main():
    port, out = int(sys.argv[1]), sys.argv[2]
    counter = [0]
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                counter[0] += 1
                n = counter[0]
            with open(os.path.join(out, f"{n}.tmp"), "wb") as f:
                f.write(f"{self.path}\n{self.headers.get('Content-Type', '')}\n"
                        f"{self.headers.get('Authorization', '')}\n\n".encode() + body)
            os.rename(os.path.join(out, f"{n}.tmp"), os.path.join(out, f"{n}.req"))
            self.send_response(201)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(port, flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    parent, end = os.getppid(), time.monotonic() + 300
    while os.getppid() == parent and time.monotonic() < end:
        time.sleep(0.2)
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
