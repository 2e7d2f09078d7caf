"""`make demo` runs examples/distributed/run.py: one trace must span both services, DB included."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_distributed_demo_draws_one_trace_across_both_services(tmp_path):
    trace_file = tmp_path / "demo.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HONEYCOMB_", "BEELINE_"))}
    env["COLUMNS"] = "120"
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "distributed", "run.py"), str(trace_file)],
        env=env, capture_output=True, text=True, timeout=90, cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count("-> 200") == 3
    assert "3 traces, 18 spans" in out
    assert out.count("2 services") == 3
    for name in ("flask_http_get", "requests_GET", "django_http_get", "django_sqlite_query", "price_orders"):
        assert name in out
    assert "\x1b[" not in out  # not a terminal: no colours
