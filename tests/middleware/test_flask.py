"""Flask: real Flask apps, served by werkzeug's threaded server on 127.0.0.1 (or driven by Flask's
own test client where the test is about what a test client does), recorded in memory."""

from __future__ import annotations

import threading
import types

import pytest
import requests

flask = pytest.importorskip("flask")

import beeline  # noqa: E402
from beeline.middleware import flask as flask_mw  # noqa: E402
from beeline.middleware.flask import HoneyDBMiddleware, HoneyMiddleware, HoneyWSGIMiddleware  # noqa: E402
from beeline.patch import is_wrapped  # noqa: E402
from beeline.trace import active_span  # noqa: E402

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"


def make_app() -> "flask.Flask":
    app = flask.Flask("flask_under_test")

    @beeline.traced("load_user")
    def load_user(name):
        with beeline.tracer("cache_lookup"):
            beeline.add_context_field("cache.hit", False)
        return {"name": name}

    @app.route("/users/<name>")
    def user(name):
        return flask.jsonify(load_user(name))

    @app.route("/items", methods=["POST"])
    def create_item():
        return {"size": len(flask.request.get_data()), "page": flask.request.args.get("page")}, 201

    @app.route("/boom")
    def boom():
        raise ValueError("the view broke")

    @app.route("/stream")
    def stream():
        @flask.stream_with_context
        def rows():
            for i in range(3):
                with beeline.tracer("row"):
                    beeline.add_context_field("row.path", flask.request.path)
                    yield "row%d\n" % i
            beeline.add_context_field("stream.complete", True)

        return flask.Response(rows(), mimetype="text/plain")

    bp = flask.Blueprint("admin", __name__, url_prefix="/admin")

    @bp.route("/reports/<int:report_id>")
    def report(report_id):
        return str(report_id)

    app.register_blueprint(bp)
    return app


@pytest.fixture
def app():
    return make_app()


def get(url: str, ref, **kwargs) -> requests.Response:
    return requests.get(url, timeout=ref.HTTP_TIMEOUT, **kwargs)


class TestRequests:
    def test_get_with_route_rule_endpoint_and_nested_spans(self, beeline_recorder, servers, ref, app):
        HoneyMiddleware(app, db_events=False)
        url = servers.werkzeug(app)
        assert get(url + "/users/bob", ref).json() == {"name": "bob"}

        root = ref.finished(beeline_recorder, name="flask_http_get")[0]
        ref.assert_wsgi_root(root, "flask", "GET", "/users/bob", 200)
        assert root["request.route"] == "/users/<name>"  # the URL rule, as Django and Bottle give it
        assert root["flask.endpoint"] == "user"
        loaded = beeline_recorder.find(name="load_user")
        lookup = beeline_recorder.find(name="cache_lookup")
        assert loaded["trace.parent_id"] == root["trace.span_id"]
        assert lookup["trace.parent_id"] == loaded["trace.span_id"]
        ref.same_trace_parentage(beeline_recorder.events)

    def test_not_found(self, beeline_recorder, servers, ref, app):
        HoneyMiddleware(app, db_events=False)
        url = servers.werkzeug(app)
        assert get(url + "/nowhere", ref).status_code == 404

        root = ref.finished(beeline_recorder, name="flask_http_get")[0]
        ref.assert_wsgi_root(root, "flask", "GET", "/nowhere", 404)
        assert root["request.route"] is None and root["flask.endpoint"] is None

    def test_post_with_query_string(self, beeline_recorder, servers, ref, app):
        HoneyMiddleware(app, db_events=False)
        url = servers.werkzeug(app)
        response = requests.post(url + "/items?page=2&sort=asc", data=b"0123456789", timeout=ref.HTTP_TIMEOUT)
        assert response.status_code == 201 and response.json() == {"size": 10, "page": "2"}

        root = ref.finished(beeline_recorder, name="flask_http_post")[0]
        ref.assert_wsgi_root(root, "flask", "POST", "/items", 201, query="page=2&sort=asc")
        assert root["request.content_length"] == "10"
        assert root["request.route"] == "/items"

    def test_blueprint_route_is_the_full_rule(self, beeline_recorder, servers, ref, app):
        HoneyMiddleware(app, db_events=False)
        url = servers.werkzeug(app)
        assert get(url + "/admin/reports/7", ref).text == "7"
        root = ref.finished(beeline_recorder, name="flask_http_get")[0]
        assert root["request.route"] == "/admin/reports/<int:report_id>"
        assert root["flask.endpoint"] == "admin.report"

    def test_raising_view_gives_a_500_with_error_fields(self, beeline_recorder, servers, ref, app):
        HoneyMiddleware(app, db_events=False)
        url = servers.werkzeug(app)
        assert get(url + "/boom", ref).status_code == 500

        root = ref.finished(beeline_recorder, name="flask_http_get")[0]
        ref.assert_wsgi_root(root, "flask", "GET", "/boom", 500)
        assert root["request.error"] == "<class 'ValueError'>"
        assert root["request.error_detail"] == "the view broke"
        assert root["app.exception_type"] == "<class 'ValueError'>"
        assert root["app.exception_string"] == "the view broke"

    def test_error_fields_do_not_depend_on_signals(self, beeline_recorder, monkeypatch, app):
        # honeycomb-beeline recorded errors only when blinker signals worked.
        silent = types.SimpleNamespace(send=lambda *args, **kwargs: [])
        monkeypatch.setattr("flask.app.got_request_exception", silent)
        HoneyMiddleware(app, db_events=False)
        with app.test_client() as client:
            response = client.get("/boom")
            assert response.status_code == 500
            response.close()
        assert beeline_recorder.find(name="flask_http_get")["request.error_detail"] == "the view broke"

    def test_exception_propagated_in_testing_mode_still_ends_the_trace(self, beeline_recorder, app):
        app.testing = True  # Flask re-raises the view's exception to the caller
        HoneyMiddleware(app, db_events=False)
        with pytest.raises(ValueError, match="the view broke"):
            app.test_client().get("/boom")
        root = beeline_recorder.find(name="flask_http_get")
        assert root["response.status_code"] == 500
        assert root["request.error"] == "<class 'ValueError'>"
        assert active_span() is None

    def test_error_handler_returning_500_ends_the_trace(self, beeline_recorder, servers, ref, app):
        @app.errorhandler(ValueError)
        def handled(exc):
            return "handled: %s" % exc, 500

        HoneyMiddleware(app, db_events=False)
        url = servers.werkzeug(app)
        response = get(url + "/boom", ref)
        assert (response.status_code, response.text) == (500, "handled: the view broke")
        root = ref.finished(beeline_recorder, name="flask_http_get")[0]
        assert root["response.status_code"] == 500
        assert "request.error" not in root  # the app handled it

    def test_streamed_response_is_inside_the_trace(self, beeline_recorder, servers, ref, app):
        HoneyMiddleware(app, db_events=False)
        url = servers.werkzeug(app)
        assert get(url + "/stream", ref).text == "row0\nrow1\nrow2\n"

        root = ref.finished(beeline_recorder, name="flask_http_get")[0]
        ref.assert_wsgi_root(root, "flask", "GET", "/stream", 200)
        assert root["stream.complete"] is True  # set after the last row: the root was still open
        rows = beeline_recorder.spans(name="row")
        assert len(rows) == 3
        assert all(r["trace.parent_id"] == root["trace.span_id"] and r["row.path"] == "/stream" for r in rows)
        assert beeline_recorder.events[-1]["name"] == "flask_http_get"

    def test_continues_honeycomb_and_w3c_traces(self, beeline_recorder, servers, ref, app):
        HoneyMiddleware(app, db_events=False)
        url = servers.werkzeug(app)
        header = ref.honeycomb_header(TRACE_ID, PARENT_ID, {"app.region": "eu"})
        get(url + "/users/a", ref, headers={"X-Honeycomb-Trace": header})
        get(url + "/users/b", ref, headers={"traceparent": ref.traceparent(TRACE_ID, "00f067aa0ba902b7")})

        roots = {r["request.path"]: r for r in ref.finished(beeline_recorder, 2, name="flask_http_get")}
        honeycomb_root, w3c_root = roots["/users/a"], roots["/users/b"]
        assert (honeycomb_root["trace.trace_id"], honeycomb_root["trace.parent_id"]) == (TRACE_ID, PARENT_ID)
        assert honeycomb_root["meta.span_type"] == "subroot"
        assert honeycomb_root["app.region"] == "eu"
        assert (w3c_root["trace.trace_id"], w3c_root["trace.parent_id"]) == (TRACE_ID, "00f067aa0ba902b7")
        lookups = beeline_recorder.spans(name="cache_lookup")
        assert lookups[0]["app.region"] == "eu" and "app.region" not in lookups[1]

    def test_a_user_span_left_open_does_not_lose_the_root(self, beeline_recorder, servers, ref, app):
        @app.route("/leaky")
        def leaky():
            beeline.start_span({"name": "never_finished"})
            return "ok"

        HoneyMiddleware(app, db_events=False)
        url = servers.werkzeug(app)
        assert get(url + "/leaky", ref).text == "ok"
        assert get(url + "/users/x", ref).status_code == 200
        roots = {r["request.path"]: r for r in ref.finished(beeline_recorder, 2, name="flask_http_get")}
        first, second = roots["/leaky"], roots["/users/x"]
        assert first["request.path"] == "/leaky" and second["meta.span_type"] == "root"
        assert first["trace.trace_id"] != second["trace.trace_id"]

    def test_concurrent_requests_never_mix(self, beeline_recorder, servers, ref, app):
        workers = 6
        barrier = threading.Barrier(workers, timeout=ref.HTTP_TIMEOUT)

        @app.route("/together/<n>")
        def together(n):
            beeline.add_context_field("app.n", n)
            with beeline.tracer("wait_for_everyone"):
                beeline.add_context_field("work.n", n)
                barrier.wait()  # all requests are in flight at the same time
            return n

        HoneyMiddleware(app, db_events=False)
        url = servers.werkzeug(app, threaded=True)
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
        ref.finished(beeline_recorder, workers, name="flask_http_get")
        traces = beeline_recorder.traces()
        assert len(traces) == workers
        for events in traces.values():
            ref.same_trace_parentage(events)
            root = [e for e in events if e["name"] == "flask_http_get"][0]
            inner = [e for e in events if e["name"] == "wait_for_everyone"]
            assert len(inner) == 1 and inner[0]["work.n"] == root["app.n"]
            assert root["request.path"] == "/together/" + root["app.n"]


class TestServingTheBody:
    """A response Flask has already rendered is complete when Flask returns it: the trace ends
    there and the server gets Flask's own body; anything that may run application code while
    the body is served is still served inside the request."""

    def test_a_rendered_response_ends_the_trace_when_flask_returns_it(self, beeline_recorder, app):
        from werkzeug.test import EnvironBuilder
        from werkzeug.wsgi import ClosingIterator

        HoneyMiddleware(app, db_events=False)
        environ = EnvironBuilder(path="/users/x").get_environ()
        body = app(environ, lambda status, headers, exc_info=None: None)
        assert type(body) is ClosingIterator  # Flask's body, not wrapped
        root = beeline_recorder.find(name="flask_http_get")
        assert root["response.status_code"] == 200 and root["request.route"] == "/users/<name>"
        assert beeline_recorder.find(name="load_user")["trace.parent_id"] == root["trace.span_id"]
        assert active_span() is None
        assert b"".join(body) == b'{"name":"x"}\n'
        body.close()
        assert len(beeline_recorder.spans(name="flask_http_get")) == 1

    def test_close_callbacks_run_inside_the_request(self, beeline_recorder, servers, ref, app):
        @app.route("/cleanup")
        def cleanup():
            response = flask.make_response("done")

            @response.call_on_close
            def release():
                with beeline.tracer("release"):
                    beeline.add_context_field("released", True)

            return response

        HoneyMiddleware(app, db_events=False)
        url = servers.werkzeug(app)
        assert get(url + "/cleanup", ref).text == "done"
        root = ref.finished(beeline_recorder, name="flask_http_get")[0]
        release = beeline_recorder.find(name="release")
        assert release["trace.parent_id"] == root["trace.span_id"] and release["released"] is True

    def test_a_wsgi_layer_between_flask_and_beeline_keeps_its_body_in_the_request(self, beeline_recorder, servers,
                                                                                  ref, app):
        flask_wsgi = app.wsgi_app

        def measuring(environ, start_response):
            body = flask_wsgi(environ, start_response)

            def chunks():
                try:
                    with beeline.tracer("measure_body"):
                        size = 0
                        for chunk in body:
                            size += len(chunk)
                            yield chunk
                        beeline.add_context_field("body.size", size)
                finally:
                    body.close()

            return chunks()

        app.wsgi_app = measuring
        HoneyMiddleware(app, db_events=False)
        url = servers.werkzeug(app)
        assert get(url + "/users/bob", ref).json() == {"name": "bob"}
        root = ref.finished(beeline_recorder, name="flask_http_get")[0]
        measured = beeline_recorder.find(name="measure_body")
        assert measured["trace.parent_id"] == root["trace.span_id"] and measured["body.size"] > 0


class TestSetup:
    def test_constructed_after_the_first_request(self, beeline_recorder, app):
        client = app.test_client()
        assert client.get("/users/early").status_code == 200  # Flask now refuses new hooks
        HoneyMiddleware(app)
        with client.get("/users/late") as response:
            assert response.json == {"name": "late"}
        root = beeline_recorder.find(name="flask_http_get")
        assert root["request.path"] == "/users/late" and root["request.route"] == "/users/<name>"

    def test_constructing_twice_instruments_once(self, beeline_recorder, app):
        HoneyMiddleware(app)
        wrapped = app.wsgi_app
        HoneyMiddleware(app)
        assert app.wsgi_app is wrapped and isinstance(wrapped, HoneyWSGIMiddleware)
        with app.test_client().get("/users/x") as response:
            assert response.status_code == 200
        assert len(beeline_recorder.spans(name="flask_http_get")) == 1

    def test_unpatch_restores_the_app(self, beeline_recorder, app):
        original = app.wsgi_app
        middleware = HoneyMiddleware(app)
        assert is_wrapped(app, "full_dispatch_request") and is_wrapped(app, "handle_exception")
        assert middleware.unpatch() is True
        assert app.wsgi_app == original
        assert "full_dispatch_request" not in vars(app) and "handle_exception" not in vars(app)
        assert "beeline" not in app.extensions
        with app.test_client().get("/users/x") as response:
            assert response.status_code == 200
        assert beeline_recorder.spans(name="flask_http_get") == []
        assert flask_mw.unpatch(app) is False
        HoneyMiddleware(app)  # and it can be applied again
        with app.test_client().get("/users/y"):
            pass
        assert beeline_recorder.find(name="flask_http_get")["request.path"] == "/users/y"

    def test_unpatch_under_another_wsgi_middleware_leaves_the_chain_working(self, beeline_recorder, app):
        HoneyMiddleware(app)
        ours = app.wsgi_app

        def outer(environ, start_response):
            return ours(environ, start_response)

        app.wsgi_app = outer
        flask_mw.unpatch(app)
        assert app.wsgi_app is outer
        with app.test_client().get("/users/x") as response:
            assert response.status_code == 200
        assert beeline_recorder.spans(name="flask_http_get") == []

    def test_inside_a_generic_wsgi_middleware_the_flask_fields_go_on_its_root(self, beeline_recorder, servers, ref,
                                                                                 app):
        from beeline.middleware.werkzeug import HoneyWSGIMiddleware as Outer

        HoneyMiddleware(app, db_events=False)
        url = servers.werkzeug(Outer(app))
        assert get(url + "/users/bob", ref).status_code == 200
        root = ref.finished(beeline_recorder, name="werkzeug_http_get")[0]
        assert root["request.route"] == "/users/<name>" and root["flask.endpoint"] == "user"
        assert beeline_recorder.spans(name="flask_http_get") == []
        assert len(beeline_recorder.traces()) == 1

    def test_reading_a_streamed_test_client_response_ends_the_trace(self, beeline_recorder, app):
        HoneyMiddleware(app)
        response = app.test_client().get("/stream", buffered=False)
        assert beeline_recorder.spans(name="flask_http_get") == []  # the body is not read yet
        assert response.get_data() == b"row0\nrow1\nrow2\n"
        response.close()
        assert len(beeline_recorder.spans(name="flask_http_get")) == 1

    def test_a_rendered_test_client_response_is_traced_before_it_is_read(self, beeline_recorder, app):
        HoneyMiddleware(app)
        response = app.test_client().get("/users/x")
        assert len(beeline_recorder.spans(name="flask_http_get")) == 1
        assert response.json == {"name": "x"}

    def test_without_init_the_app_is_untouched(self, app):
        assert beeline.get_beeline() is None
        HoneyMiddleware(app)
        with app.test_client().get("/users/x") as response:
            assert response.json == {"name": "x"}
        assert active_span() is None

    def test_a_failure_to_instrument_leaves_the_app_working(self, beeline_recorder, monkeypatch, app,
                                                            beeline_warnings):
        def refuse(*args, **kwargs):
            raise RuntimeError("cannot wrap here")

        monkeypatch.setattr(flask_mw.patch, "wrap", refuse)
        HoneyMiddleware(app)
        HoneyMiddleware(app)
        with app.test_client().get("/users/x") as response:
            assert response.json == {"name": "x"}
        assert len(beeline_warnings()) == 1
        root = beeline_recorder.find(name="flask_http_get")  # the WSGI part was installed first
        assert "request.route" not in root

    def test_reference_names_stay_importable(self, app):
        assert issubclass(HoneyWSGIMiddleware, flask_mw.wsgi.HoneyWSGIMiddleware)
        assert HoneyWSGIMiddleware(app.wsgi_app).middleware_name == "flask"
        assert callable(HoneyDBMiddleware)
