"""Assembling traces: grouping, order, parents that are missing or loop, filters."""

from __future__ import annotations

import random

from beeline.viewer.reading import LineParser, Span
from beeline.viewer.tree import MISSING_PARENT, PARENT_LOOP, assemble, select

from .helpers import line, span


def parse(*records: dict) -> list[Span]:
    parser = LineParser()
    spans = [parser.feed(line(r)) for r in records]
    assert parser.broken == 0
    return [s for s in spans if s is not None]


def names(trace) -> list[tuple[str, int, str | None]]:
    return [(row.span.name, row.depth, row.mark) for row in trace.rows()]


def test_children_come_under_parents_in_start_order_whatever_the_file_order() -> None:
    # Spans are written as they finish: children first, root last.
    spans = parse(
        span("t1", "c2", "b1", "query", 6, 2),
        span("t1", "b2", "a1", "render", 30, 50),
        span("t1", "c1", "b1", "connect", 1, 3),
        span("t1", "b1", "a1", "load", 0, 20),
        span("t1", "a1", None, "request", 0, 100),
    )
    (trace,) = assemble(spans).traces
    assert names(trace) == [
        ("request", 0, None),
        ("load", 1, None),
        ("connect", 2, None),
        ("query", 2, None),
        ("render", 1, None),
    ]
    assert [row.is_last for row in trace.rows()] == [True, False, False, True, True]
    assert trace.duration_ms == 100
    assert trace.has_root


def test_traces_are_ordered_by_start_and_standalone_events_kept_apart() -> None:
    spans = parse(
        span("late", "l1", None, "second", 500, 10),
        span(None, None, None, "send_now_event", 200, None),
        span("early", "e1", None, "first", 100, 10),
    )
    collection = assemble(spans)
    assert [t.trace_id for t in collection.traces] == ["early", "late"]
    assert [e.name for e in collection.standalone] == ["send_now_event"]


def test_a_span_whose_parent_is_not_in_the_file_is_shown_and_marked() -> None:
    spans = parse(
        span("t1", "a1", None, "root", 0, 50),
        span("t1", "x1", "sampled-out", "orphan", 10, 5),
        span("t1", "x2", "x1", "orphan_child", 11, 1),
    )
    (trace,) = assemble(spans).traces
    assert names(trace) == [("root", 0, None), ("orphan", 0, MISSING_PARENT), ("orphan_child", 1, None)]


def test_a_trace_continued_from_another_service_has_no_root_here() -> None:
    spans = parse(span("t1", "s1", "upstream", "billing", 0, 5, service="billing", **{"meta.span_type": "subroot"}))
    (trace,) = assemble(spans).traces
    assert names(trace) == [("billing", 0, MISSING_PARENT)]
    assert trace.has_root  # a subroot starts the trace in its service


def test_parent_loops_and_self_parents_still_show_every_span_once() -> None:
    spans = parse(
        span("t1", "a", "b", "loop_a", 0, 5),
        span("t1", "b", "a", "loop_b", 1, 5),
        span("t1", "s", "s", "self_parent", 2, 5),
    )
    (trace,) = assemble(spans).traces
    assert names(trace) == [("self_parent", 0, PARENT_LOOP), ("loop_a", 0, PARENT_LOOP), ("loop_b", 1, None)]
    assert not trace.has_root


def test_duplicate_span_ids_keep_both_spans() -> None:
    spans = parse(
        span("t1", "a1", None, "root", 0, 50),
        span("t1", "a1", None, "root_again", 5, 10),
        span("t1", "b1", "a1", "child", 1, 5),
    )
    (trace,) = assemble(spans).traces
    assert names(trace) == [("root", 0, None), ("child", 1, None), ("root_again", 0, None)]


def test_random_forests_place_every_span_once_and_after_its_parent() -> None:
    rng = random.Random(7)
    for _ in range(50):
        records = []
        for index in range(rng.randint(1, 40)):
            parent = None if index == 0 else f"s{rng.randrange(index + 3)}"  # some parents missing
            records.append(span("t", f"s{index}", parent, f"n{index}", rng.uniform(0, 100), rng.uniform(0, 10)))
        rng.shuffle(records)
        (trace,) = assemble(parse(*records)).traces
        rows = trace.rows()
        assert sorted(row.span.name for row in rows) == sorted(r["name"] for r in records)
        position = {row.span.span_id: i for i, row in enumerate(rows)}
        for i, row in enumerate(rows):
            if row.depth > 0:
                parent_row = position[row.span.parent_id]
                assert parent_row < i and rows[parent_row].depth == row.depth - 1
            elif row.mark == MISSING_PARENT:
                assert row.span.parent_id not in position
            else:  # a root, or where a parent loop (a -> b -> a) was broken
                assert row.span.parent_id is None or row.mark == PARENT_LOOP


def test_spans_without_a_time_are_drawn_at_the_trace_start() -> None:
    parser = LineParser()
    root = parser.feed(line(span("t1", "a1", None, "root", 10, 50)))
    timeless = parser.feed(
        '{"data": {"trace.trace_id": "t1", "trace.span_id": "b1", "trace.parent_id": "a1", "name": "x"}}'
    )
    (trace,) = assemble([root, timeless]).traces
    assert [row.span.name for row in trace.rows()] == ["root", "x"]
    assert timeless.start_us == root.start_us


def make_traces():
    return assemble(
        parse(
            span("aaaa1111", "a1", None, "fast", 0, 10, service="shop"),
            span("bbbb2222", "b1", None, "slow", 100, 300, service="shop"),
            span("bbbb2222", "b2", "b1", "charge", 120, 50, service="billing"),
            span("cccc3333", "c1", None, "medium", 200, 60, service="search"),
        )
    ).traces


def test_select_by_trace_id_or_unique_prefix() -> None:
    traces = make_traces()
    assert [t.trace_id for t in select(traces, trace_id="bbbb2222")] == ["bbbb2222"]
    assert [t.trace_id for t in select(traces, trace_id="cccc")] == ["cccc3333"]
    assert select(traces, trace_id="nope") == []


def test_select_by_service_keeps_whole_traces_that_touch_it() -> None:
    traces = make_traces()
    (chosen,) = select(traces, service="billing")
    assert chosen.trace_id == "bbbb2222" and len(chosen.spans) == 2
    assert chosen.services == ["shop", "billing"]


def test_select_slowest_n_slowest_first() -> None:
    traces = make_traces()
    assert [t.trace_id for t in select(traces, slowest=2)] == ["bbbb2222", "cccc3333"]
    assert [t.trace_id for t in select(traces, slowest=10)] == ["bbbb2222", "cccc3333", "aaaa1111"]
