"""The span workloads, written once against the public API that both packages share.

Each `make_*` function receives the imported `beeline` module (ours or honeycomb-beeline
3.6.0) and returns `run(n)`, which performs the operation n times. The same source runs on both
sides, so a difference in time is a difference in the instrumentation.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List

Runner = Callable[[int], None]

# Trace ids from the deterministic sampler's shared test vectors: at sample rate 2 the first is
# kept and the second dropped by every Honeycomb beeline.
KEPT_AT_RATE_2 = "iow4KAFBl9u6lF4EYIcsFz60rXGvu7ph"
DROPPED_AT_RATE_2 = "4YeYygWjTZ41zOBKUoYUaSVxPGm78rdU"


_open_roots: List[Any] = []


def _in_trace(beeline: Any, trace_id: Any = None) -> None:
    """Start a trace that stays active while a child-span workload runs (see close_traces)."""
    root = beeline.start_trace(context={"name": "bench_root"}, trace_id=trace_id)
    if root is None:
        raise RuntimeError("beeline.start_trace returned None: init() did not take effect")
    _open_roots.append(root)


def close_traces(beeline: Any) -> None:
    """Finish the traces the child-span workloads opened, so the next workload starts clean."""
    while _open_roots:
        beeline.finish_trace(_open_roots.pop())


def make_child_manual(beeline: Any) -> Runner:
    """A child span through the manual API: start_span + finish_span."""
    _in_trace(beeline)
    start_span = beeline.start_span
    finish_span = beeline.finish_span

    def run(n: int) -> None:
        for _ in range(n):
            span = start_span({"name": "child"})
            finish_span(span)

    return run


def make_child_traced(beeline: Any) -> Runner:
    """A child span through the `@beeline.traced` decorator around an empty function."""
    _in_trace(beeline)

    @beeline.traced("child")
    def work() -> None:
        pass

    def run(n: int) -> None:
        for _ in range(n):
            work()

    return run


def make_child_tracer(beeline: Any) -> Runner:
    """A child span through the `with beeline.tracer(...)` context manager."""
    _in_trace(beeline)
    tracer = beeline.tracer

    def run(n: int) -> None:
        for _ in range(n):
            with tracer("child"):
                pass

    return run


def make_trace_5x3(beeline: Any) -> Runner:
    """One whole trace: a root and 5 children, 3 fields on each, every event handed to the
    transmission."""
    start_trace = beeline.start_trace
    finish_trace = beeline.finish_trace
    start_span = beeline.start_span
    finish_span = beeline.finish_span
    add_field = beeline.add_context_field

    def run(n: int) -> None:
        for i in range(n):
            root = start_trace({"name": "request"})
            add_field("user_id", i)
            add_field("plan", "pro")
            add_field("cart_total", 12.5)
            for _ in range(5):
                span = start_span({"name": "step"})
                add_field("rows", 3)
                add_field("table", "orders")
                add_field("cache_hit", False)
                finish_span(span)
            finish_trace(root)

    return run


def make_sampled_span(beeline: Any, trace_id: str) -> Runner:
    """A child span (start_span + finish_span) in a trace whose sampling decision is fixed by its
    id; init() must have used sample_rate=2."""
    _in_trace(beeline, trace_id)
    start_span = beeline.start_span
    finish_span = beeline.finish_span

    def run(n: int) -> None:
        for _ in range(n):
            span = start_span({"name": "child"})
            finish_span(span)

    return run


# ---- calls that must cost (almost) nothing: no init(), kill switch, outside a trace -------------


def _noop0() -> None:
    pass


def _noop1(a: Any) -> None:
    pass


def _noop2(a: Any, b: Any) -> None:
    pass


def make_noop_ops(beeline: Any, with_context_managers: bool) -> Dict[str, Dict[str, Runner]]:
    """For each cheap call, the beeline form and a bare form: the same loop making the same
    number of calls, with the same arguments, to empty functions.

    `with_context_managers` is False outside a trace, where `tracer()` and `traced` start a new
    trace by design and so are not no-ops.
    """
    ops: Dict[str, Dict[str, Runner]] = {}

    def field_op(name: str) -> Runner:
        def run(n: int) -> None:
            f = getattr(beeline, name)
            for _ in range(n):
                f("user_id", 1)

        return run

    def bare_two_args(n: int) -> None:
        f = _noop2
        for _ in range(n):
            f("user_id", 1)

    def start_finish(n: int) -> None:
        start, finish = beeline.start_span, beeline.finish_span
        for _ in range(n):
            finish(start({"name": "child"}))

    def bare_start_finish(n: int) -> None:
        start = finish = _noop1
        for _ in range(n):
            finish(start({"name": "child"}))

    def propagation_hook(n: int) -> None:
        f = beeline.http_trace_propagation_hook
        for _ in range(n):
            f()

    def bare_no_args(n: int) -> None:
        f = _noop0
        for _ in range(n):
            f()

    for name in ("add_context_field", "add_trace_field", "add_rollup_field"):
        ops[name] = {"beeline": field_op(name), "bare": bare_two_args}
    ops["start_span+finish_span"] = {"beeline": start_finish, "bare": bare_start_finish}
    ops["http_trace_propagation_hook"] = {"beeline": propagation_hook, "bare": bare_no_args}

    if with_context_managers:

        def plain() -> None:
            pass

        traced_fn = beeline.traced("child")(plain)

        def traced_call(n: int) -> None:
            f = traced_fn
            for _ in range(n):
                f()

        def bare_call(n: int) -> None:
            f = plain
            for _ in range(n):
                f()

        def tracer_cm(n: int) -> None:
            tracer = beeline.tracer
            for _ in range(n):
                with tracer("child"):
                    pass

        def bare_one_arg(n: int) -> None:
            f = _noop1
            for _ in range(n):
                f("child")

        ops["@traced call"] = {"beeline": traced_call, "bare": bare_call}
        ops["with tracer()"] = {"beeline": tracer_cm, "bare": bare_one_arg}
    return ops
