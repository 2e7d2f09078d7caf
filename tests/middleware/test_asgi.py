"""The ASGI middleware, driven through a real uvicorn server on 127.0.0.1 (and Starlette's
in-process client where uvicorn cannot go: websockets need a package that is not installed)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import warnings
from typing import Iterator

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute

import beeline
from beeline.middleware.asgi import ASGIRequest, HoneyASGIMiddleware, request_context
from beeline.trace import active_span
from tests.receiver import LoopbackReceiver

pytestmark = pytest.mark.timeout(90)


# ---- the application ---------------------------------------------------------------------------


@beeline.traced("lookup")
async def lookup(kind: str) -> str:
    await asyncio.sleep(0.002)
    with beeline.tracer(f"cache-{kind}"):
        await asyncio.sleep(0)
    return kind


async def user(request):
    user_id = request.path_params["user_id"]
    beeline.add_context_field("app.user", user_id)
    with beeline.tracer("load_user"):
        await asyncio.sleep(0.001)
        profile, perms = await asyncio.gather(lookup("profile"), lookup("perms"))
    beeline.add_rollup_field("db_ms", 1)
    return JSONResponse({"user": user_id, "parts": [profile, perms]})


async def stream(request):
    async def chunks():
        for i in range(3):
            with beeline.tracer(f"chunk-{i}"):
                await asyncio.sleep(0.005)
            yield f"part{i}\n".encode()

    return StreamingResponse(chunks(), media_type="text/plain")


async def boom(request):
    with beeline.tracer("about-to-fail"):
        pass
    raise ValueError("broken handler")


async def item(request):
    # The root span is in the scope, whatever span is active.
    with beeline.tracer("inside"):
        request.scope["beeline.span"].add_context_field("app.item", request.path_params["item_id"])
    return PlainTextResponse(f"item {request.path_params['item_id']}")


async def ws_echo(websocket):
    await websocket.accept()
    text = await websocket.receive_text()
    # No HTTP trace here: a websocket connection may run its own traces.
    with beeline.tracer("ws_message") as span:
        span.add_context_field("had_parent", active_span() is not None and span.parent_id is not None)
    await websocket.send_text(text.upper())
    await websocket.close()


lifespan_events: list = []


@contextlib.asynccontextmanager
async def lifespan(app):
    lifespan_events.append(("startup", active_span()))
    yield
    lifespan_events.append(("shutdown", active_span()))


api = Starlette(routes=[Route("/items/{item_id:int}", item)])

starlette_app = Starlette(
    routes=[
        Route("/users/{user_id}", user),
        Route("/stream", stream),
        Route("/boom", boom),
        Mount("/api", app=api),
        WebSocketRoute("/ws", ws_echo),
    ],
    lifespan=lifespan,
)
app = HoneyASGIMiddleware(starlette_app)


async def raw_failing_app(scope, receive, send):
    """An app with no error handling of its own: the server answers 500 for it."""
    if scope["type"] == "lifespan":
        return
    raise RuntimeError("raw failure")


# ---- a real server -------------------------------------------------------------------------------


class ServerThread:
    """uvicorn on 127.0.0.1 in a thread, on a port the OS picked."""

    def __init__(self, asgi_app, lifespan: str = "on") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(asgi_app, lifespan=lifespan, log_level="critical", access_log=False,
                                backlog=128)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline and self.thread.is_alive():
            time.sleep(0.01)
        assert self.server.started, "uvicorn did not start within 10 s"
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture
def server(beeline_recorder) -> Iterator[ServerThread]:
    # init() happened first (the recorder fixture), as it does at import time in a real app.
    lifespan_events.clear()
    with ServerThread(app) as srv:
        yield srv


def wait_for_spans(rec, n: int, timeout: float = 10.0) -> list:
    """The response can reach the client a moment before the server finishes the span."""
    deadline = time.monotonic() + timeout
    while len(rec.events) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    return rec.events


# ---- tests ---------------------------------------------------------------------------------------


class TestOverUvicorn:
    def test_root_span_fields(self, server, beeline_recorder):
        r = httpx.get(server.url + "/users/ada?verbose=1", headers={"User-Agent": "probe/1"}, timeout=10)
        assert r.status_code == 200
        wait_for_spans(beeline_recorder, 6)
        root = beeline_recorder.root()
        assert root["name"] == "asgi_http_get"
        assert root["type"] == "http_server"
        assert root["meta.span_type"] == "root"
        assert root["request.method"] == "GET"
        assert root["request.path"] == "/users/ada"
        assert root["request.query"] == "verbose=1"
        assert root["request.host"] == f"127.0.0.1:{server.port}"
        assert root["request.scheme"] == "http"
        assert root["request.user_agent"] == "probe/1"
        assert root["request.remote_addr"] == "127.0.0.1"
        assert root["request.content_length"] == 0
        assert root["response.status_code"] == 200
        assert root["request.route"] == "/users/{user_id}"
        assert root["app.user"] == "ada"
        assert root["rollup.db_ms"] == 1.0
        assert root["trace.parent_id"] is None

    def test_fifty_concurrent_requests_each_get_their_own_trace(self, server, beeline_recorder):
        async def fire():
            limits = httpx.Limits(max_connections=50)
            async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as client:
                return await asyncio.gather(*(client.get(f"/users/u{i}?n={i}") for i in range(50)))

        responses = asyncio.run(fire())
        assert [r.status_code for r in responses] == [200] * 50
        events = wait_for_spans(beeline_recorder, 50 * 6)
        assert len(events) == 50 * 6
        traces = beeline_recorder.traces()
        assert len(traces) == 50
        seen_users = set()
        for trace_id, spans in traces.items():
            root = beeline_recorder.root(trace_id)
            user_id = root["app.user"]
            seen_users.add(user_id)
            assert root["request.query"] == f"n={user_id[1:]}"
            by_name = {}
            for ev in spans:
                by_name.setdefault(ev["name"], []).append(ev)
            assert sorted(by_name) == ["asgi_http_get", "cache-perms", "cache-profile", "load_user", "lookup"]
            load = by_name["load_user"][0]
            assert load["trace.parent_id"] == root["trace.span_id"]
            lookups = by_name["lookup"]
            assert len(lookups) == 2
            assert {ev["trace.parent_id"] for ev in lookups} == {load["trace.span_id"]}
            lookup_ids = {ev["trace.span_id"] for ev in lookups}
            for kind in ("profile", "perms"):
                assert by_name[f"cache-{kind}"][0]["trace.parent_id"] in lookup_ids
            assert root["rollup.db_ms"] == 1.0
        assert seen_users == {f"u{i}" for i in range(50)}

    def test_incoming_trace_headers_are_continued(self, server, beeline_recorder):
        honeycomb = "1;trace_id=trace-from-upstream,parent_id=upstream-span,context=eyJ0ZW5hbnQiOiAiYWNtZSJ9"
        w3c = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        httpx.get(server.url + "/users/a", headers={"X-Honeycomb-Trace": honeycomb}, timeout=10)
        httpx.get(server.url + "/users/b", headers={"traceparent": w3c}, timeout=10)
        wait_for_spans(beeline_recorder, 12)
        hc_root = beeline_recorder.find(name="asgi_http_get", app__user="a")
        assert hc_root["trace.trace_id"] == "trace-from-upstream"
        assert hc_root["trace.parent_id"] == "upstream-span"
        assert hc_root["meta.span_type"] == "subroot"
        assert hc_root["app.tenant"] == "acme"
        # The trace field travelled on to every span of this service's part of the trace.
        assert all(ev["app.tenant"] == "acme" for ev in beeline_recorder.traces()["trace-from-upstream"])
        w3c_root = beeline_recorder.find(name="asgi_http_get", app__user="b")
        assert w3c_root["trace.trace_id"] == "0af7651916cd43dd8448eb211c80319c"
        assert w3c_root["trace.parent_id"] == "b7ad6b7169203331"

    def test_streaming_response_span_ends_after_the_last_chunk(self, server, beeline_recorder):
        with httpx.stream("GET", server.url + "/stream", timeout=10) as r:
            body = b"".join(r.iter_bytes())
        assert body == b"part0\npart1\npart2\n"
        wait_for_spans(beeline_recorder, 4)
        names = [ev["name"] for ev in beeline_recorder.events]
        assert names.index("asgi_http_get") > names.index("chunk-2")
        root = beeline_recorder.root()
        for i in range(3):
            chunk = beeline_recorder.find(name=f"chunk-{i}")
            assert chunk["trace.trace_id"] == root["trace.trace_id"]
            assert chunk["trace.parent_id"] == root["trace.span_id"]
        assert root["response.status_code"] == 200
        assert root["request.route"] == "/stream"

    def test_exception_fields_and_status(self, server, beeline_recorder):
        r = httpx.get(server.url + "/boom", timeout=10)
        assert r.status_code == 500
        wait_for_spans(beeline_recorder, 2)
        root = beeline_recorder.root()
        assert root["response.status_code"] == 500
        assert root["app.exception_type"] == "<class 'ValueError'>"
        assert root["app.exception_string"] == "broken handler"
        assert "broken handler" in root["app.exception_stacktrace"]
        assert root["request.error"] == "<class 'ValueError'>"
        assert root["request.error_detail"] == "broken handler"
        assert beeline_recorder.find(name="about-to-fail")["trace.parent_id"] == root["trace.span_id"]

    def test_mounted_sub_application_route(self, server, beeline_recorder):
        r = httpx.get(server.url + "/api/items/7", timeout=10)
        assert r.text == "item 7"
        wait_for_spans(beeline_recorder, 2)
        root = beeline_recorder.root()
        assert root["app.item"] == 7
        assert root["request.route"] == "/api/items/{item_id:int}"
        assert root["request.path"] == "/api/items/7"

    def test_unrouted_request_has_no_route(self, server, beeline_recorder):
        r = httpx.get(server.url + "/nowhere", timeout=10)
        assert r.status_code == 404
        wait_for_spans(beeline_recorder, 1)
        root = beeline_recorder.root()
        assert root["response.status_code"] == 404
        assert "request.route" not in root

    def test_lifespan_passes_through_untraced(self, server, beeline_recorder):
        assert lifespan_events == [("startup", None)]
        httpx.get(server.url + "/users/x", timeout=10)
        wait_for_spans(beeline_recorder, 6)
        assert all(ev["name"] != "asgi_lifespan" for ev in beeline_recorder.events)
        assert len(beeline_recorder.traces()) == 1

    def test_keep_alive_requests_do_not_share_a_trace(self, server, beeline_recorder):
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for i in range(5):
                assert client.get(f"/users/k{i}").status_code == 200
        wait_for_spans(beeline_recorder, 30)
        assert len(beeline_recorder.traces()) == 5
        assert len(beeline_recorder.spans(name="asgi_http_get")) == 5

    def test_app_that_raises_before_responding(self, beeline_recorder):
        with ServerThread(HoneyASGIMiddleware(raw_failing_app), lifespan="off") as srv:
            r = httpx.get(srv.url + "/x", timeout=10)
            assert r.status_code == 500
            wait_for_spans(beeline_recorder, 1)
        root = beeline_recorder.root()
        assert root["response.status_code"] == 500
        assert root["app.exception_type"] == "<class 'RuntimeError'>"


class TestWebsocket:
    def test_websocket_scope_passes_through_and_may_run_its_own_trace(self, beeline_recorder):
        with warnings.catch_warnings():
            # Starlette asks for a newer client package; the one installed works.
            warnings.simplefilter("ignore")
            from starlette.testclient import TestClient

        with TestClient(app) as client:
            with client.websocket_connect("/ws") as ws:
                ws.send_text("hello")
                assert ws.receive_text() == "HELLO"
        ws_span = beeline_recorder.find(name="ws_message")
        assert ws_span["meta.span_type"] == "root"
        assert ws_span["had_parent"] is False
        assert beeline_recorder.spans(name="asgi_http_get") == []


class TestWithoutServer:
    """The middleware's own edges, driven with hand-written ASGI messages."""

    @staticmethod
    def call(asgi_app, scope, messages_in=()):
        sent = []
        queue = list(messages_in) or [{"type": "http.request", "body": b"", "more_body": False}]

        async def receive():
            return queue.pop(0) if queue else {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        async def main():
            await asgi_app(scope, receive, send)

        asyncio.run(main())
        return sent

    SCOPE = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": "/upload",
        "query_string": b"a=1&b=2",
        "root_path": "",
        "headers": [(b"host", b"example.test"), (b"content-length", b"5"), (b"user-agent", b"ua")],
        "client": ("10.0.0.9", 5000),
        "server": ("127.0.0.1", 8000),
    }

    def test_not_initialised_passes_through(self):
        beeline.close()

        async def inner(scope, receive, send):
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        sent = self.call(HoneyASGIMiddleware(inner), dict(self.SCOPE))
        assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]

    def test_pathsend_ends_the_span(self, beeline_recorder):
        after_send = []

        async def inner(scope, receive, send):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.pathsend", "path": "/tmp/x"})
            after_send.append(len(beeline_recorder.events))

        self.call(HoneyASGIMiddleware(inner), dict(self.SCOPE))
        assert after_send == [1]
        root = beeline_recorder.root()
        assert root["request.scheme"] == "https"
        assert root["request.content_length"] == "5"
        assert root["request.remote_addr"] == "10.0.0.9"
        assert root["request.method"] == "POST"
        assert root["name"] == "asgi_http_post"

    def test_trailers_keep_the_span_open_until_the_last_trailer(self, beeline_recorder):
        seen = []

        async def inner(scope, receive, send):
            await send({"type": "http.response.start", "status": 200, "headers": [], "trailers": True})
            await send({"type": "http.response.body", "body": b"x"})
            seen.append(len(beeline_recorder.events))
            await send({"type": "http.response.trailers", "headers": [], "more_trailers": False})
            seen.append(len(beeline_recorder.events))

        self.call(HoneyASGIMiddleware(inner), dict(self.SCOPE))
        assert seen == [0, 1]

    def test_app_returning_without_a_final_chunk_still_ends_the_trace(self, beeline_recorder):
        async def inner(scope, receive, send):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"x", "more_body": True})

        self.call(HoneyASGIMiddleware(inner), dict(self.SCOPE))
        assert beeline_recorder.root()["response.status_code"] == 200

    def test_a_deliberate_server_error_ends_when_the_app_returns(self, beeline_recorder):
        async def inner(scope, receive, send):
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b"busy"})

        self.call(HoneyASGIMiddleware(inner), dict(self.SCOPE))
        root = beeline_recorder.root()
        assert root["response.status_code"] == 503
        assert "app.exception_type" not in root

    def test_failing_override_hooks_never_break_the_request(self, beeline_recorder, caplog):
        class Broken(HoneyASGIMiddleware):
            def get_context_from_scope(self, scope):
                raise RuntimeError("hook bug")

            def get_context_from_response(self, scope, message):
                raise RuntimeError("hook bug")

        async def inner(scope, receive, send):
            await send({"type": "http.response.start", "status": 201, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        sent = self.call(Broken(inner), dict(self.SCOPE))
        assert sent[0]["status"] == 201
        root = beeline_recorder.root()
        assert root["request.path"] == "/upload"
        assert root["response.status_code"] == 201

    def test_custom_context_from_overrides(self, beeline_recorder):
        class Custom(HoneyASGIMiddleware):
            def get_context_from_scope(self, scope):
                context = super().get_context_from_scope(scope)
                context["tenant"] = ASGIRequest(scope).header("Host")
                return context

            def get_context_from_response(self, scope, message):
                return {"response.status_code": message["status"], "response.kind": "custom"}

        async def inner(scope, receive, send):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        self.call(Custom(inner, name_prefix="svc"), dict(self.SCOPE))
        root = beeline_recorder.root()
        assert root["tenant"] == "example.test"
        assert root["response.kind"] == "custom"
        assert root["name"] == "svc_http_post"

    def test_the_callers_context_is_clean_afterwards(self, beeline_recorder):
        async def inner(scope, receive, send):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        async def main():
            middleware = HoneyASGIMiddleware(inner)

            async def receive():
                return {"type": "http.request", "body": b""}

            async def send(message):
                pass

            await middleware(dict(self.SCOPE), receive, send)
            return active_span()

        assert asyncio.run(main()) is None

    def test_a_final_chunk_sent_from_another_task_leaves_this_task_clean(self, beeline_recorder):
        # Starlette streams from a task group: the trace ends in that task's context, and the
        # request's own task must not keep pointing at the finished root span.
        from beeline.trace import current_span_var

        async def inner(scope, receive, send):
            await send({"type": "http.response.start", "status": 200, "headers": []})

            async def last_chunk():
                await send({"type": "http.response.body", "body": b"done"})

            await asyncio.create_task(last_chunk())

        async def main():
            async def receive():
                return {"type": "http.request", "body": b""}

            async def send(message):
                pass

            await HoneyASGIMiddleware(inner)(dict(self.SCOPE), receive, send)
            return current_span_var.get()

        assert asyncio.run(main()) is None
        assert beeline_recorder.root()["response.status_code"] == 200

    def test_request_adapter(self):
        req = ASGIRequest(dict(self.SCOPE))
        assert req.header("USER-AGENT") == "ua"
        assert req.header("x-missing") is None
        assert (req.method(), req.scheme(), req.host(), req.path(), req.query()) == (
            "POST", "https", "example.test", "/upload", "a=1&b=2")
        no_host = dict(self.SCOPE, headers=[])
        assert ASGIRequest(no_host).host() == "127.0.0.1:8000"
        assert request_context(no_host)["request.host"] == "127.0.0.1:8000"


# ---- Django's ASGI handler under uvicorn, in its own process (Django settings are global) -----

DJANGO_APP = '''
import asyncio
import os

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="test-only",
    ALLOWED_HOSTS=["127.0.0.1"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
)
django.setup()

import beeline
from django.core.asgi import get_asgi_application
from django.http import JsonResponse
from django.urls import path

from beeline.middleware.asgi import HoneyASGIMiddleware

beeline.init(service_name="django-asgi", api_host=os.environ["HONEYCOMB_API_HOST"])


@beeline.traced("part")
async def part(n):
    await asyncio.sleep(0.005)
    return n


async def view(request, n):
    with beeline.tracer("view_work"):
        parts = await asyncio.gather(part(1), part(2))
    return JsonResponse({"n": n, "parts": parts})


urlpatterns = [path("items/<int:n>", view)]
application = HoneyASGIMiddleware(get_asgi_application())
'''


def test_django_asgi_app_under_uvicorn(tmp_path):
    (tmp_path / "djasgi.py").write_text(DJANGO_APP)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with LoopbackReceiver() as rx:
        env = dict(os.environ, HONEYCOMB_WRITEKEY="0" * 32, HONEYCOMB_DATASET="dj", HONEYCOMB_API_HOST=rx.url)
        env.pop("BEELINE_DISABLED", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "djasgi:application", "--app-dir", str(tmp_path),
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--lifespan", "off"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
                try:
                    httpx.get(base + "/items/0", timeout=2)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)

            async def fire():
                async with httpx.AsyncClient(base_url=base, timeout=20) as client:
                    return await asyncio.gather(*(client.get(f"/items/{i}") for i in range(1, 21)))

            responses = asyncio.run(fire())
            assert [r.json()["n"] for r in responses] == list(range(1, 21))
            # The probe request's trace (4 spans) plus 4 spans for each of the 20 requests.
            events = rx.wait_for(4 * 21, timeout=20)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            proc.stderr.close()
    spans = [e["data"] for e in events]
    assert len(spans) == 4 * 21
    roots = {s["trace.span_id"]: s for s in spans if s["name"] == "asgi_http_get"}
    assert len(roots) == 21
    assert {r["response.status_code"] for r in roots.values()} == {200}
    by_trace = {}
    for s in spans:
        by_trace.setdefault(s["trace.trace_id"], []).append(s)
    assert len(by_trace) == 21
    for trace in by_trace.values():
        (root,) = [s for s in trace if s["name"] == "asgi_http_get"]
        (work,) = [s for s in trace if s["name"] == "view_work"]
        parts = [s for s in trace if s["name"] == "part"]
        assert work["trace.parent_id"] == root["trace.span_id"]
        assert len(parts) == 2 and {p["trace.parent_id"] for p in parts} == {work["trace.span_id"]}
