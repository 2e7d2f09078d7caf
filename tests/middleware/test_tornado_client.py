"""Tornado's HTTP clients inside a trace: client spans, their fields, and the trace headers
they send (to a real Tornado application on 127.0.0.1 that reports what it received)."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading

import pytest

tornado = pytest.importorskip("tornado")

import tornado.httpclient  # noqa: E402, F811
import tornado.web  # noqa: E402
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest  # noqa: E402

import beeline  # noqa: E402
import beeline.patch.tornado  # noqa: E402, F401  (applies the patch)
from tests.middleware.tornado_support import (  # noqa: E402
    SCENARIO_TIMEOUT,
    HeaderRecordingHandler,
    http_client,
    run,
    serving,
)


class ForbiddenHandler(tornado.web.RequestHandler):
    def get(self):
        raise tornado.web.HTTPError(403)


def build_app() -> tornado.web.Application:
    return tornado.web.Application([(r"/headers", HeaderRecordingHandler), (r"/forbidden", ForbiddenHandler)])


def test_client_headers_follow_the_configured_propagation_hook(beeline_recorder_factory):
    from beeline.propagation import w3c

    rec = beeline_recorder_factory(http_trace_propagation_hook=w3c.http_trace_propagation_hook)

    async def scenario():
        app = tornado.web.Application([(r"/headers", HeaderRecordingHandler)])
        async with serving(app) as url, http_client() as client:
            with beeline.tracer("job"):
                response = await client.fetch(url + "/headers")
        return json.loads(response.body)

    seen = run(scenario())
    client_span = rec.find(name="tornado_http_client_get")
    assert seen["X-Honeycomb-Trace"] is None
    assert re.fullmatch(r"00-[0-9a-f]{32}-%s-01" % client_span["trace.span_id"], seen["traceparent"])


def test_fetch_never_leaks_trace_headers_into_reused_requests_or_client_defaults(beeline_recorder):
    async def scenario():
        app = tornado.web.Application([(r"/headers", HeaderRecordingHandler)])
        async with serving(app) as url:
            client = AsyncHTTPClient(force_instance=True, defaults={"headers": {"X-Caller": "defaults"}})
            try:
                shared = HTTPRequest(url + "/headers", headers={"X-Caller": "shared"})
                with beeline.tracer("job"):
                    inside = json.loads((await client.fetch(shared)).body)
                outside = json.loads((await client.fetch(shared)).body)
                plain = json.loads((await client.fetch(url + "/headers")).body)
            finally:
                client.close()
            return inside, outside, plain, shared, client

    inside, outside, plain, shared, client = run(scenario())
    assert inside["X-Honeycomb-Trace"] and inside["X-Caller"] == "shared"
    assert outside["X-Honeycomb-Trace"] is None
    assert plain["X-Honeycomb-Trace"] is None
    assert "X-Honeycomb-Trace" not in shared.headers
    assert "X-Honeycomb-Trace" not in client.defaults.get("headers", {})
    # Outside a trace a fetch makes no span either.
    names = sorted(ev["name"] for ev in beeline_recorder.events)
    assert names == ["job", "tornado_http_client_get", "tornado_http_get", "tornado_http_get", "tornado_http_get"]


def test_a_trace_header_set_by_the_caller_is_not_overwritten(beeline_recorder):
    async def scenario():
        app = tornado.web.Application([(r"/headers", HeaderRecordingHandler)])
        async with serving(app) as url, http_client() as client:
            with beeline.tracer("job"):
                response = await client.fetch(url + "/headers", headers={"X-Honeycomb-Trace": "mine"})
        return json.loads(response.body)

    assert run(scenario())["X-Honeycomb-Trace"] == "mine"


def test_concurrent_fetches_are_sibling_spans(beeline_recorder):
    async def scenario():
        app = tornado.web.Application([(r"/headers", HeaderRecordingHandler)])
        async with serving(app) as url, http_client() as client:
            with beeline.tracer("fan_out") as parent:
                first = client.fetch(url + "/headers")
                second = client.fetch(url + "/headers", method="DELETE", allow_nonstandard_methods=True)
                with beeline.tracer("meanwhile"):
                    pass
                await asyncio.gather(first, second)
            return parent

    run(scenario())
    rec = beeline_recorder
    fan_out = rec.find(name="fan_out")
    get_span = rec.find(name="tornado_http_client_get")
    delete_span = rec.find(name="tornado_http_client_delete")
    meanwhile = rec.find(name="meanwhile")
    assert delete_span["request.method"] == "DELETE"
    for span in (get_span, delete_span, meanwhile):
        assert span["trace.parent_id"] == fan_out["trace.span_id"]


def test_failed_fetches_record_status_and_error_fields(beeline_recorder):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]

    async def scenario():
        async with serving(build_app()) as url, http_client() as client:
            with beeline.tracer("job"):
                with pytest.raises(HTTPClientError):
                    await client.fetch(url + "/missing")
                quiet = await client.fetch(url + "/forbidden", raise_error=False)
                with pytest.raises(OSError):
                    await client.fetch("http://127.0.0.1:%d/" % dead_port, connect_timeout=5)
            return quiet

    assert run(scenario()).code == 403
    clients = [ev for ev in beeline_recorder.events if ev["name"] == "tornado_http_client_get"]
    missing, quiet, refused = clients
    assert missing["response.status_code"] == 404
    assert missing["request.error_type"] == "<class 'tornado.httpclient.HTTPClientError'>"
    assert missing["request.error"] == "HTTP 404: Not Found"
    assert quiet["response.status_code"] == 403  # raise_error=False: a status the caller asked for
    assert "request.error" not in quiet
    assert "response.status_code" not in refused
    assert "ConnectionRefusedError" in refused["request.error_type"]
    job = beeline_recorder.find(name="job")
    assert {c["trace.parent_id"] for c in clients} == {job["trace.span_id"]}


class RedirectHandler(tornado.web.RequestHandler):
    def get(self):
        self.redirect("/headers")


def test_a_redirect_hop_nests_under_the_call_and_gets_fresh_headers(beeline_recorder):
    async def scenario():
        app = tornado.web.Application([(r"/start", RedirectHandler), (r"/headers", HeaderRecordingHandler)])
        async with serving(app) as url, http_client() as client:
            with beeline.tracer("job"):
                response = await client.fetch(url + "/start")
        return json.loads(response.body)

    seen = run(scenario())
    rec = beeline_recorder
    job = rec.find(name="job")
    hops = rec.spans(name="tornado_http_client_get")
    assert len(hops) == 2
    first = [h for h in hops if h["request.url"].endswith("/start")][0]
    second = [h for h in hops if h["request.url"].endswith("/headers")][0]
    assert first["trace.parent_id"] == job["trace.span_id"]
    assert second["trace.parent_id"] == first["trace.span_id"]
    assert first["response.status_code"] == second["response.status_code"] == 200
    # The second location saw a header naming the second hop, not a stale copy of the first's.
    assert "parent_id=%s," % second["trace.span_id"] in seen["X-Honeycomb-Trace"]
    start = rec.find(name="tornado_http_get", request__path="/start")
    target = rec.find(name="tornado_http_get", request__path="/headers")
    assert start["trace.parent_id"] == first["trace.span_id"]
    assert target["trace.parent_id"] == second["trace.span_id"]


def test_the_destination_allow_list_keeps_trace_headers_from_other_hosts(beeline_recorder, monkeypatch):
    async def fetch_headers():
        app = tornado.web.Application([(r"/headers", HeaderRecordingHandler)])
        async with serving(app) as url, http_client() as client:
            with beeline.tracer("job"):
                return json.loads((await client.fetch(url + "/headers")).body)

    monkeypatch.setenv("BEELINE_PROPAGATE_HOSTS", "api.internal.example")
    assert run(fetch_headers())["X-Honeycomb-Trace"] is None
    monkeypatch.setenv("BEELINE_PROPAGATE_HOSTS", "api.internal.example, 127.0.0.1")
    assert run(fetch_headers())["X-Honeycomb-Trace"] is not None
    # The call is traced either way; only the headers depend on the destination.
    assert len(beeline_recorder.spans(name="tornado_http_client_get")) == 2


def test_the_allow_list_given_to_init_applies_to_tornado_fetches(beeline_recorder_factory, monkeypatch):
    monkeypatch.delenv("BEELINE_PROPAGATE_HOSTS", raising=False)

    async def fetch_headers():
        app = tornado.web.Application([(r"/headers", HeaderRecordingHandler)])
        async with serving(app) as url, http_client() as client:
            with beeline.tracer("job"):
                return json.loads((await client.fetch(url + "/headers")).body)

    beeline_recorder_factory(propagate_hosts=["api.internal.example"])
    assert run(fetch_headers())["X-Honeycomb-Trace"] is None
    beeline_recorder_factory(propagate_hosts="127.0.0.1")
    assert run(fetch_headers())["X-Honeycomb-Trace"] is not None


def test_credentials_in_the_url_stay_out_of_the_span(beeline_recorder):
    async def scenario():
        app = tornado.web.Application([(r"/headers", HeaderRecordingHandler)])
        async with serving(app) as url, http_client() as client:
            with beeline.tracer("job"):
                await client.fetch(url.replace("http://", "http://user:s3cret@") + "/headers")
            return url

    url = run(scenario())
    assert beeline_recorder.find(name="tornado_http_client_get")["request.url"] == url + "/headers"


def test_the_blocking_http_client_is_traced_from_synchronous_code(beeline_recorder):
    """`tornado.httpclient.HTTPClient` drives AsyncHTTPClient on a private loop: the caller's
    active span still reaches it. The server runs on its own loop in a thread."""
    ready = threading.Event()
    box = {}

    def serve():
        async def main():
            box["stop"] = asyncio.Event()
            app = tornado.web.Application([(r"/headers", HeaderRecordingHandler)])
            async with serving(app) as url:
                box["url"] = url
                ready.set()
                await asyncio.wait_for(box["stop"].wait(), SCENARIO_TIMEOUT)

        box["loop"] = asyncio.new_event_loop()
        box["loop"].run_until_complete(main())
        box["loop"].close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        assert ready.wait(10)
        client = tornado.httpclient.HTTPClient()
        try:
            with beeline.tracer("sync_job"):
                seen = json.loads(client.fetch(box["url"] + "/headers").body)
        finally:
            client.close()
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(10)
    job = beeline_recorder.find(name="sync_job")
    call = beeline_recorder.find(name="tornado_http_client_get")
    assert call["trace.parent_id"] == job["trace.span_id"]
    assert "parent_id=%s," % call["trace.span_id"] in seen["X-Honeycomb-Trace"]
