"""The Django middleware, driven through Django's own handlers (test Client, AsyncClient) and
real servers on 127.0.0.1 (threaded wsgiref for WSGI, uvicorn for ASGI), with SQLite.

Field names and value types are checked against what honeycomb-beeline 3.6.0 sends (reference
study, section 4.5): an application switching over must see the same events.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import logging
import os
import socket
import subprocess
import sys
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("django")

import beeline  # noqa: E402
from beeline.propagation import PropagationContext  # noqa: E402
from beeline.trace import active_span  # noqa: E402
from tests.middleware.django_project import setup as project  # noqa: E402
from tests.middleware.django_project.servers import UvicornThread, WSGIServerThread, fetch  # noqa: E402

NoneType = type(None)

# Root span fields of the reference's Django middleware, with the JSON types it sends.
REFERENCE_ROOT_FIELDS = {
    "name": str,
    "type": str,
    "request.host": str,
    "request.method": str,
    "request.path": str,
    "request.remote_addr": str,
    "request.content_length": (int, str),  # the META string, or the int 0 when absent
    "request.user_agent": (str, NoneType),
    "request.scheme": str,
    "request.secure": bool,
    "request.query": dict,  # request.GET.dict(), not the raw string WSGI middlewares send
    "request.xhr": bool,
    "response.status_code": int,
    "meta.span_type": str,
}
ROUTE_FIELDS = {"request.route": str, "django.view_func": str}
REFERENCE_DB_FIELDS = {
    "name": str,
    "type": str,
    "db.query": str,
    "db.query_args": (list, tuple, dict, NoneType),
    "db.duration": float,
    "db.call_count": float,
    "db.total_duration": float,
}
# Section 2.8: on every span.
EVERY_SPAN_FIELDS = ("service_name", "service.name", "meta.beeline_version", "meta.local_hostname",
                     "trace.trace_id", "trace.parent_id", "trace.span_id", "duration_ms")


def assert_shape(event: dict, spec: dict) -> None:
    for name, kind in spec.items():
        assert name in event, f"{name} missing from {sorted(event)}"
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int: compare exact types so a bool never passes for a status code.
        assert type(event[name]) in kinds, f"{name}={event[name]!r} is not {kinds}"
    for name in EVERY_SPAN_FIELDS:
        assert name in event, f"{name} missing from {event.get('name')}"


def wait_until(predicate, timeout: float = 10.0) -> bool:
    """Servers finish a trace just after the client has its answer: poll, within a bound."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


@pytest.fixture(scope="module", autouse=True)
def django_project(tmp_path_factory):
    project.configure(tmp_path_factory.mktemp("django-db"))
    yield


@pytest.fixture
def use_middleware():
    """Serve with the given MIDDLEWARE list for one test."""
    from django.test import override_settings

    active = []

    def apply(*paths: str) -> None:
        override = override_settings(MIDDLEWARE=list(paths))
        override.enable()
        active.append(override)

    yield apply
    for override in reversed(active):
        override.disable()


def client(**kwargs):
    from django.test import Client

    return Client(raise_request_exception=False, **kwargs)


def roots(rec, name=None):
    return [e for e in rec.events if e.get("type") == "http_server" and (name is None or e["name"] == name)]


# ---- the root span -------------------------------------------------------------------------------


class TestRootSpan:
    def test_get_200_has_the_reference_fields_and_nested_user_spans(self, beeline_recorder):
        response = client().get("/hello/", {"q": "1", "q2": "x"}, HTTP_USER_AGENT="agent/1")
        assert response.status_code == 200
        root = beeline_recorder.find(name="django_http_get")
        assert_shape(root, {**REFERENCE_ROOT_FIELDS, **ROUTE_FIELDS})
        assert root["type"] == "http_server"
        assert root["request.method"] == "GET"
        assert root["request.path"] == "/hello/"
        assert root["request.host"] == "testserver"
        assert root["request.query"] == {"q": "1", "q2": "x"}
        assert root["request.content_length"] == 0
        assert root["request.user_agent"] == "agent/1"
        assert root["request.secure"] is False and root["request.xhr"] is False
        assert root["response.status_code"] == 200
        assert root["request.route"] == "hello/" and root["django.view_func"] == "hello"
        assert root["meta.span_type"] == "root" and root["trace.parent_id"] is None
        greeting = beeline_recorder.find(name="greeting")
        shout = beeline_recorder.find(name="shout")
        assert greeting["trace.parent_id"] == root["trace.span_id"]
        assert shout["trace.parent_id"] == greeting["trace.span_id"]
        assert {greeting["trace.trace_id"], shout["trace.trace_id"]} == {root["trace.trace_id"]}
        assert greeting["app.greeting"] == "hello" and shout["app.volume"] == 11
        assert active_span() is None

    def test_route_is_the_full_url_pattern(self, beeline_recorder):
        client().get("/users/bob/")
        client().get("/api/v1/items/7/")
        first, second = roots(beeline_recorder)
        assert (first["request.route"], first["django.view_func"]) == ("users/<str:name>/", "user_detail")
        assert (second["request.route"], second["django.view_func"]) == ("api/v1/items/<int:pk>/", "item_detail")

    def test_404_without_a_route(self, beeline_recorder):
        response = client().get("/no-such-page/")
        assert response.status_code == 404
        root = beeline_recorder.find(name="django_http_get")
        assert_shape(root, REFERENCE_ROOT_FIELDS)
        assert root["response.status_code"] == 404
        assert "request.route" not in root and "django.view_func" not in root
        assert "request.error" not in root

    def test_http404_from_the_view_keeps_its_detail(self, beeline_recorder):
        response = client().get("/missing/")
        assert response.status_code == 404
        root = beeline_recorder.find(name="django_http_get")
        assert root["response.status_code"] == 404
        assert root["request.error_detail"] == "no note 42"
        assert root["request.route"] == "missing/"

    def test_post_with_query_string(self, beeline_recorder):
        response = client().post("/echo/?a=1&b=2", "field=value", content_type=FORM)
        assert response.status_code == 200
        assert response.json() == {"body_length": len(b"field=value"), "query": {"a": "1", "b": "2"}}
        root = beeline_recorder.find(name="django_http_post")
        assert_shape(root, {**REFERENCE_ROOT_FIELDS, **ROUTE_FIELDS})
        assert root["request.method"] == "POST"
        assert root["request.query"] == {"a": "1", "b": "2"}
        assert root["request.content_length"] == str(len(b"field=value"))
        assert "request.post" not in root

    def test_xhr_and_secure(self, beeline_recorder):
        client().get("/hello/", HTTP_X_REQUESTED_WITH="XMLHttpRequest", secure=True)
        root = beeline_recorder.find(name="django_http_get")
        assert root["request.xhr"] is True
        assert root["request.secure"] is True and root["request.scheme"] == "https"

    def test_a_view_that_leaves_a_span_open_does_not_leak_into_the_next_request(self, beeline_recorder):
        c = client()
        c.get("/leaky/")
        assert active_span() is None
        c.get("/hello/")
        first, second = roots(beeline_recorder)
        assert first["trace.trace_id"] != second["trace.trace_id"]
        assert second["trace.parent_id"] is None and second["meta.span_type"] == "root"
        assert beeline_recorder.spans(name="left_open") == []

    def test_without_init_requests_are_served_untraced(self):
        assert beeline.get_beeline() is None
        assert client().get("/hello/").content == b"HELLO"
        assert client().get("/db/").status_code == 200
        assert active_span() is None


class TestErrors:
    def test_raising_view_gives_500_with_the_error(self, beeline_recorder):
        from tests.middleware.django_project import views

        before = views.CALLS["boom"]
        response = client().get("/boom/")
        assert response.status_code == 500
        assert views.CALLS["boom"] == before + 1
        root = beeline_recorder.find(name="django_http_get")
        assert_shape(root, {**REFERENCE_ROOT_FIELDS, **ROUTE_FIELDS, "request.error": str, "request.error_detail": str})
        assert root["response.status_code"] == 500
        assert root["request.error"] == "<class 'ValueError'>"
        assert root["request.error_detail"] == "kaboom"
        assert active_span() is None

    def test_propagated_exception_ends_the_trace_and_runs_the_view_once(self, beeline_recorder):
        """With DEBUG_PROPAGATE_EXCEPTIONS the exception leaves Django: the trace still ends,
        and an AttributeError is not a reason to run the request again (the reference did)."""
        from django.test import Client, override_settings

        from tests.middleware.django_project import views

        before = views.CALLS["attribute_error"]
        with override_settings(DEBUG_PROPAGATE_EXCEPTIONS=True):
            with pytest.raises(AttributeError, match="no such thing"):
                Client().get("/attr/")
        assert views.CALLS["attribute_error"] == before + 1
        root = beeline_recorder.find(name="django_http_get")
        assert root["response.status_code"] == 500
        assert root["request.error"] == "<class 'AttributeError'>"
        assert root["request.error_detail"] == "no such thing"
        assert root["request.route"] == "attr/"
        assert active_span() is None

    def test_bad_host_header_is_recorded_and_answered_by_django(self, beeline_recorder, use_middleware):
        response = client().get("/hello/", HTTP_HOST="evil.example")
        # CommonMiddleware (inside ours) refuses the host; the middleware itself never raises.
        assert response.status_code == 400
        root = beeline_recorder.find(name="django_http_get")
        assert root["request.host"] == "evil.example"
        assert root["response.status_code"] == 400
        use_middleware(project.HONEY)
        response = client().get("/hello/", HTTP_HOST="evil.example")
        assert response.status_code == 200
        assert [r["request.host"] for r in roots(beeline_recorder)] == ["evil.example", "evil.example"]

    def test_failing_overrides_are_logged_once_and_the_request_goes_on(self, beeline_recorder, use_middleware,
                                                                      caplog):
        use_middleware("tests.middleware.django_project.middleware.BrokenOverrides")
        c = client()
        with caplog.at_level(logging.WARNING, logger="beeline"):
            assert c.get("/hello/").status_code == 200
            assert c.get("/hello/").status_code == 200
        first, second = roots(beeline_recorder)
        for root in (first, second):
            assert root["request.path"] == "/hello/" and root["response.status_code"] == 200
        messages = [r.getMessage() for r in caplog.records if r.name == "beeline"]
        assert sum("get_context_from_request failed" in m for m in messages) == 1
        assert sum("get_context_from_response failed" in m for m in messages) == 1


class TestOverrides:
    def test_get_context_overrides_are_used(self, beeline_recorder, use_middleware):
        use_middleware("tests.middleware.django_project.middleware.CustomContext")
        client().get("/hello/", HTTP_X_TENANT="acme")
        root = beeline_recorder.find(name="django_http_get")
        assert root["app.tenant"] == "acme"
        assert root["app.response_bytes"] == len(b"HELLO")
        assert root["response.status_code"] == 200
        assert root["request.route"] == "hello/"


    def test_process_view_can_be_extended_with_super(self, beeline_recorder, use_middleware):
        from django.test import AsyncClient

        use_middleware("tests.middleware.django_project.middleware.ViewNotes")
        client().get("/users/ann/")

        async def go():
            return await AsyncClient().get("/async/")

        run_async(go)
        sync_root, async_root = roots(beeline_recorder)
        assert sync_root["django.view_func"] == "user_detail" and sync_root["request.route"] == "users/<str:name>/"
        assert async_root["django.view_func"] == "async_hello"
        for root in (sync_root, async_root):
            assert root["app.view_module"] == "tests.middleware.django_project.views"

    def test_a_create_http_event_override_serves_every_request(self, beeline_recorder, use_middleware):
        from django.test import AsyncClient

        from tests.middleware.django_project.middleware import WrappedEvent

        use_middleware("tests.middleware.django_project.middleware.WrappedEvent")
        WrappedEvent.calls = 0
        sync_response = client().get("/hello/")

        async def go():
            return await AsyncClient().get("/async/")

        async_response = run_async(go)
        assert WrappedEvent.calls == 2
        assert sync_response["X-Wrapped"] == async_response["X-Wrapped"] == "yes"
        sync_root, async_root = roots(beeline_recorder)
        assert sync_root["request.path"] == "/hello/" and async_root["request.path"] == "/async/"
        assert sync_root["response.status_code"] == async_root["response.status_code"] == 200

    def test_the_async_middleware_needs_no_thread_for_process_view(self):
        from asgiref.sync import iscoroutinefunction

        from beeline.middleware.django import HoneyMiddleware, HoneyMiddlewareHttp

        async def get_response(request):
            return None

        for cls in (HoneyMiddleware, HoneyMiddlewareHttp):
            middleware = cls(get_response)
            assert iscoroutinefunction(middleware) and iscoroutinefunction(middleware.process_view)
            assert not iscoroutinefunction(cls(lambda request: None))

    def test_a_finished_request_is_freed_at_once(self, beeline_recorder):
        """No reference cycle through the request: memory goes back when the server lets go."""
        from django.http import HttpResponse
        from django.test import RequestFactory

        from beeline.middleware.django import HoneyMiddleware

        middleware = HoneyMiddleware(lambda request: HttpResponse("ok"))
        request = RequestFactory().get("/hello/")
        alive = weakref.ref(request)
        gc.disable()
        try:
            response = middleware(request)
            del request, response
            assert alive() is None
        finally:
            gc.enable()
        assert beeline_recorder.find(name="django_http_get")["response.status_code"] == 200

    def test_request_meta_is_never_logged(self, beeline_recorder_factory, caplog):
        beeline_recorder_factory(debug=True)
        with caplog.at_level(logging.DEBUG, logger="beeline"):
            client().get("/hello/", HTTP_COOKIE="sessionid=s3cr3t-value", HTTP_AUTHORIZATION="Bearer t0ken")
        logged = " ".join(r.getMessage() for r in caplog.records)
        assert "s3cr3t-value" not in logged and "t0ken" not in logged


class TestRequestFields:
    """The root's request fields are read straight from META on the usual path; they must equal,
    value and type, what asking Django field by field gives, whatever the request looks like."""

    CASES = [
        ("plain", {}, {}),
        ("query", {"QUERY_STRING": "a=1&b=2&a=3&empty="}, {}),
        ("no host header", {"HTTP_HOST": None}, {}),
        ("empty host header", {"HTTP_HOST": ""}, {}),
        ("host with port", {"HTTP_HOST": "localhost:8443"}, {}),
        ("refused host", {"HTTP_HOST": "evil.example"}, {}),
        ("host header", {"HTTP_HOST": "testserver"}, {}),
        ("forwarded host, not trusted", {"HTTP_HOST": "testserver", "HTTP_X_FORWARDED_HOST": "proxy.example"}, {}),
        ("forwarded host, trusted", {"HTTP_HOST": "testserver", "HTTP_X_FORWARDED_HOST": "localhost"},
         {"USE_X_FORWARDED_HOST": True}),
        ("forwarded host, trusted, refused", {"HTTP_HOST": "testserver", "HTTP_X_FORWARDED_HOST": "evil.example"},
         {"USE_X_FORWARDED_HOST": True}),
        ("https", {"wsgi.url_scheme": "https", "SERVER_PORT": "443"}, {}),
        ("https from a proxy header", {"HTTP_X_FORWARDED_PROTO": "https"},
         {"SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https")}),
        ("broken proxy header setting", {}, {"SECURE_PROXY_SSL_HEADER": ("only one",)}),
        ("too many query fields", {"QUERY_STRING": "a=1&b=2&c=3"}, {"DATA_UPLOAD_MAX_NUMBER_FIELDS": 2}),
        ("xhr, body, agent", {"HTTP_X_REQUESTED_WITH": "XMLHttpRequest", "CONTENT_LENGTH": "12",
                              "HTTP_USER_AGENT": "agent/2", "REQUEST_METHOD": "PATCH"}, {}),
        ("no method", {"REQUEST_METHOD": None}, {}),
    ]

    @staticmethod
    def wsgi_request(meta_changes: dict):
        from django.test import RequestFactory

        request = RequestFactory().get("/hello/")
        for key, value in meta_changes.items():
            if value is None:
                request.META.pop(key, None)
            else:
                request.META[key] = value
        if "REQUEST_METHOD" in meta_changes:
            request.method = meta_changes["REQUEST_METHOD"]
        return request

    @pytest.mark.parametrize("label, meta_changes, settings_changes", CASES, ids=[c[0] for c in CASES])
    def test_the_quick_path_equals_the_careful_one(self, label, meta_changes, settings_changes):
        from django.test import override_settings

        from beeline.middleware import django as mw

        with override_settings(**settings_changes):
            quick = mw.request_context(self.wsgi_request(meta_changes))
            careful = mw._careful_request_context(self.wsgi_request(meta_changes))
        assert quick == careful
        assert [type(v) for v in quick.values()] == [type(v) for v in careful.values()]

    def test_values_on_the_quick_path(self):
        from django.test import override_settings

        from beeline.middleware import django as mw

        request = self.wsgi_request({"QUERY_STRING": "a=1&a=2&b=", "HTTP_HOST": "evil.example"})
        context = mw._quick_request_context(request)
        assert context["request.query"] == {"a": "2", "b": ""}
        assert context["request.host"] == "evil.example"
        assert context["request.secure"] is False and context["request.scheme"] == "http"
        with override_settings(USE_X_FORWARDED_HOST=True):
            forwarded = self.wsgi_request({"HTTP_HOST": "testserver", "HTTP_X_FORWARDED_HOST": "localhost:81"})
            assert mw.request_context(forwarded)["request.host"] == "localhost:81"

    def test_a_query_set_by_earlier_code_is_the_one_recorded(self):
        from django.http import QueryDict

        from beeline.middleware import django as mw

        request = self.wsgi_request({})
        request.GET = QueryDict("set=by-middleware")
        assert mw.request_context(request)["request.query"] == {"set": "by-middleware"}

    def test_request_classes_with_their_own_host_or_scheme_are_asked(self):
        from django.core.handlers.wsgi import WSGIRequest

        from beeline.middleware import django as mw

        class BehindTerminator(WSGIRequest):
            def is_secure(self):
                return True

        class FixedHost(WSGIRequest):
            def get_host(self):
                return "canonical.example"

        base = self.wsgi_request({})
        assert mw._quick_request_context(BehindTerminator(base.environ)) is None
        assert mw.request_context(BehindTerminator(base.environ))["request.secure"] is True
        assert mw.request_context(FixedHost(base.environ))["request.host"] == "canonical.example"

    def test_asgi_requests_take_the_quick_path_with_the_same_fields(self):
        from django.test import AsyncRequestFactory

        from beeline.middleware import django as mw

        factory = AsyncRequestFactory()
        for build in (lambda: factory.get("/hello/", {"x": "1"}, headers={"user-agent": "a/1"}),
                      lambda: factory.post("/echo/", "k=v", content_type=FORM, secure=True)):
            quick = mw._quick_request_context(build())
            assert quick is not None
            assert quick == mw._careful_request_context(build())


class TestDjangoRequestAdapter:
    def test_headers_are_read_from_meta_under_their_wsgi_names(self):
        from django.test import RequestFactory

        from beeline.middleware.django import DjangoRequest

        request = RequestFactory().post("/echo/", "k=v", content_type=FORM, HTTP_X_HONEYCOMB_TRACE="1;trace_id=t",
                                        HTTP_TRACEPARENT="")
        adapter = DjangoRequest(request)
        for _ in range(2):  # the second time from the name cache
            assert adapter.header("X-Honeycomb-Trace") == "1;trace_id=t"
            assert adapter.header("x-honeycomb-trace") == "1;trace_id=t"
            assert adapter.header("Content-Type") == FORM
            assert adapter.header("content-length") == "3"
            assert adapter.header("traceparent") == ""
            assert adapter.header("X-Missing") is None
        request.META["CONTENT_TYPE"] = ""  # WSGI servers give an absent Content-Type as ""
        assert adapter.header("Content-Type") is None

    def test_an_odd_response_object_is_recorded_without_a_status(self, beeline_recorder, caplog):
        from django.test import RequestFactory

        from beeline.middleware.django import HoneyMiddleware

        class Odd:
            status_code = "not a number"

        odd = Odd()
        with caplog.at_level(logging.WARNING, logger="beeline"):
            assert HoneyMiddleware(lambda request: odd)(RequestFactory().get("/hello/")) is odd
        root = beeline_recorder.find(name="django_http_get")
        assert root["response.status_code"] is None
        assert any("get_context_from_response failed" in r.getMessage() for r in caplog.records)
        assert active_span() is None


class TestBody:
    def test_the_body_stream_is_left_alone_by_default(self, beeline_recorder):
        response = client().post("/echo/", {"field": "value", "upload": _upload()})
        assert "body_length" in response.json()
        assert "request.post" not in beeline_recorder.find(name="django_http_post")

    def test_with_post_records_the_form(self, beeline_recorder, use_middleware):
        use_middleware(project.HONEY_POST)
        client().post("/echo/?x=1", "field=value", content_type=FORM)
        root = beeline_recorder.find(name="django_http_post")
        assert root["request.post"] == {"field": "value"}
        assert root["request.query"] == {"x": "1"}

    def test_with_post_consumes_a_multipart_body_as_documented(self, beeline_recorder, use_middleware):
        use_middleware(project.HONEY_POST)
        response = client().post("/echo/", {"field": "value", "upload": _upload()})
        assert response.json() == {"body_error": "RawPostDataException"}
        assert beeline_recorder.find(name="django_http_post")["request.post"] == {"field": "value"}


FORM = "application/x-www-form-urlencoded"


def _upload():
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("a.txt", b"contents")


# ---- propagation ---------------------------------------------------------------------------------

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"


class TestPropagation:
    def test_honeycomb_header_continues_the_trace(self, beeline_recorder):
        context = base64.b64encode(json.dumps({"user": "ann"}).encode()).decode()
        header = f"1;trace_id={TRACE_ID},parent_id={PARENT_ID},context={context}"
        client().get("/hello/", HTTP_X_HONEYCOMB_TRACE=header)
        root = beeline_recorder.find(name="django_http_get")
        assert root["trace.trace_id"] == TRACE_ID and root["trace.parent_id"] == PARENT_ID
        assert root["meta.span_type"] == "subroot"
        assert root["app.user"] == "ann"
        assert beeline_recorder.find(name="shout")["app.user"] == "ann"

    def test_w3c_traceparent_continues_the_trace(self, beeline_recorder):
        client().get("/hello/", HTTP_TRACEPARENT=f"00-{TRACE_ID}-{PARENT_ID}-01")
        root = beeline_recorder.find(name="django_http_get")
        assert root["trace.trace_id"] == TRACE_ID and root["trace.parent_id"] == PARENT_ID
        assert beeline_recorder.find(name="greeting")["trace.trace_id"] == TRACE_ID

    def test_a_custom_parser_hook_is_honoured(self, beeline_recorder_factory):
        from django.http import HttpRequest

        seen = []

        def hook(request):
            seen.append((request.method(), request.path(), request.host(), request.query(),
                         isinstance(request.middleware_request(), HttpRequest)))
            value = request.header("X-Request-Chain")
            return PropagationContext(*value.split(":"), {"via": "custom"}) if value else None

        rec = beeline_recorder_factory(http_trace_parser_hook=hook)
        client().get("/hello/?a=1", HTTP_X_REQUEST_CHAIN=f"{TRACE_ID}:{PARENT_ID}")
        assert seen == [("GET", "/hello/", "testserver", "a=1", True)]
        root = rec.find(name="django_http_get")
        assert (root["trace.trace_id"], root["trace.parent_id"]) == (TRACE_ID, PARENT_ID)
        assert root["app.via"] == "custom"

    def test_a_malformed_header_starts_a_new_trace(self, beeline_recorder):
        response = client().get("/hello/", HTTP_X_HONEYCOMB_TRACE="1;trace_id=,parent_id=", HTTP_TRACEPARENT="junk")
        assert response.status_code == 200
        root = beeline_recorder.find(name="django_http_get")
        assert root["trace.parent_id"] is None and root["meta.span_type"] == "root"


# ---- database spans ------------------------------------------------------------------------------


class TestDatabase:
    def test_queries_on_every_connection_become_spans_with_rollups(self, beeline_recorder):
        response = client().get("/db/")
        assert response.status_code == 200 and response.json()["failed"]
        root = beeline_recorder.find(name="django_http_get")
        queries = beeline_recorder.spans(name="django_sqlite_query")
        assert len(queries) == 4
        for query in queries:
            assert_shape(query, REFERENCE_DB_FIELDS)
            assert query["type"] == "db"
            assert query["trace.trace_id"] == root["trace.trace_id"]
            assert query["trace.parent_id"] == root["trace.span_id"]
            assert query["db.call_count"] == 1.0
            assert query["db.total_duration"] == query["db.duration"]
        insert, count, other, failing = queries
        assert insert["db.query"].startswith("INSERT INTO")
        assert list(insert["db.query_args"]) == ["from-db-view"]
        assert isinstance(insert["db.last_insert_id"], int) and insert["db.last_insert_id"] > 0
        assert "db.rows_affected" in count
        assert other["db.query"] == "SELECT count(*) FROM other_items WHERE label = %s"
        assert other["db.query_args"] == ["x"]
        assert failing["db.error"] == "<class 'django.db.utils.OperationalError'>"
        assert failing["db.error_detail"] == "no such table: no_such_table"
        assert failing["app.exception_type"] == failing["db.error"]
        assert root["rollup.db.call_count"] == 4.0
        assert root["rollup.db.total_duration"] == pytest.approx(sum(q["db.duration"] for q in queries))

    def test_http_only_middleware_records_no_queries(self, beeline_recorder, use_middleware):
        use_middleware(project.HONEY_HTTP)
        assert client().get("/db/").status_code == 200
        assert beeline_recorder.spans(name="django_sqlite_query") == []
        root = beeline_recorder.find(name="django_http_get")
        assert "rollup.db.call_count" not in root

    def test_untraced_code_inside_a_request_stays_untraced(self, beeline_recorder):
        assert client().get("/untraced/").status_code == 200
        root = beeline_recorder.find(name="django_http_get")
        (query,) = beeline_recorder.spans(name="django_sqlite_query")
        assert query["trace.parent_id"] == root["trace.span_id"]
        assert root["rollup.db.call_count"] == 1.0
        assert len(beeline_recorder.traces()) == 1

    def test_queries_outside_a_request_are_not_traced(self, beeline_recorder):
        from tests.middleware.django_project.models import Note

        client().get("/hello/")  # the wrapper is installed on this thread's connections now
        Note.objects.count()
        with beeline.tracer("job"):
            Note.objects.count()
        assert beeline_recorder.spans(name="django_sqlite_query") == []

    def test_the_public_wrapper_works_on_its_own(self, beeline_recorder):
        from django.db import connection

        from beeline.middleware.django import HoneyDBWrapper
        from tests.middleware.django_project.models import Note

        with connection.execute_wrapper(HoneyDBWrapper()):
            with beeline.tracer("job"):
                Note.objects.count()
            Note.objects.count()
        job = beeline_recorder.find(name="job")
        inside, alone = beeline_recorder.spans(name="django_sqlite_query")
        assert inside["trace.parent_id"] == job["trace.span_id"]
        # With no trace active the reference's wrapper started one per query; so does ours.
        assert alone["meta.span_type"] == "root" and alone["trace.trace_id"] != job["trace.trace_id"]
        assert job["rollup.db.call_count"] == 1.0

    def test_connections_opened_before_the_middleware_are_wrapped_when_a_request_starts(self, beeline_recorder):
        """A persistent connection that a thread opened before any HoneyMiddleware existed gets
        the wrapper from `request_started`, which Django sends in the thread that will query."""
        from beeline.middleware import django_db
        from tests.middleware.django_project.models import Note

        django_db.uninstall()
        try:
            with ThreadPoolExecutor(max_workers=1) as worker:  # one thread: one connection
                assert worker.submit(Note.objects.count).result(timeout=10) >= 0
                c = client()
                c.get("/hello/")  # builds the middleware (and installs) in this thread
                assert worker.submit(c.get, "/db/").result(timeout=10).status_code == 200
                worker.submit(_close_connections).result(timeout=10)
        finally:
            django_db.install()
        assert len(beeline_recorder.spans(name="django_sqlite_query")) == 4

    def test_a_thread_that_already_served_requests_wraps_again_after_a_reinstall(self, beeline_recorder):
        """Each thread looks for unwrapped connections once per install: a connection it kept
        open while the wrapper was uninstalled is found again after the next install."""
        from beeline.middleware import django_db
        from tests.middleware.django_project.models import Note

        c = client()
        with ThreadPoolExecutor(max_workers=1) as worker:  # one thread: one connection
            try:
                assert worker.submit(c.get, "/hello/").result(timeout=10).status_code == 200
                assert worker.submit(Note.objects.count).result(timeout=10) >= 0
                worker.submit(django_db.uninstall).result(timeout=10)  # unwraps that thread's connection
                django_db.install()  # from this thread
                assert worker.submit(c.get, "/db/").result(timeout=10).status_code == 200
            finally:
                django_db.install()
                worker.submit(_close_connections).result(timeout=10)
        assert len(beeline_recorder.spans(name="django_sqlite_query")) == 4

    def test_one_span_per_query_when_wrapped_twice(self, beeline_recorder):
        from django.db import connection

        from beeline.middleware.django import HoneyDBWrapper
        from tests.middleware.django_project.models import Note

        client().get("/hello/")
        with connection.execute_wrapper(HoneyDBWrapper()):
            with beeline.tracer("job"):
                Note.objects.count()
        assert len(beeline_recorder.spans(name="django_sqlite_query")) == 1


# ---- streaming -----------------------------------------------------------------------------------


class TestStreaming:
    def test_the_root_ends_after_the_last_chunk(self, beeline_recorder):
        response = client().get("/stream/")
        assert roots(beeline_recorder) == []  # the body has not been produced yet
        # ...and the request's spans are not left active where the middleware ran meanwhile.
        assert active_span() is None
        assert b"".join(response.streaming_content).endswith(b"last")
        root = beeline_recorder.find(name="django_http_get")
        assert root["response.status_code"] == 200 and root["request.route"] == "stream/"
        work = beeline_recorder.find(name="chunk_work")
        query = beeline_recorder.find(name="django_sqlite_query")
        assert work["trace.parent_id"] == root["trace.span_id"]
        assert query["trace.parent_id"] == work["trace.span_id"]
        assert root["rollup.db.call_count"] == 1.0
        assert beeline_recorder.events[-1]["name"] == "django_http_get"  # finished last
        assert active_span() is None

    def test_closing_the_response_early_ends_the_trace(self, beeline_recorder):
        response = client().get("/stream/")
        chunks = iter(response.streaming_content)
        assert next(chunks) == b"first,"
        assert roots(beeline_recorder) == []
        response.close()
        assert len(roots(beeline_recorder)) == 1
        assert beeline_recorder.spans(name="chunk_work") == []

    def test_a_response_dropped_without_close_still_ends_its_trace(self, beeline_recorder):
        response = client().get("/stream/")
        assert roots(beeline_recorder) == []
        del response
        gc.collect()
        assert len(roots(beeline_recorder)) == 1

    def test_a_body_that_raises_records_the_error(self, beeline_recorder):
        response = client().get("/stream-fail/")
        with pytest.raises(RuntimeError, match="stream broke"):
            b"".join(response.streaming_content)
        root = beeline_recorder.find(name="django_http_get")
        assert root["response.status_code"] == 200
        assert root["request.error"] == "<class 'RuntimeError'>"
        assert root["request.error_detail"] == "stream broke"

    def test_file_response_ends_when_closed(self, beeline_recorder):
        response = client().get("/file/")
        assert roots(beeline_recorder) == []
        assert len(b"".join(response.streaming_content)) == 10000
        response.close()
        root = beeline_recorder.find(name="django_http_get")
        assert root["response.status_code"] == 200 and root["django.view_func"] == "file_view"


# ---- async (Django's ASGI handler) ------------------------------------------------------------------


def run_async(coro_fn):
    return asyncio.run(coro_fn())


class TestAsync:
    def test_async_view_with_user_span_and_queries(self, beeline_recorder):
        from django.test import AsyncClient

        async def go():
            return await AsyncClient().get("/async/", {"k": "v"})

        response = run_async(go)
        assert response.status_code == 200 and response.content.startswith(b"async ")
        root = beeline_recorder.find(name="django_http_get")
        assert_shape(root, {**REFERENCE_ROOT_FIELDS, **ROUTE_FIELDS})
        assert root["request.query"] == {"k": "v"} and root["django.view_func"] == "async_hello"
        work = beeline_recorder.find(name="async_work")
        query = beeline_recorder.find(name="django_sqlite_query")
        assert work["trace.parent_id"] == root["trace.span_id"]
        # The query ran in a worker thread (sync_to_async) and still joined the request's trace.
        assert query["trace.parent_id"] == work["trace.span_id"]
        assert root["rollup.db.call_count"] == 1.0

    def test_async_view_that_raises(self, beeline_recorder):
        from django.test import AsyncClient

        async def go():
            return await AsyncClient(raise_request_exception=False).get("/async-boom/")

        assert run_async(go).status_code == 500
        root = beeline_recorder.find(name="django_http_get")
        assert root["response.status_code"] == 500
        assert root["request.error"] == "<class 'ValueError'>" and root["request.error_detail"] == "async kaboom"

    def test_async_streaming_ends_after_the_last_chunk(self, beeline_recorder):
        from django.test import AsyncClient

        async def go():
            response = await AsyncClient().get("/astream/")
            assert roots(beeline_recorder) == []
            return b"".join([chunk async for chunk in response.streaming_content])

        assert run_async(go).startswith(b"a,")
        root = beeline_recorder.find(name="django_http_get")
        work = beeline_recorder.find(name="achunk_work")
        assert work["trace.parent_id"] == root["trace.span_id"]
        assert beeline_recorder.find(name="django_sqlite_query")["trace.parent_id"] == work["trace.span_id"]

    def test_concurrent_async_requests_never_mix(self, beeline_recorder):
        from django.test import AsyncClient

        tags = [f"a{i}" for i in range(5)]

        async def go():
            c = AsyncClient()
            return await asyncio.gather(*(
                c.get("/aconcurrent/", {"tag": tag, "group": "async-client", "n": len(tags)}) for tag in tags))

        assert [r.content.decode() for r in run_async(go)] == tags
        assert_traces_separate(beeline_recorder, tags, "aconcurrent_work")


def assert_traces_separate(rec, tags, work_name):
    """Each request's spans form one trace, tagged with that request's tag only."""
    traces = rec.traces()
    assert len(traces) == len(tags)
    seen = set()
    for events in traces.values():
        by_name = {e["name"]: e for e in events}
        assert sorted(by_name) == sorted(["django_http_get", work_name, "django_sqlite_query"]), by_name.keys()
        root, work, query = by_name["django_http_get"], by_name[work_name], by_name["django_sqlite_query"]
        tag = root["request.query"]["tag"]
        assert root["app.tag"] == work["app.tag"] == query["app.tag"] == work["app.tag_seen"] == tag
        assert work["trace.parent_id"] == root["trace.span_id"]
        assert query["trace.parent_id"] == work["trace.span_id"]
        assert query["db.query_args"] in ([tag], (tag,))
        assert root["rollup.db.call_count"] == 1.0
        seen.add(tag)
    assert seen == set(tags)


# ---- real servers ----------------------------------------------------------------------------------


def _close_connections():
    from django.db import connections

    connections.close_all()


def wsgi_app():
    from django.core.handlers.wsgi import WSGIHandler

    return WSGIHandler()


def asgi_app():
    from django.core.handlers.asgi import ASGIHandler

    return ASGIHandler()


def concurrently(port, path, tags, group):
    with ThreadPoolExecutor(max_workers=len(tags)) as pool:
        futures = [pool.submit(fetch, port, f"{path}?tag={t}&group={group}&n={len(tags)}") for t in tags]
        return [f.result(timeout=30) for f in futures]


class TestServers:
    def test_threaded_wsgi_server_keeps_concurrent_requests_apart(self, beeline_recorder):
        tags = [f"w{i}" for i in range(6)]
        with WSGIServerThread(wsgi_app()) as server:
            results = concurrently(server.port, "/concurrent/", tags, "wsgi")
            assert [(status, body.decode()) for status, _, body in results] == [(200, t) for t in tags]
            assert wait_until(lambda: len(roots(beeline_recorder)) == len(tags))
        assert_traces_separate(beeline_recorder, tags, "concurrent_work")
        for root in roots(beeline_recorder):
            assert root["request.host"] == f"127.0.0.1:{server.port}"
            assert root["request.remote_addr"] == "127.0.0.1"

    def test_uvicorn_keeps_concurrent_async_requests_apart(self, beeline_recorder):
        tags = [f"u{i}" for i in range(6)]
        with UvicornThread(asgi_app()) as server:
            results = concurrently(server.port, "/aconcurrent/", tags, "uvicorn")
            assert [(status, body.decode()) for status, _, body in results] == [(200, t) for t in tags]
            assert wait_until(lambda: len(roots(beeline_recorder)) == len(tags))
        assert_traces_separate(beeline_recorder, tags, "aconcurrent_work")

    def test_uvicorn_runs_sync_views_in_threads_and_keeps_them_apart(self, beeline_recorder):
        tags = [f"s{i}" for i in range(4)]
        with UvicornThread(asgi_app()) as server:
            results = concurrently(server.port, "/concurrent/", tags, "uvicorn-sync")
            assert [status for status, _, _ in results] == [200] * len(tags)
            assert wait_until(lambda: len(roots(beeline_recorder)) == len(tags))
        assert_traces_separate(beeline_recorder, tags, "concurrent_work")

    # Django warns that it buffers a synchronous iterator under ASGI: that path is under test here.
    @pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators")
    @pytest.mark.parametrize("path, work", [("/stream/", "chunk_work"), ("/astream/", "achunk_work")])
    def test_uvicorn_streams_and_the_trace_covers_the_body(self, beeline_recorder, path, work):
        with UvicornThread(asgi_app()) as server:
            status, _, body = fetch(server.port, path)
            assert status == 200 and body
            assert wait_until(lambda: len(roots(beeline_recorder)) == 1)
        root = beeline_recorder.find(name="django_http_get")
        span = beeline_recorder.find(name=work)
        assert span["trace.parent_id"] == root["trace.span_id"]
        assert beeline_recorder.find(name="django_sqlite_query")["trace.parent_id"] == span["trace.span_id"]

    def test_a_client_leaving_mid_stream_never_leaves_the_trace_open(self, beeline_recorder):
        from tests.middleware.django_project import views

        with UvicornThread(asgi_app()) as server:
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                sock.sendall(b"GET /slow-astream/?tag=gone HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                received = b""
                while b"chunk 0" not in received:
                    data = sock.recv(4096)
                    assert data, "the server closed before the first chunk"
                    received += data
            assert wait_until(lambda: len(roots(beeline_recorder)) == 1)
        root = beeline_recorder.find(name="django_http_get")
        assert root["response.status_code"] == 200 and root["request.route"] == "slow-astream/"
        assert views.SLOW_CHUNKS["gone"] >= 1
        assert active_span() is None

    def test_wsgi_server_streams_and_the_trace_covers_the_body(self, beeline_recorder):
        with WSGIServerThread(wsgi_app()) as server:
            status, _, body = fetch(server.port, "/stream/")
            assert status == 200 and body.endswith(b"last")
            assert wait_until(lambda: len(roots(beeline_recorder)) == 1)
        root = beeline_recorder.find(name="django_http_get")
        assert beeline_recorder.find(name="chunk_work")["trace.parent_id"] == root["trace.span_id"]

    def test_file_response_keeps_the_servers_file_wrapper_and_ends_when_sent(self, beeline_recorder):
        with WSGIServerThread(wsgi_app()) as server:
            status, _, body = fetch(server.port, "/file/")
            assert status == 200 and body == b"x" * 10000
            assert wait_until(lambda: len(roots(beeline_recorder)) == 1)
        root = beeline_recorder.find(name="django_http_get")
        assert root["response.status_code"] == 200 and root["django.view_func"] == "file_view"

    def test_events_on_the_wire_keep_the_reference_names_and_types(self):
        from tests.receiver import LoopbackReceiver

        with LoopbackReceiver() as rx:
            beeline.init(writekey="0" * 32, dataset="d", service_name="s", api_host=rx.url)
            with WSGIServerThread(wsgi_app()) as server:
                status, _, _ = fetch(server.port, "/db/?x=1", headers={"User-Agent": "wire/1"})
                assert status == 200
            beeline.close()
            events = rx.wait_for(5, timeout=10)
        data = [e["data"] for e in events]
        root = next(d for d in data if d["name"] == "django_http_get")
        spec = {**REFERENCE_ROOT_FIELDS, **ROUTE_FIELDS, "rollup.db.call_count": float,
                "rollup.db.total_duration": float}
        spec["request.content_length"] = str  # wsgiref always sets CONTENT_LENGTH, "" for a GET
        assert_shape(root, spec)
        assert root["request.query"] == {"x": "1"} and root["request.user_agent"] == "wire/1"
        assert root["rollup.db.call_count"] == 4.0
        queries = [d for d in data if d["name"] == "django_sqlite_query"]
        assert len(queries) == 4
        for query in queries:
            assert_shape(query, {**REFERENCE_DB_FIELDS, "db.query_args": (list, NoneType)})


def test_the_example_app_runs_with_no_write_key():
    """`examples/django/app.py --self-test` serves real requests and prints their traces."""
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HONEYCOMB_", "BEELINE_"))}
    done = subprocess.run([sys.executable, str(root / "examples" / "django" / "app.py"), "--self-test"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "statuses: [200, 200, 200, 404]" in done.stderr
    for name in ("django_http_post", "django_http_get", "django_sqlite_query", "render_report"):
        assert name in done.stderr
