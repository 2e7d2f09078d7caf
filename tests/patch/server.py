"""A small HTTP server on 127.0.0.1 that records the headers of every request it receives.

Routes (by path, whatever the host): ``/ok`` answers 200 ``text/plain`` "ok";
``/status/<code>`` answers that status; ``/redirect?to=<url>`` answers 302 to ``url``;
``/slow?seconds=<s>`` waits (at most 5 s) before answering; anything else is 404.

It also accepts requests in proxy form (``GET http://any.host/path``), which lets a test address
a made-up host name while the connection still goes to 127.0.0.1: point the client's HTTP proxy
at ``server.url``, and each recorded request says which host it was meant for.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

_MAX_SLEEP = 5.0


class Recorded:
    """One request as the server saw it."""

    def __init__(self, method: str, target_host: str, path: str, headers: dict) -> None:
        self.method = method
        self.target_host = target_host
        self.path = path
        self.headers = headers  # lowercased names

    def header(self, name: str) -> Any:
        return self.headers.get(name.lower())

    def __repr__(self) -> str:
        return f"Recorded({self.method} {self.target_host}{self.path})"


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        target_host = parts.hostname or (self.headers.get("Host") or "").split(":")[0]
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.owner._record(
            Recorded(self.command, target_host, parts.path, {k.lower(): v for k, v in self.headers.items()})
        )
        query = parse_qs(parts.query)
        if parts.path == "/ok":
            self._answer(200, b"ok")
        elif parts.path.startswith("/status/"):
            self._answer(int(parts.path.rsplit("/", 1)[1]), b"status")
        elif parts.path == "/redirect":
            self._answer(302, b"", {"Location": query["to"][0]})
        elif parts.path == "/slow":
            time.sleep(min(float(query.get("seconds", ["1"])[0]), _MAX_SLEEP))
            self._answer(200, b"slow")
        else:
            self._answer(404, b"missing")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def do_HEAD(self) -> None:
        self._handle()

    def _answer(self, status: int, body: bytes, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (the timeout tests) closes the connection before the answer;
        # that is expected here, not worth a traceback on stderr.
        pass

    def __init__(self, owner: "HeaderRecordingServer") -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)


class HeaderRecordingServer:
    """``with HeaderRecordingServer() as srv: ... srv.requests`` (started on entry)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: list[Recorded] = []
        self._server = _Server(self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="header-server", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _record(self, recorded: Recorded) -> None:
        with self._lock:
            self.requests.append(recorded)

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def last(self) -> Recorded:
        with self._lock:
            assert self.requests, "the server received no request"
            return self.requests[-1]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "HeaderRecordingServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
