"""The reference's deprecated API, kept apart from the hot path.

Each does what honeycomb-beeline 3.6.0 did and, as there, warns of nothing: they are marked
deprecated in the docs only, so a test suite run with `-W error` keeps passing after the switch.
"""

from __future__ import annotations

from typing import Any, Optional

from beeline.trace import active_span


class DeprecatedBeelineMethods:
    """Mixed into Beeline; relies on its tracer_impl and _run_hooks_and_send."""

    tracer_impl: Any

    def send_now(self, data: dict) -> None:
        """Deprecated: use a span (beeline.tracer) or libhoney directly."""
        self._run_hooks_and_send(dict(data or {}))

    def add_field(self, name: str, value: Any) -> None:
        """Deprecated: use beeline.add_context_field."""
        self.tracer_impl.add_context_field(name, value)

    def add(self, data: dict) -> None:
        """Deprecated: use beeline.add_context."""
        self.tracer_impl.add_context(data)

    def new_event(self, data: Optional[dict] = None, trace_name: str = "") -> None:
        """Deprecated: use beeline.start_span or beeline.tracer."""
        context = dict(data or {})
        if trace_name:
            context["name"] = trace_name
        if active_span() is not None:
            self.tracer_impl.start_span(context=context)
        else:
            self.tracer_impl.start_trace(context=context)

    def send_event(self) -> None:
        """Deprecated: use beeline.finish_span."""
        span = active_span()
        if span is None:
            return
        if span.is_root():
            self.tracer_impl.finish_trace(span)
        else:
            self.tracer_impl.finish_span(span)

    def send_all(self) -> None:
        """Deprecated: use beeline.finish_trace."""
        span = active_span()
        while span is not None:
            if span.is_root():
                self.tracer_impl.finish_trace(span)
                return
            self.tracer_impl.finish_span(span)
            span = active_span()
