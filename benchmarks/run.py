"""Run every benchmark against our beeline and honeycomb-beeline 3.6.0, interleaved, and print
one table: figure, ours, reference, baseline, ratio, target, result.

    .venv/bin/python benchmarks/run.py --ref-python benchmarks/.venvs/ref/bin/python

Each measurement runs in a fresh subprocess (benchmarks/worker.py) under one side's Python and
reports its best timed repeat. A round runs every job once per side, in an order that alternates
from round to round, so a slow spell of the machine lands on both sides alike; the table reports
the median over rounds. The exit status is 1 when a target fails. `make bench` is the way to run
it on a fresh machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

import report

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORKER = os.path.join(HERE, "worker.py")
FRAMEWORKS = ("flask", "django", "bottle")
NOOP_MODES = ("noinit", "disabled", "outside")
GROUPS = ("spans", "sampled", "noop", "memory", "growth", "web", "import")


class WorkerError(RuntimeError):
    pass


def run_worker(python: str, cfg: Dict[str, Any], env_extra: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "BEELINE_", "HONEYCOMB_"))}
    env.update(env_extra or {})
    proc = subprocess.run(
        [python, WORKER, json.dumps(cfg)],
        cwd=HERE,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        raise WorkerError(f"{python} {cfg}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def import_time_ms(python: str, side: str) -> float:
    """Milliseconds for `import beeline` in a fresh interpreter (nothing else imported first)."""
    code = (
        "import time; t = time.perf_counter(); import beeline; elapsed = time.perf_counter() - t; "
        "import json, os; print(json.dumps({'ms': elapsed * 1000, 'file': os.path.abspath(beeline.__file__)}))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "BEELINE_", "HONEYCOMB_"))}
    out = subprocess.run([python, "-c", code], cwd=HERE, env=env, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise WorkerError(f"{python}: import beeline failed\n{out.stderr[-2000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    path = result["file"]
    if (side == "ours") != path.startswith(os.path.join(ROOT, "beeline") + os.sep):
        raise WorkerError(f"import timing for {side!r} imported {path}")
    return result["ms"]


class Collector:
    """Per-figure, per-side lists of round results."""

    def __init__(self) -> None:
        self.values: Dict[str, Dict[str, List[Any]]] = {}

    def add(self, figure: str, side: str, value: Any) -> None:
        self.values.setdefault(figure, {}).setdefault(side, []).append(value)

    def get(self, figure: str, side: str) -> List[Any]:
        return self.values.get(figure, {}).get(side, [])


def check_identity(result: Dict[str, Any], side: str, ref_python: str) -> None:
    """Refuse to report numbers measured on the wrong package."""
    ident = result.get("identity")
    if not ident:
        return
    path = ident["beeline_file"]
    ours = path.startswith(os.path.join(ROOT, "beeline") + os.sep)
    if (side == "ours") != ours:
        raise WorkerError(f"side {side!r} imported {path} ({ident['package']})")
    if side == "ref" and "honeycomb-beeline 3.6.0" not in ident["package"]:
        raise WorkerError(f"reference side runs {ident['package']}, not honeycomb-beeline 3.6.0")


def one_round(n: int, pythons: Dict[str, str], col: Collector, args: argparse.Namespace) -> None:
    sides = ["ours", "ref"] if n % 2 == 0 else ["ref", "ours"]
    repeats = args.repeats

    def work(side: str, cfg: Dict[str, Any], env: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
        result = run_worker(pythons[side], cfg, env)
        check_identity(result, side, pythons["ref"])
        return result

    only = args.only

    for side in sides if "spans" in only else ():
        res = work(side, {"job": "spans", "repeats": repeats})
        for fig in ("child_manual", "child_traced", "child_tracer", "trace_5x3"):
            sent = res[fig]["events_sent"]
            expected_multiple = 6 if fig == "trace_5x3" else 1
            if sent == 0 or sent % expected_multiple:
                raise WorkerError(f"{side} {fig}: {sent} events handed to the transmission")
            col.add(fig, side, res[fig]["best"])
    for side in sides if "sampled" in only else ():
        res = work(side, {"job": "sampled", "repeats": repeats})
        if res["span_dropped"]["events_sent"] != 0 or res["span_kept"]["events_sent"] == 0:
            raise WorkerError(f"{side}: sampling sent {res['span_dropped']['events_sent']} dropped spans")
        col.add("span_dropped", side, res["span_dropped"]["best"])
        col.add("span_kept", side, res["span_kept"]["best"])
    for mode in NOOP_MODES if "noop" in only else ():
        for side in sides:
            res = work(side, {"job": "noop", "mode": mode, "repeats": repeats})
            if res.get("unsupported"):
                continue
            res.pop("identity", None)
            col.add("noop_" + mode, side, res)
    for _ in range(args.import_samples if "import" in only else 0):
        for side in sides:
            col.add("import", side, import_time_ms(pythons[side], side))
    for fw in FRAMEWORKS if "web" in only else ():
        per_side = {}
        for side in sides:
            for mode in ("middleware", "bare", "floor"):
                cfg = {"job": "web", "framework": fw, "instrumented": mode != "bare", "floor": mode == "floor",
                       "repeats": repeats}
                per_side[(side, mode)] = work(side, cfg)
        for side in sides:
            inst, base, floor = per_side[(side, "middleware")], per_side[(side, "bare")], per_side[(side, "floor")]
            col.add(fw + "_version", side, base["framework_version"])
            col.add(fw + "_baseline", side, base["request"]["best"])
            col.add(fw + "_floor", side, floor["request"]["best"] - base["request"]["best"])
            if inst.get("missing"):
                col.add(fw + "_added", side, None)
                continue
            col.add(fw + "_added", side, inst["request"]["best"] - base["request"]["best"])


def once(pythons: Dict[str, str], col: Collector, args: argparse.Namespace) -> None:
    """Figures that do not need rounds: memory is counted, not timed."""
    for side in ("ours", "ref") if "memory" in args.only else ():
        res = run_worker(pythons[side], {"job": "memory"})
        check_identity(res, side, pythons["ref"])
        col.add("live_span_bytes", side, res["live_span_bytes"])
    if "growth" not in args.only:
        return
    res = run_worker(pythons["ours"], {"job": "growth", "traces": args.traces})
    check_identity(res, "ours", pythons["ref"])
    if res["events_sent"] != 2 * args.traces:
        raise WorkerError(f"growth run sent {res['events_sent']} events for {args.traces} traces")
    col.add("growth", "ours", res)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref-python", default=os.path.join(HERE, ".venvs", "ref", "bin", "python"))
    parser.add_argument("--ours-python", default=sys.executable)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=15, help="timed repeats per figure in one worker")
    parser.add_argument("--import-samples", type=int, default=3, help="imports per side per round")
    parser.add_argument("--traces", type=int, default=1_000_000, help="traces for the memory-growth figure")
    parser.add_argument("--only", default=",".join(GROUPS), help="comma-separated groups to run: " + ",".join(GROUPS))
    parser.add_argument("--json", help="also write every raw number to this file")
    args = parser.parse_args(argv)

    args.only = set(args.only.split(","))
    unknown = args.only - set(GROUPS)
    if unknown:
        parser.error(f"unknown groups: {', '.join(sorted(unknown))}")
    # Absolute: the workers run with the benchmarks folder as their working directory.
    pythons = {"ours": os.path.abspath(args.ours_python), "ref": os.path.abspath(args.ref_python)}
    if not os.path.exists(pythons["ref"]):
        print(f"reference Python {args.ref_python} is missing: run `make bench`", file=sys.stderr)
        return 2
    started = time.monotonic()
    col = Collector()
    print(f"beeline benchmarks: {args.rounds} interleaved rounds, ours vs honeycomb-beeline 3.6.0", flush=True)
    for n in range(args.rounds):
        one_round(n, pythons, col, args)
        print(f"  round {n + 1}/{args.rounds} done ({time.monotonic() - started:.0f} s)", flush=True)
    once(pythons, col, args)
    rows = report.build_rows(col.values, statistics.median)
    machine = report.machine_line()
    print()
    print(f"{datetime.date.today().isoformat()} | {machine} | Python {platform.python_version()}")
    print(report.versions_line(col.values))
    print(report.render(rows))
    failed = [r for r in rows if r.result == "FAIL"]
    missing = [r for r in rows if r.result.startswith("n/a")]
    passed = [r for r in rows if r.result == "pass"]
    print(f"\n{len(passed)} pass, {len(failed)} fail, {len(missing)} n/a; "
          f"{time.monotonic() - started:.0f} s")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"values": col.values, "rows": [r.__dict__ for r in rows]}, out, indent=1, default=str)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
