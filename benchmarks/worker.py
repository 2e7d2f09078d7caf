"""One measurement in a fresh interpreter; prints one JSON line.

    python benchmarks/worker.py '{"job": "spans", "repeats": 7}'

The runner starts this script with our virtualenv's Python or with the reference's, so the same
workload code meets either `beeline`. It imports nothing from this repository except its
sibling benchmark modules (the script's folder is first on sys.path; the repository root is not),
so under the reference's Python `import beeline` finds honeycomb-beeline 3.6.0.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Dict

from timing import DiscardingTransmission, per_op_ns, summary


def _init(beeline: Any, xmit: DiscardingTransmission, sample_rate: int = 1) -> None:
    beeline.init(
        writekey="0" * 32,
        dataset="bench",
        service_name="bench",
        sample_rate=sample_rate,
        transmission_impl=xmit,
    )


def _identity(beeline: Any) -> Dict[str, str]:
    from importlib import metadata

    version = "?"
    for dist in ("beeline-tracer", "honeycomb-beeline"):
        try:
            version = f"{dist} {metadata.version(dist)}"
            break
        except metadata.PackageNotFoundError:
            continue
    return {"beeline_file": os.path.abspath(beeline.__file__), "package": version}


def job_spans(cfg: Dict[str, Any]) -> Dict[str, Any]:
    import beeline
    import span_workloads as w

    xmit = DiscardingTransmission()
    _init(beeline, xmit)
    out: Dict[str, Any] = {}
    makers = {
        "child_manual": w.make_child_manual,
        "child_traced": w.make_child_traced,
        "child_tracer": w.make_child_tracer,
        "trace_5x3": w.make_trace_5x3,
    }
    for name, make in makers.items():
        before = xmit.count
        run = make(beeline)
        samples = per_op_ns(run, cfg["repeats"])
        w.close_traces(beeline)
        out[name] = summary(samples)
        out[name]["events_sent"] = xmit.count - before
    out["identity"] = _identity(beeline)
    return out


def job_sampled(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """A kept and a dropped span in one process (sample_rate=2), alternating repeats."""
    import beeline
    import span_workloads as w

    xmit = DiscardingTransmission()
    _init(beeline, xmit, sample_rate=2)
    kept_samples, dropped_samples = [], []
    kept_sent = dropped_sent = 0
    for _ in range(cfg["repeats"]):
        before = xmit.count
        run = w.make_sampled_span(beeline, w.KEPT_AT_RATE_2)
        kept_samples += per_op_ns(run, 1)
        w.close_traces(beeline)
        kept_sent += xmit.count - before
        before = xmit.count
        run = w.make_sampled_span(beeline, w.DROPPED_AT_RATE_2)
        dropped_samples += per_op_ns(run, 1)
        w.close_traces(beeline)
        dropped_sent += xmit.count - before
    out = {"span_kept": summary(kept_samples), "span_dropped": summary(dropped_samples)}
    out["span_kept"]["events_sent"] = kept_sent
    out["span_dropped"]["events_sent"] = dropped_sent
    out["identity"] = _identity(beeline)
    return out


def job_noop(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """Cheap calls in one of three modes: no init(), the kill switch on, or outside a trace.
    The beeline form and its bare form alternate, repeat by repeat, to cancel drift."""
    mode = cfg["mode"]
    if mode == "disabled":
        os.environ["BEELINE_DISABLED"] = "true"
    import beeline
    import span_workloads as w

    if mode in ("disabled", "outside"):
        _init(beeline, DiscardingTransmission())
    if mode == "disabled" and beeline.get_beeline() is not None:
        return {"unsupported": True}  # honeycomb-beeline has no kill switch
    ops = w.make_noop_ops(beeline, with_context_managers=mode != "outside")
    out: Dict[str, Any] = {}
    for name, forms in ops.items():
        instrumented, bare = [], []
        for _ in range(cfg["repeats"]):
            instrumented += per_op_ns(forms["beeline"], 1)
            bare += per_op_ns(forms["bare"], 1)
        out[name] = {"beeline": min(instrumented), "bare": min(bare), "overhead": min(instrumented) - min(bare)}
    out["identity"] = _identity(beeline)
    return out


def job_memory(cfg: Dict[str, Any]) -> Dict[str, Any]:
    import beeline
    import memory_workloads as m

    _init(beeline, DiscardingTransmission())
    results = sorted(m.live_span_bytes(beeline)["bytes_per_span"] for _ in range(3))
    return {"live_span_bytes": results[1], "identity": _identity(beeline)}


def job_growth(cfg: Dict[str, Any]) -> Dict[str, Any]:
    import beeline
    import memory_workloads as m

    xmit = DiscardingTransmission()
    _init(beeline, xmit)
    out = m.growth_over_traces(beeline, cfg["traces"], xmit)
    out["identity"] = _identity(beeline)
    return out


def job_web(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """GET / on a hello-world app, bare (`instrumented` false: beeline is never imported) or
    behind the beeline middleware with a discarding transmission."""
    import web_workloads as web

    framework, instrumented, floor = cfg["framework"], cfg["instrumented"], cfg.get("floor", False)
    out: Dict[str, Any] = {"framework_version": web.framework_version(framework)}
    if instrumented:
        if not floor and not web.middleware_available(framework):
            return {"missing": True}
        import beeline

        xmit = DiscardingTransmission()
        _init(beeline, xmit)
        out["identity"] = _identity(beeline)
    app = web.make_app(framework, instrumented, floor)
    run = web.make_request_loop(app)
    out["request"] = summary(per_op_ns(run, cfg["repeats"]))
    if instrumented:
        out["events_sent"] = xmit.count
        if xmit.count == 0:
            raise RuntimeError(f"the {framework} middleware sent no events")
    return out


JOBS = {
    "spans": job_spans,
    "sampled": job_sampled,
    "noop": job_noop,
    "memory": job_memory,
    "growth": job_growth,
    "web": job_web,
}


def main() -> None:
    cfg = json.loads(sys.argv[1])
    result = JOBS[cfg["job"]](cfg)
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
