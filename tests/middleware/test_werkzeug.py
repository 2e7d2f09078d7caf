"""Werkzeug: a real Werkzeug application (Request/Response wrappers and a URL map) served by
werkzeug's threaded server on 127.0.0.1."""

from __future__ import annotations

import threading

import pytest
import requests

werkzeug = pytest.importorskip("werkzeug")

from werkzeug.exceptions import HTTPException  # noqa: E402
from werkzeug.routing import Map, Rule  # noqa: E402
from werkzeug.wrappers import Request, Response  # noqa: E402

import beeline  # noqa: E402
from beeline.middleware.werkzeug import HoneyWSGIMiddleware  # noqa: E402

TRACE_ID = "8a3c60f7d188f8fa79d48a391a778fa6"
PARENT_ID = "53995c3f42cd8ad8"


def make_app(barrier=None):
    url_map = Map([
        Rule("/users/<name>", endpoint="user"),
        Rule("/items", endpoint="items", methods=["POST"]),
        Rule("/boom", endpoint="boom"),
        Rule("/stream", endpoint="stream"),
        Rule("/together/<n>", endpoint="together"),
    ])

    def user(request, name):
        with beeline.tracer("load_user"):
            with beeline.tracer("cache_lookup"):
                pass
        return Response("hello " + name)

    def items(request):
        return Response("%d %s" % (len(request.get_data()), request.args.get("page")), status=201)

    def boom(request):
        raise ValueError("the view broke")

    def stream(request):
        def rows():
            for i in range(3):
                with beeline.tracer("row"):
                    yield "row%d\n" % i
            beeline.add_context_field("stream.complete", True)

        return Response(rows(), mimetype="text/plain")

    def together(request, n):
        beeline.add_context_field("app.n", n)
        with beeline.tracer("wait_for_everyone"):
            beeline.add_context_field("work.n", n)
            barrier.wait()
        return Response(n)

    views = {"user": user, "items": items, "boom": boom, "stream": stream, "together": together}

    @Request.application
    def application(request):
        try:
            endpoint, args = url_map.bind_to_environ(request.environ).match()
        except HTTPException as exc:
            return exc
        return views[endpoint](request, **args)

    return application


def get(url: str, ref, **kwargs) -> requests.Response:
    return requests.get(url, timeout=ref.HTTP_TIMEOUT, **kwargs)


def test_get_with_nested_spans(beeline_recorder, servers, ref):
    url = servers.werkzeug(HoneyWSGIMiddleware(make_app()))
    assert get(url + "/users/bob?x=1", ref).text == "hello bob"

    root = ref.finished(beeline_recorder, name="werkzeug_http_get")[0]
    ref.assert_wsgi_root(root, "werkzeug", "GET", "/users/bob", 200, query="x=1")
    load, lookup = beeline_recorder.find(name="load_user"), beeline_recorder.find(name="cache_lookup")
    assert load["trace.parent_id"] == root["trace.span_id"]
    assert lookup["trace.parent_id"] == load["trace.span_id"]


def test_not_found_and_post(beeline_recorder, servers, ref):
    url = servers.werkzeug(HoneyWSGIMiddleware(make_app()))
    assert get(url + "/nowhere", ref).status_code == 404
    response = requests.post(url + "/items?page=4", data=b"12", timeout=ref.HTTP_TIMEOUT)
    assert (response.status_code, response.text) == (201, "2 4")

    ref.assert_wsgi_root(ref.finished(beeline_recorder, name="werkzeug_http_get")[0], "werkzeug", "GET",
                         "/nowhere", 404)
    post = ref.finished(beeline_recorder, name="werkzeug_http_post")[0]
    ref.assert_wsgi_root(post, "werkzeug", "POST", "/items", 201, query="page=4")
    assert post["request.content_length"] == "2"


def test_raising_view_reaches_the_server_and_ends_the_trace(beeline_recorder, servers, ref):
    url = servers.werkzeug(HoneyWSGIMiddleware(make_app()))
    assert get(url + "/boom", ref).status_code == 500
    root = ref.finished(beeline_recorder, name="werkzeug_http_get")[0]
    ref.assert_wsgi_root(root, "werkzeug", "GET", "/boom", 500)
    assert root["request.error"] == "<class 'ValueError'>"
    assert root["request.error_detail"] == "the view broke"


def test_streamed_response_is_inside_the_trace(beeline_recorder, servers, ref):
    url = servers.werkzeug(HoneyWSGIMiddleware(make_app()))
    assert get(url + "/stream", ref).text == "row0\nrow1\nrow2\n"
    root = ref.finished(beeline_recorder, name="werkzeug_http_get")[0]
    assert root["stream.complete"] is True
    assert [r["trace.parent_id"] for r in beeline_recorder.spans(name="row")] == [root["trace.span_id"]] * 3


def test_continues_honeycomb_and_w3c_traces(beeline_recorder, servers, ref):
    url = servers.werkzeug(HoneyWSGIMiddleware(make_app()))
    get(url + "/users/a", ref, headers={"X-Honeycomb-Trace": ref.honeycomb_header(TRACE_ID, PARENT_ID, {})})
    get(url + "/users/b", ref, headers={"traceparent": ref.traceparent(TRACE_ID, PARENT_ID)})
    roots = ref.finished(beeline_recorder, 2, name="werkzeug_http_get")
    assert {(r["trace.trace_id"], r["trace.parent_id"], r["meta.span_type"]) for r in roots} == {
        (TRACE_ID, PARENT_ID, "subroot")}


def test_concurrent_requests_never_mix(beeline_recorder, servers, ref):
    workers = 5
    barrier = threading.Barrier(workers, timeout=ref.HTTP_TIMEOUT)
    url = servers.werkzeug(HoneyWSGIMiddleware(make_app(barrier)), threaded=True)
    results: dict = {}

    def client(n: int) -> None:
        try:
            results[n] = get(url + "/together/%d" % n, ref).text
        except BaseException as exc:  # checked in the test's thread
            results[n] = exc

    threads = [threading.Thread(target=client, args=(n,)) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert results == {n: str(n) for n in range(workers)}
    ref.finished(beeline_recorder, workers, name="werkzeug_http_get")
    for events in beeline_recorder.traces().values():
        ref.same_trace_parentage(events)
        root = [e for e in events if e["name"] == "werkzeug_http_get"][0]
        assert [e["work.n"] for e in events if e["name"] == "wait_for_everyone"] == [root["app.n"]]
