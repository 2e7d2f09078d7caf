"""The tracer: starting and finishing spans and traces (the objects live in beeline.spans).

Finishing a span makes its `_return_to` active again, skipping spans already finished, so an
out-of-order finish never leaves a stale span behind, and a trace started inside another trace
gives the outer one back when it ends.

The tracer never touches libhoney: a finished span of a kept trace is handed to `send_span`, a
callable that the Beeline provides.
"""

from __future__ import annotations

import logging
from random import getrandbits
from typing import Any, Callable, Optional

from beeline.sampling import should_sample
from beeline.spans import (  # noqa: F401  (the reference's names live in beeline.trace)
    MAX_INT32,
    SPAN_ID_BYTES,
    TRACE_ID_BYTES,
    W3C_KEYS,
    Span,
    SpanFieldsView,
    Trace,
    UnsampledSpan,
    _get_current,
    _live,
    _new_object,
    _perf_counter,
    _set_current,
    _shared_trace_lock,
    _unfinished,
    active_span,
    current_span_var,
    generate_span_id,
    generate_trace_id,
    span_fields,
)

log = logging.getLogger("beeline")


def stringify_exception(exc: BaseException) -> str:
    """`str(exc)`, or a fixed text when the exception's own `__str__` fails."""
    try:
        return str(exc)
    except Exception:
        return "unable to decode exception"


class Tracer:
    """The state API of the reference's Tracer, over the ContextVar state.

    `send_span(span)` is called for every finished span of a kept trace; `sample_rate` decides
    which traces are kept when no sampler hook is set.
    """

    def __init__(self, send_span: Callable[[Span], None], sample_rate: int = 1, decide_per_span: bool = False):
        self._send_span = send_span
        self.sample_rate = sample_rate
        # With a sampler hook the user decides per span at finish, so every trace is "kept" here.
        self._decide_per_span = decide_per_span
        self.presend_hook = None
        self.sampler_hook = None
        self.http_trace_parser_hook: Optional[Callable] = None
        self.http_trace_propagation_hook: Optional[Callable] = None
        self.propagate_dataset = True

    # ---- starting and finishing -------------------------------------------------------------

    def start_trace(
        self,
        context: Optional[dict] = None,
        trace_id: Optional[str] = None,
        parent_span_id: Optional[str] = None,
        dataset: Optional[str] = None,
    ) -> Span:
        # The caller may reuse its dict: the trace gets a copy.
        return self.open_trace(dict(context) if context else {}, trace_id, parent_span_id, dataset)

    def open_trace(
        self,
        fields: dict,
        trace_id: Optional[str] = None,
        parent_span_id: Optional[str] = None,
        dataset: Optional[str] = None,
    ) -> Span:
        """start_trace for a caller that hands over a dict of its own making (a middleware's
        request fields): the root span keeps `fields` itself, without a copy."""
        trace_id = trace_id or getrandbits(128).to_bytes(16, "big").hex()
        rate = self.sample_rate
        # Decided once, here, for every span of the trace: spans of a dropped trace cost no event.
        sampled = rate == 1 or self._decide_per_span or should_sample(trace_id, rate)
        outer = _get_current()
        if outer is not None and outer.trace.done:
            outer = _live(outer)
        trace = _new_object(Trace)  # Trace.__init__, inlined: keep the two in step
        trace.id = trace_id
        trace.dataset = dataset
        trace.fields = None
        trace.rollup_fields = None
        trace.sampled = sampled
        trace.w3c = None
        trace.outer = outer
        trace.done = False
        fields["meta.span_type"] = "subroot" if parent_span_id else "root"
        # Span.__init__, inlined as in start_span: one of these per request.
        span = _new_object(Span)
        span.trace = trace
        span.parent_id = parent_span_id
        span.id = getrandbits(64).to_bytes(8, "big").hex()
        span.fields = fields
        span.rollup_fields = None
        span._is_root = True
        span._return_to = outer
        span.finished = False
        span.sample_rate = None
        span._start = _perf_counter()
        _set_current(span)
        return span

    def start_span(
        self, context: Optional[dict] = None, parent_id: Optional[str] = None, is_root_span: bool = False
    ) -> Optional[Span]:
        # The hot path: one context read, no helper calls, the id formatted once, here.
        current = _get_current()
        if current is None:
            return None
        if current.trace.done:
            current = _live(current)
            if current is None:
                return None
        trace = current.trace
        if not trace.sampled:
            # Never sent: the span keeps the trace's shape (nesting, fields the code reads back,
            # propagation) but reads no clock and leaves its id to be made only if it is asked for.
            span = _new_object(UnsampledSpan)
            span.trace = trace
            span.parent_id = parent_id or current.id
            span.fields = dict(context) if context else {}
            span.rollup_fields = None
            span._is_root = is_root_span
            span._return_to = current
            span.finished = False
            span.sample_rate = None
            span._start = current._start
            _set_current(span)
            return span
        if trace.fields:
            fields = span_fields(trace, context)
        else:
            fields = dict(context) if context else {}
        # Span.__init__, inlined (keep the two in step): this is the most frequent call there is,
        # and skipping the constructor's frame saves about 5% of a child span's cost.
        span = _new_object(Span)
        span.trace = trace
        span.parent_id = parent_id or current.id
        span.id = getrandbits(64).to_bytes(8, "big").hex()
        span.fields = fields
        span.rollup_fields = None
        span._is_root = is_root_span
        span._return_to = current
        span.finished = False
        span.sample_rate = None
        span._start = _perf_counter()
        _set_current(span)
        return span

    def open_detached_span(self, context: Optional[dict], parent: Span) -> Span:
        """A child of `parent` that does not become the active span of this context (used for
        generators, whose spans must not adopt the consumer's spans)."""
        trace = parent.trace
        return Span(trace, parent.id, generate_span_id(), span_fields(trace, context), False, parent)

    def finish_span(self, span: Optional[Span]) -> None:
        if span is None or span.finished:
            return
        span.finished = True
        if _get_current() is span:
            back = span._return_to
            if back is not None and back.finished:
                back = _unfinished(back)
            _set_current(back)
        # Spans of a trace that sampling dropped end here: no fields merged, no event built.
        if span.trace.sampled:
            self._send_span(span)

    def finish_trace(self, span: Optional[Span]) -> None:
        if span is None:
            return
        if not span.finished:
            # finish_span's work, inlined: once per request, one call less.
            span.finished = True
            if _get_current() is span:
                back = span._return_to
                if back is not None and back.finished:
                    back = _unfinished(back)
                _set_current(back)
            if span.trace.sampled:
                self._send_span(span)
        trace = span.trace
        trace.done = True
        # Everything of this trace leaves the context, whatever was left open inside it; a trace
        # that was active before this one (explicit trace_id inside a trace) is active again.
        current = _get_current()
        if current is not None and (current.trace is trace or _descends_from(current, trace)):
            _set_current(_live(_unfinished(trace.outer)))

    # ---- fields ---------------------------------------------------------------------------------

    def add_context_field(self, name: str, value: Any) -> None:
        span = _get_current()
        if span is not None:
            if span.trace.done:
                span = _live(span)
                if span is None:
                    return
            span.fields[name] = value

    def add_context(self, data: dict) -> None:
        span = _get_current()
        if span is not None:
            if span.trace.done:
                span = _live(span)
                if span is None:
                    return
            span.fields.update(data)

    def remove_context_field(self, name: str) -> None:
        span = active_span()
        if span is not None:
            span.fields.pop(name, None)

    def add_rollup_field(self, name: str, value: Any) -> None:
        span = active_span()
        if span is None:
            log.debug("add_rollup_field(%r) outside a trace is ignored", name)
            return
        try:
            number = float(value)
        except (TypeError, ValueError):
            log.warning("add_rollup_field(%r): value %r is not a number; ignored", name, value)
            return
        trace_key = "rollup." + str(name)
        with _shared_trace_lock:
            if span.rollup_fields is None:
                span.rollup_fields = {}
            span.rollup_fields[name] = span.rollup_fields.get(name, 0.0) + number
            trace = span.trace
            rollups = trace.rollup_fields
            if rollups is None:
                rollups = trace.rollup_fields = {}
            rollups[trace_key] = rollups.get(trace_key, 0.0) + number

    def add_trace_field(self, name: Any, value: Any) -> None:
        span = active_span()
        if span is None:
            return
        key = trace_field_key(name)
        span.fields[key] = value
        with _shared_trace_lock:
            trace = span.trace
            if trace.fields is None:
                trace.fields = {}
            trace.fields[key] = value

    def remove_trace_field(self, name: Any) -> None:
        span = active_span()
        if span is None:
            return
        key = trace_field_key(name)
        span.fields.pop(key, None)
        with _shared_trace_lock:
            trace_fields = span.trace.fields
            if trace_fields:
                trace_fields.pop(key, None)

    # ---- inspection -----------------------------------------------------------------------------

    def get_active_span(self) -> Optional[Span]:
        return active_span()

    def get_active_trace_id(self) -> Optional[str]:
        span = active_span()
        return span.trace_id if span is not None else None

    # ---- propagation ----------------------------------------------------------------------------

    def get_propagation_context(self):
        span = active_span()
        if span is None:
            return None  # before the import below: outside a trace this must cost next to nothing
        from beeline.propagation import PropagationContext

        trace = span.trace
        fields = dict(trace.fields) if trace.fields else {}
        if trace.w3c:
            fields.update(trace.w3c)
        return PropagationContext(trace.id, span.id, fields)

    def parse_http_trace(self, request):
        hook = self.http_trace_parser_hook
        if hook is None:
            return None
        return hook(request)

    def propagate_and_start_trace(self, context: Optional[dict], request) -> Span:
        """Start a trace that continues the caller's, as the parser hook reads it from the request.

        Unlike the reference (which returned before this step since 2.13.0), the propagated trace
        fields become trace fields of this service again, and W3C flags and state are kept for
        the next hop. A hook that raises, or returns something unusable, starts a fresh trace.
        """
        return self.propagate_and_open_trace(dict(context) if context else {}, request)

    def propagate_and_open_trace(self, fields: dict, request) -> Span:
        """propagate_and_start_trace for a caller that hands over `fields` (see open_trace)."""
        try:
            hook = self.http_trace_parser_hook
            parsed = hook(request) if hook is not None else None
        except Exception as exc:  # a custom hook must never break the request
            log.warning("http_trace_parser_hook raised %r; starting a new trace", exc)
            span = self.open_trace(fields)
            span.fields["parser_hook_error"] = repr(type(exc))
            return span
        if not parsed:
            return self.open_trace(fields)
        try:
            trace_id = parsed.trace_id
            parent_id = parsed.parent_id
            propagated = dict(parsed.trace_fields or {})
            dataset = getattr(parsed, "dataset", None) if self.propagate_dataset else None
        except Exception as exc:
            log.warning("http_trace_parser_hook returned %r, not a PropagationContext (%r)", type(parsed), exc)
            return self.open_trace(fields)
        if parent_id and not trace_id:
            # A custom hook's parent in no trace: a span under it would belong to no trace.
            log.warning("http_trace_parser_hook returned a parent id without a trace id; starting a new trace")
            parent_id = None
        span = self.open_trace(fields, trace_id or None, parent_id or None, dataset or None)
        trace = span.trace
        for key, value in propagated.items():
            if key in W3C_KEYS:
                if value is not None:
                    if trace.w3c is None:
                        trace.w3c = {}
                    trace.w3c[key] = value
                continue
            field_key = trace_field_key(key)
            if trace.fields is None:
                trace.fields = {}
            trace.fields[field_key] = value
            span.fields[field_key] = value
        return span

    def marshal_trace_context(self) -> Optional[str]:
        from beeline.propagation.honeycomb import marshal_propagation_context

        ctx = self.get_propagation_context()
        if ctx is None:
            return None
        return marshal_propagation_context(ctx, propagate_dataset=False)

    def register_hooks(self, presend=None, sampler=None, http_trace_parser=None, http_trace_propagation=None):
        self.presend_hook = presend
        self.sampler_hook = sampler
        self.http_trace_parser_hook = http_trace_parser
        self.http_trace_propagation_hook = http_trace_propagation


def trace_field_key(name: Any) -> str:
    """Trace fields live under `app.`; a name that already has the prefix keeps it."""
    if isinstance(name, str):
        return name if name.startswith("app.") else "app." + name
    return "app.%s" % (name,)


def _descends_from(span: Span, trace: Trace) -> bool:
    """True when `span` belongs to a trace started while `trace` was active (nested traces)."""
    seen = span.trace
    while seen is not None and seen is not trace:
        outer = seen.outer
        seen = outer.trace if outer is not None else None
    return seen is trace


# ---- deprecated helpers kept for code written against the reference ------------------------------


def marshal_trace_context(trace_id: str, parent_id: str, context: dict) -> str:
    """DEPRECATED: an `X-Honeycomb-Trace` v1 value. Use the propagation hooks instead."""
    from beeline.propagation import PropagationContext
    from beeline.propagation.honeycomb import marshal_propagation_context

    ctx = PropagationContext(trace_id, parent_id, dict(context or {}))
    return marshal_propagation_context(ctx, propagate_dataset=False)


def unmarshal_trace_context(trace_header: str):
    """DEPRECATED: (trace_id, parent_id, context) from an `X-Honeycomb-Trace` value."""
    from beeline.propagation.honeycomb import unmarshal_propagation_context

    return unmarshal_propagation_context(trace_header)


# The reference's two tracers (thread-local and asyncio) are one here: the ContextVar state
# serves both, so both of its names refer to this class.
SynchronousTracer = Tracer
