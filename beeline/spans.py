"""Spans and traces, and the ContextVar that holds the active span.

One state model for threads and asyncio: the active span lives in a ContextVar. Each span
remembers the span that was active when it started (`_return_to`), so the chain of active spans
is an immutable linked list shared safely by every thread and task that copied the context.
The Tracer (beeline.trace) starts and finishes them.
"""

from __future__ import annotations

import threading
import time
from contextvars import ContextVar
from random import getrandbits
from typing import Any, Optional

MAX_INT32 = float(2**32 - 1)
SPAN_ID_BYTES = 8
TRACE_ID_BYTES = 16

# Serialises the read-modify-write of rollups and trace fields, which worker threads may do on
# a trace they share with the request thread. Not taken on the per-span path.
_shared_trace_lock = threading.Lock()

current_span_var: ContextVar[Optional["Span"]] = ContextVar("beeline_current_span", default=None)
_get_current = current_span_var.get
_set_current = current_span_var.set
_perf_counter = time.perf_counter
_new_object = object.__new__

W3C_KEYS = ("traceflags", "tracestate")


# Ids are random bits from the `random` module (no system call, unlike the reference's
# SystemRandom), turned into hex once. `int.to_bytes(...).hex()` is about three times faster than
# "%016x" formatting, and it zero-pads by construction.


def generate_trace_id() -> str:
    """32 lowercase hex characters (128 random bits), valid as a W3C trace id."""
    return getrandbits(128).to_bytes(16, "big").hex()


def generate_span_id() -> str:
    """16 lowercase hex characters (64 random bits), valid as a W3C span id."""
    return getrandbits(64).to_bytes(8, "big").hex()


class Trace:
    """What the spans of one trace share: its id, trace fields, rollup totals, the sampling
    decision, the upstream dataset and W3C state. Shared by reference, never copied."""

    __slots__ = ("id", "dataset", "fields", "rollup_fields", "sampled", "w3c", "outer", "done")

    def __init__(
        self, trace_id: str, dataset: Optional[str] = None, sampled: bool = True, outer: Optional["Span"] = None
    ) -> None:
        # Tracer.start_trace sets the same slots itself, without this frame: keep the two in step.
        self.id = trace_id
        self.dataset = dataset
        # Most traces never get trace fields, rollups or W3C state: each dict is made on first use
        # (under _shared_trace_lock where threads may race), so a trace costs one object, not four.
        self.fields: Optional[dict] = None
        self.rollup_fields: Optional[dict] = None
        self.sampled = sampled
        self.w3c: Optional[dict] = None
        self.outer = outer
        # Set by finish_trace: from then on no span of this trace is anyone's active span.
        self.done = False


class Span:
    """One unit of work. Its own fields are kept in a plain dict; the event sent for it is
    assembled once, at finish, and only when its trace is kept.

    Only what every span needs has a slot (about 0.4 KB per live span with its fields and id,
    against about 1.1 KB in the reference): the trace id is read through the trace, and the
    wall-clock start is derived from the monotonic start when it is needed.
    """

    __slots__ = (
        "trace",
        "parent_id",
        "id",
        "fields",
        "rollup_fields",
        "_is_root",
        "_return_to",
        "_start",
        "finished",
        "sample_rate",
    )

    def __init__(
        self,
        trace: Trace,
        parent_id: Optional[str],
        span_id: str,
        fields: dict,
        is_root: bool = False,
        return_to: Optional["Span"] = None,
    ) -> None:
        # Tracer.start_span sets the same slots itself, without this frame: keep the two in step.
        self.trace = trace
        self.parent_id = parent_id
        self.id = span_id
        self.fields = fields
        self.rollup_fields: Optional[dict] = None
        self._is_root = is_root
        self._return_to = return_to
        self.finished = False
        self.sample_rate: Optional[int] = None
        self._start = _perf_counter()

    @property
    def trace_id(self) -> str:
        return self.trace.id

    def add_context_field(self, name: str, value: Any) -> None:
        self.fields[name] = value

    def add_context(self, data: dict) -> None:
        self.fields.update(data)

    def remove_context_field(self, name: str) -> None:
        self.fields.pop(name, None)

    def is_root(self) -> bool:
        return self._is_root

    @property
    def event(self) -> "SpanFieldsView":
        """Compatibility with code written for the reference, where a span carried a libhoney
        Event: `span.event.add_field(...)`, `span.event.fields()`, `span.event.sample_rate`."""
        return SpanFieldsView(self)

    @property
    def start_time(self) -> float:
        """Wall-clock start, seconds since the epoch: now, less the monotonic time elapsed since
        the span started (so it needs no second clock read per span)."""
        return time.time() - (_perf_counter() - self._start)

    def __repr__(self) -> str:
        return f"<Span {self.fields.get('name', '')!r} trace={self.trace_id} id={self.id} parent={self.parent_id}>"


_span_id_slot = Span.__dict__["id"]


class UnsampledSpan(Span):
    """A child span of a trace that sampling dropped when it started (see Tracer.start_span).

    It is a Span in every way the application can see, except that its `start_time` is its
    parent's (no clock is read for it) and its id is made on first use: most such spans are
    never asked for one.
    """

    __slots__ = ()

    @property  # type: ignore[override]
    def id(self) -> str:
        try:
            return _span_id_slot.__get__(self, Span)
        except AttributeError:
            span_id = getrandbits(64).to_bytes(8, "big").hex()
            _span_id_slot.__set__(self, span_id)
            return span_id

    @id.setter
    def id(self, value: str) -> None:
        _span_id_slot.__set__(self, value)


def span_fields(trace: Trace, context: Optional[dict]) -> dict:
    """A new span's own fields: the trace fields as they are now (as the reference copied them
    into each new span's event), then the caller's context, copied so the caller may reuse it."""
    if trace.fields:
        fields = trace.fields.copy()
        if context:
            fields.update(context)
        return fields
    return dict(context) if context else {}


class SpanFieldsView:
    __slots__ = ("_span",)

    def __init__(self, span: Span) -> None:
        self._span = span

    def fields(self) -> dict:
        return self._span.fields

    def add_field(self, name: str, value: Any) -> None:
        self._span.fields[name] = value

    def add(self, data: dict) -> None:
        self._span.fields.update(data)

    @property
    def sample_rate(self) -> Optional[int]:
        return self._span.sample_rate

    @sample_rate.setter
    def sample_rate(self, rate: int) -> None:
        self._span.sample_rate = rate


def active_span() -> Optional[Span]:
    """The active span of this context, or None.

    A span finished in another context (a task or pool job that outlives the span that spawned
    it) stays the parent of what this context starts, as long as its trace runs; once the trace
    has ended, what was active before it is (so a finished request never swallows later work).
    """
    span = _get_current()
    if span is not None and span.trace.done:
        span = _live(span)
    return span


def _live(span: Optional[Span]) -> Optional[Span]:
    while span is not None and span.trace.done:
        span = span.trace.outer
    return span


def _unfinished(span: Optional[Span]) -> Optional[Span]:
    while span is not None and span.finished:
        span = span._return_to
    return span
