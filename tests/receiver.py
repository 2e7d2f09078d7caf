"""A loopback Honeycomb Events API receiver for tests, with bounded fault injection.

Tests that send events (through libhoney's own transmission or ours) point ``api_host`` at
``rx.url`` and then read back what arrived on the wire::

    with LoopbackReceiver() as rx:
        client = libhoney.Client(writekey="k", dataset="d", api_host=rx.url)
        ...
        events = rx.wait_for(3, timeout=5)

It only ever listens on 127.0.0.1, and reads bodies as strictly as the Events API: a batch
with a bare NaN or Infinity in it is answered 400 as a whole.

Faults are planned per request, first in first out: each
``fail_next``/``delay_next``/``reset_next``/``status_array_next`` call appends ``n`` planned
answers, and every incoming batch request consumes the oldest one (or gets a normal answer
when the plan is empty). That keeps a test's story exact: "the first two requests get a 500,
the third is answered" is ``rx.fail_next(2)``.

An event counts as *delivered* (it appears in ``rx.events``) only when its request was
answered with a 2xx to a client that was still listening. Requests that were failed, reset,
or answered after the client gave up are kept in ``rx.requests`` (with their ``outcome``) but
their events are not delivered, so "nothing was delivered twice" can be asserted on
``rx.events`` alone.

Each entry of ``rx.requests``: ``path`` (full, prefix included), ``headers`` (case-insensitive),
``body`` (decoded JSON), ``gzip``, ``outcome`` ("ok", "fail", "reset", "delay", "abandoned",
"status_array", "bad_request"), ``received_at`` (``time.monotonic()``) and ``client_port``
(same port = same kept-alive connection). ``rx.max_in_flight`` is the most batch requests
handled at once. Each entry of ``rx.events``: ``dataset`` (unquoted), ``time``, ``samplerate``,
``data``, ``headers`` and ``status`` (the per-event status the receiver answered).
"""

from __future__ import annotations

import gzip
import json
import re
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

__all__ = ["HeaderDict", "LoopbackReceiver", "strict_loads"]

_BATCH_PATH = re.compile(r"^(?P<prefix>.*)/1/batch/(?P<dataset>[^?]+)(?:\?.*)?$")


def _not_json(name: str) -> Any:
    raise ValueError(f"invalid character {name[0]!r} looking for beginning of value")


def strict_loads(text: Any) -> Any:
    """``json.loads`` as strict as the Events API and other languages' parsers: Python's json
    reads NaN and Infinity, they refuse the whole document (the API answers 400 for the whole
    batch, and so does this receiver)."""
    return json.loads(text, parse_constant=_not_json)


# Longest a single planned delay may last: faults are bounded so a broken test cannot hang.
_MAX_DELAY_SECONDS = 30.0


class HeaderDict(dict):
    """Request headers with case-insensitive lookup (HTTP header names are case-insensitive)."""

    def __init__(self, items: Any = ()) -> None:
        super().__init__()
        for key, value in dict(items).items():
            self[key] = value

    def __setitem__(self, key: str, value: str) -> None:
        super().__setitem__(key.lower(), value)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


class _Plan:
    """One planned answer for one incoming request."""

    __slots__ = ("body", "kind", "retry_after", "seconds", "status")

    def __init__(self, kind: str, status: int = 200, retry_after: int | str | None = None,
                 seconds: float = 0.0, body: bytes | None = None) -> None:
        self.kind = kind
        self.status = status
        self.retry_after = retry_after
        self.seconds = seconds
        self.body = body


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, receiver: LoopbackReceiver) -> None:
        self.receiver = receiver
        super().__init__(("127.0.0.1", port), _Handler)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 so clients can keep connections alive, as they do against the real API.
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Answer at once: with Nagle's algorithm, a body written after the headers waits for
        # the client's delayed ACK (up to 40 ms per request on Linux).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.receiver._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.receiver._track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        # Quiet: test output should show assertions, not access logs.
        pass

    def do_POST(self) -> None:
        self.server.receiver._handle(self)

    def do_GET(self) -> None:
        self._answer(404, b'{"error": "not found"}')

    def _answer(self, status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
        # No longer in flight once the answer starts to go out: the client may send its next
        # request as soon as it has it, before this thread gets back to its bookkeeping.
        self.server.receiver._leave(self)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()


class LoopbackReceiver:
    """A Honeycomb batch endpoint on 127.0.0.1 (port chosen by the OS, kept across restarts)."""

    def __init__(self, port: int = 0) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._plan: list[_Plan] = []
        self._conns: set = set()
        self._stopping = threading.Event()
        self._in_flight = 0
        self.max_in_flight = 0  # most batch requests handled at the same time so far
        self.events: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = port
        self.start()

    # ----------------------------------------------------------------- lifecycle
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        """Listen (again) on the same port. A no-op when already running."""
        if self._server is not None:
            return
        self._stopping.clear()
        server = None
        # After stop(), the port may linger briefly; retry a bounded number of times.
        for attempt in range(50):
            try:
                server = _Server(self.port, self)
                break
            except OSError:
                if attempt == 49:
                    raise
                time.sleep(0.02)
        assert server is not None
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"loopback-receiver-{self.port}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening and drop every open connection, as if the receiver went down."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> LoopbackReceiver:  # noqa: PYI034 - typing.Self needs 3.11
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ fault injection
    def fail_next(self, n: int, status: int = 500, retry_after: int | str | None = None) -> None:
        """Answer the next ``n`` requests with ``status`` (and ``Retry-After`` when given)."""
        self._add_plan(n, _Plan("fail", status=status, retry_after=retry_after))

    def delay_next(self, n: int, seconds: float) -> None:
        """Hold the next ``n`` requests ``seconds`` before answering normally."""
        seconds = max(0.0, min(float(seconds), _MAX_DELAY_SECONDS))
        self._add_plan(n, _Plan("delay", seconds=seconds))

    def reset_next(self, n: int) -> None:
        """Read the next ``n`` requests, then reset the connection without answering."""
        self._add_plan(n, _Plan("reset"))

    def status_array_next(self, n: int, array_or_raw: list[Any] | bytes | str) -> None:
        """Answer the next ``n`` requests with HTTP 200 and this body (a list is JSON-encoded)."""
        if isinstance(array_or_raw, (bytes, bytearray)):
            body = bytes(array_or_raw)
        elif isinstance(array_or_raw, str):
            body = array_or_raw.encode()
        else:
            body = json.dumps(array_or_raw).encode()
        self._add_plan(n, _Plan("status_array", body=body))

    def clear_faults(self) -> None:
        with self._lock:
            self._plan.clear()

    def _add_plan(self, n: int, plan: _Plan) -> None:
        if n < 0:
            raise ValueError("n must be >= 0")
        with self._lock:
            self._plan.extend([plan] * n)

    # ------------------------------------------------------------------- reading
    def wait_for(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait (at most ``timeout`` s) until ``n`` events were delivered; return all of them.

        It returns on timeout too, so a test can assert the exact count it expects.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.events) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            return list(self.events)

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait (bounded) until ``n`` batch requests arrived, whatever their outcome."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            return list(self.requests)

    def outcomes(self) -> list[str]:
        """The outcome of every request so far, in arrival order (e.g. ``["fail", "ok"]``)."""
        with self._lock:
            return [r["outcome"] for r in self.requests]

    # ------------------------------------------------------------------ internals
    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def _next_plan(self) -> _Plan | None:
        with self._lock:
            return self._plan.pop(0) if self._plan else None

    def _handle(self, h: _Handler) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            h.in_flight = True
        try:
            self._handle_batch(h)
        finally:
            self._leave(h)  # requests that end with no answer (a reset, a bad path)

    def _leave(self, h: _Handler) -> None:
        with self._lock:
            if getattr(h, "in_flight", False):
                h.in_flight = False
                self._in_flight -= 1

    def _handle_batch(self, h: _Handler) -> None:
        received_at = time.monotonic()
        match = _BATCH_PATH.match(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        if match is None:
            h._answer(404, b'{"error": "unknown path"}')
            return
        is_gzip = (h.headers.get("Content-Encoding") or "").lower() == "gzip"
        try:
            payload = gzip.decompress(raw) if is_gzip else raw
            body = strict_loads(payload.decode("utf-8"))
        except (OSError, ValueError) as exc:
            self._record(h, received_at, None, is_gzip, "bad_request")
            h._answer(400, json.dumps({"error": f"unreadable body: {exc}"}).encode())
            return
        if not isinstance(body, list):
            self._record(h, received_at, body, is_gzip, "bad_request")
            h._answer(400, b'{"error": "request body should be a JSON array"}')
            return

        dataset = unquote(match.group("dataset"))
        plan = self._next_plan()
        kind = plan.kind if plan else "ok"

        if kind == "fail":
            assert plan is not None
            self._record(h, received_at, body, is_gzip, "fail")
            extra = {} if plan.retry_after is None else {"Retry-After": str(plan.retry_after)}
            h._answer(plan.status, json.dumps({"error": f"injected {plan.status}"}).encode(), extra)
            return
        if kind == "reset":
            self._record(h, received_at, body, is_gzip, "reset")
            self._reset(h)
            return
        if kind == "delay":
            assert plan is not None
            self._stopping.wait(plan.seconds)
            if self._stopping.is_set() or self._peer_closed(h.connection):
                # The client gave up (or we went down): nobody will read this answer.
                self._record(h, received_at, body, is_gzip, "abandoned")
                h.close_connection = True
                return

        if kind == "status_array":
            assert plan is not None
            answer = plan.body or b""
            statuses = _statuses_from(answer, len(body))
        else:
            statuses = [202] * len(body)
            answer = json.dumps([{"status": 202} for _ in body]).encode()

        self._record(h, received_at, body, is_gzip, kind, dataset=dataset, statuses=statuses)
        h._answer(200, answer)

    def _record(self, h: _Handler, received_at: float, body: Any, is_gzip: bool, outcome: str,
                dataset: str | None = None, statuses: list[int | None] | None = None) -> None:
        headers = HeaderDict(h.headers.items())
        request = {"path": h.path, "headers": headers, "body": body, "gzip": is_gzip,
                   "outcome": outcome, "received_at": received_at,
                   "client_port": h.client_address[1]}
        delivered = []
        if statuses is not None and isinstance(body, list):
            for item, status in zip(body, statuses + [None] * (len(body) - len(statuses))):
                item = item if isinstance(item, dict) else {}
                delivered.append({
                    "dataset": dataset,
                    "time": item.get("time"),
                    "samplerate": item.get("samplerate"),
                    "data": item.get("data"),
                    "headers": headers,
                    "status": status,
                })
        with self._changed:
            self.requests.append(request)
            self.events.extend(delivered)
            self._changed.notify_all()

    @staticmethod
    def _reset(h: _Handler) -> None:
        # SO_LINGER with a zero timeout makes close() send a RST instead of a FIN.
        h.close_connection = True
        try:
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.connection.close()
        except OSError:
            pass

    @staticmethod
    def _peer_closed(conn: socket.socket) -> bool:
        try:
            data = conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:
            return True
        return data == b""


def _statuses_from(answer: bytes, count: int) -> list[int | None]:
    """Per-event statuses a custom answer claims, so delivered events carry them (None if absent)."""
    try:
        parsed = json.loads(answer.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return [None] * count
    if not isinstance(parsed, list):
        return [None] * count
    out: list[int | None] = []
    for item in parsed[:count]:
        status = item.get("status") if isinstance(item, dict) else None
        out.append(status if isinstance(status, int) else None)
    return out
