"""Helpers for the WSGI, Flask, Bottle and Werkzeug middleware tests.

Real servers only: `serve(app)` runs werkzeug's threaded development server on 127.0.0.1,
`serve_wsgiref(app)` the standard library's wsgiref server, each on a port the OS picks, each
stopped when the test ends. The reference's field names and types (reference sections 2.8, 4.1
to 4.3) live here once, so every framework's test compares against the same table.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from types import SimpleNamespace
from typing import Any, Callable, Iterator, List
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

# Root span fields honeycomb-beeline sends for every WSGI request (section 4.1), with their
# types; `request.content_length` is the header's text when present and int 0 when absent.
REFERENCE_WSGI_ROOT_FIELDS = {
    "name": (str,),
    "type": (str,),
    "request.host": (str, type(None)),  # None when the client sent no Host header
    "request.method": (str,),
    "request.path": (str,),
    "request.remote_addr": (str,),
    "request.content_length": (str, int),
    "request.user_agent": (str, type(None)),  # likewise without User-Agent
    "request.scheme": (str,),
    "request.query": (str,),
    "response.status_code": (int,),
    "meta.span_type": (str,),
}

# Fields on every span event (section 2.8).
REFERENCE_SPAN_FIELDS = {
    "service_name": (str,),
    "service.name": (str,),
    "meta.beeline_version": (str,),
    "meta.local_hostname": (str,),
    "trace.trace_id": (str,),
    "trace.span_id": (str,),
    "duration_ms": (float,),
}

# Flask DB span fields (section 4.2).
REFERENCE_DB_FIELDS = {
    "name": (str,),
    "type": (str,),
    "db.query": (str,),
    "db.query_args": (list,),
    "db.last_insert_id": (int, type(None)),
    "db.rows_affected": (int,),
    "db.duration": (float,),
}

# How long any single HTTP call in these tests may take before the test fails.
HTTP_TIMEOUT = 10.0


def assert_fields(event: dict, reference: dict) -> None:
    """`event` carries every field of `reference` with one of the reference's types."""
    missing = sorted(set(reference) - set(event))
    assert not missing, f"missing reference fields {missing} in {sorted(event)}"
    wrong = {
        name: type(event[name]).__name__
        for name, types in reference.items()
        if not isinstance(event[name], types) or (bool in types) != isinstance(event[name], bool)
    }
    assert not wrong, f"fields with types the reference does not send: {wrong}"


def assert_wsgi_root(root: dict, prefix: str, method: str, path: str, status: int, query: str = "") -> None:
    """A root span as the reference names and types it for `<prefix>_http_<method>`."""
    assert_fields(root, REFERENCE_WSGI_ROOT_FIELDS)
    assert_fields(root, REFERENCE_SPAN_FIELDS)
    assert root["name"] == "%s_http_%s" % (prefix, method.lower())
    assert root["type"] == "http_server"
    assert root["request.method"] == method
    assert root["request.path"] == path
    assert root["request.query"] == query
    assert root["request.scheme"] == "http"
    assert root["response.status_code"] == status


def finished(recorder: Any, count: int = 1, timeout: float = HTTP_TIMEOUT, **match: Any) -> List[dict]:
    """The `count` spans matching, once they are all recorded.

    A server writes the last byte of the body before it finishes iterating and closes it, and
    the trace ends only then: the client can hold the whole response a moment before the root
    span is recorded. Wait for it, bounded in time.
    """
    deadline = time.monotonic() + timeout
    found = recorder.spans(**match)
    while len(found) < count and time.monotonic() < deadline:
        time.sleep(0.005)
        found = recorder.spans(**match)
    assert len(found) == count, f"expected {count} spans matching {match}, found {len(found)}"
    return found


def honeycomb_header(trace_id: str, parent_id: str, fields: dict) -> str:
    """An `X-Honeycomb-Trace` v1 value, written out by hand from the documented format."""
    context = base64.b64encode(json.dumps(fields).encode()).decode()
    return "1;trace_id=%s,parent_id=%s,context=%s" % (trace_id, parent_id, context)


def traceparent(trace_id: str, parent_id: str, flags: str = "01") -> str:
    return "00-%s-%s-%s" % (trace_id, parent_id, flags)


def same_trace_parentage(events: List[dict]) -> None:
    """Every span of the trace hangs off a span of the same trace, up to one root."""
    ids = {e["trace.span_id"] for e in events}
    roots = [e for e in events if e.get("meta.span_type") in ("root", "subroot")]
    assert len(roots) == 1, [e.get("name") for e in events]
    assert len({e["trace.trace_id"] for e in events}) == 1
    for e in events:
        if e is not roots[0]:
            assert e["trace.parent_id"] in ids, f"{e.get('name')} has a parent outside its trace"


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Servers:
    def __init__(self) -> None:
        self._running: List[tuple] = []

    def werkzeug(self, app: Callable, threaded: bool = True) -> str:
        from werkzeug.serving import make_server as make_werkzeug_server

        server = make_werkzeug_server("127.0.0.1", 0, app, threaded=threaded)
        return self._run(server, server.server_port)

    def wsgiref(self, app: Callable) -> str:
        server = make_server("127.0.0.1", 0, app, server_class=WSGIServer, handler_class=_QuietHandler)
        return self._run(server, server.server_port)

    def _run(self, server: Any, port: int) -> str:
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        self._running.append((server, thread))
        return "http://127.0.0.1:%d" % port

    def stop(self) -> None:
        for server, thread in self._running:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
        self._running.clear()


@pytest.fixture
def servers() -> Iterator[_Servers]:
    """`servers.werkzeug(app)` / `servers.wsgiref(app)`: the base URL of a real server."""
    running = _Servers()
    quiet = logging.getLogger("werkzeug")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # one access-log line per request is noise here
    try:
        yield running
    finally:
        running.stop()
        quiet.setLevel(level)


@pytest.fixture
def ref() -> SimpleNamespace:
    """The reference tables and the assertions built on them, for the test modules."""
    return SimpleNamespace(
        WSGI_ROOT_FIELDS=REFERENCE_WSGI_ROOT_FIELDS,
        SPAN_FIELDS=REFERENCE_SPAN_FIELDS,
        DB_FIELDS=REFERENCE_DB_FIELDS,
        HTTP_TIMEOUT=HTTP_TIMEOUT,
        assert_fields=assert_fields,
        assert_wsgi_root=assert_wsgi_root,
        finished=finished,
        honeycomb_header=honeycomb_header,
        traceparent=traceparent,
        same_trace_parentage=same_trace_parentage,
    )


@pytest.fixture
def beeline_warnings(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], List[str]]]:
    """The messages of WARNING-and-above records on the `beeline` logger so far."""
    caplog.set_level(logging.WARNING, logger="beeline")

    def messages() -> List[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if r.name.split(".")[0] == "beeline" and r.levelno >= logging.WARNING
        ]

    yield messages
