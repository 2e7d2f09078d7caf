"""A lean Events API sink for benchmarks, run as its own process so that receiving does not
compete with the measured client for the GIL.

    python benchmarks/_sink.py        # prints the port, then serves on 127.0.0.1
    GET  /count   -> number of events accepted so far
    POST /reset   -> zero the count
    POST [prefix]/1/batch/<dataset> -> one {"status": 202} per event
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_lock = threading.Lock()
_count = 0
_OK = b'{"status":202}'


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # quiet
        pass

    def setup(self):
        super().setup()
        # Without this, Nagle's algorithm and the client's delayed ACK add up to 40 ms per answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _reply(self, body: bytes, status: int = 200) -> None:
        # Status line, headers and body in one write: one segment per answer.
        head = (f"HTTP/1.1 {status} {'OK' if status == 200 else 'Not Found'}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
        self.wfile.write(head.encode("ascii") + body)

    def do_GET(self):
        with _lock:
            n = _count
        self._reply(str(n).encode())

    def do_POST(self):
        global _count
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/reset":
            with _lock:
                _count = 0
            self._reply(b"0")
            return
        if "/1/batch/" not in self.path:
            self._reply(b'{"error":"unknown path"}', 404)
            return
        if (self.headers.get("Content-Encoding") or "").lower() == "gzip":
            raw = zlib.decompress(raw, 47)
        n = len(json.loads(raw))
        with _lock:
            _count += n
        self._reply(b"[" + b",".join([_OK] * n) + b"]")


def _exit_with_parent() -> None:
    # The benchmark holds our stdin open; EOF means it is gone (even killed): stop too.
    sys.stdin.read()
    os._exit(0)


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    server.daemon_threads = True
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
