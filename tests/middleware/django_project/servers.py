"""Real servers on 127.0.0.1 for the Django tests: a threaded WSGI server and uvicorn (ASGI),
each in a background thread, plus a small HTTP client. Every wait is bounded."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from socketserver import ThreadingMixIn
from typing import Any, Optional
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class WSGIServerThread:
    """wsgiref with one thread per request, as a multi-threaded production server would run."""

    def __init__(self, app: Any) -> None:
        self._server = make_server("127.0.0.1", 0, app, server_class=_ThreadingWSGIServer,
                                   handler_class=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="django-wsgi-test", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_port

    def __enter__(self) -> "WSGIServerThread":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


class UvicornThread:
    """uvicorn serving an ASGI app from a background thread (its own event loop)."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(app, lifespan="off", log_level="warning", loop="asyncio")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="django-asgi-test", daemon=True)

    @property
    def port(self) -> int:
        return self._sock.getsockname()[1]

    def __enter__(self) -> "UvicornThread":
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()


def fetch(port: int, path: str, method: str = "GET", headers: Optional[dict] = None,
          body: Optional[bytes] = None, timeout: float = 15.0) -> tuple:
    """(status, headers dict with lowercase names, body bytes) of one request to 127.0.0.1."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        conn.close()
