"""Tornado tracing, end to end: real Tornado applications served on 127.0.0.1, driven by
Tornado's own HTTP client, with spans recorded by the beeline's in-memory transmission (and,
once, by libhoney's real transmission posting to a loopback receiver). The client side in
detail is in test_tornado_client.py."""

from __future__ import annotations

import asyncio
import base64
import json
import logging

import pytest

tornado = pytest.importorskip("tornado")

import tornado.gen  # noqa: E402, F811
import tornado.httpclient  # noqa: E402
import tornado.ioloop  # noqa: E402
import tornado.web  # noqa: E402
import tornado.websocket  # noqa: E402
from tornado.httpclient import AsyncHTTPClient  # noqa: E402

import beeline  # noqa: E402
import beeline.patch.tornado as tornado_patch  # noqa: E402
from beeline.patch import is_wrapped  # noqa: E402
from tests.middleware.tornado_support import HeaderRecordingHandler, http_client, run, serving  # noqa: E402

# The reference's WSGI request fields (section 4.1) and the types it sends for each: the Tornado
# root span must carry the same names with the same types, so one query covers every framework.
REFERENCE_WSGI_FIELD_TYPES = {
    "type": (str,),
    "request.host": (str,),
    "request.method": (str,),
    "request.path": (str,),
    "request.remote_addr": (str,),
    "request.content_length": (str, int),  # the header's text when present, int 0 when absent
    "request.user_agent": (str,),
    "request.scheme": (str,),
    "request.query": (str,),
}


# ---- handlers ---------------------------------------------------------------------------------------


class HelloHandler(tornado.web.RequestHandler):
    def get(self, name):
        self.write("hello " + name)


class CoroutineHandler(tornado.web.RequestHandler):
    async def get(self):
        await asyncio.sleep(0)
        self.write("async")


class GenCoroutineHandler(tornado.web.RequestHandler):
    @tornado.gen.coroutine
    def get(self):
        yield tornado.gen.sleep(0)
        self.write("gen")


class ItemsHandler(tornado.web.RequestHandler):
    def post(self):
        self.set_status(201)
        self.write({"received": self.request.body.decode(), "x": self.get_query_argument("x")})


class RaisingHandler(tornado.web.RequestHandler):
    def get(self):
        raise ValueError("the handler failed")


class ForbiddenHandler(tornado.web.RequestHandler):
    def get(self):
        raise tornado.web.HTTPError(403, "no access for %s", "bob")


class FinishEarlyHandler(tornado.web.RequestHandler):
    def get(self):
        raise tornado.web.Finish("done early")


def build_app(**extra_routes) -> tornado.web.Application:
    routes = [
        (r"/hello/([a-z]+)", HelloHandler),
        (r"/async", CoroutineHandler),
        (r"/gen", GenCoroutineHandler),
        (r"/items", ItemsHandler),
        (r"/raise", RaisingHandler),
        (r"/forbidden", ForbiddenHandler),
        (r"/finish", FinishEarlyHandler),
    ]
    routes.extend(extra_routes.values())
    return tornado.web.Application(routes)


# ---- one request, one trace -------------------------------------------------------------------------


def test_a_get_is_one_root_span_with_the_reference_wsgi_fields(beeline_recorder, ref):
    async def scenario():
        async with serving(build_app()) as url, http_client() as client:
            response = await client.fetch(url + "/hello/bob", headers={"User-Agent": "ua-test"})
            return url, response

    url, response = run(scenario())
    assert response.body == b"hello bob"
    root = beeline_recorder.find(name="tornado_http_get")
    # The table every framework's tests share (tests/middleware/conftest.py) ...
    ref.assert_wsgi_root(root, "tornado", "GET", "/hello/bob", 200)
    # ... and, stricter, what a Tornado request always has (a Host and a User-Agent here).
    assert root["type"] == "http_server"
    assert root["meta.span_type"] == "root"
    assert root["trace.parent_id"] is None
    for field, types in REFERENCE_WSGI_FIELD_TYPES.items():
        assert field in root, field
        assert isinstance(root[field], types), (field, root[field])
    assert root["request.host"] == url[len("http://"):]
    assert root["request.method"] == "GET"
    assert root["request.path"] == "/hello/bob"
    assert root["request.remote_addr"] == "127.0.0.1"
    assert root["request.content_length"] == 0
    assert root["request.user_agent"] == "ua-test"
    assert root["request.scheme"] == "http"
    assert root["request.query"] == ""
    assert root["request.route"] == "/hello/([a-z]+)"
    assert root["response.status_code"] == 200 and type(root["response.status_code"]) is int
    assert isinstance(root["duration_ms"], float)
    assert len(beeline_recorder.events) == 1


@pytest.mark.parametrize("path, body", [("/async", b"async"), ("/gen", b"gen")])
def test_coroutine_handlers_are_traced_like_plain_ones(beeline_recorder, path, body):
    async def scenario():
        async with serving(build_app()) as url, http_client() as client:
            return await client.fetch(url + path)

    assert run(scenario()).body == body
    root = beeline_recorder.find(name="tornado_http_get")
    assert root["request.route"] == path
    assert root["response.status_code"] == 200


def test_the_route_is_the_matched_pattern_also_for_routes_added_later(beeline_recorder):
    async def scenario():
        app = build_app()
        async with serving(app) as url, http_client() as client:
            await client.fetch(url + "/hello/bob")
            # The same handler class under a second pattern, and a host-specific rule set.
            app.wildcard_router.add_rules([(r"/greet/([a-z]+)", HelloHandler)])
            app.add_handlers(r"127\.0\.0\.1", [(r"/hi/([0-9]+)", HelloHandler)])
            await client.fetch(url + "/greet/ann")
            await client.fetch(url + "/hi/42")
            await client.fetch(url + "/hello/cid")

    run(scenario())
    routes = {ev["request.path"]: ev.get("request.route") for ev in beeline_recorder.events}
    assert routes == {
        "/hello/bob": "/hello/([a-z]+)",
        "/greet/ann": "/greet/([a-z]+)",
        "/hi/42": "/hi/([0-9]+)",
        "/hello/cid": "/hello/([a-z]+)",
    }


def test_an_unrouted_path_is_a_404_trace_without_a_route_or_stack_trace(beeline_recorder):
    async def scenario():
        async with serving(build_app()) as url, http_client() as client:
            return await client.fetch(url + "/nowhere?a=1", raise_error=False)

    assert run(scenario()).code == 404
    root = beeline_recorder.find(name="tornado_http_get")
    assert root["response.status_code"] == 404
    assert root["request.path"] == "/nowhere"
    assert root["request.query"] == "a=1"
    assert "request.route" not in root
    # Tornado answers unrouted paths by raising HTTPError(404) itself: a reply, not a crash.
    assert root["request.error"] == "<class 'tornado.web.HTTPError'>"
    assert "404" in root["request.error_detail"]
    assert not [key for key in root if key.startswith("app.exception_")]


def test_a_post_with_a_query_string_keeps_path_query_and_body_length_apart(beeline_recorder):
    payload = "name=widget"

    async def scenario():
        async with serving(build_app()) as url, http_client() as client:
            return await client.fetch(url + "/items?x=1&y=two", method="POST", body=payload)

    response = run(scenario())
    assert response.code == 201
    assert json.loads(response.body) == {"received": payload, "x": "1"}
    root = beeline_recorder.find(name="tornado_http_post")
    assert root["request.method"] == "POST"
    assert root["request.path"] == "/items"
    assert root["request.query"] == "x=1&y=two"
    # As in the reference's WSGI fields: the Content-Length header's text.
    assert root["request.content_length"] == str(len(payload))
    assert root["response.status_code"] == 201


def test_a_raising_handler_records_the_reference_exception_fields(beeline_recorder):
    async def scenario():
        async with serving(build_app()) as url, http_client() as client:
            failed = await client.fetch(url + "/raise", raise_error=False)
            after = await client.fetch(url + "/hello/ann")
            return failed, after

    failed, after = run(scenario())
    assert failed.code == 500
    assert after.body == b"hello ann"  # the application goes on serving
    root = beeline_recorder.find(request__path="/raise")
    assert root["response.status_code"] == 500
    assert root["app.exception_type"] == "<class 'ValueError'>"
    assert root["app.exception_string"] == "the handler failed"
    assert 'raise ValueError("the handler failed")' in root["app.exception_stacktrace"]
    assert "ValueError: the handler failed" in root["app.exception_stacktrace"]
    assert root["request.error"] == "<class 'ValueError'>"
    assert root["request.error_detail"] == "the handler failed"
    # The next request is a trace of its own, untouched by the failure.
    following = beeline_recorder.find(request__path="/hello/ann")
    assert following["trace.trace_id"] != root["trace.trace_id"]
    assert "request.error" not in following


def test_an_http_error_is_a_reply_with_its_message_but_no_stack_trace(beeline_recorder):
    async def scenario():
        async with serving(build_app()) as url, http_client() as client:
            return await client.fetch(url + "/forbidden", raise_error=False)

    assert run(scenario()).code == 403
    root = beeline_recorder.find(request__path="/forbidden")
    assert root["response.status_code"] == 403
    assert root["request.error"] == "<class 'tornado.web.HTTPError'>"
    assert root["request.error_detail"] == "HTTP 403: Forbidden (no access for bob)"
    assert not [key for key in root if key.startswith("app.exception_")]


def test_finish_raised_to_end_a_request_is_not_an_error(beeline_recorder):
    async def scenario():
        async with serving(build_app()) as url, http_client() as client:
            return await client.fetch(url + "/finish")

    assert run(scenario()).body == b"done early"
    root = beeline_recorder.find(request__path="/finish")
    assert root["response.status_code"] == 200
    assert "request.error" not in root


# ---- responses that take a while --------------------------------------------------------------------


class StreamingHandler(tornado.web.RequestHandler):
    async def get(self):
        for number in range(3):
            with beeline.tracer("produce_chunk") as span:
                span.add_context_field("chunk", number)
                self.write("chunk-%d;" % number)
                await self.flush()
            await asyncio.sleep(0.005)
        beeline.add_context_field("app.chunks", 3)


def test_a_streamed_response_is_one_trace_that_ends_after_the_last_chunk(beeline_recorder):
    received = []

    async def scenario():
        app = build_app(stream=(r"/stream", StreamingHandler))
        async with serving(app) as url, http_client() as client:
            return await client.fetch(url + "/stream", streaming_callback=received.append)

    response = run(scenario())
    assert b"".join(received) == b"chunk-0;chunk-1;chunk-2;"
    assert len(received) >= 2  # really sent in pieces, not buffered into one body
    assert response.headers.get("Transfer-Encoding") == "chunked"
    root = beeline_recorder.find(name="tornado_http_get")
    assert root["response.status_code"] == 200
    assert root["app.chunks"] == 3
    chunks = beeline_recorder.spans(name="produce_chunk")
    assert [c["chunk"] for c in chunks] == [0, 1, 2]
    assert {c["trace.parent_id"] for c in chunks} == {root["trace.span_id"]}
    # Spans are recorded as they finish: the root came after every chunk.
    assert beeline_recorder.events[-1]["name"] == "tornado_http_get"


class LongPollHandler(tornado.web.RequestHandler):
    """Turns auto-finish off and answers later, from a timer callback."""

    def get(self):
        self._auto_finish = False
        tornado.ioloop.IOLoop.current().call_later(0.01, self.answer)

    def answer(self):
        with beeline.tracer("late_answer"):
            self.set_status(202)
            self.finish("late")


def test_a_handler_that_finishes_later_is_traced_until_finish(beeline_recorder):
    async def scenario():
        app = build_app(poll=(r"/poll", LongPollHandler))
        async with serving(app) as url, http_client() as client:
            return await client.fetch(url + "/poll")

    assert run(scenario()).body == b"late"
    root = beeline_recorder.find(name="tornado_http_get")
    assert root["response.status_code"] == 202
    late = beeline_recorder.find(name="late_answer")
    assert late["trace.parent_id"] == root["trace.span_id"]


@tornado.web.stream_request_body
class UploadHandler(tornado.web.RequestHandler):
    def prepare(self):
        self.size = 0

    async def data_received(self, chunk):
        with beeline.tracer("read_chunk"):
            self.size += len(chunk)
            await asyncio.sleep(0)

    def put(self):
        self.write(str(self.size))


def test_streamed_request_bodies_are_read_inside_the_request_trace(beeline_recorder):
    body = b"x" * 200_000

    async def scenario():
        app = build_app(upload=(r"/upload", UploadHandler))
        async with serving(app) as url, http_client() as client:
            return await client.fetch(url + "/upload", method="PUT", body=body)

    assert run(scenario()).body == str(len(body)).encode()
    root = beeline_recorder.find(name="tornado_http_put")
    reads = beeline_recorder.spans(name="read_chunk")
    assert reads
    assert {r["trace.parent_id"] for r in reads} == {root["trace.span_id"]}
    assert {r["trace.trace_id"] for r in reads} == {root["trace.trace_id"]}


class EchoSocket(tornado.websocket.WebSocketHandler):
    def on_message(self, message):
        self.write_message(message)


def test_a_websocket_handshake_is_a_finished_trace(beeline_recorder):
    async def scenario():
        app = build_app(ws=(r"/ws", EchoSocket))
        async with serving(app) as url:
            conn = await tornado.websocket.websocket_connect(url.replace("http", "ws", 1) + "/ws")
            await conn.write_message("ping")
            reply = await conn.read_message()
            conn.close()
            return reply

    assert run(scenario()) == "ping"
    root = beeline_recorder.find(name="tornado_http_get")
    assert root["response.status_code"] == 101
    assert root["request.route"] == "/ws"


def test_a_wsgi_app_behind_a_fallback_handler_gets_no_invented_status(beeline_recorder):
    import tornado.wsgi

    def wsgi_app(environ, start_response):
        start_response("418 I'm a teapot", [("Content-Type", "text/plain")])
        return [b"teapot"]

    async def scenario():
        app = build_app(fallback=(r"/legacy/.*", tornado.web.FallbackHandler,
                                  {"fallback": tornado.wsgi.WSGIContainer(wsgi_app)}))
        async with serving(app) as url, http_client() as client:
            return await client.fetch(url + "/legacy/x", raise_error=False)

    response = run(scenario())
    assert (response.code, response.body) == (418, b"teapot")
    root = beeline_recorder.find(name="tornado_http_get")
    assert root["request.route"] == "/legacy/.*"
    # The fallback answered past the handler: no status is better than the handler's default 200.
    assert "response.status_code" not in root


# ---- incoming trace context -------------------------------------------------------------------------


def test_an_incoming_honeycomb_header_is_continued_with_its_trace_fields(beeline_recorder):
    context = base64.b64encode(json.dumps({"tenant": "acme"}).encode()).decode()
    header = "1;trace_id=upstream-trace,parent_id=upstream-span,context=" + context

    async def scenario():
        async with serving(build_app()) as url, http_client() as client:
            return await client.fetch(url + "/hello/bob", headers={"X-Honeycomb-Trace": header})

    run(scenario())
    root = beeline_recorder.find(name="tornado_http_get")
    assert root["trace.trace_id"] == "upstream-trace"
    assert root["trace.parent_id"] == "upstream-span"
    assert root["meta.span_type"] == "subroot"
    assert root["app.tenant"] == "acme"


def test_an_incoming_w3c_traceparent_is_continued(beeline_recorder):
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"

    async def scenario():
        async with serving(build_app()) as url, http_client() as client:
            headers = {"traceparent": "00-%s-%s-01" % (trace_id, parent_id)}
            return await client.fetch(url + "/async", headers=headers)

    run(scenario())
    root = beeline_recorder.find(name="tornado_http_get")
    assert root["trace.trace_id"] == trace_id
    assert root["trace.parent_id"] == parent_id


def test_a_custom_parser_hook_is_honoured(beeline_recorder_factory):
    from beeline.propagation import PropagationContext

    seen = []

    def parser(request):
        seen.append((request.method(), request.scheme(), request.path(), request.query()))
        value = request.header("x-request-trace")
        return PropagationContext(value, "caller-span") if value else None

    rec = beeline_recorder_factory(http_trace_parser_hook=parser)

    async def scenario():
        async with serving(build_app()) as url, http_client() as client:
            return await client.fetch(url + "/hello/zoe?q=1", headers={"X-Request-Trace": "custom-trace"})

    run(scenario())
    assert seen == [("GET", "http", "/hello/zoe", "q=1")]
    root = rec.find(name="tornado_http_get")
    assert root["trace.trace_id"] == "custom-trace"
    assert root["trace.parent_id"] == "caller-span"


# ---- spans inside handlers --------------------------------------------------------------------------


@beeline.traced("load_profile")
async def load_profile(user):
    await asyncio.sleep(0)
    beeline.add_context_field("app.user", user)
    with beeline.tracer("query_db"):
        await asyncio.sleep(0)
    return {"user": user}


class NestedHandler(tornado.web.RequestHandler):
    async def get(self):
        beeline.add_trace_field("request_kind", "nested")
        beeline.add_context_field("app.handler", "nested")
        with beeline.tracer("render"):
            profile = await load_profile("bob")
            span = beeline.start_span({"name": "format"})
            self.write(profile)
            beeline.finish_span(span)


def test_spans_made_in_a_handler_and_its_coroutines_nest_under_the_request(beeline_recorder):
    async def scenario():
        app = build_app(nested=(r"/nested", NestedHandler))
        async with serving(app) as url, http_client() as client:
            return await client.fetch(url + "/nested")

    run(scenario())
    rec = beeline_recorder
    root = rec.find(name="tornado_http_get")
    render = rec.find(name="render")
    profile = rec.find(name="load_profile")
    query = rec.find(name="query_db")
    fmt = rec.find(name="format")
    assert render["trace.parent_id"] == root["trace.span_id"]
    assert profile["trace.parent_id"] == render["trace.span_id"]
    assert query["trace.parent_id"] == profile["trace.span_id"]
    assert fmt["trace.parent_id"] == render["trace.span_id"]
    assert len({ev["trace.trace_id"] for ev in rec.events}) == 1
    assert root["app.handler"] == "nested"
    assert profile["app.user"] == "bob"
    assert {ev["app.request_kind"] for ev in rec.events} == {"nested"}


class ConcurrentHandler(tornado.web.RequestHandler):
    """Every request waits until all of them are inside their handlers, so their awaits
    interleave on the one event loop."""

    arrived = 0
    everyone_in: asyncio.Event

    async def get(self):
        tag = self.get_query_argument("tag")
        beeline.add_context_field("app.tag", tag)
        with beeline.tracer("outer") as outer:
            outer.add_context_field("app.tag", tag)
            type(self).arrived += 1
            if type(self).arrived == CONCURRENT_REQUESTS:
                type(self).everyone_in.set()
            await asyncio.wait_for(type(self).everyone_in.wait(), 10)
            for step in range(3):
                with beeline.tracer("step") as span:
                    span.add_context_field("app.tag", tag)
                    span.add_context_field("app.step", step)
                    await asyncio.sleep(0)
        self.write(tag)


CONCURRENT_REQUESTS = 12


def test_concurrent_requests_never_mix_their_spans(beeline_recorder):
    async def scenario():
        ConcurrentHandler.arrived = 0
        ConcurrentHandler.everyone_in = asyncio.Event()
        app = build_app(concurrent=(r"/concurrent", ConcurrentHandler))
        async with serving(app) as url, http_client() as client:
            client.max_clients = CONCURRENT_REQUESTS
            fetches = [client.fetch(url + "/concurrent?tag=t%d" % n) for n in range(CONCURRENT_REQUESTS)]
            return await asyncio.gather(*fetches)

    bodies = sorted(r.body.decode() for r in run(scenario()))
    assert bodies == sorted("t%d" % n for n in range(CONCURRENT_REQUESTS))
    traces = beeline_recorder.traces()
    assert len(traces) == CONCURRENT_REQUESTS
    for events in traces.values():
        assert len(events) == 5  # root, outer, three steps
        tags = {ev["app.tag"] for ev in events}
        assert len(tags) == 1, tags
        by_id = {ev["trace.span_id"]: ev for ev in events}
        root = [ev for ev in events if ev.get("meta.span_type") == "root"]
        assert len(root) == 1
        outer = [ev for ev in events if ev["name"] == "outer"][0]
        assert outer["trace.parent_id"] == root[0]["trace.span_id"]
        steps = [ev for ev in events if ev["name"] == "step"]
        assert sorted(s["app.step"] for s in steps) == [0, 1, 2]
        for step in steps:
            assert step["trace.parent_id"] == outer["trace.span_id"]
            assert by_id[step["trace.parent_id"]]["app.tag"] == step["app.tag"]


def blocking_work(label):
    with beeline.tracer("blocking_" + label):
        return label


class ThreadedWorkHandler(tornado.web.RequestHandler):
    async def get(self):
        from beeline.threads import ContextExecutor

        first = await asyncio.to_thread(blocking_work, "to_thread")
        with ContextExecutor(max_workers=1) as pool:
            second = await tornado.ioloop.IOLoop.current().run_in_executor(pool, blocking_work, "executor")
        self.write(first + "," + second)


def test_work_handed_to_threads_stays_in_the_request_trace(beeline_recorder):
    async def scenario():
        app = build_app(threaded=(r"/threaded", ThreadedWorkHandler))
        async with serving(app) as url, http_client() as client:
            return await client.fetch(url + "/threaded")

    assert run(scenario()).body == b"to_thread,executor"
    root = beeline_recorder.find(name="tornado_http_get")
    for name in ("blocking_to_thread", "blocking_executor"):
        assert beeline_recorder.find(name=name)["trace.parent_id"] == root["trace.span_id"]


# ---- outgoing calls ---------------------------------------------------------------------------------


class CallingHandler(tornado.web.RequestHandler):
    def initialize(self, downstream):
        self.downstream = downstream

    async def get(self):
        beeline.add_trace_field("tenant", "acme")
        with beeline.tracer("call_downstream"):
            response = await AsyncHTTPClient().fetch(self.downstream["url"] + "/headers")
        self.write(response.body)


def test_a_fetch_to_a_second_app_is_a_client_span_and_the_trace_continues_there(beeline_recorder):
    async def scenario():
        downstream = {}
        upstream_app = tornado.web.Application([(r"/call", CallingHandler, {"downstream": downstream})])
        downstream_app = tornado.web.Application([(r"/headers", HeaderRecordingHandler)])
        async with serving(downstream_app) as down_url, serving(upstream_app) as up_url:
            downstream["url"] = down_url
            async with http_client() as client:
                response = await client.fetch(up_url + "/call")
        return json.loads(response.body), down_url

    seen, down_url = run(scenario())
    rec = beeline_recorder
    upstream_root = rec.find(name="tornado_http_get", request__path="/call")
    call = rec.find(name="call_downstream")
    client_span = rec.find(name="tornado_http_client_get")
    downstream_root = rec.find(name="tornado_http_get", request__path="/headers")

    assert client_span["meta.type"] == "http_client"
    assert client_span["request.method"] == "GET"
    assert client_span["request.url"] == down_url + "/headers"
    assert client_span["response.status_code"] == 200 and type(client_span["response.status_code"]) is int
    assert client_span["response.content_type"].startswith("application/json")
    assert client_span["trace.parent_id"] == call["trace.span_id"]
    assert call["trace.parent_id"] == upstream_root["trace.span_id"]

    # The downstream app got the header naming the client span as its parent, and joined.
    header = seen["X-Honeycomb-Trace"]
    expected = "1;trace_id=%s,parent_id=%s," % (upstream_root["trace.trace_id"], client_span["trace.span_id"])
    assert header.startswith(expected)
    assert seen["traceparent"] is None  # the default propagation hook writes the Honeycomb header only
    assert downstream_root["trace.trace_id"] == upstream_root["trace.trace_id"]
    assert downstream_root["trace.parent_id"] == client_span["trace.span_id"]
    assert downstream_root["meta.span_type"] == "subroot"
    assert downstream_root["app.tenant"] == "acme"


# ---- patching ---------------------------------------------------------------------------------------


def test_patching_is_idempotent_and_undoable(beeline_recorder):
    import importlib

    original_execute = tornado.web.RequestHandler._execute.__wrapped__
    try:
        assert tornado_patch.is_patched()
        assert tornado_patch.patch() is False  # already applied on import
        importlib.reload(tornado_patch)  # importing again applies again: still wrapped once
        assert tornado.web.RequestHandler._execute.__wrapped__ is original_execute
        assert tornado_patch.unpatch() is True
        assert tornado.web.RequestHandler._execute is original_execute
        assert not is_wrapped(tornado.web, "RequestHandler.finish")
        assert not is_wrapped(tornado.httpclient, "AsyncHTTPClient.fetch")
        assert tornado_patch.unpatch() is False

        async def scenario():
            app = tornado.web.Application([(r"/headers", HeaderRecordingHandler)])
            async with serving(app) as url, http_client() as client:
                with beeline.tracer("job"):
                    return json.loads((await client.fetch(url + "/headers")).body)

        seen = run(scenario())
        assert seen["X-Honeycomb-Trace"] is None
        assert [ev["name"] for ev in beeline_recorder.events] == ["job"]
    finally:
        tornado_patch.patch()
    assert tornado_patch.is_patched()
    assert tornado.web.RequestHandler._execute.__wrapped__ is original_execute


def test_without_init_the_application_runs_untouched():
    beeline.close()
    assert beeline.get_beeline() is None

    async def scenario():
        app = build_app(nested=(r"/nested", NestedHandler))
        async with serving(app) as url, http_client() as client:
            return [(await client.fetch(url + path, raise_error=False)).code for path in ("/nested", "/raise")]

    assert run(scenario()) == [200, 500]


def test_a_failure_inside_the_instrumentation_never_reaches_the_application(beeline_recorder, monkeypatch, caplog):
    from beeline.internal import reset_warnings
    from beeline.middleware import tornado as server

    def broken(handler):
        raise RuntimeError("instrumentation bug")

    monkeypatch.setattr(server, "request_route", broken)
    reset_warnings()
    caplog.set_level(logging.WARNING, logger="beeline")

    async def scenario():
        async with serving(build_app()) as url, http_client() as client:
            return [(await client.fetch(url + "/hello/bob")).body for _ in range(3)]

    assert run(scenario()) == [b"hello bob"] * 3
    assert beeline_recorder.events == []  # those requests went untraced, nothing else changed
    warnings = [r for r in caplog.records if r.name == "beeline" and r.levelno >= logging.WARNING]
    assert len(warnings) == 1  # logged once, not once per request
    assert "Tornado" in warnings[0].getMessage()


# ---- on the wire ------------------------------------------------------------------------------------


def test_events_reach_the_events_api_with_json_types_intact(ref):
    from tests.receiver import LoopbackReceiver

    with LoopbackReceiver() as rx:
        beeline.close()
        beeline.init(writekey="0" * 32, dataset="d", service_name="s", api_host=rx.url)
        try:
            async def scenario():
                async with serving(build_app()) as url, http_client() as client:
                    await client.fetch(url + "/items?x=1", method="POST", body="abc")

            run(scenario())
        finally:
            beeline.close()
        events = rx.wait_for(1, timeout=10)
    assert len(events) == 1
    data = events[0]["data"]
    ref.assert_wsgi_root(data, "tornado", "POST", "/items", 201, query="x=1")
    assert data["name"] == "tornado_http_post"
    assert data["response.status_code"] == 201
    assert data["request.content_length"] == "3"
    assert data["request.path"] == "/items" and data["request.query"] == "x=1"
    assert data["service_name"] == "s"
