"""W3C traceparent/tracestate: parsing edge cases, flags and state carried through, id shapes."""

from __future__ import annotations

import re

import pytest

from beeline.propagation import DictRequest, PropagationContext
from beeline.propagation.w3c import (
    http_trace_parser_hook,
    http_trace_propagation_hook,
    marshal_propagation_context_w3c,
    marshal_traceparent,
    marshal_tracestate,
    unmarshal_propagation_context_w3c,
    unmarshal_traceparent,
    unmarshal_tracestate,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
TRACESTATE = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"

# What a W3C-conformant receiver accepts for version 00, written independently of the parser.
VALID_V00 = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")


def _request(traceparent: object, tracestate: object = None) -> DictRequest:
    headers = {"traceparent": traceparent}
    if tracestate is not None:
        headers["tracestate"] = tracestate
    return DictRequest(headers)


class TestParse:
    def test_valid_header_with_state(self) -> None:
        ctx = http_trace_parser_hook(_request(f"00-{TRACE_ID}-{SPAN_ID}-01", TRACESTATE))
        assert ctx == PropagationContext(TRACE_ID, SPAN_ID, {"traceflags": "01", "tracestate": TRACESTATE})
        assert ctx.dataset is None

    def test_tracestate_omitted_when_absent_or_blank(self) -> None:
        expected = PropagationContext(TRACE_ID, SPAN_ID, {"traceflags": "00"})
        assert http_trace_parser_hook(_request(f"00-{TRACE_ID}-{SPAN_ID}-00")) == expected
        assert http_trace_parser_hook(_request(f"00-{TRACE_ID}-{SPAN_ID}-00", "  ")) == expected

    def test_unsendable_tracestate_is_dropped_but_the_trace_kept(self) -> None:
        ctx = http_trace_parser_hook(_request(f"00-{TRACE_ID}-{SPAN_ID}-01", "a=1\r\nX-Evil: 1"))
        assert ctx == PropagationContext(TRACE_ID, SPAN_ID, {"traceflags": "01"})

    def test_header_names_ignore_case(self) -> None:
        request = DictRequest({"TraceParent": f"00-{TRACE_ID}-{SPAN_ID}-01", "TRACESTATE": TRACESTATE})
        assert http_trace_parser_hook(request).trace_fields["tracestate"] == TRACESTATE

    def test_bytes_values_as_asgi_delivers_them(self) -> None:
        request = _request(f"00-{TRACE_ID}-{SPAN_ID}-01".encode(), TRACESTATE.encode())
        assert http_trace_parser_hook(request) == PropagationContext(
            TRACE_ID, SPAN_ID, {"traceflags": "01", "tracestate": TRACESTATE}
        )

    @pytest.mark.parametrize(
        "traceparent",
        [
            f"  00-{TRACE_ID}-{SPAN_ID}-01",
            f"00-{TRACE_ID}-{SPAN_ID}-01\t ",
            f"01-{TRACE_ID}-{SPAN_ID}-01-future-fields",
            f"cc-{TRACE_ID}-{SPAN_ID}-01-x",
            f"01-{TRACE_ID}-{SPAN_ID}-01",
            f"fe-{TRACE_ID}-{SPAN_ID}-01-",
        ],
    )
    def test_accepted_forms(self, traceparent: str) -> None:
        assert unmarshal_propagation_context_w3c(traceparent, None) == (
            TRACE_ID,
            SPAN_ID,
            {"traceflags": "01"},
        )

    def test_any_flags_byte_is_kept_verbatim(self) -> None:
        for flags in ("00", "01", "03", "ff", "a0"):
            _, _, fields = unmarshal_propagation_context_w3c(f"00-{TRACE_ID}-{SPAN_ID}-{flags}", None)
            assert fields["traceflags"] == flags


MALFORMED = {
    "uppercase-trace-id": f"00-{TRACE_ID.upper()}-{SPAN_ID}-01",
    "uppercase-parent-id": f"00-{TRACE_ID}-00F067AA0BA902B7-01",
    "uppercase-flags": f"00-{TRACE_ID}-{SPAN_ID}-0A",
    "uppercase-version": f"0A-{TRACE_ID}-{SPAN_ID}-01",
    "zero-trace-id": f"00-{'0' * 32}-{SPAN_ID}-01",
    "zero-parent-id": f"00-{TRACE_ID}-{'0' * 16}-01",
    "version-ff": f"ff-{TRACE_ID}-{SPAN_ID}-01",
    "version-00-with-suffix": f"00-{TRACE_ID}-{SPAN_ID}-01-extra",
    "version-00-empty-suffix": f"00-{TRACE_ID}-{SPAN_ID}-01-",
    "future-version-bad-suffix": f"01-{TRACE_ID}-{SPAN_ID}-01extra",
    "short-trace-id": f"00-{TRACE_ID[:-1]}-{SPAN_ID}-01",
    "long-parent-id": f"00-{TRACE_ID}-{SPAN_ID}0-01",
    "non-hex": f"00-{TRACE_ID[:-1]}g-{SPAN_ID}-01",
    "uuid-trace-id": f"00-4bf92f35-77b3-4da6-a3ce-929d0e0e4736-{SPAN_ID}-01",
    "missing-flags": f"00-{TRACE_ID}-{SPAN_ID}",
    "one-digit-flags": f"00-{TRACE_ID}-{SPAN_ID}-1",
    "underscores": f"00_{TRACE_ID}_{SPAN_ID}_01",
    "garbage": "hello",
    "embedded-newline": f"00-{TRACE_ID}-{SPAN_ID}-01\nrest",
}


class TestMalformed:
    @pytest.mark.parametrize("traceparent", MALFORMED.values(), ids=MALFORMED.keys())
    def test_unmarshal_raises_value_error(self, traceparent: str) -> None:
        with pytest.raises(ValueError):
            unmarshal_propagation_context_w3c(traceparent, TRACESTATE)

    @pytest.mark.parametrize("traceparent", MALFORMED.values(), ids=MALFORMED.keys())
    def test_parser_hook_returns_none_and_warns_once(self, traceparent: str, beeline_warnings) -> None:
        assert http_trace_parser_hook(_request(traceparent, TRACESTATE)) is None
        assert len(beeline_warnings.records) == 1
        assert "traceparent" in beeline_warnings.messages[0]

    def test_missing_traceparent_is_silent(self, beeline_warnings) -> None:
        assert http_trace_parser_hook(DictRequest({"tracestate": TRACESTATE})) is None
        assert http_trace_parser_hook(_request("")) is None
        assert beeline_warnings.records == []

    def test_unmarshal_of_nothing_raises(self) -> None:
        with pytest.raises(ValueError):
            unmarshal_propagation_context_w3c(None, None)
        with pytest.raises((ValueError, TypeError)):
            unmarshal_propagation_context_w3c(42, None)  # type: ignore[arg-type]

    def test_non_text_value_warns(self, beeline_warnings) -> None:
        assert http_trace_parser_hook(_request(["00", TRACE_ID])) is None
        assert len(beeline_warnings.records) == 1

    def test_long_value_is_logged_truncated(self, beeline_warnings) -> None:
        value = "z" * 5000
        assert http_trace_parser_hook(_request(value)) is None
        (message,) = beeline_warnings.messages
        assert value[:200] in message and value[:201] not in message


class TestPropagate:
    def test_default_flags_and_no_state(self) -> None:
        assert http_trace_propagation_hook(PropagationContext(TRACE_ID, SPAN_ID)) == {
            "traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01"
        }

    def test_flags_and_state_from_trace_fields(self) -> None:
        fields = {"traceflags": "00", "tracestate": TRACESTATE, "app.user": "bob"}
        assert http_trace_propagation_hook(PropagationContext(TRACE_ID, SPAN_ID, fields)) == {
            "traceparent": f"00-{TRACE_ID}-{SPAN_ID}-00",
            "tracestate": TRACESTATE,
        }

    def test_incoming_flags_and_state_go_out_again(self) -> None:
        incoming = http_trace_parser_hook(_request(f"00-{TRACE_ID}-{SPAN_ID}-00", TRACESTATE))
        # the tracer hands the hook the same trace, the fields it keeps, and its own span id
        local_span = "b7ad6b7169203331"
        outgoing = PropagationContext(incoming.trace_id, local_span, dict(incoming.trace_fields, **{"app.x": 1}))
        assert http_trace_propagation_hook(outgoing) == {
            "traceparent": f"00-{TRACE_ID}-{local_span}-00",
            "tracestate": TRACESTATE,
        }

    def test_future_version_is_written_back_as_00(self) -> None:
        incoming = http_trace_parser_hook(_request(f"cc-{TRACE_ID}-{SPAN_ID}-03-more"))
        headers = http_trace_propagation_hook(
            PropagationContext(incoming.trace_id, "b7ad6b7169203331", incoming.trace_fields)
        )
        assert headers == {"traceparent": f"00-{TRACE_ID}-b7ad6b7169203331-03"}

    @pytest.mark.parametrize(
        ("flags", "written"),
        [
            ("0A", "0a"),
            (0, "00"),
            (1, "01"),
            (255, "ff"),
            ("zz", "01"),
            ("1", "01"),
            (None, "01"),
            (True, "01"),
            (256, "01"),
            ("001", "01"),
        ],
    )
    def test_flags_are_normalised(self, flags: object, written: str) -> None:
        ctx = PropagationContext(TRACE_ID, SPAN_ID, {"traceflags": flags})
        assert marshal_propagation_context_w3c(ctx)[0] == f"00-{TRACE_ID}-{SPAN_ID}-{written}"

    @pytest.mark.parametrize("state", ["", "  ", None, 5, "a=1\nb=2", "clé=1"])
    def test_unusable_tracestate_is_left_out(self, state: object) -> None:
        ctx = PropagationContext(TRACE_ID, SPAN_ID, {"tracestate": state})
        assert http_trace_propagation_hook(ctx) == {"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01"}

    def test_marshal_returns_the_pair(self) -> None:
        ctx = PropagationContext(TRACE_ID, SPAN_ID, {"tracestate": TRACESTATE})
        assert marshal_propagation_context_w3c(ctx) == (
            f"00-{TRACE_ID}-{SPAN_ID}-01",
            TRACESTATE,
        )
        assert marshal_propagation_context_w3c(PropagationContext(TRACE_ID, SPAN_ID)) == (
            f"00-{TRACE_ID}-{SPAN_ID}-01",
            None,
        )

    @pytest.mark.parametrize(
        "ctx",
        [None, PropagationContext(None, SPAN_ID), PropagationContext(TRACE_ID, None)],
    )
    def test_nothing_to_send(self, ctx, beeline_warnings) -> None:
        assert marshal_propagation_context_w3c(ctx) == (None, None)
        assert http_trace_propagation_hook(ctx) is None
        assert beeline_warnings.records == []

    def test_not_a_context_does_not_raise(self, beeline_warnings) -> None:
        assert http_trace_propagation_hook("nonsense") is None  # type: ignore[arg-type]
        assert len(beeline_warnings.records) == 1


class TestIdConversion:
    UUID_TRACE = "7f0b8b0e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
    UUID_SPAN = "0c1d2e3f-4a5b-4e5f-8a9b-7f0b8b0e1c2d"

    def _traceparent(self, trace_id: object, span_id: object) -> str:
        return http_trace_propagation_hook(PropagationContext(trace_id, span_id))["traceparent"]

    def test_uuid_ids_become_valid_w3c_ids(self) -> None:
        value = self._traceparent(self.UUID_TRACE, self.UUID_SPAN)
        assert VALID_V00.fullmatch(value), value
        _, trace_id, span_id, _ = value.split("-")
        assert trace_id == self.UUID_TRACE.replace("-", "")
        assert span_id != self.UUID_SPAN.replace("-", "")[:16]
        # and what we write, the strict parser reads back
        assert unmarshal_propagation_context_w3c(value, None)[:2] == (trace_id, span_id)

    def test_conversion_is_deterministic(self) -> None:
        first = self._traceparent(self.UUID_TRACE, self.UUID_SPAN)
        second = self._traceparent(self.UUID_TRACE, self.UUID_SPAN)
        assert first == second

    def test_different_ids_stay_different(self) -> None:
        spans = {self._traceparent(self.UUID_TRACE, f"span-{n}").split("-")[2] for n in range(50)}
        assert len(spans) == 50
        traces = {self._traceparent(f"trace-{n}", SPAN_ID).split("-")[1] for n in range(50)}
        assert len(traces) == 50

    @pytest.mark.parametrize(
        ("trace_id", "span_id"),
        [
            (TRACE_ID.upper(), SPAN_ID.upper()),
            ("0" * 32, "0" * 16),
            ("short", "x"),
            (123456789, 42),
            ("a" * 64, "b" * 32),
            ("ünïcode-trace", "ünïcode-span"),
        ],
    )
    def test_odd_ids_still_give_a_valid_header(self, trace_id: object, span_id: object) -> None:
        headers = http_trace_propagation_hook(PropagationContext(trace_id, span_id))
        assert VALID_V00.fullmatch(headers["traceparent"]), headers

    def test_uppercase_hex_is_lowercased_not_hashed(self) -> None:
        value = self._traceparent(TRACE_ID.upper(), SPAN_ID.upper())
        assert value == f"00-{TRACE_ID}-{SPAN_ID}-01"

    def test_valid_ids_are_untouched(self) -> None:
        assert self._traceparent(TRACE_ID, SPAN_ID) == f"00-{TRACE_ID}-{SPAN_ID}-01"


class TestReferenceHelpers:
    """The four helpers of honeycomb-beeline 3.6.0's w3c module, with its return values (read off
    3.6.0 for these inputs), for custom hooks built on them."""

    def test_marshal_traceparent_and_tracestate(self) -> None:
        ctx = PropagationContext(TRACE_ID, SPAN_ID, {"tracestate": TRACESTATE})
        assert marshal_traceparent(ctx) == f"00-{TRACE_ID}-{SPAN_ID}-01"
        assert marshal_tracestate(ctx) == TRACESTATE
        flagged = PropagationContext(TRACE_ID, SPAN_ID, {"traceflags": "00"})
        assert marshal_traceparent(flagged) == f"00-{TRACE_ID}-{SPAN_ID}-00"
        assert marshal_tracestate(flagged) is None
        assert marshal_traceparent(None) is None and marshal_tracestate(None) is None

    def test_unmarshal_traceparent_gives_ids_and_flags_or_none(self) -> None:
        assert unmarshal_traceparent(f"00-{TRACE_ID}-{SPAN_ID}-00") == (TRACE_ID, SPAN_ID, "00")
        assert unmarshal_traceparent(f"01-{TRACE_ID}-{SPAN_ID}-01-future") == (TRACE_ID, SPAN_ID, "01")
        zero_trace, version_ff = f"00-{'0' * 32}-{SPAN_ID}-01", f"ff-{TRACE_ID}-{SPAN_ID}-01"
        for bad in ("bad", zero_trace, version_ff, f"00-{TRACE_ID}-{SPAN_ID}-01-x"):
            assert unmarshal_traceparent(bad) is None

    def test_unmarshal_tracestate_is_opaque(self) -> None:
        assert unmarshal_tracestate(TRACESTATE) == TRACESTATE
        assert unmarshal_tracestate(None) is None
