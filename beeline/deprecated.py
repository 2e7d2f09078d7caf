"""The reference's deprecated API, kept apart from the hot path.

Each call warns with DeprecationWarning (once per call site, Python's default) and then does
what honeycomb-beeline 3.6.0 did.
"""

from __future__ import annotations

import warnings
from typing import Any, Optional

from beeline.trace import active_span


def _deprecated(name: str, instead: str) -> None:
    warnings.warn(f"beeline.{name} is deprecated; use {instead}", DeprecationWarning, stacklevel=3)


class DeprecatedBeelineMethods:
    """Mixed into Beeline; relies on its tracer_impl and _run_hooks_and_send."""

    tracer_impl: Any

    def send_now(self, data: dict) -> None:
        _deprecated("send_now", "a span (beeline.tracer) or libhoney directly")
        self._run_hooks_and_send(dict(data or {}))

    def add_field(self, name: str, value: Any) -> None:
        _deprecated("add_field", "beeline.add_context_field")
        self.tracer_impl.add_context_field(name, value)

    def add(self, data: dict) -> None:
        _deprecated("add", "beeline.add_context")
        self.tracer_impl.add_context(data)

    def new_event(self, data: Optional[dict] = None, trace_name: str = "") -> None:
        _deprecated("new_event", "beeline.start_span or beeline.tracer")
        context = dict(data or {})
        if trace_name:
            context["name"] = trace_name
        if active_span() is not None:
            self.tracer_impl.start_span(context=context)
        else:
            self.tracer_impl.start_trace(context=context)

    def send_event(self) -> None:
        _deprecated("send_event", "beeline.finish_span")
        span = active_span()
        if span is None:
            return
        if span.is_root():
            self.tracer_impl.finish_trace(span)
        else:
            self.tracer_impl.finish_span(span)

    def send_all(self) -> None:
        _deprecated("send_all", "beeline.finish_trace")
        span = active_span()
        while span is not None:
            if span.is_root():
                self.tracer_impl.finish_trace(span)
                return
            self.tracer_impl.finish_span(span)
            span = active_span()
