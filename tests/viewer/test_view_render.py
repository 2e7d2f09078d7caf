"""Drawing: tree glyphs, aligned durations, proportional bars, widths, colour, fields."""

from __future__ import annotations

import re
import unicodedata

import pytest

from beeline.viewer.reading import LineParser, Span
from beeline.viewer.render import Renderer
from beeline.viewer.tree import Trace, assemble

from .helpers import ANSI, line, span

ESCAPES = re.compile(r"\x1b\[[0-9;]*m")


def one_trace(*records: dict) -> Trace:
    parser = LineParser()
    spans = [parser.feed(line(r)) for r in records]
    (trace,) = assemble([s for s in spans if s is not None]).traces
    return trace


def shop_trace() -> Trace:
    return one_trace(
        span("t1", "b2", "a1", "render", 50, 50),
        span("t1", "c1", "b1", "query", 10, 15, service="db"),
        span("t1", "b1", "a1", "load", 0, 25),
        span("t1", "a1", None, "request", 0, 100, **{"meta.span_type": "root", "request.path": "/cart"}),
    )


def name_column(lines: list[str]) -> list[str]:
    """The name cells of the span lines, cut where the titles line puts "service"."""
    end = lines[1].index("service")
    return [text[:end].rstrip() for text in lines[2:]]


def test_tree_order_glyphs_and_aligned_durations() -> None:
    lines = Renderer(width=100).trace(shop_trace())
    assert lines[0] == "trace t1  2026-11-21 05:40:01.000 UTC  100.00 ms  4 spans  2 services"
    body = lines[2:]
    assert name_column(lines) == ["request", "├─ load", "│  └─ query", "└─ render"]
    ends = {row.index(" ms") for row in body}
    assert len(ends) == 1, "durations must end in the same column"
    for text, duration in zip(body, ["100.00", "25.00", "15.00", "50.00"]):
        assert f" {duration} ms" in text


def bar_of(text: str, column: int) -> tuple[int, int]:
    """(offset, length) of the bar in a span line whose bar area starts at `column`."""
    area = text[column:]
    stripped = area.lstrip(" ")
    return len(area) - len(stripped), len(stripped)


def test_bars_share_the_trace_time_axis() -> None:
    lines = Renderer(width=100).trace(shop_trace())
    titles = lines[1]
    column = titles.index(" 0 ") + 1  # the axis starts at 0 ...
    assert titles.endswith("100.00 ms")  # ... and ends at the trace's duration
    width = len(titles) - column
    request, load, query, render = (bar_of(text, column) for text in lines[2:])
    assert request == (0, width)
    assert load == (0, round(width * 0.25))
    assert query[0] == int(width * 0.10) and query[1] == pytest.approx(width * 0.15, abs=1)
    assert render == (width // 2, width - width // 2)


@pytest.mark.parametrize("width", [40, 60, 100, 160])
def test_no_line_is_wider_than_asked(width: int) -> None:
    records = [span("t1", "s0", None, "root_" + "x" * 90, 0, 1000, service="a-very-long-service-name-indeed")]
    for depth in range(1, 40):  # deep enough for the guides alone to overflow the column
        records.append(span("t1", f"s{depth}", f"s{depth - 1}", f"level_{depth}", depth, 1000 - depth,
                            **{"detail": "y" * 300, "error": "failed " * 30 if depth % 7 == 0 else None}))
    records.append(span("t1", "orphan", "not-here-" + "z" * 40, "orphan_" + "o" * 60, 5, 5))
    trace = one_trace(*records)
    for fields in (False, True):
        lines = Renderer(width=width, show_fields=fields).trace(trace)
        too_wide = [text for text in lines if len(text) > width]
        assert too_wide == []
    assert any(text.endswith("…") for text in lines)


def test_plain_output_has_no_escapes_and_colour_marks_errors() -> None:
    trace = one_trace(
        span("t1", "a1", None, "request", 0, 100),
        span("t1", "b1", "a1", "charge", 10, 20, **{"app.exception_type": "<class 'ValueError'>",
                                                     "app.exception_string": "card declined"}),
    )
    plain = "\n".join(Renderer(width=100, color=False).trace(trace))
    assert ANSI not in plain
    assert "└─ ✗ charge" in plain and "ValueError: card declined" in plain

    coloured = Renderer(width=100, color=True).trace(trace)
    charge_line = next(text for text in coloured if "charge" in text)
    assert "\x1b[31;1mcharge\x1b[0m" in charge_line
    assert "\x1b[31;1mrequest" not in "\n".join(coloured)
    # Without the escapes, the coloured drawing is the plain one.
    assert [ESCAPES.sub("", text) for text in coloured] == plain.splitlines()


def test_text_from_the_file_cannot_drive_the_terminal() -> None:
    trace = one_trace(span("t1", "a1", None, "evil\x1b[2J\x1b]0;title\x07name\nnext\u202ereversed", 0, 10,
                           service="svc\x1b[31m", **{"note": "line1\nline2\x1b[5m"}))
    for colour in (False, True):
        lines = Renderer(width=100, color=colour, show_fields=True).trace(trace)
        text = "\n".join(lines)
        assert "\x1b[2J" not in text and "\x1b]0" not in text and "\x07" not in text and "\x1b[5m" not in text
        assert "svc\x1b[31m" not in text and "\u202e" not in text
        assert len(lines) == 2 + 1 + 3  # header, titles, the span, its three fields: no extra line breaks


def test_fields_lists_the_rest_sorted_and_truncated() -> None:
    trace = one_trace(span("t1", "a1", None, "request", 0, 10,
                           **{"zeta": 1, "alpha": "a", "request.path": "/cart", "long": "x" * 500,
                              "nested": {"k": [1, 2]}, "meta.span_type": "root"}))
    lines = Renderer(width=80, show_fields=True).trace(trace)
    fields = [text.strip() for text in lines[3:]]
    keys = [text.split(":", 1)[0] for text in fields]
    assert keys == sorted(keys)
    assert keys == ["alpha", "long", "meta.beeline_version", "meta.local_hostname", "meta.span_type",
                    "nested", "request.path", "zeta"]
    assert 'nested: {"k": [1, 2]}' in fields
    long_line = next(text for text in lines if "long:" in text)
    assert len(long_line) == 80 and long_line.endswith("…")


def test_missing_parents_and_loops_are_marked() -> None:
    trace = one_trace(
        span("t1", "s1", "0123456789abcdef", "from_upstream", 0, 10, **{"meta.span_type": "subroot"}),
        span("t1", "p", "q", "loop_p", 1, 1),
        span("t1", "q", "p", "loop_q", 2, 1),
    )
    text = "\n".join(Renderer(width=100).trace(trace))
    assert "from_upstream [parent 01234567 missing]" in text
    assert "loop_p [parent loop]" in text
    assert "└─ loop_q" in text


def test_ascii_drawing_for_terminals_without_box_characters() -> None:
    lines = Renderer(width=100, unicode=False).trace(shop_trace())
    assert all(text.isascii() for text in lines)
    assert name_column(lines) == ["request", "|- load", "|  `- query", "`- render"]
    assert "#" * 10 in lines[2]


def test_standalone_events_with_errors_and_fields() -> None:
    parser = LineParser()
    events: list[Span] = [
        parser.feed(line(span(None, None, None, "audit", 0, None, service="shop", ok=True))),
        parser.feed(line(span(None, None, None, "tornado_request", 5, 12.5, service="api",
                              **{"response.status_code": 502}))),
    ]
    lines = Renderer(width=100, show_fields=True).standalone(events)
    assert lines[0] == "standalone events (no trace id): 2"
    assert lines[1] == "2026-11-21 05:40:01.000 UTC  shop     audit"
    assert "    ok: true" in lines
    api = next(text for text in lines if "tornado_request" in text)
    assert api.endswith("✗ tornado_request  12.50 ms")
    assert "    HTTP 502" in lines


def test_summary_counts_and_broken_lines() -> None:
    counts = dict(traces=3, spans=12, standalone=1, errors=2, shown=1, broken=7,
                  broken_linenos=[2, 5, 9, 10, 11, 12, 13])
    text = Renderer(width=160).summary(**counts)
    assert text == ("3 traces, 12 spans, 1 standalone event, 2 errors (showing 1 trace); "
                    "skipped 7 broken lines (line 2, 5, 9, 10, 11, ...)")
    narrow = Renderer(width=80).summary(**counts)
    assert narrow.splitlines() == ["3 traces, 12 spans, 1 standalone event, 2 errors (showing 1 trace)",
                                   "skipped 7 broken lines (line 2, 5, 9, 10, 11, ...)"]
    renderer = Renderer()
    one = renderer.summary(1, 1, 0, 0, 1, 1, [4])
    assert one == "1 trace, 1 span, 0 standalone events; skipped 1 broken line (line 4)"


def display_columns(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in ("W", "F") else 0 if unicodedata.combining(c) else 1
               for c in text)


@pytest.mark.parametrize("width", [40, 100])
def test_wide_characters_keep_the_columns_aligned(width: int) -> None:
    trace = one_trace(
        span("t1", "a1", None, "注文を処理する", 0, 100, service="決済"),
        span("t1", "b1", "a1", "café", 10, 20),  # with a combining accent below
        span("t1", "c1", "a1", "plain_name", 40, 20),
        span("t1", "d1", "a1", "絵文字🚀" * 10, 60, 20),
    )
    trace.spans[1].name = "cafe\u0301"
    lines = Renderer(width=width).trace(trace)
    body = lines[[text.startswith("span ") for text in lines].index(True) + 1 :]
    assert len(body) == 4
    ends = {display_columns(text[: text.index(" ms") + 3]) for text in body}
    assert len(ends) == 1, body
    assert all(display_columns(text) <= width for text in lines)
