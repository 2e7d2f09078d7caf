"""requests: client spans, and trace headers as the server on 127.0.0.1 receives them."""

from __future__ import annotations

import logging

import pytest
import requests

import beeline
import beeline.patch.requests as requests_patch
from beeline.internal import reset_warnings
from beeline.propagation import default, w3c
from beeline.propagation.honeycomb import unmarshal_propagation_context

HEADER = "x-honeycomb-trace"


def trace_header(recorded):
    value = recorded.header(HEADER)
    assert value is not None, f"no {HEADER} header in {recorded.headers}"
    return unmarshal_propagation_context(value)


class TestSpans:
    def test_module_function_makes_a_client_span_with_the_reference_fields(self, beeline_recorder, server):
        url = server.url + "/ok"
        with beeline.tracer("request") as root:
            response = requests.get(url)
        assert response.text == "ok"
        span = beeline_recorder.find(name="requests_GET")
        assert span["meta.type"] == "http_client"
        assert span["request.method"] == "GET"
        assert span["request.url"] == url
        assert span["response.status_code"] == 200
        assert span["response.content_type"] == "text/plain"
        # A header string, as honeycomb-beeline recorded it.
        assert span["response.content_length"] == "2"
        assert span["trace.parent_id"] == root.id
        assert span["trace.trace_id"] == root.trace_id
        assert "request.error" not in span

    def test_the_header_names_the_client_span_as_parent(self, beeline_recorder, server):
        with beeline.tracer("request") as root:
            requests.post(server.url + "/ok", data=b"payload")
        span = beeline_recorder.find(name="requests_POST")
        trace_id, parent_id, _ = trace_header(server.last())
        assert server.last().method == "POST"
        assert trace_id == root.trace_id
        assert parent_id == span["trace.span_id"]

    @pytest.mark.parametrize("method", ["get", "GET", "Get"])
    def test_span_name_and_method_are_uppercase_whatever_the_caller_wrote(self, beeline_recorder, server, method):
        with beeline.tracer("request"), requests.Session() as session:
            session.request(method, server.url + "/ok")
            requests.request(method, server.url + "/ok")
        spans = beeline_recorder.spans(meta__type="http_client")
        assert [s["name"] for s in spans] == ["requests_GET", "requests_GET"]
        assert [s["request.method"] for s in spans] == ["GET", "GET"]

    def test_session_methods(self, beeline_recorder, server):
        with beeline.tracer("request"), requests.Session() as session:
            session.get(server.url + "/ok")
            session.put(server.url + "/ok", data="x")
            session.delete(server.url + "/ok")
            session.head(server.url + "/ok")
        names = [s["name"] for s in beeline_recorder.spans(meta__type="http_client")]
        assert names == ["requests_GET", "requests_PUT", "requests_DELETE", "requests_HEAD"]
        assert all(r.header(HEADER) for r in server.requests)

    def test_error_status_is_recorded_without_error_fields(self, beeline_recorder, server):
        with beeline.tracer("request"):
            response = requests.get(server.url + "/status/503")
        assert response.status_code == 503
        span = beeline_recorder.find(name="requests_GET")
        assert span["response.status_code"] == 503
        assert "request.error" not in span

    def test_params_do_not_change_the_recorded_url(self, beeline_recorder, server):
        with beeline.tracer("request"):
            requests.get(server.url + "/ok", params={"q": "1"})
        assert beeline_recorder.find(name="requests_GET")["request.url"] == server.url + "/ok"
        assert server.last().path == "/ok"

    def test_credentials_in_the_url_are_not_recorded(self, beeline_recorder, server):
        url = f"http://user:s3cret@127.0.0.1:{server.port}/ok"
        with beeline.tracer("request"):
            requests.get(url)
        span = beeline_recorder.find(name="requests_GET")
        assert span["request.url"] == server.url + "/ok"
        assert "s3cret" not in repr(beeline_recorder.events)
        # The credentials still reach the server: only the span leaves them out.
        assert server.last().header("authorization").startswith("Basic ")

    def test_outside_a_trace_nothing_is_recorded_or_sent(self, beeline_recorder, server):
        requests.get(server.url + "/ok")
        with requests.Session() as session:
            session.get(server.url + "/ok")
        assert beeline_recorder.events == []
        assert [r.header(HEADER) for r in server.requests] == [None, None]

    def test_without_init_the_call_is_untouched(self, server):
        beeline.close()
        assert requests.get(server.url + "/ok").text == "ok"
        assert server.last().header(HEADER) is None

    def test_a_prepared_request_sent_directly_gets_its_own_span(self, beeline_recorder, server):
        with beeline.tracer("request") as root, requests.Session() as session:
            prepared = session.prepare_request(requests.Request("patch", server.url + "/ok", data="x"))
            session.send(prepared)
        span = beeline_recorder.find(name="requests_PATCH")
        assert span["trace.parent_id"] == root.id
        assert span["request.url"] == server.url + "/ok"
        assert span["response.status_code"] == 200
        assert trace_header(server.last())[1] == span["trace.span_id"]


class TestErrors:
    def test_connection_refused(self, beeline_recorder, refused_url):
        with beeline.tracer("request"):
            with pytest.raises(requests.ConnectionError):
                requests.get(refused_url, timeout=5)
        span = beeline_recorder.find(name="requests_GET")
        assert span["request.error_type"] == "<class 'requests.exceptions.ConnectionError'>"
        assert "refused" in span["request.error"].lower()
        assert "response.status_code" not in span

    def test_timeout(self, beeline_recorder, server):
        with beeline.tracer("request"):
            with pytest.raises(requests.Timeout):
                requests.get(server.url + "/slow?seconds=2", timeout=0.2)
        span = beeline_recorder.find(name="requests_GET")
        assert span["request.error_type"] == "<class 'requests.exceptions.ReadTimeout'>"
        assert "timed out" in span["request.error"].lower()

    def test_too_many_redirects_keeps_the_last_status(self, beeline_recorder, server):
        loop = server.url + "/redirect?to=" + server.url + "/redirect%3Fto%3D" + server.url + "/ok"
        with beeline.tracer("request"), requests.Session() as session:
            session.max_redirects = 1
            with pytest.raises(requests.TooManyRedirects):
                session.get(loop)
        span = beeline_recorder.find(name="requests_GET")
        assert span["request.error_type"] == "<class 'requests.exceptions.TooManyRedirects'>"
        assert span["response.status_code"] == 302


class TestHeaders:
    def test_session_headers_are_never_written(self, beeline_recorder, server):
        with requests.Session() as session:
            with beeline.tracer("request"):
                session.get(server.url + "/ok")
            assert HEADER not in {k.lower() for k in session.headers}
            # The reference left the header on the Session: it went out with this untraced call.
            session.get(server.url + "/ok")
        traced, untraced = server.requests
        assert traced.header(HEADER) is not None
        assert untraced.header(HEADER) is None

    @pytest.mark.parametrize("name", ["X-Honeycomb-Trace", "x-honeycomb-trace"])
    def test_a_header_the_caller_set_is_kept(self, beeline_recorder, server, name):
        with beeline.tracer("request"):
            requests.get(server.url + "/ok", headers={name: "1;trace_id=mine,parent_id=theirs"})
        assert server.last().header(HEADER) == "1;trace_id=mine,parent_id=theirs"

    def test_a_session_header_the_caller_set_is_kept(self, beeline_recorder, server):
        with beeline.tracer("request"), requests.Session() as session:
            session.headers["X-Honeycomb-Trace"] = "1;trace_id=fixed,parent_id=fixed"
            session.get(server.url + "/ok")
        assert server.last().header(HEADER) == "1;trace_id=fixed,parent_id=fixed"

    def test_none_for_the_header_keeps_it_off(self, beeline_recorder, server):
        with beeline.tracer("request"):
            requests.get(server.url + "/ok", headers={"X-Honeycomb-Trace": None})
        assert server.last().header(HEADER) is None
        beeline_recorder.find(name="requests_GET")

    def test_redirect_hops_carry_the_span_header(self, beeline_recorder, server):
        start = server.url + "/redirect?to=" + server.url + "/ok"
        with beeline.tracer("request"):
            response = requests.get(start)
        assert response.status_code == 200
        span = beeline_recorder.find(name="requests_GET")
        assert span["request.url"] == start
        assert span["response.status_code"] == 200
        assert [r.path for r in server.requests] == ["/redirect", "/ok"]
        assert [trace_header(r)[1] for r in server.requests] == [span["trace.span_id"]] * 2

    def test_trace_fields_travel_in_the_header(self, beeline_recorder, server):
        with beeline.tracer("request"):
            beeline.add_trace_field("tenant", "acme")
            requests.get(server.url + "/ok")
        _, _, fields = trace_header(server.last())
        assert fields == {"app.tenant": "acme"}

    def test_the_configured_propagation_hook_is_used(self, beeline_recorder_factory, server):
        beeline_recorder_factory(http_trace_propagation_hook=w3c.http_trace_propagation_hook)
        with beeline.tracer("request") as root:
            requests.get(server.url + "/ok")
        received = server.last()
        assert received.header(HEADER) is None
        assert received.header("traceparent").split("-")[1] == root.trace_id

    def test_both_formats(self, beeline_recorder_factory, server):
        beeline_recorder_factory(http_trace_propagation_hook=default.http_trace_propagation_hook_both)
        with beeline.tracer("request"):
            requests.get(server.url + "/ok")
        assert server.last().header(HEADER) and server.last().header("traceparent")

    def test_a_failing_propagation_hook_never_breaks_the_call(self, beeline_recorder_factory, server):
        def broken(context):
            raise RuntimeError("hook bug")

        recorder = beeline_recorder_factory(http_trace_propagation_hook=broken)
        with beeline.tracer("request"):
            assert requests.get(server.url + "/ok").status_code == 200
        assert server.last().header(HEADER) is None
        assert recorder.find(name="requests_GET")["response.status_code"] == 200

    def test_a_hook_returning_nonsense_never_breaks_the_call(self, beeline_recorder_factory, server, caplog):
        caplog.set_level(logging.WARNING, logger="beeline")
        reset_warnings()
        beeline_recorder_factory(http_trace_propagation_hook=lambda context: ["not", "a", "dict"])
        with beeline.tracer("request"):
            assert requests.get(server.url + "/ok").status_code == 200
        assert server.last().header(HEADER) is None
        assert any("trace headers" in r.getMessage() for r in caplog.records)


class TestPatching:
    def test_patching_twice_wraps_once_and_unpatch_undoes_it(self, beeline_recorder, server):
        assert requests_patch.patch() is False
        try:
            assert requests_patch.unpatch() is True
            assert requests_patch.unpatch() is False
            with beeline.tracer("request"):
                requests.get(server.url + "/ok")
            assert beeline_recorder.spans(meta__type="http_client") == []
            assert server.last().header(HEADER) is None
        finally:
            assert requests_patch.patch() is True
        with beeline.tracer("request"):
            requests.get(server.url + "/ok")
        assert len(beeline_recorder.spans(meta__type="http_client")) == 1
        assert server.last().header(HEADER) is not None
