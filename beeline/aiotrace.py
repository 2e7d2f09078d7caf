"""Compatibility with the reference's `beeline.aiotrace`.

No task factory and no second tracer: the active span lives in a ContextVar, which asyncio
copies into every task by itself, so one tracer serves threads and tasks alike.
"""

from beeline.decorators import untraced
from beeline.trace import Tracer as AsyncioTracer
from beeline.trace import current_span_var as current_trace_var

__all__ = ["AsyncioTracer", "current_trace_var", "untraced"]
