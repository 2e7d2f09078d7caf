"""The shared WSGI middleware: request fields, trace headers, and when the trace ends.

Requests go through real servers on 127.0.0.1 (wsgiref, werkzeug). The few cases a real server
cannot produce on demand (a body that is dropped unread, a server closing the body half way)
drive the WSGI protocol directly, exactly as PEP 3333 has a server do it.
"""

from __future__ import annotations

import gc
from contextvars import ContextVar
import http.client
import threading
from typing import Any, Callable, Iterable, List, Optional
from urllib.parse import urlsplit
from wsgiref.util import setup_testing_defaults

import pytest
import requests

import beeline
from beeline.middleware.wsgi import ROOT_SPAN_KEY, HoneyWSGIMiddleware, WSGIRequest
from beeline.propagation import PropagationContext
from beeline.trace import active_span
from tests.receiver import LoopbackReceiver

TRACE_ID = "5b8efff798038103d269b633813fc60c"
PARENT_ID = "eee19b7ec3c1b174"


# ---- a plain WSGI application ------------------------------------------------------------------


def hello(environ: dict, start_response: Callable) -> Iterable[bytes]:
    with beeline.tracer("say_hello"):
        body = b"hello " + environ.get("QUERY_STRING", "").encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def hello_lazily(environ: dict, start_response: Callable) -> Iterable[bytes]:
    """`hello` with a body that is produced while the server iterates it."""
    return iter(hello(environ, start_response))


def echo(environ: dict, start_response: Callable) -> Iterable[bytes]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length)
    start_response("201 Created", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def not_found(environ: dict, start_response: Callable) -> Iterable[bytes]:
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
    return [b"not found"]


def crash(environ: dict, start_response: Callable) -> Iterable[bytes]:
    raise RuntimeError("exploded before the response")


def stream(environ: dict, start_response: Callable) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])

    def chunks():
        for i in range(3):
            with beeline.tracer("chunk"):
                beeline.add_context_field("chunk.index", i)
                yield b"part%d\n" % i
        # Only reachable once the server has taken every chunk: proves the root was still open.
        beeline.add_context_field("stream.complete", True)

    return chunks()


ROUTES = {"/hello": hello, "/echo": echo, "/crash": crash, "/stream": stream}


def router(environ: dict, start_response: Callable) -> Iterable[bytes]:
    return ROUTES.get(environ.get("PATH_INFO", ""), not_found)(environ, start_response)


# ---- driving the WSGI protocol directly (what a server does) --------------------------------------


class Served:
    def __init__(self) -> None:
        self.status: Optional[str] = None
        self.chunks: List[bytes] = []
        self.error: Optional[BaseException] = None


def serve_once(app: Callable, path: str = "/", stop_after: Optional[int] = None, **environ_extra: Any) -> Served:
    """One request the way PEP 3333 has a server run it: call, iterate, always close. With
    `stop_after`, the server gives up after that many chunks (a client that went away)."""
    environ: dict = {"PATH_INFO": path}
    environ.update(environ_extra)
    setup_testing_defaults(environ)
    served = Served()

    def start_response(status: str, headers: list, exc_info: Any = None) -> Callable:
        served.status = status
        return served.chunks.append

    try:
        body = app(environ, start_response)
    except Exception as exc:
        served.error = exc
        return served
    try:
        for chunk in body:
            served.chunks.append(chunk)
            if stop_after is not None and len(served.chunks) >= stop_after:
                break
    except Exception as exc:
        served.error = exc
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return served


# ---- the request adapter -------------------------------------------------------------------------


class TestWSGIRequest:
    def environ(self, **extra: Any) -> dict:
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/users/bob",
            "QUERY_STRING": "x=1&y=2",
            "HTTP_HOST": "example.test:8080",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_USER_AGENT": "ua/1.0",
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": "17",
            "HTTP_X_HONEYCOMB_TRACE": "1;trace_id=a,parent_id=b",
            "wsgi.url_scheme": "https",
        }
        environ.update(extra)
        return environ

    def test_request_context_has_the_reference_fields_and_types(self):
        context = WSGIRequest("flask", self.environ()).request_context()
        assert context == {
            "name": "flask_http_post",
            "type": "http_server",
            "request.host": "example.test:8080",
            "request.method": "POST",
            "request.path": "/users/bob",
            "request.remote_addr": "127.0.0.1",
            "request.content_length": "17",
            "request.user_agent": "ua/1.0",
            "request.scheme": "https",
            "request.query": "x=1&y=2",
        }

    def test_absent_content_length_is_int_zero_and_no_method_drops_the_suffix(self):
        environ = self.environ()
        del environ["CONTENT_LENGTH"], environ["REQUEST_METHOD"]
        context = WSGIRequest("wsgi", environ).request_context()
        assert context["request.content_length"] == 0
        assert context["name"] == "wsgi_http"
        assert context["request.method"] is None

    def test_headers_are_read_from_the_environ_like_cgi(self):
        request = WSGIRequest("wsgi", self.environ())
        assert request.header("X-Honeycomb-Trace") == "1;trace_id=a,parent_id=b"
        assert request.header("x-honeycomb-trace") == "1;trace_id=a,parent_id=b"
        assert request.header("Content-Type") == "application/json"
        assert request.header("content-length") == "17"
        assert request.header("traceparent") is None
        assert (request.method(), request.scheme(), request.host(), request.path(), request.query()) == (
            "POST", "https", "example.test:8080", "/users/bob", "x=1&y=2")
        environ = self.environ()
        assert WSGIRequest("wsgi", environ).middleware_request() is environ


# ---- requests through real servers -----------------------------------------------------------------


class TestThroughRealServers:
    def test_get_with_query_string(self, beeline_recorder, servers, ref):
        url = servers.wsgiref(HoneyWSGIMiddleware(router))
        response = requests.get(url + "/hello?name=bob", headers={"User-Agent": "tester/1"},
                                timeout=ref.HTTP_TIMEOUT)
        assert response.status_code == 200 and response.text == "hello name=bob"

        root = ref.finished(beeline_recorder, name="wsgi_http_get")[0]
        ref.assert_wsgi_root(root, "wsgi", "GET", "/hello", 200, query="name=bob")
        assert root["request.user_agent"] == "tester/1"
        assert root["request.remote_addr"] == "127.0.0.1"
        assert root["request.host"] == urlsplit(url).netloc
        assert root["meta.span_type"] == "root" and root["trace.parent_id"] is None
        child = beeline_recorder.find(name="say_hello")
        assert child["trace.parent_id"] == root["trace.span_id"]
        assert child["trace.trace_id"] == root["trace.trace_id"]

    def test_post_body_content_length_is_the_header_text(self, beeline_recorder, servers, ref):
        url = servers.wsgiref(HoneyWSGIMiddleware(router))
        response = requests.post(url + "/echo?a=1&b=2", data=b"12345", timeout=ref.HTTP_TIMEOUT)
        assert response.status_code == 201 and response.content == b"12345"

        root = ref.finished(beeline_recorder, name="wsgi_http_post")[0]
        ref.assert_wsgi_root(root, "wsgi", "POST", "/echo", 201, query="a=1&b=2")
        assert root["request.content_length"] == "5"

    def test_not_found(self, beeline_recorder, servers, ref):
        url = servers.wsgiref(HoneyWSGIMiddleware(router))
        assert requests.get(url + "/missing", timeout=ref.HTTP_TIMEOUT).status_code == 404
        ref.assert_wsgi_root(ref.finished(beeline_recorder, name="wsgi_http_get")[0], "wsgi", "GET", "/missing", 404)

    @pytest.mark.parametrize("server", ["wsgiref", "werkzeug"])
    def test_app_raising_before_start_response_ends_the_trace_as_a_500(self, beeline_recorder, servers, ref,
                                                                       server):
        url = getattr(servers, server)(HoneyWSGIMiddleware(router))
        assert requests.get(url + "/crash", timeout=ref.HTTP_TIMEOUT).status_code == 500

        root = ref.finished(beeline_recorder, name="wsgi_http_get")[0]
        ref.assert_wsgi_root(root, "wsgi", "GET", "/crash", 500)
        assert root["request.error"] == "<class 'RuntimeError'>"
        assert root["request.error_detail"] == "exploded before the response"
        assert root["app.exception_type"] == "<class 'RuntimeError'>"
        assert "exploded before the response" in root["app.exception_stacktrace"]

    def test_streamed_body_is_inside_the_trace(self, beeline_recorder, servers, ref):
        url = servers.werkzeug(HoneyWSGIMiddleware(router))
        response = requests.get(url + "/stream", timeout=ref.HTTP_TIMEOUT)
        assert response.text == "part0\npart1\npart2\n"

        root = ref.finished(beeline_recorder, name="wsgi_http_get")[0]
        ref.assert_wsgi_root(root, "wsgi", "GET", "/stream", 200)
        # Set after the last chunk was taken: the root was still open then.
        assert root["stream.complete"] is True
        chunks = beeline_recorder.spans(name="chunk")
        assert [c["chunk.index"] for c in chunks] == [0, 1, 2]
        assert all(c["trace.parent_id"] == root["trace.span_id"] for c in chunks)
        assert beeline_recorder.events[-1] is not None and beeline_recorder.events[-1]["name"] == "wsgi_http_get"

    def test_list_body_keeps_its_length_for_the_server(self, beeline_recorder, servers, ref):
        def no_length_header(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"exactly"]

        url = servers.wsgiref(HoneyWSGIMiddleware(no_length_header))
        response = requests.get(url + "/", timeout=ref.HTTP_TIMEOUT)
        # wsgiref computes Content-Length itself only for a one-element body with a length.
        assert response.headers["Content-Length"] == "7"
        assert ref.finished(beeline_recorder, name="wsgi_http_get")[0]["response.status_code"] == 200

    def test_continues_a_honeycomb_trace(self, beeline_recorder, servers, ref):
        url = servers.wsgiref(HoneyWSGIMiddleware(router))
        header = ref.honeycomb_header(TRACE_ID, PARENT_ID, {"app.tenant": "acme"})
        requests.get(url + "/hello", headers={"X-Honeycomb-Trace": header}, timeout=ref.HTTP_TIMEOUT)

        root = ref.finished(beeline_recorder, name="wsgi_http_get")[0]
        assert root["trace.trace_id"] == TRACE_ID
        assert root["trace.parent_id"] == PARENT_ID
        assert root["meta.span_type"] == "subroot"
        assert root["app.tenant"] == "acme"
        assert beeline_recorder.find(name="say_hello")["app.tenant"] == "acme"

    def test_continues_a_w3c_trace(self, beeline_recorder, servers, ref):
        url = servers.wsgiref(HoneyWSGIMiddleware(router))
        requests.get(url + "/hello", headers={"traceparent": ref.traceparent(TRACE_ID, PARENT_ID)},
                     timeout=ref.HTTP_TIMEOUT)

        root = ref.finished(beeline_recorder, name="wsgi_http_get")[0]
        assert (root["trace.trace_id"], root["trace.parent_id"]) == (TRACE_ID, PARENT_ID)
        assert root["meta.span_type"] == "subroot"

    def test_concurrent_requests_never_mix(self, beeline_recorder, servers, ref):
        workers, rounds = 6, 3
        barrier = threading.Barrier(workers, timeout=ref.HTTP_TIMEOUT)

        def worker_app(environ, start_response):
            n = environ["QUERY_STRING"]
            beeline.add_context_field("app.n", n)
            with beeline.tracer("work"):
                beeline.add_context_field("work.n", n)
                if environ["PATH_INFO"] == "/together":
                    barrier.wait()  # every request of the round is in flight at once
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [n.encode()]

        url = servers.werkzeug(HoneyWSGIMiddleware(worker_app), threaded=True)
        failures: list = []

        def client(i: int) -> None:
            try:
                with requests.Session() as session:
                    for r in range(rounds):
                        n = "%d-%d" % (i, r)
                        got = session.get(url + "/together?" + n, timeout=ref.HTTP_TIMEOUT).text
                        assert got == n
            except BaseException as exc:  # reported below, in the test's thread
                failures.append(exc)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert not failures, failures
        ref.finished(beeline_recorder, workers * rounds, name="wsgi_http_get")
        traces = beeline_recorder.traces()
        assert len(traces) == workers * rounds
        for events in traces.values():
            ref.same_trace_parentage(events)
            root = [e for e in events if e["name"] == "wsgi_http_get"][0]
            work = [e for e in events if e["name"] == "work"]
            assert len(work) == 1 and work[0]["work.n"] == root["app.n"] == root["request.query"]


# ---- when the trace ends ---------------------------------------------------------------------------


class TestTraceEnd:
    def test_error_while_streaming_after_a_chunk_keeps_the_status(self, beeline_recorder):
        def breaks_half_way(environ, start_response):
            start_response("200 OK", [])

            def body():
                yield b"first"
                raise ValueError("lost the data source")

            return body()

        served = serve_once(HoneyWSGIMiddleware(breaks_half_way))
        assert isinstance(served.error, ValueError) and served.chunks == [b"first"]
        root = beeline_recorder.find(name="wsgi_http_get")
        # The status line was already on the wire: it stays what the client saw.
        assert root["response.status_code"] == 200
        assert root["request.error"] == "<class 'ValueError'>"
        assert root["request.error_detail"] == "lost the data source"

    def test_error_before_the_first_chunk_is_a_500(self, beeline_recorder):
        def breaks_at_once(environ, start_response):
            start_response("200 OK", [])

            def body():
                raise KeyError("nothing yet")
                yield b"never"

            return body()

        served = serve_once(HoneyWSGIMiddleware(breaks_at_once))
        assert isinstance(served.error, KeyError)
        root = beeline_recorder.find(name="wsgi_http_get")
        assert root["response.status_code"] == 500
        assert root["request.error"] == "<class 'KeyError'>"

    def test_server_closing_early_ends_the_trace_with_the_body_cleaned_up(self, beeline_recorder):
        cleaned: list = []

        def endless(environ, start_response):
            start_response("200 OK", [])

            def body():
                try:
                    for _ in range(1000):
                        with beeline.tracer("piece"):
                            yield b"x"
                finally:
                    beeline.add_context_field("cleanup.ran", True)
                    cleaned.append(True)

            return body()

        served = serve_once(HoneyWSGIMiddleware(endless), stop_after=2)
        assert served.error is None and cleaned == [True]
        root = beeline_recorder.find(name="wsgi_http_get")
        assert root["cleanup.ran"] is True  # the body's clean-up ran inside the trace
        assert "request.error" not in root
        assert len(beeline_recorder.spans(name="piece")) == 2

    def test_a_list_body_ends_the_trace_when_the_app_returns_it(self, beeline_recorder):
        environ: dict = {}
        setup_testing_defaults(environ)
        body = HoneyWSGIMiddleware(hello)(environ, lambda status, headers, exc_info=None: None)
        # Nothing of the app runs after it returns a list: the server gets it untouched.
        assert type(body) is list and body == [b"hello "]
        root = beeline_recorder.find(name="wsgi_http_get")
        assert root["response.status_code"] == 200
        assert beeline_recorder.find(name="say_hello")["trace.parent_id"] == root["trace.span_id"]
        assert active_span() is None

    def test_a_body_nobody_reads_is_sent_when_dropped(self, beeline_recorder):
        environ: dict = {}
        setup_testing_defaults(environ)
        body = HoneyWSGIMiddleware(hello_lazily)(environ, lambda status, headers, exc_info=None: None)
        assert beeline_recorder.spans(name="wsgi_http_get") == []
        del body
        gc.collect()
        root = beeline_recorder.find(name="wsgi_http_get")
        assert root["response.status_code"] == 200

    def test_the_request_is_not_active_between_server_steps(self, beeline_recorder):
        seen: dict = {}

        def app(environ, start_response):
            seen["during_call"] = active_span()
            start_response("200 OK", [])

            def body():
                seen["during_body"] = active_span()
                yield b"ok"

            return body()

        environ: dict = {}
        setup_testing_defaults(environ)
        with beeline.tracer("server_side_work") as outer:
            body = HoneyWSGIMiddleware(app)(environ, lambda *a: None)
            assert active_span() is outer  # the server's own span, not the request's
            assert list(body) == [b"ok"]
            assert active_span() is outer
            body.close()
        assert seen["during_call"] is seen["during_body"] is environ[ROOT_SPAN_KEY]
        root = beeline_recorder.find(name="wsgi_http_get")
        assert root["trace.trace_id"] != beeline_recorder.find(name="server_side_work")["trace.trace_id"]

    def test_error_reported_through_start_response_exc_info(self, beeline_recorder):
        def reports_error(environ, start_response):
            import sys

            try:
                raise LookupError("no such thing")
            except LookupError:
                start_response("500 Internal Server Error", [], sys.exc_info())
            return [b"sorry"]

        served = serve_once(HoneyWSGIMiddleware(reports_error))
        assert served.status == "500 Internal Server Error"
        root = beeline_recorder.find(name="wsgi_http_get")
        assert root["response.status_code"] == 500
        assert root["request.error"] == "<class 'LookupError'>"
        assert root["request.error_detail"] == "no such thing"

    def test_a_failing_body_close_is_recorded_and_raised(self, beeline_recorder):
        class Body:
            def __iter__(self):
                return iter([b"a"])

            def close(self):
                raise OSError("could not release")

        def app(environ, start_response):
            start_response("200 OK", [])
            return Body()

        with pytest.raises(OSError, match="could not release"):
            serve_once(HoneyWSGIMiddleware(app))
        root = beeline_recorder.find(name="wsgi_http_get")
        assert root["request.error_detail"] == "could not release"
        assert active_span() is None

    def test_each_trace_ends_once(self, beeline_recorder):
        environ: dict = {}
        setup_testing_defaults(environ)
        body = HoneyWSGIMiddleware(hello_lazily)(environ, lambda *a: None)
        assert list(body) == [b"hello "]
        body.close()
        body.close()
        del body
        gc.collect()
        assert len(beeline_recorder.spans(name="wsgi_http_get")) == 1


# ---- setup and failure isolation ----------------------------------------------------------------------


class TestSetup:
    def test_without_init_the_app_runs_untouched(self):
        assert beeline.get_beeline() is None
        environ: dict = {}
        setup_testing_defaults(environ)
        body = [b"as is"]
        returned = HoneyWSGIMiddleware(lambda e, s: (s("200 OK", []), body)[1])(environ, lambda *a: None)
        assert returned is body
        assert ROOT_SPAN_KEY not in environ

    def test_a_custom_parser_hook_reads_the_wsgi_request(self, beeline_recorder_factory, servers, ref):
        seen: list = []

        def parser(request):
            seen.append((type(request).__name__, request.method(), request.path(), request.query(),
                         request.header("X-Upstream")))
            return PropagationContext(TRACE_ID, request.header("X-Upstream"), {"app.via": "custom"})

        rec = beeline_recorder_factory(http_trace_parser_hook=parser)
        url = servers.wsgiref(HoneyWSGIMiddleware(router))
        requests.get(url + "/hello?q=1", headers={"X-Upstream": PARENT_ID}, timeout=ref.HTTP_TIMEOUT)

        assert seen == [("WSGIRequest", "GET", "/hello", "q=1", PARENT_ID)]
        root = ref.finished(rec, name="wsgi_http_get")[0]
        assert (root["trace.trace_id"], root["trace.parent_id"], root["app.via"]) == (TRACE_ID, PARENT_ID, "custom")

    def test_a_raising_parser_hook_still_serves_and_traces(self, beeline_recorder_factory, servers, ref):
        def parser(request):
            raise ZeroDivisionError("broken hook")

        rec = beeline_recorder_factory(http_trace_parser_hook=parser)
        url = servers.wsgiref(HoneyWSGIMiddleware(router))
        assert requests.get(url + "/hello", timeout=ref.HTTP_TIMEOUT).status_code == 200
        root = ref.finished(rec, name="wsgi_http_get")[0]
        assert root["meta.span_type"] == "root"
        assert root["parser_hook_error"] == repr(ZeroDivisionError)

    def test_instrumentation_errors_never_reach_the_app(self, beeline_recorder, servers, ref, beeline_warnings):
        class Broken(HoneyWSGIMiddleware):
            def finish_context(self, environ, span):
                raise AttributeError("bug in a subclass")

        url = servers.wsgiref(Broken(router))
        for _ in range(2):
            response = requests.get(url + "/hello", timeout=ref.HTTP_TIMEOUT)
            assert response.status_code == 200 and response.text == "hello "
        assert len(ref.finished(beeline_recorder, 2, name="wsgi_http_get")) == 2  # still sent
        assert len(beeline_warnings()) == 1  # logged once, not per request

    def test_nested_middlewares_make_one_trace_named_by_the_outermost(self, beeline_recorder):
        served = serve_once(HoneyWSGIMiddleware(HoneyWSGIMiddleware(hello, "inner"), "outer"), path="/hello")
        assert served.chunks == [b"hello "]
        assert [e["name"] for e in beeline_recorder.events] == ["say_hello", "outer_http_get"]
        serve_once(HoneyWSGIMiddleware(hello, "again"), path="/hello")  # a new request: a new trace
        assert beeline_recorder.find(name="again_http_get")["response.status_code"] == 200

    def test_name_prefix_is_configurable(self, beeline_recorder):
        serve_once(HoneyWSGIMiddleware(hello, middleware_name="myapp"), path="/hello")
        assert beeline_recorder.find(name="myapp_http_get")["response.status_code"] == 200


def test_events_reach_the_events_api_with_the_reference_types(servers, ref):
    """libhoney's real transmission, posting to a loopback Events API."""
    closed = threading.Event()

    def signals_close(app):
        # The server closes the body after the client has the response; wait for that (and so
        # for the end of the trace) before closing the beeline.
        def outer(environ, start_response):
            body = app(environ, start_response)
            try:
                yield from body
            finally:
                close = getattr(body, "close", None)  # as PEP 3333 has a server do it
                if close is not None:
                    close()
                closed.set()

        return outer

    with LoopbackReceiver() as rx:
        beeline.init(writekey="0" * 32, dataset="d", service_name="s", api_host=rx.url)
        url = servers.wsgiref(signals_close(HoneyWSGIMiddleware(router)))
        conn = http.client.HTTPConnection(urlsplit(url).hostname, urlsplit(url).port, timeout=ref.HTTP_TIMEOUT)
        conn.request("POST", "/echo?x=1", body=b"abc", headers={"User-Agent": "probe/2"})
        assert conn.getresponse().read() == b"abc"
        conn.close()
        assert closed.wait(ref.HTTP_TIMEOUT)
        beeline.close()
        events = rx.wait_for(1, timeout=10)
    root = [e["data"] for e in events if e["data"].get("name") == "wsgi_http_post"]
    assert len(root) == 1
    ref.assert_wsgi_root(root[0], "wsgi", "POST", "/echo", 201, query="x=1")
    assert root[0]["request.content_length"] == "3"
    assert root[0]["request.user_agent"] == "probe/2"


_APP_STATE: ContextVar[Optional[str]] = ContextVar("app_state", default=None)


def test_a_body_that_resets_a_context_variable_set_by_the_app_works(beeline_recorder):
    # Flask 2.2's stream_with_context pushes its request context (a ContextVar token) while the
    # application runs and pops it in the body's last step: the steps must run in the server's
    # own context, where the token was made.
    def app(environ, start_response):
        token = _APP_STATE.set("in request")

        def body():
            try:
                yield b"a"
                yield b"b"
            finally:
                _APP_STATE.reset(token)

        start_response("200 OK", [("Content-Type", "text/plain")])
        gen = body()
        return gen

    served = serve_once(HoneyWSGIMiddleware(app))
    assert served.error is None
    assert served.chunks == [b"a", b"b"]
    assert _APP_STATE.get() is None
    assert beeline_recorder.find(name="wsgi_http_get")["response.status_code"] == 200
