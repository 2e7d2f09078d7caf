"""Celery: every task run is a trace that continues the trace of the code that enqueued it.

    import beeline
    import beeline.middleware.celery  # connects the signal handlers (or call patch())

    beeline.init(...)                 # in the module the worker imports, before it forks

honeycomb-beeline had no Celery integration. This one uses Celery's signals only, so it works
with every pool (prefork, threads, solo, gevent) and leaves task classes alone:

* `before_task_publish`: the trace headers of the active span (the same propagation hook as
  outgoing HTTP calls) are added to the task message's headers;
* `task_prerun`: the task's root span starts, continuing the trace from those headers
  (`meta.span_type` "subroot", `trace.parent_id` the span that enqueued it). An eager task
  (`task_always_eager`, `task.apply()`) runs inside the caller's trace as a child span;
* `task_retry` / `task_failure`: the retry reason, or the exception fields;
* `task_postrun`: the final state, and the span ends (after the result was stored and any
  chained task was sent, so the next task of a chain is a child of this one).

Span fields: `name` (the task name), `type` "celery_task", `celery.task_name`, `celery.task_id`,
`celery.retries`, `celery.state`, `celery.hostname`, `celery.queue`, `celery.retry_reason`, and
the `app.exception_*` fields on failure.

With the prefork pool, `init()` in the worker's main process (e.g. where the Celery app is
defined) is enough: each forked child process gets its own transmission. Calling `init()` again
in a `worker_process_init` handler, as honeycomb-beeline's documentation advised, also works.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Dict, Optional

from celery import signals

import beeline
from beeline.decorators import exception_fields
from beeline.internal import warn_once
from beeline.propagation import Request
from beeline.trace import Span, active_span

__all__ = ["TaskHeadersRequest", "patch", "unpatch"]

log = logging.getLogger("beeline")

SPAN_TYPE = "celery_task"
_UID = "beeline.middleware.celery"

# Open task spans by task id: prerun and postrun are separate signal calls. Entries are removed
# at postrun (or revocation); dict operations on single keys are atomic, so pools running tasks
# in threads need no lock here.
_open: Dict[str, Span] = {}
_patch_lock = threading.Lock()
_patched = False


class TaskHeadersRequest(Request):
    """A `beeline.propagation.Request` over a task's message headers, for parser hooks.

    Custom headers reach the worker both in `task.request.headers` and as attributes of
    `task.request` (which of the two depends on the Celery version and message protocol)."""

    __slots__ = ("_request",)

    def __init__(self, task_request: Any) -> None:
        self._request = task_request

    def header(self, key: str) -> Optional[str]:
        headers = getattr(self._request, "headers", None)
        if isinstance(headers, dict) and headers:
            wanted = key.lower()
            for name, value in headers.items():
                if isinstance(name, str) and name.lower() == wanted:
                    return value
        for name in (key, key.lower()):
            value = getattr(self._request, name, None)
            if isinstance(value, str):
                return value
        return None

    def method(self) -> Optional[str]:
        return None

    def scheme(self) -> Optional[str]:
        return None

    def host(self) -> Optional[str]:
        return getattr(self._request, "hostname", None)

    def path(self) -> Optional[str]:
        return None

    def query(self) -> Optional[str]:
        return None

    def middleware_request(self) -> Any:
        return self._request


def task_context(task: Any, task_id: Optional[str]) -> dict:
    request = task.request
    delivery = getattr(request, "delivery_info", None) or {}
    return {
        "name": task.name,
        "type": SPAN_TYPE,
        "celery.task_name": task.name,
        "celery.task_id": task_id,
        "celery.retries": getattr(request, "retries", 0) or 0,
        "celery.hostname": getattr(request, "hostname", None),
        "celery.queue": delivery.get("routing_key") if isinstance(delivery, dict) else None,
    }


# ---- signal handlers (each one catches everything: a task must never fail because of us) ------


def _before_task_publish(sender: Any = None, headers: Optional[dict] = None, **_: Any) -> None:
    if headers is None or beeline.get_beeline() is None:
        return
    try:
        trace_headers = beeline.http_trace_propagation_hook()
        if trace_headers:
            headers.update(trace_headers)
    except Exception:
        warn_once("celery_publish", "beeline: could not add trace headers to a Celery task", exc_info=True)


def _task_prerun(sender: Any = None, task_id: Optional[str] = None, task: Any = None, **_: Any) -> None:
    if task is None or beeline.get_beeline() is None:
        return
    try:
        context = task_context(task, task_id)
        request = task.request
        if getattr(request, "is_eager", False) and active_span() is not None:
            # Run in the caller's thread, inside the caller's trace: a child span.
            span = beeline.start_span(context)
        else:
            span = beeline.propagate_and_start_trace(context, TaskHeadersRequest(request))
        if span is not None and task_id is not None:
            _open[task_id] = span
    except Exception:
        warn_once("celery_prerun", "beeline: could not start a Celery task's span", exc_info=True)


def _task_retry(sender: Any = None, request: Any = None, reason: Any = None, **_: Any) -> None:
    span = _open.get(getattr(request, "id", None))
    if span is None:
        return
    try:
        span.add_context_field("celery.retry_reason", str(reason))
    except Exception:
        warn_once("celery_retry", "beeline: could not record a Celery retry", exc_info=True)


def _task_failure(
    sender: Any = None, task_id: Optional[str] = None, exception: Optional[BaseException] = None, einfo: Any = None,
    **_: Any,
) -> None:
    span = _open.get(task_id)
    if span is None or exception is None:
        return
    try:
        fields = exception_fields(exception)
        # Celery clears the traceback frames before postrun; its ExceptionInfo keeps the text.
        trace_text = getattr(einfo, "traceback", None)
        if isinstance(trace_text, str) and trace_text:
            fields["app.exception_stacktrace"] = trace_text
        span.add_context(fields)
    except Exception:
        warn_once("celery_failure", "beeline: could not record a Celery task failure", exc_info=True)


def _task_postrun(sender: Any = None, task_id: Optional[str] = None, state: Any = None, **_: Any) -> None:
    span = _open.pop(task_id, None)
    if span is None:
        return
    try:
        if state is not None:
            span.add_context_field("celery.state", str(state))
        if span.is_root():
            beeline.finish_trace(span)
        else:
            beeline.finish_span(span)
    except Exception:
        warn_once("celery_postrun", "beeline: could not finish a Celery task's span", exc_info=True)


def _task_revoked(sender: Any = None, request: Any = None, **_: Any) -> None:
    # A task terminated while running never reaches postrun: forget its span rather than keep it.
    _open.pop(getattr(request, "id", None), None)


_HANDLERS = (
    (signals.before_task_publish, _before_task_publish),
    (signals.task_prerun, _task_prerun),
    (signals.task_retry, _task_retry),
    (signals.task_failure, _task_failure),
    (signals.task_postrun, _task_postrun),
    (signals.task_revoked, _task_revoked),
)


def patch() -> bool:
    """Connect the signal handlers. Returns False when they were already connected."""
    global _patched
    with _patch_lock:
        if _patched:
            return False
        for signal, handler in _HANDLERS:
            signal.connect(handler, weak=False, dispatch_uid=f"{_UID}.{handler.__name__}")
        _patched = True
        return True


def unpatch() -> bool:
    """Disconnect the signal handlers. Returns False when they were not connected."""
    global _patched
    with _patch_lock:
        if not _patched:
            return False
        for signal, handler in _HANDLERS:
            signal.disconnect(handler, dispatch_uid=f"{_UID}.{handler.__name__}")
        _patched = False
        _open.clear()
        return True


patch()
