"""urllib.request: client spans, and trace headers as the server on 127.0.0.1 receives them."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import pytest

import beeline
import beeline.patch.urllib as urllib_patch
from beeline.propagation.honeycomb import unmarshal_propagation_context

HEADER = "x-honeycomb-trace"


def parent_in_header(recorded):
    value = recorded.header(HEADER)
    assert value is not None, f"no {HEADER} header in {recorded.headers}"
    return unmarshal_propagation_context(value)[1]


class TestSpans:
    def test_string_url(self, beeline_recorder, server):
        url = server.url + "/ok"
        with beeline.tracer("request") as root:
            with urllib.request.urlopen(url, timeout=5) as response:
                assert response.read() == b"ok"
        span = beeline_recorder.find(name="urllib_GET")
        assert span["meta.type"] == "http_client"
        assert span["request.method"] == "GET"
        # honeycomb-beeline's field name, kept: `uri`, holding the full URL.
        assert span["request.uri"] == url
        assert span["response.status_code"] == 200
        assert span["response.content_type"] == "text/plain"
        assert span["response.content_length"] == "2"
        assert span["trace.parent_id"] == root.id
        assert parent_in_header(server.last()) == span["trace.span_id"]

    def test_request_object_with_data_and_method(self, beeline_recorder, server):
        request = urllib.request.Request(server.url + "/ok", data=b"x=1", method="PUT")
        with beeline.tracer("request"):
            urllib.request.urlopen(request, timeout=5).close()
        span = beeline_recorder.find(name="urllib_PUT")
        assert span["request.method"] == "PUT"
        assert server.last().method == "PUT"
        assert parent_in_header(server.last()) == span["trace.span_id"]

    def test_post_inferred_from_data(self, beeline_recorder, server):
        with beeline.tracer("request"):
            urllib.request.urlopen(server.url + "/ok", data=b"a=b", timeout=5).close()
        beeline_recorder.find(name="urllib_POST")
        assert server.last().method == "POST"

    def test_urlopen_imported_before_the_patch(self, beeline_recorder, server):
        urllib_patch.unpatch()
        try:
            from urllib.request import urlopen as early_urlopen
        finally:
            urllib_patch.patch()
        with beeline.tracer("request"):
            early_urlopen(server.url + "/ok", timeout=5).close()
        span = beeline_recorder.find(name="urllib_GET")
        assert parent_in_header(server.last()) == span["trace.span_id"]

    def test_opener_director_open(self, beeline_recorder, server):
        opener = urllib.request.build_opener()
        with beeline.tracer("request"):
            opener.open(server.url + "/ok", timeout=5).close()
        beeline_recorder.find(name="urllib_GET")
        assert server.last().header(HEADER) is not None

    def test_outside_a_trace_nothing_is_recorded_or_sent(self, beeline_recorder, server):
        urllib.request.urlopen(server.url + "/ok", timeout=5).close()
        assert beeline_recorder.events == []
        assert server.last().header(HEADER) is None

    def test_non_http_urls_are_traced_without_headers(self, beeline_recorder, tmp_path):
        page = tmp_path / "page.txt"
        page.write_text("local")
        with beeline.tracer("request"):
            with urllib.request.urlopen(page.as_uri()) as response:
                assert response.read() == b"local"
        span = beeline_recorder.find(name="urllib_GET")
        assert span["request.uri"] == page.as_uri()
        assert span["response.content_type"] == "text/plain"


class TestErrors:
    def test_http_error_carries_its_status(self, beeline_recorder, server):
        with beeline.tracer("request"):
            with pytest.raises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(server.url + "/status/404", timeout=5)
        caught.value.close()
        assert caught.value.code == 404
        span = beeline_recorder.find(name="urllib_GET")
        assert span["response.status_code"] == 404
        assert span["response.content_type"] == "text/plain"
        assert span["request.error_type"] == "<class 'urllib.error.HTTPError'>"
        assert span["request.error"] == "HTTP Error 404: Not Found"

    def test_connection_refused(self, beeline_recorder, refused_url):
        with beeline.tracer("request"):
            with pytest.raises(urllib.error.URLError):
                urllib.request.urlopen(refused_url, timeout=5)
        span = beeline_recorder.find(name="urllib_GET")
        assert span["request.error_type"] == "<class 'urllib.error.URLError'>"
        assert "refused" in span["request.error"].lower()
        assert "response.status_code" not in span

    def test_timeout(self, beeline_recorder, server):
        with beeline.tracer("request"):
            with pytest.raises(socket.timeout):  # TimeoutError from Python 3.10 on
                urllib.request.urlopen(server.url + "/slow?seconds=2", timeout=0.2).read()
        span = beeline_recorder.find(name="urllib_GET")
        assert "timed out" in span["request.error"].lower()


class TestHeaders:
    def test_redirect_is_one_span_and_every_hop_names_it(self, beeline_recorder, server):
        start = server.url + "/redirect?to=" + server.url + "/ok"
        with beeline.tracer("request"):
            with urllib.request.urlopen(start, timeout=5) as response:
                assert response.read() == b"ok"
        span = beeline_recorder.find(name="urllib_GET")
        assert span["request.uri"] == start
        assert span["response.status_code"] == 200
        assert [r.path for r in server.requests] == ["/redirect", "/ok"]
        assert [parent_in_header(r) for r in server.requests] == [span["trace.span_id"]] * 2

    def test_a_header_the_caller_set_is_kept(self, beeline_recorder, server):
        request = urllib.request.Request(server.url + "/ok", headers={"X-Honeycomb-Trace": "1;trace_id=mine"})
        with beeline.tracer("request"):
            urllib.request.urlopen(request, timeout=5).close()
        assert server.last().header(HEADER) == "1;trace_id=mine"

    def test_a_reused_request_does_not_keep_an_old_trace_header(self, beeline_recorder, server):
        request = urllib.request.Request(server.url + "/ok")
        with beeline.tracer("request"):
            urllib.request.urlopen(request, timeout=5).close()
        assert not request.has_header("X-honeycomb-trace")
        urllib.request.urlopen(request, timeout=5).close()
        traced, untraced = server.requests
        assert traced.header(HEADER) is not None
        assert untraced.header(HEADER) is None

    def test_a_reused_request_gets_a_fresh_header_in_the_next_trace(self, beeline_recorder, server):
        request = urllib.request.Request(server.url + "/ok")
        for _ in range(2):
            with beeline.tracer("request"):
                urllib.request.urlopen(request, timeout=5).close()
        first, second = beeline_recorder.spans(name="urllib_GET")
        assert [parent_in_header(r) for r in server.requests] == [first["trace.span_id"], second["trace.span_id"]]


class TestPatching:
    def test_patching_twice_wraps_once_and_unpatch_undoes_it(self, beeline_recorder, server):
        assert urllib_patch.patch() is False
        try:
            assert urllib_patch.unpatch() is True
            assert urllib_patch.unpatch() is False
            with beeline.tracer("request"):
                urllib.request.urlopen(server.url + "/ok", timeout=5).close()
            assert beeline_recorder.spans(meta__type="http_client") == []
            assert server.last().header(HEADER) is None
        finally:
            assert urllib_patch.patch() is True
        with beeline.tracer("request"):
            urllib.request.urlopen(server.url + "/ok", timeout=5).close()
        assert len(beeline_recorder.spans(meta__type="http_client")) == 1
