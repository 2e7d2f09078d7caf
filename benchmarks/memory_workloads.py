"""Memory figures: bytes held per live span, and growth over many finished traces."""

from __future__ import annotations

import gc
import sys
import tracemalloc
from typing import Any, Dict


def live_span_bytes(beeline: Any, spans: int = 5000) -> Dict[str, float]:
    """Bytes allocated (tracemalloc) per open span while `spans` nested child spans are open.

    Each span gets the same one-field context on both sides. The first spans of the trace are
    opened before measuring, so one-time costs (the trace itself, caches) are not billed.
    """
    root = beeline.start_trace(context={"name": "bench_root"})
    warm = [beeline.start_span({"name": "child"}) for _ in range(16)]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    opened = [beeline.start_span({"name": "child"}) for _ in range(spans)]
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    for span in reversed(opened):
        beeline.finish_span(span)
    for span in reversed(warm):
        beeline.finish_span(span)
    beeline.finish_trace(root)
    # The list holding the spans is the harness's, not the tracer's: take it out.
    own = sys.getsizeof(opened)
    return {"bytes_per_span": (after - before - own) / spans, "spans": spans}


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * 4096
    except OSError:  # not Linux: allocated blocks still tell the story
        return 0


def growth_over_traces(beeline: Any, traces: int, xmit: Any) -> Dict[str, float]:
    """Finish `traces` traces (a root and one child, a field each) and report what the process
    still holds afterwards beyond what it held halfway, so warm-up costs are not counted."""
    start_trace, finish_trace = beeline.start_trace, beeline.finish_trace
    start_span, finish_span = beeline.start_span, beeline.finish_span
    add_field = beeline.add_context_field

    def run(n: int) -> None:
        for i in range(n):
            root = start_trace({"name": "request"})
            add_field("i", i)
            span = start_span({"name": "step"})
            add_field("rows", 1)
            finish_span(span)
            finish_trace(root)

    half = traces // 2
    run(half)
    gc.collect()
    blocks_mid, rss_mid, objects_mid = sys.getallocatedblocks(), _rss_bytes(), len(gc.get_objects())
    run(traces - half)
    gc.collect()
    blocks_end, rss_end, objects_end = sys.getallocatedblocks(), _rss_bytes(), len(gc.get_objects())
    return {
        "traces": traces,
        "events_sent": xmit.count,
        "blocks_growth": blocks_end - blocks_mid,
        "rss_growth_bytes": rss_end - rss_mid,
        "gc_objects_growth": objects_end - objects_mid,
        "blocks_at_end": blocks_end,
    }
