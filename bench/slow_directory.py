#!/usr/bin/env python3
"""bench/slow_directory.py — the lookup benchmark's directory backend: answers every request
after a fixed delay, as a directory across a WAN would.

usage: slow_directory.py WWW_DIR DELAY_MS
Binds 127.0.0.1 on a free port, prints it as the first line of stdout, serves GET /slow/ADDRESS
with WWW_DIR/ADDRESS (application/json) or 404, each after DELAY_MS. HTTP/1.1 with keep-alive
(nginx keeps its upstream connections), any number of requests at once. One asyncio loop: the
delay costs no CPU and no thread, so the benchmark's CPU goes to nginx and sealmilter, not to
this stand-in. Exits when its parent goes away. Stdlib only.
"""
import asyncio
import os
import sys
import urllib.parse

MAX_HEADER = 16384


def answer(www, target):
    name = urllib.parse.unquote(target.split("?", 1)[0].rsplit("/", 1)[-1])
    path = os.path.join(www, os.path.basename(name))
    if os.path.isfile(path):
        with open(path, "rb") as f:
            return b"200 OK", f.read()
    return b"404 Not Found", b""


async def serve(www, delay, reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if len(head) > MAX_HEADER:
                break
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = (lines[0].split(" ") + ["", "", ""])[:3]
            close = any(l.lower().replace(" ", "") == "connection:close" for l in lines[1:])
            await asyncio.sleep(delay)
            status, body = answer(www, target) if method == "GET" else (b"405 Method Not Allowed", b"")
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\n\r\n" + body)
            await writer.drain()
            if close:
                break
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        pass
    finally:
        writer.close()


async def main():
    www, delay = sys.argv[1], int(sys.argv[2]) / 1000.0
    # 50 connections may arrive at once; a small backlog would drop SYNs.
    server = await asyncio.start_server(lambda r, w: serve(www, delay, r, w), "127.0.0.1", 0, backlog=256,
                                        limit=MAX_HEADER)
    print(server.sockets[0].getsockname()[1], flush=True)
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(0.5)
    server.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
