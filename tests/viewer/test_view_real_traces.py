"""The viewer on files written by real traced programs (the local sink, no write key)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from .helpers import ANSI, REPO, StartViewer, clean_env, view

SHOP_PROGRAM = """
    import time
    import beeline

    beeline.init(service_name="shop")
    with beeline.tracer("checkout"):
        beeline.add_context_field("cart.items", 3)
        with beeline.tracer("load_cart"):
            with beeline.tracer("query_db"):
                time.sleep(0.02)
        try:
            with beeline.tracer("charge_card"):
                time.sleep(0.01)
                raise ValueError("card declined")
        except ValueError:
            pass
    with beeline.tracer("health_check"):
        pass
    beeline.send_now({"name": "audit", "ok": True})
    beeline.close()
"""

BILLING_SERVER = """
    import http.server
    import time
    import beeline
    from beeline.propagation import DictRequest

    beeline.init(service_name="billing")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            request = DictRequest(dict(self.headers.items()), {"method": "GET", "path": self.path})
            root = beeline.propagate_and_start_trace({"name": "billing_charge"}, request)
            try:
                with beeline.tracer("fraud_check"):
                    time.sleep(0.005)
            finally:
                beeline.finish_trace(root)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"charged")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    server.timeout = 20
    print(server.server_address[1], flush=True)
    server.handle_request()  # exactly one request, then exit
    server.server_close()
    beeline.close()
"""

SHOP_CLIENT = """
    import sys
    import urllib.request
    import beeline

    beeline.init(service_name="shop")
    with beeline.tracer("checkout"):
        with beeline.tracer("call_billing"):
            headers = beeline.http_trace_propagation_hook() or {}
            request = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/charge", headers=headers)
            assert urllib.request.urlopen(request, timeout=20).read() == b"charged"
    beeline.close()
"""

SLOW_PRODUCER = """
    import time
    import beeline

    beeline.init(service_name="worker")
    for number in range(3):
        with beeline.tracer(f"job_{number}"):
            with beeline.tracer(f"step_{number}"):
                time.sleep(0.01)
        time.sleep(0.4)
    beeline.close()
"""


def program(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def traced_run(tmp_path: Path, name: str, source: str, trace_file: Path, *args: str) -> None:
    result = subprocess.run(
        [sys.executable, str(program(tmp_path, name, source)), *args],
        capture_output=True, text=True, cwd=REPO, env=clean_env(BEELINE_TRACE_FILE=str(trace_file)), timeout=60,
    )
    assert result.returncode == 0, result.stderr


def events_by_name(trace_file: Path) -> dict[str, dict]:
    records = [json.loads(text) for text in trace_file.read_text(encoding="utf-8").splitlines()]
    return {r["data"]["name"]: r["data"] for r in records}


def row(out: str, name: str) -> str:
    return next(text for text in out.splitlines() if f"{name} " in text + " " and " ms" in text)


def tree_cells(out: str, *names: str) -> list[str]:
    """Each named span's row up to the end of its name: the tree guides and the name."""
    cells = []
    for name in names:
        text = row(out, name)
        cells.append(text[: text.index(name) + len(name)])
    return cells


def test_a_real_run_is_drawn_with_its_tree_timings_and_error(tmp_path: Path) -> None:
    trace_file = tmp_path / "shop.jsonl"
    traced_run(tmp_path, "shop", SHOP_PROGRAM, trace_file)
    written = events_by_name(trace_file)

    result = view(str(trace_file))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert ANSI not in out
    checkout_id = written["checkout"]["trace.trace_id"]
    assert out.index(f"trace {checkout_id}") < out.index("health_check")  # traces in start order
    cells = tree_cells(out, "checkout", "load_cart", "query_db", "charge_card")
    assert cells == ["checkout", "├─ load_cart", "│  └─ query_db", "└─ ✗ charge_card"]
    assert "ValueError: card declined" in out

    for name in ("checkout", "load_cart", "query_db", "charge_card", "health_check"):
        assert f" {written[name]['duration_ms']:.2f} ms " in row(out, name) + " "
    assert written["query_db"]["duration_ms"] >= 20  # it slept 20 ms inside
    assert written["load_cart"]["duration_ms"] >= written["query_db"]["duration_ms"]

    assert "standalone events (no trace id): 1" in out and "audit" in out
    assert out.rstrip().splitlines()[-1] == "2 traces, 5 spans, 1 standalone event, 1 error"

    fields = view(str(trace_file), "--trace", checkout_id, "--fields").stdout
    assert "cart.items: 3" in fields and "app.exception_stacktrace: Traceback" in fields
    assert "health_check" not in fields

    slowest = view(str(trace_file), "--slowest", "1").stdout
    assert f"trace {checkout_id}" in slowest and "health_check" not in slowest
    assert "no trace matches service 'billing'" in view(str(trace_file), "--service", "billing").stdout


def test_a_trace_across_two_services_over_real_http(tmp_path: Path) -> None:
    shop_file, billing_file = tmp_path / "shop.jsonl", tmp_path / "billing.jsonl"
    server = subprocess.Popen(
        [sys.executable, str(program(tmp_path, "billing", BILLING_SERVER))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env=clean_env(BEELINE_TRACE_FILE=str(billing_file)),
    )
    try:
        assert server.stdout is not None
        port = server.stdout.readline().strip()
        assert port.isdigit(), server.stderr.read() if server.stderr else ""
        traced_run(tmp_path, "client", SHOP_CLIENT, shop_file, port)
        assert server.wait(timeout=60) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=10)

    # Each service wrote its own file; together they hold the whole trace.
    both = shop_file.read_text(encoding="utf-8") + billing_file.read_text(encoding="utf-8")
    result = view("-", stdin=both)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count("\ntrace ") + out.startswith("trace ") == 1, out
    assert "2 services" in out
    cells = tree_cells(out, "checkout", "call_billing", "billing_charge", "fraud_check")
    assert cells == ["checkout", "└─ call_billing", "   └─ billing_charge", "      └─ fraud_check"]
    assert " billing " in row(out, "billing_charge") and " shop " in row(out, "call_billing")
    assert "missing]" not in out

    # The billing file alone: its subroot's parent lives in the shop's file, so it is marked.
    alone = view(str(billing_file)).stdout
    call_billing = events_by_name(shop_file)["call_billing"]["trace.span_id"]
    assert f"billing_charge [parent {call_billing[:8]} missing]" in alone
    assert "no root span" not in alone  # a subroot begins the trace in this service


def test_follow_a_real_program_while_it_runs(tmp_path: Path, follow_viewer: StartViewer) -> None:
    trace_file = tmp_path / "worker.jsonl"
    viewer = follow_viewer(str(trace_file), "--settle", "0.2", "--max-seconds", "120")
    traced_run(tmp_path, "worker", SLOW_PRODUCER, trace_file)
    viewer.wait_for("step_2")
    viewer.process.send_signal(signal.SIGINT)
    code, out, err = viewer.finish()
    assert code == 0, err
    headers = [text for text in out.splitlines() if text.startswith("trace ")]
    assert len(headers) == 3
    assert [out.count(f"job_{n}") for n in range(3)] == [1, 1, 1]
    assert out.index("job_0") < out.index("job_1") < out.index("job_2")
    assert out.splitlines()[-1] == "3 traces, 6 spans, 0 standalone events"
