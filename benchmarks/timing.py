"""Timing and measuring helpers shared by the benchmark workers.

This file runs inside both virtualenvs (ours and honeycomb-beeline 3.6.0), so it uses the
standard library only and never imports `beeline` itself.
"""

from __future__ import annotations

import gc
import statistics
import time
from typing import Callable, Dict, List

# Each timed repeat is long against the clock's resolution and short against a scheduler time
# slice, so on a busy machine some repeats run undisturbed; the best of them is reported.
REPEAT_SECONDS = 0.01


class DiscardingTransmission:
    """A libhoney transmission that accepts every event and keeps none of it, so only the
    instrumentation's own cost is measured. It counts events to prove spans were really sent.
    What a real transmission does with an event (encode it, on its own thread) is the
    transmission benchmark's subject (benchmarks/transmission_bench.py), not this one's.
    """

    def __init__(self) -> None:
        self.count = 0

    def start(self) -> None:
        pass

    def send(self, ev) -> None:
        self.count += 1

    def flush(self, timeout=None) -> bool:
        return True

    def close(self, timeout=None) -> None:
        pass

    def get_response_queue(self):
        return None


def calibrate(run: Callable[[int], None], seconds: float = REPEAT_SECONDS) -> int:
    """The number of operations that takes about `seconds`, found by doubling from a small n."""
    n = 16
    while True:
        start = clock_ns()
        run(n)
        elapsed = (clock_ns() - start) / 1e9
        if elapsed >= seconds / 8 or n >= 1 << 24:
            return max(1, int(n * seconds / max(elapsed, 1e-9)))
        n *= 2


# The clock: CPU time of the measuring thread. Every workload runs on that one thread (the
# discarding transmission has no thread of its own), so this is the work done, and time the
# process spent waiting for a core, on a machine that is busy with something else, is left out.
clock_ns = time.thread_time_ns


def per_op_ns(run: Callable[[int], None], repeats: int, n: int = 0) -> List[float]:
    """Nanoseconds per operation for each of `repeats` timed runs of `run(n)`.

    The garbage collector stays on (it is part of what an allocation-heavy tracer costs in a real
    app), but each repeat starts from a collected heap so one run's garbage does not bill the next.
    """
    if n <= 0:
        n = calibrate(run)
    run(max(1, n // 4))  # warm up caches and lazily built state
    samples = []
    for _ in range(repeats):
        gc.collect()
        start = clock_ns()
        run(n)
        samples.append((clock_ns() - start) / n)
    return samples


def summary(samples: List[float]) -> Dict[str, float]:
    """`best` (the fastest repeat, as timeit recommends: slower ones were disturbed by something
    else on the machine) is what the runner uses; the median is kept to show the spread."""
    return {"best": min(samples), "median": statistics.median(samples), "n": len(samples)}
