"""Reading lines: both file formats, timestamps, error detection, and broken input."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from beeline.viewer.reading import LineParser, error_reason, parse_time

from .helpers import BASE, line, span

TRACE = "0af7651916cd43dd8448eb211c80319c"


@pytest.mark.parametrize("style", ["libhoney", "offset", "naive", "bare"])
def test_every_line_style_gives_the_same_span(style: str) -> None:
    fields = span(TRACE, "b1", "a1", "load_cart", 12.5, 20.25, service="shop")
    parsed = LineParser().feed(line(fields, style))
    assert parsed is not None
    assert (parsed.trace_id, parsed.span_id, parsed.parent_id) == (TRACE, "b1", "a1")
    assert parsed.name == "load_cart"
    assert parsed.service == "shop"
    assert parsed.duration_ms == 20.25
    assert parsed.start_us == int(BASE.timestamp()) * 1_000_000 + 12_500


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-11-21T05:40:01.123456Z", datetime(2026, 11, 21, 5, 40, 1, 123456, timezone.utc)),
        ("2026-11-21T05:40:01.123456+00:00", datetime(2026, 11, 21, 5, 40, 1, 123456, timezone.utc)),
        ("2026-11-21T05:40:01", datetime(2026, 11, 21, 5, 40, 1, tzinfo=timezone.utc)),
        ("2026-11-21T07:40:01.5+02:00", datetime(2026, 11, 21, 5, 40, 1, 500000, timezone.utc)),
        # Nanoseconds and a colon-less offset, as some other writers produce.
        ("2026-11-21T05:40:01.123456789-0130", datetime(2026, 11, 21, 7, 10, 1, 123456, timezone.utc)),
    ],
)
def test_timestamps_in_the_formats_writers_use(text: str, expected: datetime) -> None:
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    assert parse_time(text) == (expected - epoch) // timedelta(microseconds=1)


@pytest.mark.parametrize("value", ["yesterday", "", None, [], "2026-13-45T00:00:00Z", True, float("nan")])
def test_unusable_timestamps_are_none(value: object) -> None:
    assert parse_time(value) is None


def test_epoch_numbers_in_any_unit() -> None:
    assert parse_time(1795236001.5) == 1795236001_500000
    assert parse_time(1795236001500) == 1795236001_500000
    assert parse_time(1795236001500000) == 1795236001_500000
    assert parse_time(1795236001500000000) == 1795236001_500000
    assert parse_time(1e30) is None and parse_time(-5) is None


def test_time_inside_data_is_used_when_the_envelope_has_none() -> None:
    record = {"data": {"trace.trace_id": TRACE, "name": "x", "time": "2026-11-21T05:40:01Z"}}
    parsed = LineParser().feed(json.dumps(record))
    assert parsed is not None and parsed.start_us == int(BASE.timestamp()) * 1_000_000


def test_a_bare_object_may_have_its_own_data_field() -> None:
    fields = span(TRACE, "a1", None, "upload", 0, 3.0, data={"bytes": 10})
    parsed = LineParser().feed(line(fields, "bare"))
    assert parsed is not None and parsed.name == "upload" and parsed.fields["data"] == {"bytes": 10}


def test_service_dot_name_is_used_when_service_name_is_absent() -> None:
    fields = span(TRACE, "a1", None, "root", 0, 1.0)
    del fields["service_name"]
    fields["service.name"] = "billing"
    parsed = LineParser().feed(line(fields))
    assert parsed is not None and parsed.service == "billing"


def test_a_null_parent_is_a_root_and_types_mark_subroots() -> None:
    parser = LineParser()
    root = parser.feed(line(span(TRACE, "a1", None, "root", 0, 1.0, **{"meta.span_type": "root"})))
    sub = parser.feed(line(span(TRACE, "c1", "elsewhere", "sub", 0, 1.0, **{"meta.span_type": "subroot"})))
    child = parser.feed(line(span(TRACE, "b1", "a1", "child", 0, 1.0)))
    assert root is not None and root.parent_id is None and root.starts_trace
    assert sub is not None and sub.parent_id == "elsewhere" and sub.starts_trace
    assert child is not None and not child.starts_trace


def test_events_without_a_trace_id_are_kept() -> None:
    parsed = LineParser().feed(line(span(None, None, None, "send_now_event", 0, None, cart=3)))
    assert parsed is not None
    assert parsed.trace_id is None and parsed.name == "send_now_event" and parsed.duration_ms is None


def test_broken_lines_are_counted_with_their_line_numbers() -> None:
    good = line(span(TRACE, "a1", None, "root", 0, 1.0))
    lines = [
        good,
        good[: len(good) // 2],  # cut off mid-write
        "",  # blank lines are not broken
        "not json",
        "[1, 2, 3]",  # JSON, but not an event
        json.dumps({"time": "2026-11-21T05:40:01Z", "data": "oops"}),
        "{}",
        "[" * 100_000 + "]" * 100_000,  # nesting deeper than the JSON decoder's recursion
        good,
    ]
    parser = LineParser()
    spans = [parser.feed(text) for text in lines]
    assert [s is not None for s in spans] == [True, False, False, False, False, False, False, False, True]
    assert parser.broken == 6
    assert parser.broken_linenos == [2, 4, 5, 6, 7, 8]


def test_odd_values_never_raise() -> None:
    fields = {
        "trace.trace_id": 12345,
        "trace.span_id": {"nested": True},
        "trace.parent_id": "",
        "name": None,
        "duration_ms": "not a number",
        "response.status_code": "five hundred",
        "meta.span_type": 7,
    }
    parsed = LineParser().feed(json.dumps({"time": 42, "data": fields}))
    assert parsed is not None
    assert parsed.trace_id == "12345" and parsed.span_id is None and parsed.parent_id is None
    assert parsed.name == "(unnamed)" and parsed.duration_ms is None and parsed.error is None


@pytest.mark.parametrize(
    "fields, reason",
    [
        (
            {"app.exception_type": "<class 'ValueError'>", "app.exception_string": "card declined"},
            "ValueError: card declined",
        ),
        ({"app.exception_type": "<class 'requests.exceptions.Timeout'>"}, "requests.exceptions.Timeout"),
        ({"request.error": "ConnectionError"}, "ConnectionError"),
        ({"db.error": "OperationalError: no such table"}, "OperationalError: no such table"),
        ({"error": "boom"}, "boom"),
        ({"error": True}, "error"),
        ({"response.status_code": 500}, "HTTP 500"),
        ({"response.status_code": "503 SERVICE UNAVAILABLE"}, "HTTP 503"),
        ({"response.status_code": 404}, None),
        ({"response.status_code": "200 OK"}, None),
        ({"error": None, "db.error": "", "request.error": False}, None),
        ({}, None),
    ],
)
def test_error_reasons(fields: dict, reason: str | None) -> None:
    assert error_reason(fields) == reason


def test_span_link_events_are_named_after_the_trace_they_point_to() -> None:
    fields = span(TRACE, "l1", "a1", "", 0, 0)
    fields.pop("name", None)
    fields.update({"meta.annotation_type": "link", "trace.link.trace_id": "upstream123", "trace.link.span_id": "s9"})
    parsed = LineParser().feed(line(fields, "libhoney"))
    assert parsed is not None and parsed.name == "link to trace upstream123"
