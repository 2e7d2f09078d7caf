"""beeline: trace Python applications and send every span to Honeycomb.

The public functions below are thin: each one finds the active Beeline (set by `init()`) and
delegates to it. Without `init()`, or with BEELINE_DISABLED=true, every one of them is a cheap
no-op, so instrumented code runs unchanged in tests, notebooks and scripts.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from typing import Any, Callable, Optional

from beeline import config
from beeline.core import USER_AGENT_ADDITION, Beeline
from beeline.decorators import NOOP_SPAN_CONTEXT as _NOOP_SPAN_CONTEXT
from beeline.decorators import NamedSpanContext as _NamedSpanContext
from beeline.decorators import traced_impl as _traced_impl
from beeline.decorators import traced_thread as _traced_thread
from beeline.decorators import untraced
from beeline.trace import Span, SynchronousTracer
from beeline.trace import active_span as _active_span
from beeline.trace import current_span_var as _current_span_var
from beeline.version import VERSION

__all__ = [
    "Beeline",
    "SynchronousTracer",
    "USER_AGENT_ADDITION",
    "VERSION",
    "add",
    "add_context",
    "add_context_field",
    "add_field",
    "add_rollup_field",
    "add_trace_field",
    "close",
    "finish_span",
    "finish_trace",
    "flush",
    "get_beeline",
    "get_responses_queue",
    "http_trace_parser_hook",
    "http_trace_propagation_hook",
    "in_async_code",
    "init",
    "marshal_trace_context",
    "new_event",
    "propagate_and_start_trace",
    "remove_context_field",
    "remove_trace_field",
    "send_all",
    "send_event",
    "send_now",
    "start_span",
    "start_trace",
    "traced",
    "traced_thread",
    "tracer",
    "untraced",
]

log = logging.getLogger("beeline")

_GBL: Optional[Beeline] = None
_INITPID: Optional[int] = None
_init_lock = threading.Lock()
_get_current_span = _current_span_var.get


def init(
    writekey: str = "",
    dataset: str = "",
    service_name: str = "",
    tracer: Any = None,
    sample_rate: int = 1,
    api_host: str = config.DEFAULT_API_HOST,
    transmission_impl: Any = None,
    sampler_hook: Optional[Callable] = None,
    presend_hook: Optional[Callable] = None,
    debug: bool = False,
    **kwargs: Any,
) -> None:
    """Configure the beeline for this process.

    A bad setting raises ValueError or TypeError here, at once. A second call in the same process
    is ignored with a warning (call `close()` first to reconfigure); in a forked child it
    re-initialises, which is what post-fork hooks (gunicorn, uWSGI, Celery) expect.
    """
    global _GBL, _INITPID
    if config.tracing_disabled():
        log.info("beeline: disabled by BEELINE_DISABLED; every call is a no-op")
        return
    with _init_lock:
        if _GBL is not None:
            if _INITPID == os.getpid():
                log.warning("beeline.init: already initialised in this process; the new settings are ignored "
                            "(call beeline.close() first to reconfigure)")
                return
            old, _GBL = _GBL, None
            old.close(timeout=1.0)
        _GBL = Beeline(
            writekey=writekey,
            dataset=dataset,
            service_name=service_name,
            tracer=tracer,
            sample_rate=sample_rate,
            api_host=api_host,
            transmission_impl=transmission_impl,
            sampler_hook=sampler_hook,
            presend_hook=presend_hook,
            debug=debug,
            **kwargs,
        )
        _INITPID = os.getpid()


def get_beeline() -> Optional[Beeline]:
    return _GBL


def close(timeout: Optional[float] = None) -> None:
    """Send what is queued (waiting at most `timeout` seconds) and forget the configuration."""
    global _GBL
    with _init_lock:
        bl, _GBL = _GBL, None
    if bl is not None:
        bl.close(timeout)


def flush(timeout: Optional[float] = None) -> bool:
    """Deliver queued events now, without stopping anything. True when everything was delivered."""
    bl = _GBL
    return bl.flush(timeout) if bl is not None else True


def get_responses_queue():
    bl = _GBL
    return bl.get_responses_queue() if bl is not None else None


# ---- fields ------------------------------------------------------------------------------------


# The two calls an application makes most often read the tracer's state (the active span, in
# its ContextVar) here, rather than through a call into the tracer: same result, one frame less.


def add_context(data: dict) -> None:
    """Add several fields to the active span: `beeline.add_context({"user_id": 7})`."""
    if _GBL is not None:
        span = _get_current_span()
        if span is not None and span.trace.done:
            span = _active_span()
        if span is not None:
            span.fields.update(data)


def add_context_field(name: str, value: Any) -> None:
    """Add one field to the active span: `beeline.add_context_field("user_id", 7)`."""
    if _GBL is not None:
        span = _get_current_span()
        if span is not None and span.trace.done:
            span = _active_span()
        if span is not None:
            span.fields[name] = value


def remove_context_field(name: str) -> None:
    bl = _GBL
    if bl is not None:
        bl.tracer_impl.remove_context_field(name)


def add_rollup_field(name: str, value: float) -> None:
    """Sum `value` into the active span's `name` and into the root's `rollup.<name>`."""
    bl = _GBL
    if bl is not None:
        bl.tracer_impl.add_rollup_field(name, value)


def add_trace_field(name: str, value: Any) -> None:
    """A field (prefixed `app.`) on this span, every later span of the trace, and downstream
    services through the trace header."""
    bl = _GBL
    if bl is not None:
        bl.tracer_impl.add_trace_field(name, value)


def remove_trace_field(name: str) -> None:
    bl = _GBL
    if bl is not None:
        bl.tracer_impl.remove_trace_field(name)


# ---- spans -------------------------------------------------------------------------------------


def tracer(name: str, trace_id: Optional[str] = None, parent_id: Optional[str] = None):
    """`with beeline.tracer("work") as span:` a child span, or a new trace when none is active."""
    bl = _GBL
    if bl is None:
        return _NOOP_SPAN_CONTEXT
    return _NamedSpanContext(bl.tracer_impl, name, trace_id, parent_id)


def traced(name: str, trace_id: Optional[str] = None, parent_id: Optional[str] = None):
    """Decorator: `@beeline.traced("fetch")` on functions, generators, coroutines and async
    generators."""

    def wrap(fn: Callable) -> Callable:
        return _traced_impl(fn, name, trace_id, parent_id, get_beeline)

    return wrap


def traced_thread(fn: Callable) -> Callable:
    """Carry the active trace into another thread: `Thread(target=beeline.traced_thread(work))`."""
    return _traced_thread(fn, get_beeline)


def start_trace(context: Optional[dict] = None, trace_id: Optional[str] = None, parent_span_id: Optional[str] = None):
    bl = _GBL
    if bl is None:
        return None
    return bl.tracer_impl.start_trace(context, trace_id, parent_span_id)


def finish_trace(span: Optional[Span]) -> None:
    bl = _GBL
    if bl is not None:
        bl.tracer_impl.finish_trace(span)


def start_span(context: Optional[dict] = None, parent_id: Optional[str] = None):
    """A child of the active span, or None when no trace is active."""
    bl = _GBL
    if bl is None:
        return None
    return bl.tracer_impl.start_span(context, parent_id)


def finish_span(span: Optional[Span]) -> None:
    bl = _GBL
    if bl is not None:
        bl.tracer_impl.finish_span(span)


# ---- propagation -------------------------------------------------------------------------------


def propagate_and_start_trace(context: Optional[dict], request) -> Optional[Span]:
    """Start a trace that continues the caller's, read from `request` (a
    `beeline.propagation.Request`) by the parser hook."""
    bl = _GBL
    if bl is None:
        return None
    return bl.tracer_impl.propagate_and_start_trace(context, request)


def http_trace_parser_hook(request):
    bl = _GBL
    if bl is None:
        return None
    try:
        return bl.tracer_impl.parse_http_trace(request)
    except Exception:
        log.warning("beeline: http_trace_parser_hook failed", exc_info=True)
        return None


def http_trace_propagation_hook() -> Optional[dict]:
    """The headers to add to an outgoing request for the active span, or None."""
    bl = _GBL
    if bl is None:
        return None
    try:
        ctx = bl.tracer_impl.get_propagation_context()
        if ctx is None:
            return None
        return bl.tracer_impl.http_trace_propagation_hook(ctx)
    except Exception:
        log.warning("beeline: http_trace_propagation_hook failed", exc_info=True)
        return None


def marshal_trace_context() -> Optional[str]:
    """Deprecated (in the docs only, as in the reference: no warning): the `X-Honeycomb-Trace`
    value for the active span; use http_trace_propagation_hook."""
    bl = _GBL
    if bl is None:
        return None
    return bl.tracer_impl.marshal_trace_context()


def in_async_code() -> bool:
    """True when an asyncio event loop is running in this thread."""
    try:
        import asyncio

        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False


# ---- deprecated, as in the reference ------------------------------------------------------------


def send_now(data: dict) -> None:
    bl = _GBL
    if bl is not None:
        bl.send_now(data)


def add_field(name: str, value: Any) -> None:
    bl = _GBL
    if bl is not None:
        bl.add_field(name, value)


def add(data: dict) -> None:
    bl = _GBL
    if bl is not None:
        bl.add(data)


def new_event(data: Optional[dict] = None, trace_name: str = "") -> None:
    bl = _GBL
    if bl is not None:
        bl.new_event(data, trace_name)


def send_event() -> None:
    bl = _GBL
    if bl is not None:
        bl.send_event()


def send_all() -> None:
    bl = _GBL
    if bl is not None:
        bl.send_all()


# ---- process lifecycle -------------------------------------------------------------------------


def _after_fork_in_child() -> None:
    bl = _GBL
    if bl is not None:
        try:
            bl.after_fork_in_child()
        except Exception:
            log.warning("beeline: could not restart the transmission after fork", exc_info=True)


def _close_at_exit() -> None:
    bl = _GBL
    if bl is not None:
        bl.close()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
# Flush at exit while thread pools still accept work: threading's exit hooks run in reverse order
# of registration and before concurrent.futures refuses new work, unlike atexit (libhoney-py#58).
_register_thread_exit = getattr(threading, "_register_atexit", None)
if _register_thread_exit is not None:
    import concurrent.futures.thread  # noqa: F401  (registers its own hook first, so ours runs before it)

    _register_thread_exit(_close_at_exit)
else:  # pragma: no cover
    atexit.register(_close_at_exit)
