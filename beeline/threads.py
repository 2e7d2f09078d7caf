"""Run work in a thread pool as part of the trace that asked for it.

`concurrent.futures` runs each task in whatever context its worker thread happens to have, so
a span that is active where `submit()` is called is not active in the worker, and the work
either goes untraced or, with the reference's `traced_thread`, inherits a stale trace left on
a pooled thread by an earlier task. Here the context is captured when the work is *submitted*
and each task runs inside its own copy of it, so:

* spans started in the worker are children of the span that was active at submit time;
* trace fields and rollups recorded in the worker land on that span's trace (the Trace object
  is shared, not copied, and its updates are serialised by the tracer);
* the worker thread's own context is never changed, so nothing is left behind for the next
  task that thread runs.

    with ContextExecutor(max_workers=8) as pool:
        futures = [pool.submit(fetch, url) for url in urls]

    # or, with an executor you do not own:
    future = beeline.threads.submit(executor, fetch, url)

Only thread pools can share a context; a process pool cannot carry it (see `submit`).
"""

from __future__ import annotations

from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextvars import copy_context
from functools import wraps
from typing import Any, Callable, TypeVar

__all__ = ["ContextExecutor", "bind", "submit"]

T = TypeVar("T")


class ContextExecutor(ThreadPoolExecutor):
    """A ThreadPoolExecutor whose tasks run in the context of the code that submitted them.

    `map()` goes through `submit()`, so it carries the context too. Set it as an event loop's
    default executor (`loop.set_default_executor(ContextExecutor())`) and
    `loop.run_in_executor(None, fn)` keeps the calling task's trace as well, which asyncio's
    own default executor does not.
    """

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> "Future[T]":
        # A fresh copy per task: a Context cannot be entered by two threads at once, and a
        # task must not see context changes made by its siblings.
        return super().submit(copy_context().run, fn, *args, **kwargs)


def submit(executor: Executor, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> "Future[T]":
    """`executor.submit(fn, *args, **kwargs)`, with `fn` running in a copy of the caller's
    context, for executors you did not create (a library's pool, asyncio's default one).

    A ProcessPoolExecutor is submitted to unchanged: a context cannot be pickled into another
    process. Pass `beeline.http_trace_propagation_hook()` to the child and start a trace from
    it there if the work must join the trace.
    """
    if isinstance(executor, (ContextExecutor, ProcessPoolExecutor)):
        return executor.submit(fn, *args, **kwargs)
    return executor.submit(copy_context().run, fn, *args, **kwargs)


def bind(fn: Callable[..., T]) -> Callable[..., T]:
    """`fn`, bound to the context active now: every later call, from any thread, runs in a
    fresh copy of it. For callbacks handed to code that starts its own threads (a client
    library's `on_done=`, `threading.Timer`) where there is no executor to go through.

    Unlike `beeline.traced_thread`, it binds even when no trace is active yet, so the callback
    runs detached from whatever trace its calling thread has.
    """
    captured = copy_context()

    @wraps(fn)
    def run_in_captured_context(*args: Any, **kwargs: Any) -> T:
        return captured.copy().run(fn, *args, **kwargs)

    return run_in_captured_context
