"""Profile one span workload with cProfile, under either side's Python.

    .venv/bin/python benchmarks/profile_hot_path.py trace_5x3
    benchmarks/.venvs/ref/bin/python benchmarks/profile_hot_path.py child_manual --top 30

Prints the functions where the time goes (own time first) and how many Python calls one
operation makes, which is the number the hot-path work drives down.

With `--spin SECONDS` it only runs the workload, unprofiled, for a sampling profiler outside
the process (cProfile's own overhead distorts very short functions):

    py-spy record -f raw -o spans.txt -- .venv/bin/python benchmarks/profile_hot_path.py trace_5x3 --spin 10
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time

import span_workloads as w
from timing import DiscardingTransmission

WORKLOADS = {
    "child_manual": w.make_child_manual,
    "child_traced": w.make_child_traced,
    "child_tracer": w.make_child_tracer,
    "trace_5x3": w.make_trace_5x3,
    "span_kept": lambda bl: w.make_sampled_span(bl, w.KEPT_AT_RATE_2),
    "span_dropped": lambda bl: w.make_sampled_span(bl, w.DROPPED_AT_RATE_2),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workload", choices=sorted(WORKLOADS))
    parser.add_argument("--ops", type=int, default=20000)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--spin", type=float, default=0.0, help="run unprofiled for this many seconds")
    args = parser.parse_args()

    import beeline

    rate = 2 if args.workload.startswith("span_") else 1
    beeline.init(writekey="0" * 32, dataset="bench", service_name="bench", sample_rate=rate,
                 transmission_impl=DiscardingTransmission())
    run = WORKLOADS[args.workload](beeline)
    run(1000)  # warm up outside the profile
    if args.spin:
        deadline = time.monotonic() + args.spin
        while time.monotonic() < deadline:
            run(1000)
        w.close_traces(beeline)
        return
    profiler = cProfile.Profile()
    profiler.enable()
    run(args.ops)
    profiler.disable()
    w.close_traces(beeline)

    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    calls = sum(entry[1] for entry in stats.stats.values())  # primitive + recursive calls
    print(f"{beeline.__file__}\n{args.workload}: {calls / args.ops:.1f} profiled calls per operation")
    stats.sort_stats("tottime").print_stats(args.top)
    print(out.getvalue())


if __name__ == "__main__":
    main()
