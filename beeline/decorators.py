"""`tracer()`, `traced()`, `untraced()` and `traced_thread()`.

The beeline is looked up when the wrapped code runs, not when it is decorated, so decorating at
import time, before `init()`, works; without a beeline the wrapped code runs untouched.
"""

from __future__ import annotations

import inspect
import logging
import traceback
from contextvars import copy_context
from functools import wraps
from typing import Any, Callable, Optional

from beeline.trace import Span, Tracer, active_span, current_span_var, stringify_exception

log = logging.getLogger("beeline")
_get_current = current_span_var.get
_set_current = current_span_var.set


def exception_fields(exc: BaseException) -> dict:
    """The reference's exception fields, e.g. app.exception_type = "<class 'ValueError'>"."""
    return {
        "app.exception_type": str(type(exc)),
        "app.exception_string": stringify_exception(exc),
        "app.exception_stacktrace": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    }


class SpanContext:
    """The body of `beeline.tracer(...)`: a child span inside an active trace, otherwise (or with
    an explicit trace_id) a new trace. Exceptions are recorded on the span and re-raised."""

    __slots__ = ("_tracer", "_context", "_trace_id", "_parent_id", "_span")

    def __init__(self, tracer: Tracer, context: dict, trace_id: Optional[str] = None, parent_id: Optional[str] = None):
        self._tracer = tracer
        self._context = context
        self._trace_id = trace_id
        self._parent_id = parent_id
        self._span: Optional[Span] = None

    def __enter__(self) -> Span:
        self._span = span = open_span(self._tracer, self._context, self._trace_id, self._parent_id)
        return span

    def __exit__(self, exc_type, exc, tb) -> bool:
        span = self._span
        if span is None:
            return False
        if exc is not None and isinstance(exc, Exception):
            span.fields.update(exception_fields(exc))
        if span._is_root:
            self._tracer.finish_trace(span)
        else:
            self._tracer.finish_span(span)
        return False


class NamedSpanContext(SpanContext):
    """SpanContext for a span that has only a name (what `beeline.tracer(name)` makes): the name
    is written into the new span's fields, no context dict is built and copied for it."""

    __slots__ = ()

    def __init__(self, tracer: Tracer, name: str, trace_id: Optional[str] = None, parent_id: Optional[str] = None):
        self._tracer = tracer
        self._context = name
        self._trace_id = trace_id
        self._parent_id = parent_id
        self._span = None

    def __enter__(self) -> Span:
        self._span = span = open_named_span(self._tracer, self._context, self._trace_id, self._parent_id)
        return span


class _NoopSpanContext:
    """What `beeline.tracer()` returns without a beeline: one shared, stateless, reentrant
    object, so the call allocates nothing. Like the reference's, it yields None."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        return False


NOOP_SPAN_CONTEXT = _NoopSpanContext()


def open_span(tracer: Tracer, context: dict, trace_id: Optional[str], parent_id: Optional[str]) -> Span:
    """The reference's rule for tracer() and traced(): a child of the active span, unless no trace
    is active or a trace_id is given, which start a new trace."""
    if trace_id is None:
        span = tracer.start_span(context, parent_id)
        if span is not None:
            return span
    return tracer.start_trace(context, trace_id, parent_id)


def open_named_span(tracer: Tracer, name: str, trace_id: Optional[str], parent_id: Optional[str]) -> Span:
    """open_span for a context of just {"name": name}, without building that dict for a child."""
    if trace_id is None:
        span = tracer.start_span(None, parent_id)
        if span is not None:
            span.fields["name"] = name
            return span
    return tracer.open_trace({"name": name}, trace_id, parent_id)


def close_span(tracer: Tracer, span: Span) -> None:
    if span._is_root:
        tracer.finish_trace(span)
    else:
        tracer.finish_span(span)


def traced_impl(
    fn: Callable, name: str, trace_id: Optional[str], parent_id: Optional[str], get_beeline: Callable[[], Any]
) -> Callable:
    """Pick the wrapper that matches what `fn` is: coroutine, async generator, generator, plain."""
    if inspect.iscoroutinefunction(fn):
        return _traced_coroutine(fn, name, trace_id, parent_id, get_beeline)
    if inspect.isasyncgenfunction(fn):
        return _traced_async_generator(fn, name, trace_id, parent_id, get_beeline)
    if inspect.isgeneratorfunction(fn):
        return _traced_generator(fn, name, trace_id, parent_id, get_beeline)

    @wraps(fn)
    def traced_call(*args, **kwargs):
        beeline = get_beeline()
        if beeline is None:
            return fn(*args, **kwargs)
        # SpanContext's work, inlined: this wrapper runs on every call of a traced function.
        tracer = beeline.tracer_impl
        span = open_named_span(tracer, name, trace_id, parent_id)
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            span.fields.update(exception_fields(exc))
            raise
        finally:
            if span._is_root:
                tracer.finish_trace(span)
            else:
                tracer.finish_span(span)

    return traced_call


def _traced_coroutine(fn, name, trace_id, parent_id, get_beeline):
    @wraps(fn)
    async def traced_coroutine(*args, **kwargs):
        beeline = get_beeline()
        if beeline is None:
            return await fn(*args, **kwargs)
        with NamedSpanContext(beeline.tracer_impl, name, trace_id, parent_id):
            return await fn(*args, **kwargs)

    return traced_coroutine


def _open_generator_span(tracer: Tracer, name: str, trace_id, parent_id) -> Span:
    """A generator's span is a child of whatever is active when it is first advanced, but it
    never becomes the consumer's active span."""
    context = {"name": name}
    current = active_span()
    if trace_id is None and current is not None:
        span = tracer.open_detached_span(context, current)
        if parent_id:
            span.parent_id = parent_id
        return span
    # A new trace: open_trace makes it active here, the caller restores the consumer's span.
    return tracer.open_trace(context, trace_id, parent_id)


class _GeneratorSteps:
    """Runs each step of a traced generator with the generator's own active span, and gives the
    consumer its own back between steps, so spans the consumer creates while the generator is
    suspended are not adopted by the generator's span (the reference mis-parented them)."""

    __slots__ = ("tracer", "name", "trace_id", "parent_id", "span", "inner")

    def __init__(self, tracer, name, trace_id, parent_id):
        self.tracer = tracer
        self.name = name
        self.trace_id = trace_id
        self.parent_id = parent_id
        self.span: Optional[Span] = None
        self.inner: Optional[Span] = None

    def enter(self) -> Optional[Span]:
        outer = _get_current()
        if self.span is None:
            self.span = self.inner = _open_generator_span(self.tracer, self.name, self.trace_id, self.parent_id)
        _set_current(self.inner)
        return outer

    def leave(self, outer: Optional[Span]) -> None:
        self.inner = _get_current()
        _set_current(outer)

    def record(self, exc: BaseException) -> None:
        if self.span is not None and isinstance(exc, Exception):
            self.span.fields.update(exception_fields(exc))

    def finish(self) -> None:
        if self.span is not None:
            close_span(self.tracer, self.span)


def _traced_generator(fn, name, trace_id, parent_id, get_beeline):
    @wraps(fn)
    def traced_generator(*args, **kwargs):
        beeline = get_beeline()
        gen = fn(*args, **kwargs)
        if beeline is None:
            return (yield from gen)
        steps = _GeneratorSteps(beeline.tracer_impl, name, trace_id, parent_id)
        to_send: Any = None
        to_throw: Optional[BaseException] = None
        try:
            while True:
                outer = steps.enter()
                try:
                    if to_throw is not None:
                        exc, to_throw = to_throw, None
                        item = gen.throw(exc)
                    else:
                        item = gen.send(to_send)
                except StopIteration as stop:
                    return stop.value
                finally:
                    steps.leave(outer)
                try:
                    to_send = yield item
                except GeneratorExit:
                    outer = steps.enter()
                    try:
                        gen.close()
                    finally:
                        steps.leave(outer)
                    raise
                except BaseException as exc:
                    to_throw = exc
        except BaseException as exc:
            steps.record(exc)
            raise
        finally:
            steps.finish()

    return traced_generator


def _traced_async_generator(fn, name, trace_id, parent_id, get_beeline):
    @wraps(fn)
    async def traced_async_generator(*args, **kwargs):
        beeline = get_beeline()
        agen = fn(*args, **kwargs)
        if beeline is None:
            async for item in agen:
                yield item
            return
        steps = _GeneratorSteps(beeline.tracer_impl, name, trace_id, parent_id)
        to_send: Any = None
        to_throw: Optional[BaseException] = None
        try:
            while True:
                outer = steps.enter()
                try:
                    if to_throw is not None:
                        exc, to_throw = to_throw, None
                        item = await agen.athrow(exc)
                    else:
                        item = await agen.asend(to_send)
                except StopAsyncIteration:
                    return
                finally:
                    steps.leave(outer)
                try:
                    to_send = yield item
                except GeneratorExit:
                    outer = steps.enter()
                    try:
                        await agen.aclose()
                    finally:
                        steps.leave(outer)
                    raise
                except BaseException as exc:
                    to_throw = exc
        except BaseException as exc:
            steps.record(exc)
            raise
        finally:
            steps.finish()

    return traced_async_generator


def untraced(fn: Callable) -> Callable:
    """Run `fn` (sync or async) detached from the current trace, e.g. fire-and-forget work that
    must not become part of the request's trace. The caller's state is restored afterwards."""
    if inspect.iscoroutinefunction(fn):

        @wraps(fn)
        async def untraced_coroutine(*args, **kwargs):
            token = current_span_var.set(None)
            try:
                return await fn(*args, **kwargs)
            finally:
                current_span_var.reset(token)

        return untraced_coroutine

    @wraps(fn)
    def untraced_call(*args, **kwargs):
        token = current_span_var.set(None)
        try:
            return fn(*args, **kwargs)
        finally:
            current_span_var.reset(token)

    return untraced_call


def traced_thread(fn: Callable, get_beeline: Callable[[], Any]) -> Callable:
    """Carry the trace active where `traced_thread(fn)` is applied into whatever thread later
    calls the result. Each call runs in a copy of the captured context, so the worker's own state
    is untouched afterwards (the reference left the copied trace attached to pooled workers)."""
    if get_beeline() is None or active_span() is None:
        return fn
    captured = copy_context()

    @wraps(fn)
    def in_captured_context(*args, **kwargs):
        return captured.copy().run(fn, *args, **kwargs)

    return in_captured_context
