"""The default hooks: Honeycomb first with W3C fallback, and headers that survive a real hop."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from beeline.propagation import DictRequest, PropagationContext, default, honeycomb

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
OTHER_TRACE = "0af7651916cd43dd8448eb211c80319c"
OTHER_SPAN = "b7ad6b7169203331"
HONEYCOMB_HEADER = f"1;trace_id={TRACE_ID},parent_id={SPAN_ID},context=eyJhcHAudXNlciI6ICJib2IifQ=="
TRACEPARENT = f"00-{OTHER_TRACE}-{OTHER_SPAN}-00"


class TestDefaultParser:
    def test_honeycomb_wins_when_both_are_valid(self) -> None:
        request = DictRequest({"X-Honeycomb-Trace": HONEYCOMB_HEADER, "traceparent": TRACEPARENT})
        assert default.http_trace_parser_hook(request) == PropagationContext(TRACE_ID, SPAN_ID, {"app.user": "bob"})

    def test_w3c_alone(self) -> None:
        request = DictRequest({"traceparent": TRACEPARENT, "tracestate": "k=v"})
        assert default.http_trace_parser_hook(request) == PropagationContext(
            OTHER_TRACE, OTHER_SPAN, {"traceflags": "00", "tracestate": "k=v"}
        )

    def test_unsupported_honeycomb_version_falls_back_to_w3c(self, beeline_warnings) -> None:
        request = DictRequest(
            {"X-Honeycomb-Trace": f"2;trace_id={TRACE_ID},parent_id={SPAN_ID}", "traceparent": TRACEPARENT}
        )
        assert default.http_trace_parser_hook(request) == PropagationContext(
            OTHER_TRACE, OTHER_SPAN, {"traceflags": "00"}
        )
        assert len(beeline_warnings.records) == 1
        assert "X-Honeycomb-Trace" in beeline_warnings.messages[0]

    @pytest.mark.parametrize(
        "bad",
        ["garbage", "1;trace_id", f"1;trace_id={TRACE_ID},context=!!!!", "1;context=e30="],
    )
    def test_malformed_honeycomb_falls_back_to_w3c(self, bad: str, beeline_warnings) -> None:
        request = DictRequest({"X-Honeycomb-Trace": bad, "traceparent": TRACEPARENT})
        assert default.http_trace_parser_hook(request).trace_id == OTHER_TRACE
        assert len(beeline_warnings.records) == 1

    def test_neither_header(self, beeline_warnings) -> None:
        assert default.http_trace_parser_hook(DictRequest({"Accept": "*/*"})) is None
        assert beeline_warnings.records == []

    def test_neither_header_is_settled_by_one_lookup_each(self, beeline_warnings) -> None:
        asked: list[str] = []

        class CountingRequest(DictRequest):
            def header(self, key: str):
                asked.append(key.lower())
                return super().header(key)

        assert default.http_trace_parser_hook(CountingRequest({"Accept": "*/*"})) is None
        assert sorted(asked) == ["traceparent", "x-honeycomb-trace"]
        assert beeline_warnings.records == []

    @pytest.mark.parametrize("blank", ["", "   "])
    def test_blank_headers_read_as_absent(self, blank: str, beeline_warnings) -> None:
        request = DictRequest({"X-Honeycomb-Trace": blank, "traceparent": blank})
        assert default.http_trace_parser_hook(request) is None
        assert beeline_warnings.records == []

    def test_a_failing_adapter_is_reported_not_raised(self, beeline_warnings) -> None:
        class BrokenRequest(DictRequest):
            def header(self, key: str):
                raise RuntimeError("adapter broke")

        assert default.http_trace_parser_hook(BrokenRequest({})) is None
        assert len(beeline_warnings.records) == 2  # one per format, as for malformed headers

    def test_both_malformed_gives_none_and_two_warnings(self, beeline_warnings) -> None:
        request = DictRequest({"X-Honeycomb-Trace": "bad", "traceparent": "also-bad"})
        assert default.http_trace_parser_hook(request) is None
        assert len(beeline_warnings.records) == 2

    def test_honeycomb_with_parent_only_falls_back_to_traceparent(self) -> None:
        # A parent in no trace is refused, so the request's other header decides.
        request = DictRequest({"X-Honeycomb-Trace": f"1;parent_id={SPAN_ID}", "traceparent": TRACEPARENT})
        ctx = default.http_trace_parser_hook(request)
        assert ctx is not None and ctx.trace_id == TRACEPARENT.split("-")[1]


class TestDefaultPropagation:
    def test_default_sends_honeycomb_only(self) -> None:
        ctx = PropagationContext(TRACE_ID, SPAN_ID, {"app.user": "bob", "traceflags": "01"})
        assert default.http_trace_propagation_hook(ctx) == {"X-Honeycomb-Trace": HONEYCOMB_HEADER}

    def test_default_passes_the_dataset_decision_on(self) -> None:
        ctx = PropagationContext(TRACE_ID, SPAN_ID, {}, "ds")
        assert "dataset=ds" in default.http_trace_propagation_hook(ctx, True)["X-Honeycomb-Trace"]
        assert "dataset" not in default.http_trace_propagation_hook(ctx, False)["X-Honeycomb-Trace"]

    def test_both_sends_both_formats(self) -> None:
        fields = {"app.user": "bob", "traceflags": "00", "tracestate": "k=v"}
        headers = default.http_trace_propagation_hook_both(PropagationContext(TRACE_ID, SPAN_ID, fields))
        assert headers == {
            "X-Honeycomb-Trace": HONEYCOMB_HEADER,
            "traceparent": f"00-{TRACE_ID}-{SPAN_ID}-00",
            "tracestate": "k=v",
        }

    def test_both_without_a_parent_sends_honeycomb_only(self) -> None:
        headers = default.http_trace_propagation_hook_both(PropagationContext(TRACE_ID, None))
        assert list(headers) == ["X-Honeycomb-Trace"]

    def test_both_with_unsendable_ids_still_sends_w3c(self, beeline_warnings) -> None:
        headers = default.http_trace_propagation_hook_both(PropagationContext("a,b", SPAN_ID))
        assert list(headers) == ["traceparent"]
        assert len(beeline_warnings.records) == 1

    def test_both_with_nothing(self) -> None:
        assert default.http_trace_propagation_hook_both(None) is None
        assert default.http_trace_propagation_hook_both(PropagationContext(None, None)) is None


class _EchoParsedContext(BaseHTTPRequestHandler):
    """Parses the trace headers it receives with the default parser and answers with them."""

    def do_GET(self) -> None:  # noqa: N802 - name fixed by http.server
        ctx = default.http_trace_parser_hook(DictRequest(list(self.headers.items())))
        body = json.dumps(
            None if ctx is None else [ctx.trace_id, ctx.parent_id, ctx.trace_fields, ctx.dataset]
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - keep tests quiet
        pass


@pytest.fixture(scope="module")
def echo_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoParsedContext)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class TestOverTheWire:
    """Headers from the hooks go through a real HTTP client and server and parse back."""

    def _send(self, url: str, headers: dict[str, str] | None) -> object:
        response = requests.get(url, headers=headers or {}, timeout=5)
        response.raise_for_status()
        return response.json()

    def test_honeycomb_header_round_trip(self, echo_url: str) -> None:
        fields = {"app.user": "Zoë", "app.n": 3, "traceflags": "00"}
        ctx = PropagationContext(TRACE_ID, SPAN_ID, fields, "team/data set")
        headers = honeycomb.http_trace_propagation_hook(ctx, propagate_dataset=True)
        assert self._send(echo_url, headers) == [
            TRACE_ID,
            SPAN_ID,
            {"app.user": "Zoë", "app.n": 3},
            "team/data set",
        ]

    def test_w3c_only_hop(self, echo_url: str) -> None:
        from beeline.propagation import w3c

        fields = {"traceflags": "00", "tracestate": "congo=t61rcWkgMzE"}
        headers = w3c.http_trace_propagation_hook(PropagationContext(TRACE_ID, SPAN_ID, fields))
        assert self._send(echo_url, headers) == [TRACE_ID, SPAN_ID, fields, None]

    def test_both_hop_is_read_as_honeycomb(self, echo_url: str) -> None:
        ctx = PropagationContext(TRACE_ID, SPAN_ID, {"app.user": "bob", "traceflags": "01"})
        headers = default.http_trace_propagation_hook_both(ctx)
        assert self._send(echo_url, headers) == [TRACE_ID, SPAN_ID, {"app.user": "bob"}, None]

    def test_uuid_ids_hop_as_valid_w3c(self, echo_url: str) -> None:
        from beeline.propagation import w3c

        ctx = PropagationContext("7f0b8b0e-1c2d-4e5f-8a9b-0c1d2e3f4a5b", "0c1d2e3f-4a5b-4e5f-8a9b-7f0b8b0e1c2d")
        trace_id, parent_id, fields, _ = self._send(echo_url, w3c.http_trace_propagation_hook(ctx))
        assert trace_id == "7f0b8b0e1c2d4e5f8a9b0c1d2e3f4a5b"
        assert len(parent_id) == 16
        assert fields == {"traceflags": "01"}

    def test_no_headers(self, echo_url: str) -> None:
        assert self._send(echo_url, None) is None
