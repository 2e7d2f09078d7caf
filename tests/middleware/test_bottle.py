"""Bottle: a real Bottle app served by werkzeug's threaded server on 127.0.0.1."""

from __future__ import annotations

import threading

import pytest
import requests

bottle = pytest.importorskip("bottle")

import beeline  # noqa: E402
from beeline.middleware import bottle as bottle_mw  # noqa: E402
from beeline.middleware.bottle import HoneyWSGIMiddleware  # noqa: E402

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


def make_app() -> "bottle.Bottle":
    app = bottle.Bottle()

    @app.get("/users/<name>")
    def user(name):
        with beeline.tracer("load_user"):
            with beeline.tracer("cache_lookup"):
                beeline.add_context_field("cache.hit", True)
        return {"name": name}

    @app.post("/items")
    def create_item():
        bottle.response.status = 201
        return {"size": len(bottle.request.body.read()), "page": bottle.request.query.get("page")}

    @app.get("/boom")
    def boom():
        raise ValueError("the view broke")

    @app.get("/teapot")
    def teapot():
        bottle.abort(418, "short and stout")

    @app.get("/stream")
    def stream():
        def rows():
            for i in range(3):
                with beeline.tracer("row"):
                    beeline.add_context_field("row.index", i)
                    yield "row%d\n" % i
            beeline.add_context_field("stream.complete", True)

        return rows()

    return app


@pytest.fixture
def app():
    app = make_app()
    assert app.config["catchall"] is True  # Bottle's default: view errors become 500 pages
    return app


def get(url: str, ref, **kwargs) -> requests.Response:
    return requests.get(url, timeout=ref.HTTP_TIMEOUT, **kwargs)


class QuietErrors:
    """A wsgi.errors stream that keeps what Bottle writes, instead of printing it."""

    def __init__(self, app):
        self.app = app
        self.written: list = []

    def __call__(self, environ, start_response):
        environ["wsgi.errors"] = self
        return self.app(environ, start_response)

    def write(self, text):
        self.written.append(text)

    def flush(self):
        pass


class TestRequests:
    def test_get_with_route_and_nested_spans(self, beeline_recorder, servers, ref, app):
        url = servers.werkzeug(HoneyWSGIMiddleware(app))
        assert get(url + "/users/bob", ref).json() == {"name": "bob"}

        root = ref.finished(beeline_recorder, name="bottle_http_get")[0]
        ref.assert_wsgi_root(root, "bottle", "GET", "/users/bob", 200)
        assert root["request.route"] == "/users/<name>"
        load = beeline_recorder.find(name="load_user")
        lookup = beeline_recorder.find(name="cache_lookup")
        assert load["trace.parent_id"] == root["trace.span_id"]
        assert lookup["trace.parent_id"] == load["trace.span_id"] and lookup["cache.hit"] is True
        ref.same_trace_parentage(beeline_recorder.events)

    def test_not_found_and_abort(self, beeline_recorder, servers, ref, app):
        url = servers.werkzeug(HoneyWSGIMiddleware(app))
        assert get(url + "/nowhere", ref).status_code == 404
        assert get(url + "/teapot", ref).status_code == 418

        roots = {r["request.path"]: r for r in ref.finished(beeline_recorder, 2, name="bottle_http_get")}
        ref.assert_wsgi_root(roots["/nowhere"], "bottle", "GET", "/nowhere", 404)
        assert "request.route" not in roots["/nowhere"]
        ref.assert_wsgi_root(roots["/teapot"], "bottle", "GET", "/teapot", 418)
        assert roots["/teapot"]["request.route"] == "/teapot"
        assert "request.error" not in roots["/teapot"]  # an HTTP answer the app chose is no error

    def test_post_with_query_string(self, beeline_recorder, servers, ref, app):
        url = servers.werkzeug(HoneyWSGIMiddleware(app))
        response = requests.post(url + "/items?page=3", data=b"abcdef", timeout=ref.HTTP_TIMEOUT)
        assert response.status_code == 201 and response.json() == {"size": 6, "page": "3"}

        root = ref.finished(beeline_recorder, name="bottle_http_post")[0]
        ref.assert_wsgi_root(root, "bottle", "POST", "/items", 201, query="page=3")
        assert root["request.content_length"] == "6"

    def test_status_code_is_an_int_not_the_status_line(self, beeline_recorder, servers, ref, app):
        url = servers.werkzeug(HoneyWSGIMiddleware(app))
        get(url + "/users/x", ref)
        # honeycomb-beeline sent "200 OK" for Bottle; every framework sends the int now.
        assert ref.finished(beeline_recorder, name="bottle_http_get")[0]["response.status_code"] == 200

    def test_raising_view_caught_by_bottle(self, beeline_recorder, servers, ref, app):
        url = servers.werkzeug(QuietErrors(HoneyWSGIMiddleware(app)))
        assert get(url + "/boom", ref).status_code == 500

        root = ref.finished(beeline_recorder, name="bottle_http_get")[0]
        ref.assert_wsgi_root(root, "bottle", "GET", "/boom", 500)
        assert root["request.error"] == "<class 'ValueError'>"
        assert root["request.error_detail"] == "the view broke"
        assert root["request.route"] == "/boom"

    def test_raising_view_with_catchall_off(self, beeline_recorder, servers, ref, app):
        app.config["catchall"] = False  # Bottle lets the exception through to the server
        url = servers.werkzeug(HoneyWSGIMiddleware(app))
        assert get(url + "/boom", ref).status_code == 500

        root = ref.finished(beeline_recorder, name="bottle_http_get")[0]
        assert root["response.status_code"] == 500
        assert root["request.error_detail"] == "the view broke"
        assert root["app.exception_type"] == "<class 'ValueError'>"

    def test_streamed_response_is_inside_the_trace(self, beeline_recorder, servers, ref, app):
        url = servers.werkzeug(HoneyWSGIMiddleware(app))
        assert get(url + "/stream", ref).text == "row0\nrow1\nrow2\n"

        root = ref.finished(beeline_recorder, name="bottle_http_get")[0]
        assert root["stream.complete"] is True
        rows = beeline_recorder.spans(name="row")
        assert [r["row.index"] for r in rows] == [0, 1, 2]
        assert all(r["trace.parent_id"] == root["trace.span_id"] for r in rows)

    def test_continues_honeycomb_and_w3c_traces(self, beeline_recorder, servers, ref, app):
        url = servers.werkzeug(HoneyWSGIMiddleware(app))
        get(url + "/users/a", ref, headers={"X-Honeycomb-Trace": ref.honeycomb_header(TRACE_ID, PARENT_ID, {})})
        get(url + "/users/b", ref, headers={"traceparent": ref.traceparent(TRACE_ID, "b7ad6b7169203331", "00")})

        roots = {r["request.path"]: r for r in ref.finished(beeline_recorder, 2, name="bottle_http_get")}
        assert (roots["/users/a"]["trace.trace_id"], roots["/users/a"]["trace.parent_id"]) == (TRACE_ID, PARENT_ID)
        assert (roots["/users/b"]["trace.trace_id"], roots["/users/b"]["trace.parent_id"]) == (
            TRACE_ID, "b7ad6b7169203331")
        assert {r["meta.span_type"] for r in roots.values()} == {"subroot"}

    def test_concurrent_requests_never_mix(self, beeline_recorder, servers, ref, app):
        workers, rounds = 5, 3
        barrier = threading.Barrier(workers, timeout=ref.HTTP_TIMEOUT)

        @app.get("/together/<n>")
        def together(n):
            beeline.add_context_field("app.n", n)
            with beeline.tracer("wait_for_everyone"):
                beeline.add_context_field("work.n", n)
                barrier.wait()
            return n

        url = servers.werkzeug(HoneyWSGIMiddleware(app), threaded=True)
        failures: list = []

        def client(i: int) -> None:
            try:
                with requests.Session() as session:
                    for r in range(rounds):
                        n = "%d-%d" % (i, r)
                        assert session.get(url + "/together/" + n, timeout=ref.HTTP_TIMEOUT).text == n
            except BaseException as exc:  # checked in the test's thread
                failures.append(exc)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert not failures, failures
        ref.finished(beeline_recorder, workers * rounds, name="bottle_http_get")
        for events in beeline_recorder.traces().values():
            ref.same_trace_parentage(events)
            root = [e for e in events if e["name"] == "bottle_http_get"][0]
            inner = [e for e in events if e["name"] == "wait_for_everyone"]
            assert len(inner) == 1 and inner[0]["work.n"] == root["app.n"]
            assert root["request.path"] == "/together/" + root["app.n"]
            assert root["request.route"] == "/together/<n>"


def test_the_error_plugin_is_installed_once_where_needed_and_removable(beeline_recorder, app):
    HoneyWSGIMiddleware(app)
    HoneyWSGIMiddleware(app)
    ours = [p.name for p in app.plugins if getattr(p, "name", None) == "beeline"]
    if bottle_mw._reports_errors_in_exc_info(bottle.__version__):
        # Bottle 0.13+ hands the view's error to start_response: no plugin around every view.
        assert ours == [] and bottle_mw.unpatch(app) is False
        return
    assert ours == ["beeline"]
    assert bottle_mw.unpatch(app) is True
    assert bottle_mw.unpatch(app) is False
    assert all(getattr(p, "name", None) != "beeline" for p in app.plugins)


def test_which_bottle_versions_need_the_error_plugin():
    assert not bottle_mw._reports_errors_in_exc_info("0.12.25")
    assert bottle_mw._reports_errors_in_exc_info("0.13.4")
    assert bottle_mw._reports_errors_in_exc_info("0.14-dev")


def test_default_app_through_the_module_api(beeline_recorder, servers, ref):
    """The reference's documented setup: wrap `bottle.default_app()`."""
    bottle.default_app.push()
    try:
        @bottle.route("/hello/<who>")
        def hello(who):
            return "hello " + who

        url = servers.werkzeug(HoneyWSGIMiddleware(bottle.default_app()))
        assert get(url + "/hello/world", ref).text == "hello world"
    finally:
        bottle.default_app.pop()
    root = ref.finished(beeline_recorder, name="bottle_http_get")[0]
    assert root["request.route"] == "/hello/<who>"


def test_inside_a_generic_wsgi_middleware_the_route_goes_on_its_root(beeline_recorder, servers, ref, app):
    from beeline.middleware.werkzeug import HoneyWSGIMiddleware as Outer

    url = servers.werkzeug(Outer(HoneyWSGIMiddleware(app)))
    assert get(url + "/users/bob", ref).json() == {"name": "bob"}
    root = ref.finished(beeline_recorder, name="werkzeug_http_get")[0]
    assert root["request.route"] == "/users/<name>"
    assert beeline_recorder.spans(name="bottle_http_get") == []
    assert len(beeline_recorder.traces()) == 1
