"""Compatibility with the reference's `beeline.aiotrace`.

No task factory and no second tracer: the active span lives in a ContextVar, which asyncio
copies into every task by itself, so one tracer serves threads and tasks alike.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Coroutine, Optional

from beeline.decorators import untraced
from beeline.trace import Tracer
from beeline.trace import Tracer as AsyncioTracer
from beeline.trace import current_span_var as current_trace_var

__all__ = ["AsyncioTracer", "Tracer", "create_task_factory", "current_trace_var", "untraced"]

TaskFactory = Callable[..., "asyncio.Future[Any]"]


def create_task_factory(parent_factory: Optional[TaskFactory]) -> TaskFactory:
    """A task factory for code that installed the reference's with `loop.set_task_factory`.

    Tasks need nothing from beeline here (each copies the ContextVar that holds the active span),
    so the factory only makes the task the way it would have been made without it: through
    `parent_factory` when there is one, else as a plain `asyncio.Task`.
    """

    def task_factory(
        loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kwargs: Any
    ) -> "asyncio.Future[Any]":
        if parent_factory is not None:
            return parent_factory(loop, coro, **kwargs)
        return asyncio.Task(coro, loop=loop, **kwargs)

    # The reference's AsyncioTracer looked for this mark before installing its factory again.
    task_factory.__trace_task_factory__ = True  # type: ignore[attr-defined]
    return task_factory
