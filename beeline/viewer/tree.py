"""Group spans into traces and put each trace's spans in waterfall order.

Input files are whatever reached the disk: spans of one trace from several services, parents
that were sampled out or live in another service's file, duplicated or looping ids. Every span
read must appear exactly once in the output, so the tree is built defensively.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from .reading import Span

# Why a span sits at the top of its trace although it has a parent id.
MISSING_PARENT = "missing"
PARENT_LOOP = "loop"


class Row(NamedTuple):
    span: Span
    depth: int
    is_last: bool  # last child of its parent: decides the tree glyph
    mark: str | None  # None, MISSING_PARENT or PARENT_LOOP


class Trace:
    """The spans sharing one trace id, with their tree built on demand."""

    def __init__(self, trace_id: str) -> None:
        self.trace_id = trace_id
        self.spans: list[Span] = []
        self._rows: list[Row] | None = None

    def add(self, span: Span) -> None:
        self.spans.append(span)
        self._rows = None

    @property
    def start_us(self) -> int | None:
        starts = [s.start_us for s in self.spans if s.start_us is not None]
        return min(starts) if starts else None

    @property
    def duration_ms(self) -> float:
        """From the first span's start to the last span's end."""
        start = self.start_us
        if start is None:
            return max((s.duration_ms or 0.0 for s in self.spans), default=0.0)
        return max(
            (s.start_us - start) / 1000.0 + (s.duration_ms or 0.0) for s in self.spans if s.start_us is not None
        )

    @property
    def services(self) -> list[str]:
        seen: dict[str, None] = {}
        for span in self.spans:
            if span.service:
                seen.setdefault(span.service, None)
        return list(seen)

    @property
    def error_count(self) -> int:
        return sum(1 for s in self.spans if s.error is not None)

    @property
    def has_root(self) -> bool:
        return any(s.starts_trace for s in self.spans)

    def sort_key(self) -> tuple[int, int, int]:
        start = self.start_us
        first = min(s.seq for s in self.spans)
        return (0, start, first) if start is not None else (1, 0, first)

    def rows(self) -> list[Row]:
        """Spans in depth-first order, children by start time, each exactly once."""
        if self._rows is None:
            self._rows = _build_rows(self.spans, self.start_us)
        return self._rows


def _order(span: Span) -> tuple[int, int]:
    return (span.start_us if span.start_us is not None else 0, span.seq)


def _build_rows(spans: list[Span], trace_start: int | None) -> list[Row]:
    # A span without a usable time is drawn at the start of its trace rather than dropped.
    if trace_start is not None:
        for span in spans:
            if span.start_us is None:
                span.start_us = trace_start

    owner: dict[str, Span] = {}  # the first span seen with each id owns that id's children
    for span in spans:
        if span.span_id is not None and span.span_id not in owner:
            owner[span.span_id] = span

    children: dict[str, list[Span]] = {}
    tops: list[tuple[Span, str | None]] = []
    for span in spans:
        parent = span.parent_id
        if parent is None:
            tops.append((span, None))
        elif parent == span.span_id:
            tops.append((span, PARENT_LOOP))
        elif parent in owner and owner[parent] is not span:
            children.setdefault(parent, []).append(span)
        else:
            tops.append((span, MISSING_PARENT))
    for siblings in children.values():
        siblings.sort(key=_order)
    tops.sort(key=lambda item: _order(item[0]))

    rows: list[Row] = []
    placed = set()

    def walk(top: Span, mark: str | None, is_last: bool) -> None:
        stack = [(top, 0, is_last, mark)]
        while stack:
            span, depth, last, span_mark = stack.pop()
            if id(span) in placed:
                continue
            placed.add(id(span))
            rows.append(Row(span, depth, last, span_mark))
            kids = children.get(span.span_id) if owner.get(span.span_id) is span else None
            if kids:
                kids = [k for k in kids if id(k) not in placed]
                for index in range(len(kids) - 1, -1, -1):
                    stack.append((kids[index], depth + 1, index == len(kids) - 1, None))

    for span, mark in tops:
        walk(span, mark, True)
    if len(placed) < len(spans):
        # What is left hangs off a parent loop (a -> b -> a); break it at its earliest span.
        for span in sorted(spans, key=_order):
            if id(span) not in placed:
                walk(span, PARENT_LOOP, True)
    return rows


class Collection(NamedTuple):
    traces: list[Trace]
    standalone: list[Span]


def assemble(spans: Iterable[Span]) -> Collection:
    """Group spans by trace id, traces by start time; events without a trace id kept apart."""
    by_id: dict[str, Trace] = {}
    standalone: list[Span] = []
    for span in spans:
        if span.trace_id is None:
            standalone.append(span)
            continue
        trace = by_id.get(span.trace_id)
        if trace is None:
            trace = by_id[span.trace_id] = Trace(span.trace_id)
        trace.add(span)
    traces = sorted(by_id.values(), key=Trace.sort_key)
    standalone.sort(key=_order)
    return Collection(traces, standalone)


def select(
    traces: list[Trace],
    trace_id: str | None = None,
    service: str | None = None,
    slowest: int | None = None,
) -> list[Trace]:
    """Apply the command-line filters; `slowest` returns the slowest first."""
    chosen = traces
    if trace_id:
        exact = [t for t in chosen if t.trace_id == trace_id]
        # A prefix is enough, as with git commits, when it is not itself a full id.
        chosen = exact or [t for t in chosen if t.trace_id.startswith(trace_id)]
    if service:
        chosen = [t for t in chosen if any(s.service == service for s in t.spans)]
    if slowest is not None:
        chosen = sorted(chosen, key=lambda t: (-t.duration_ms, t.sort_key()))[:slowest]
    return chosen
