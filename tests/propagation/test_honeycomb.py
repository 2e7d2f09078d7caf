"""The X-Honeycomb-Trace header: writing, reading, and what happens to bad input."""

from __future__ import annotations

import base64
import datetime
import json

import pytest

import beeline
import beeline.propagation as propagation
from beeline.propagation import DictRequest, PropagationContext, Request, honeycomb
from beeline.propagation.honeycomb import (
    InvalidHeader,
    UnsupportedVersion,
    http_trace_parser_hook,
    http_trace_propagation_hook,
    marshal_propagation_context,
    unmarshal_propagation_context,
    unmarshal_propagation_context_with_dataset,
)
from tests.receiver import strict_loads

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"


def _parts(header: str) -> dict[str, str]:
    """The key=value parts of a version-1 header, split the way a receiver splits them."""
    version, _, payload = header.partition(";")
    assert version == "1"
    return dict(part.split("=", 1) for part in payload.split(","))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _request(value: object) -> DictRequest:
    return DictRequest({"X-Honeycomb-Trace": value})


class TestMarshal:
    def test_reference_example_for_empty_fields(self) -> None:
        header = marshal_propagation_context(PropagationContext(TRACE_ID, SPAN_ID))
        assert header == f"1;trace_id={TRACE_ID},parent_id={SPAN_ID},context=e30="

    def test_reference_example_for_one_field(self) -> None:
        ctx = PropagationContext(TRACE_ID, SPAN_ID, {"app.user": "bob"})
        assert _parts(marshal_propagation_context(ctx))["context"] == ("eyJhcHAudXNlciI6ICJib2IifQ==")

    def test_part_order_with_dataset(self) -> None:
        ctx = PropagationContext(TRACE_ID, SPAN_ID, {}, "my-dataset")
        header = marshal_propagation_context(ctx, propagate_dataset=True)
        keys = [p.split("=", 1)[0] for p in header.partition(";")[2].split(",")]
        assert keys == ["dataset", "trace_id", "parent_id", "context"]
        assert _parts(header)["dataset"] == "my-dataset"

    def test_dataset_left_out_when_not_propagating_or_absent(self) -> None:
        with_ds = PropagationContext(TRACE_ID, SPAN_ID, {}, "ds")
        assert "dataset" not in _parts(marshal_propagation_context(with_ds, False))
        no_ds = PropagationContext(TRACE_ID, SPAN_ID, {}, None)
        assert "dataset" not in _parts(marshal_propagation_context(no_ds, True))

    def test_w3c_only_fields_stay_out_of_the_context(self) -> None:
        fields = {"app.user": "bob", "traceflags": "00", "tracestate": "rojo=00f067aa0ba902b7"}
        ctx = PropagationContext(TRACE_ID, SPAN_ID, fields)
        context = json.loads(base64.b64decode(_parts(marshal_propagation_context(ctx))["context"]))
        assert context == {"app.user": "bob"}
        # the caller's fields are not modified on the way
        assert fields["traceflags"] == "00"

    def test_no_trace_id_gives_none(self) -> None:
        assert marshal_propagation_context(PropagationContext(None, SPAN_ID)) is None
        assert marshal_propagation_context(PropagationContext("", SPAN_ID)) is None
        assert marshal_propagation_context(None) is None

    def test_values_json_cannot_hold_are_written_as_text(self) -> None:
        when = datetime.datetime(2024, 5, 6, 7, 8, 9)
        ctx = PropagationContext(TRACE_ID, SPAN_ID, {"app.when": when})
        _, _, context = unmarshal_propagation_context(marshal_propagation_context(ctx))
        assert context == {"app.when": str(when)}

    def test_nan_and_infinities_are_written_as_strings(self) -> None:
        # A bare NaN is not JSON: a strict parser (another language's beeline) would refuse the
        # whole context. As strings, the other fields survive and the values stay visible.
        fields = {"app.ratio": float("nan"), "app.max": float("inf"), "app.deep": [float("-inf"), 1.5],
                  "app.user": "bob"}
        header = marshal_propagation_context(PropagationContext(TRACE_ID, SPAN_ID, fields))
        encoded = header.split("context=", 1)[1]
        sent = strict_loads(base64.b64decode(encoded))
        assert sent == {"app.ratio": "NaN", "app.max": "Infinity", "app.deep": ["-Infinity", 1.5],
                        "app.user": "bob"}
        assert unmarshal_propagation_context(header)[2] == sent


ROUND_TRIP_FIELDS = [
    {},
    {"app.user": "bob"},
    {"app.n": 3, "app.f": 2.5, "app.ok": True, "app.none": None},
    {"app.nested": {"a": [1, 2, {"b": "c"}]}},
    {"app.name": "Zoë 名前 🐝", "app.quote": 'a "b" \\ c'},
    {"app.q": "???>>>", "app.t": "~~~"},  # standard base64 of these holds '+' and '/'
]


class TestRoundTrip:
    @pytest.mark.parametrize("fields", ROUND_TRIP_FIELDS)
    def test_fields_survive(self, fields: dict) -> None:
        ctx = PropagationContext(TRACE_ID, SPAN_ID, fields)
        assert unmarshal_propagation_context(marshal_propagation_context(ctx)) == (
            TRACE_ID,
            SPAN_ID,
            fields,
        )

    @pytest.mark.parametrize(
        "dataset",
        [
            "plain",
            "with spaces",
            "a/b/c",
            "percent%20literal",
            "commas,semi;colons=equals&amp",
            "données-データ-🐝",
        ],
    )
    def test_dataset_is_quoted_and_unquoted(self, dataset: str) -> None:
        ctx = PropagationContext(TRACE_ID, SPAN_ID, {"app.x": 1}, dataset)
        headers = http_trace_propagation_hook(ctx, propagate_dataset=True)
        value = headers["X-Honeycomb-Trace"]
        assert value.isascii() and value.isprintable()
        assert " " not in value
        parsed = http_trace_parser_hook(DictRequest(headers))
        assert parsed == PropagationContext(TRACE_ID, SPAN_ID, {"app.x": 1}, dataset)

    def test_parser_hook_output_matches_input(self) -> None:
        ctx = PropagationContext(TRACE_ID, SPAN_ID, {"app.user": "bob"})
        parsed = http_trace_parser_hook(DictRequest(http_trace_propagation_hook(ctx)))
        assert parsed == PropagationContext(TRACE_ID, SPAN_ID, {"app.user": "bob"}, None)

    def test_uuid_style_ids_pass_unchanged(self) -> None:
        trace_id = "7f0b8b0e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
        parent_id = "0c1d2e3f-4a5b-4e5f-8a9b-7f0b8b0e1c2d"
        header = marshal_propagation_context(PropagationContext(trace_id, parent_id))
        assert unmarshal_propagation_context(header) == (trace_id, parent_id, {})


class TestUnmarshalLeniency:
    def test_url_safe_base64_context(self) -> None:
        fields = {"app.q": "???>>>", "app.t": "~~~"}
        raw = json.dumps(fields).encode()
        urlsafe = base64.urlsafe_b64encode(raw).decode()
        assert "-" in urlsafe and "_" in urlsafe  # the case that used to fail
        header = f"1;trace_id={TRACE_ID},parent_id={SPAN_ID},context={urlsafe}"
        assert unmarshal_propagation_context(header) == (TRACE_ID, SPAN_ID, fields)

    @pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode])
    def test_unpadded_base64_context(self, encode) -> None:
        fields = {"app.user": "bob"}
        padded = encode(json.dumps(fields).encode()).decode()
        assert padded.endswith("==")
        header = f"1;trace_id={TRACE_ID},parent_id={SPAN_ID},context={padded.rstrip('=')}"
        assert unmarshal_propagation_context(header)[2] == fields

    def test_compact_json_from_other_beelines(self) -> None:
        raw = json.dumps({"app.a": 1, "app.b": [1, 2]}, separators=(",", ":")).encode()
        header = f"1;trace_id={TRACE_ID},parent_id={SPAN_ID},context={_b64(raw)}"
        assert unmarshal_propagation_context(header)[2] == {"app.a": 1, "app.b": [1, 2]}

    def test_unknown_keys_are_ignored_and_order_does_not_matter(self) -> None:
        header = f"1;future=yes,context=e30=,parent_id={SPAN_ID},extra=a=b,trace_id={TRACE_ID}"
        assert unmarshal_propagation_context_with_dataset(header) == (
            TRACE_ID,
            SPAN_ID,
            {},
            None,
        )

    def test_missing_context_is_empty_fields(self) -> None:
        header = f"1;trace_id={TRACE_ID},parent_id={SPAN_ID}"
        assert unmarshal_propagation_context(header) == (TRACE_ID, SPAN_ID, {})

    def test_missing_trace_id_is_read_by_unmarshal_but_refused_by_the_parser(self, beeline_warnings) -> None:
        # unmarshal reads it as honeycomb-beeline did; the parser hook will not continue a
        # parent that belongs to no trace.
        header = f"1;parent_id={SPAN_ID},context=e30="
        assert unmarshal_propagation_context(header) == (None, SPAN_ID, {})
        assert http_trace_parser_hook(_request(header)) is None
        assert len(beeline_warnings.records) == 1
        assert "no trace_id" in beeline_warnings.messages[0]

    @pytest.mark.parametrize("context", [b"[1, 2]", b'"x"', b"3", b"null"], ids=["array", "string", "number", "null"])
    def test_context_that_is_json_but_not_an_object_keeps_the_ids(self, context: bytes, beeline_warnings) -> None:
        header = f"1;trace_id={TRACE_ID},parent_id={SPAN_ID},context={_b64(context)}"
        assert unmarshal_propagation_context(header) == (TRACE_ID, SPAN_ID, {})
        assert http_trace_parser_hook(_request(header)) == PropagationContext(TRACE_ID, SPAN_ID, {})
        assert beeline_warnings.records == []

    def test_missing_parent_id_keeps_the_trace(self) -> None:
        header = f"1;trace_id={TRACE_ID}"
        assert unmarshal_propagation_context(header) == (TRACE_ID, None, {})

    def test_dataset_is_unquoted(self) -> None:
        header = f"1;dataset=my%20data%2Fset,trace_id={TRACE_ID},parent_id={SPAN_ID}"
        assert unmarshal_propagation_context_with_dataset(header)[3] == "my data/set"

    def test_bytes_header_value_is_read_as_latin1(self) -> None:
        value = f"1;trace_id={TRACE_ID},parent_id={SPAN_ID},context=e30=".encode("latin-1")
        assert http_trace_parser_hook(_request(value)) == PropagationContext(TRACE_ID, SPAN_ID)

    def test_surrounding_blanks_are_tolerated(self) -> None:
        header = f"  1; trace_id={TRACE_ID} , parent_id={SPAN_ID} ,context=e30=  "
        assert unmarshal_propagation_context(header) == (TRACE_ID, SPAN_ID, {})


_NOT_UTF8 = _b64(b'{"a": "' + bytes([0xFF]) + b'"}')

MALFORMED = {
    "no-semicolon": f"trace_id={TRACE_ID},parent_id={SPAN_ID}",
    "empty-payload": "1;",
    "part-without-equals": f"1;trace_id={TRACE_ID},parent_id",
    "trailing-comma": f"1;trace_id={TRACE_ID},parent_id={SPAN_ID},",
    "no-ids": "1;context=e30=",
    "empty-ids": "1;trace_id=,parent_id=,context=e30=",
    "bad-base64-chars": f"1;trace_id={TRACE_ID},parent_id={SPAN_ID},context=e30!",
    "bad-base64-length": f"1;trace_id={TRACE_ID},parent_id={SPAN_ID},context=e30=e",
    "impossible-length": f"1;trace_id={TRACE_ID},parent_id={SPAN_ID},context=abcde",
    "not-json": f"1;trace_id={TRACE_ID},parent_id={SPAN_ID},context={_b64(b'not json')}",
    "not-utf8": f"1;trace_id={TRACE_ID},parent_id={SPAN_ID},context={_NOT_UTF8}",
    "deep-nesting": f"1;trace_id={TRACE_ID},parent_id={SPAN_ID},context={_b64(b'[' * 100_000)}",
    "version-2": f"2;trace_id={TRACE_ID},parent_id={SPAN_ID},context=e30=",
    "version-0": f"0;trace_id={TRACE_ID},parent_id={SPAN_ID},context=e30=",
    "version-text": f"v1;trace_id={TRACE_ID},parent_id={SPAN_ID},context=e30=",
}


# Ids the parser hook refuses (unmarshal reads them; the hook decides what a request may bring).
REFUSED_IDS = {
    "trace-id-65-chars": f"1;trace_id={'a' * 65},parent_id={SPAN_ID}",
    "parent-id-65-chars": f"1;trace_id={TRACE_ID},parent_id={'b' * 65}",
    "trace-id-with-space": f"1;trace_id=abc%20def,parent_id={SPAN_ID}",
    "trace-id-with-quote": f"1;trace_id=abc\"def,parent_id={SPAN_ID}",
    "parent-id-with-slash": f"1;trace_id={TRACE_ID},parent_id=a/b",
    "parent-id-non-ascii": f"1;trace_id={TRACE_ID},parent_id=\u00e9t\u00e9",
    "parent-only": f"1;parent_id={SPAN_ID}",
}


class TestIncomingIdShapes:
    @pytest.mark.parametrize("header", REFUSED_IDS.values(), ids=REFUSED_IDS.keys())
    def test_parser_hook_refuses_the_id_with_one_warning(self, header: str, beeline_warnings) -> None:
        assert http_trace_parser_hook(_request(header)) is None
        assert len(beeline_warnings.records) == 1
        assert "X-Honeycomb-Trace" in beeline_warnings.messages[0]

    @pytest.mark.parametrize(
        "trace_id,parent_id",
        [("a" * 64, "b" * 64), ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"),
         ("4f1a0ee2-1a3b-4c5d-9e8f-001122334455", "span_1.2-x"), ("A", "Z")],
        ids=["64-chars", "w3c-hex", "uuid-and-punctuation", "one-char"],
    )
    def test_every_documented_shape_is_accepted(self, trace_id: str, parent_id: str, beeline_warnings) -> None:
        header = f"1;trace_id={trace_id},parent_id={parent_id}"
        assert http_trace_parser_hook(_request(header)) == PropagationContext(trace_id, parent_id, {})
        assert beeline_warnings.records == []


class TestMalformed:
    @pytest.mark.parametrize("header", MALFORMED.values(), ids=MALFORMED.keys())
    def test_unmarshal_raises_a_value_error(self, header: str) -> None:
        with pytest.raises(InvalidHeader) as info:
            unmarshal_propagation_context_with_dataset(header)
        assert isinstance(info.value, ValueError)
        with pytest.raises(InvalidHeader):
            unmarshal_propagation_context(header)

    @pytest.mark.parametrize("header", MALFORMED.values(), ids=MALFORMED.keys())
    def test_parser_hook_returns_none_and_warns_once(self, header: str, beeline_warnings) -> None:
        assert http_trace_parser_hook(_request(header)) is None
        assert len(beeline_warnings.records) == 1
        assert "X-Honeycomb-Trace" in beeline_warnings.messages[0]

    def test_unsupported_version_is_its_own_subclass(self) -> None:
        with pytest.raises(UnsupportedVersion):
            unmarshal_propagation_context("2;trace_id=a,parent_id=b")
        assert issubclass(UnsupportedVersion, InvalidHeader)

    def test_non_text_input_raises_value_error(self) -> None:
        with pytest.raises(ValueError):
            unmarshal_propagation_context(None)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            unmarshal_propagation_context("")

    def test_long_header_is_logged_truncated(self, beeline_warnings) -> None:
        header = "1;" + "x" * 10_000
        assert http_trace_parser_hook(_request(header)) is None
        (message,) = beeline_warnings.messages
        assert header[:200] in message
        assert header[:201] not in message
        assert len(message) < 600

    def test_control_characters_are_escaped_in_the_log(self, beeline_warnings) -> None:
        assert http_trace_parser_hook(_request("1;x\nFAKE LOG LINE")) is None
        (message,) = beeline_warnings.messages
        assert "\n" not in message

    def test_absent_and_blank_headers_are_silent(self, beeline_warnings) -> None:
        assert http_trace_parser_hook(DictRequest({})) is None
        assert http_trace_parser_hook(_request("")) is None
        assert http_trace_parser_hook(_request("   ")) is None
        assert beeline_warnings.records == []

    def test_non_text_header_value(self, beeline_warnings) -> None:
        assert http_trace_parser_hook(_request(12345)) is None
        assert len(beeline_warnings.records) == 1

    def test_request_adapter_that_raises(self, beeline_warnings) -> None:
        class Broken(DictRequest):
            def header(self, key):
                raise RuntimeError("adapter bug")

        request: Request = Broken({})
        assert http_trace_parser_hook(request) is None
        assert len(beeline_warnings.records) == 1
        assert "adapter bug" in beeline_warnings.messages[0]


class TestPropagationHook:
    def test_one_argument_call_returns_the_header(self) -> None:
        ctx = PropagationContext(TRACE_ID, SPAN_ID, {"app.user": "bob"})
        assert http_trace_propagation_hook(ctx) == {
            "X-Honeycomb-Trace": f"1;trace_id={TRACE_ID},parent_id={SPAN_ID},context=eyJhcHAudXNlciI6ICJib2IifQ=="
        }

    def test_module_attribute_is_read_at_call_time(self, monkeypatch) -> None:
        ctx = PropagationContext(TRACE_ID, SPAN_ID, {}, "upstream")
        monkeypatch.setattr(propagation, "propagate_dataset", False)
        assert "dataset" not in _parts(http_trace_propagation_hook(ctx)["X-Honeycomb-Trace"])
        monkeypatch.setattr(propagation, "propagate_dataset", True)
        assert _parts(http_trace_propagation_hook(ctx)["X-Honeycomb-Trace"])["dataset"] == ("upstream")

    def test_explicit_decision_wins_over_module_attribute(self, monkeypatch) -> None:
        ctx = PropagationContext(TRACE_ID, SPAN_ID, {}, "upstream")
        monkeypatch.setattr(propagation, "propagate_dataset", True)
        header = http_trace_propagation_hook(ctx, propagate_dataset=False)["X-Honeycomb-Trace"]
        assert "dataset" not in _parts(header)

    def test_nothing_to_send(self, beeline_warnings) -> None:
        assert http_trace_propagation_hook(None) is None
        assert http_trace_propagation_hook(PropagationContext(None, SPAN_ID)) is None
        assert beeline_warnings.records == []

    def test_self_referencing_fields_do_not_raise(self, beeline_warnings) -> None:
        loop: dict = {}
        loop["self"] = loop
        ctx = PropagationContext(TRACE_ID, SPAN_ID, {"app.loop": loop})
        assert http_trace_propagation_hook(ctx) is None
        assert len(beeline_warnings.records) == 1

    @pytest.mark.parametrize(
        ("trace_id", "parent_id"),
        [("a,b", SPAN_ID), (TRACE_ID, "p\r\nX-Injected: 1"), ("tracé", SPAN_ID)],
    )
    def test_ids_that_cannot_travel_are_refused(self, trace_id: str, parent_id: str, beeline_warnings) -> None:
        ctx = PropagationContext(trace_id, parent_id)
        with pytest.raises(ValueError):
            marshal_propagation_context(ctx)
        assert http_trace_propagation_hook(ctx) is None
        assert len(beeline_warnings.records) == 1

    def test_not_a_context_does_not_raise(self, beeline_warnings) -> None:
        assert http_trace_propagation_hook(object()) is None  # type: ignore[arg-type]
        assert len(beeline_warnings.records) == 1


def test_header_name_constant() -> None:
    assert honeycomb.HEADER == "X-Honeycomb-Trace"


class TestDatasetFollowsTheKeyKind:
    """Custom hooks call marshal/unmarshal directly (Honeycomb's docs show it): with an
    Environments & Services key they never write or read `dataset=`, as in honeycomb-beeline."""

    HEADER = f"1;dataset=upstream,trace_id={TRACE_ID},parent_id={SPAN_ID},context=e30="

    def _init(self, writekey):
        from beeline.testing import RecordingTransmission

        beeline.init(writekey=writekey, dataset="ds", service_name="svc", transmission_impl=RecordingTransmission())

    def test_environments_key_neither_writes_nor_reads_the_dataset(self) -> None:
        self._init("e" * 22)  # an Environments & Services key
        ctx = PropagationContext(TRACE_ID, SPAN_ID, {}, "upstream")
        assert "dataset" not in _parts(marshal_propagation_context(ctx))
        assert unmarshal_propagation_context_with_dataset(self.HEADER)[3] is None

    def test_classic_key_writes_and_reads_the_dataset(self) -> None:
        self._init("0" * 32)  # a classic key
        ctx = PropagationContext(TRACE_ID, SPAN_ID, {}, "upstream")
        assert _parts(marshal_propagation_context(ctx))["dataset"] == "upstream"
        assert unmarshal_propagation_context_with_dataset(self.HEADER)[3] == "upstream"
