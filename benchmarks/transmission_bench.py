"""Transmission benchmarks: beeline's transmission against libhoney's, in the same run.

    .venv/bin/python benchmarks/transmission_bench.py [--events N] [--repeat R] [--no-web]

Figures (see benchmarks/README.md):
1. events/s through the transmission to a loopback receiver, every event delivered
   (target: at least 3x libhoney's Transmission);
2. CPU cost of send() on the calling thread (target: at most 1 us per event);
3. gunicorn + Flask hello world under wrk, every span delivered: throughput relative to the
   uninstrumented app (target: at least 0.90), and worker CPU per request.

The receiver is benchmarks/_sink.py in its own process, so receiving does not compete with the
measured client for the GIL. Each figure is the best of --repeat runs (least disturbed by
other load on the machine). Not a test: it prints a table and exits 0 unless a run fails.
"""

from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from libhoney.transmission import Transmission as LibhoneyTransmission  # noqa: E402

from beeline.events import SpanEvent  # noqa: E402
from beeline.transmission import BeelineTransmission  # noqa: E402


# ----------------------------------------------------------------------------------- receiver
class Sink:
    """benchmarks/_sink.py as a child process."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(HERE / "_sink.py")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}"

    def _call(self, method: str, path: str) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=b"" if method == "POST" else None)
            return int(conn.getresponse().read())
        finally:
            conn.close()

    def count(self) -> int:
        return self._call("GET", "/count")

    def reset(self) -> None:
        self._call("POST", "/reset")

    def wait_for(self, n: int, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        got = self.count()
        while got < n and time.monotonic() < deadline:
            time.sleep(0.005)
            got = self.count()
        return got

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


# ------------------------------------------------------------------------------------- events
class BenchEvent:
    """What both transmissions read from an event; built before timing starts."""

    __slots__ = ("_data", "api_host", "created_at", "dataset", "metadata", "sample_rate", "writekey")

    def __init__(self, i: int, api_host: str) -> None:
        self._data = {
            "service_name": "bench", "name": "flask_http_get", "duration_ms": 1.234 + i % 7,
            "trace.trace_id": f"{i:032x}", "trace.span_id": f"{i:016x}", "trace.parent_id": None,
            "meta.type": "http_request", "meta.beeline_version": "0.1.0",
            "meta.local_hostname": "bench-host", "request.method": "GET", "request.path": "/hello",
            "request.host": "127.0.0.1:8000", "request.user_agent": "wrk",
            "response.status_code": 200, "app.user_id": i,
        }
        self.api_host = api_host
        self.created_at = datetime.now(timezone.utc).replace(tzinfo=None)
        self.dataset = "bench"
        self.metadata = None
        self.sample_rate = 1
        self.writekey = "bench-key"

    def fields(self) -> dict:
        return self._data


def make_events(n: int, url: str) -> list:
    return [BenchEvent(i, url) for i in range(n)]


# The client's fields of a Beeline: what every span event carries besides its own.
SPAN_BASE = {"service_name": "bench", "service.name": "bench", "meta.beeline_version": "0.1.0",
             "meta.local_hostname": "bench-host"}


def make_span_events(n: int, url: str) -> list:
    """Events as the beeline hands them to a transmission (beeline.events.SpanEvent, made as
    Beeline._send_span makes them): the client's fields on the class, pre-encoded, and the span's
    own fields and float start time on the event. libhoney's Transmission reads them through
    ``fields()`` and ``created_at`` like any libhoney Event."""
    cls = SpanEvent.bound("bench-key", url, None, "bench", 1, SPAN_BASE)
    now = time.time()
    events = []
    for i in range(n):
        ev = object.__new__(cls)
        ev._data = {
            "name": "flask_http_get", "type": "http_server", "request.method": "GET",
            "request.path": "/hello", "request.host": "127.0.0.1:8000", "request.user_agent": "wrk",
            "meta.span_type": "root", "response.status_code": 200, "app.user_id": i,
            "trace.trace_id": f"{i:032x}", "trace.parent_id": None, "trace.span_id": f"{i:016x}",
            "duration_ms": 1.234 + i % 7,
        }
        ev._start_wall = now + i * 1e-5
        events.append(ev)
    return events


FACTORIES: dict[str, Callable[..., Any]] = {
    "beeline": lambda **kw: BeelineTransmission(**kw),
    "libhoney": lambda **kw: LibhoneyTransmission(**kw),
}


# ------------------------------------------------------------------------------------ figures
def close_quickly(xmit: Any) -> None:
    """Close (untimed) while reading the responses queue, so that close()'s final None finds
    room: libhoney would otherwise wait 10 s on a full queue."""
    responses = xmit.get_response_queue()

    def read() -> None:
        while responses.get(timeout=15) is not None:
            pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    xmit.close()
    reader.join(15)


def events_per_second(kind: str, sink: Sink, n: int, spans: bool = False) -> float:
    """From the first send() until the receiver has all ``n`` events (close() not timed: with
    nobody reading responses, libhoney's close() waits 10 s for room for its final None).
    ``spans``: the beeline's span events instead of plain ones."""
    events = (make_span_events if spans else make_events)(n, sink.url)
    sink.reset()
    xmit = FACTORIES[kind](block_on_send=True)  # blocking: every event is delivered
    xmit.start()
    start = time.perf_counter()
    for ev in events:
        xmit.send(ev)
    got = sink.wait_for(n, timeout=60)
    elapsed = time.perf_counter() - start
    close_quickly(xmit)
    if got != n:
        raise RuntimeError(f"{kind}: {got} of {n} events delivered")
    return n / elapsed


def send_cost_us(kind: str, sink: Sink, n: int) -> tuple[float, float]:
    """(thread CPU, wall) per send() on the calling thread, in microseconds."""
    events = make_events(n, sink.url)
    sink.reset()
    xmit = FACTORIES[kind](max_pending=n + 1)  # room for all: the drop path is not measured
    xmit.start()
    send = xmit.send
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    for ev in events:
        send(ev)
    cpu1, wall1 = time.thread_time(), time.perf_counter()
    got = sink.wait_for(n, timeout=60)
    close_quickly(xmit)
    if got != n:
        raise RuntimeError(f"{kind}: {got} of {n} events delivered")
    return (cpu1 - cpu0) / n * 1e6, (wall1 - wall0) / n * 1e6


# -------------------------------------------------------------------------------------- table
def verdict(ok: Optional[bool]) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def print_table(rows: list[tuple]) -> None:
    header = ("figure", "beeline", "libhoney", "ratio", "target", "result")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    print(line)
    print("-" * len(line))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000, help="events per throughput run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (best is kept)")
    parser.add_argument("--no-web", action="store_true", help="skip the gunicorn + Flask figure")
    parser.add_argument("--web-seconds", type=float, default=10.0, help="wrk duration per app")
    args = parser.parse_args(argv)

    rows = []
    sink = Sink()
    try:
        rate = {k: max(events_per_second(k, sink, args.events) for _ in range(args.repeat)) for k in FACTORIES}
        ratio = rate["beeline"] / rate["libhoney"]
        rows.append(("events/s to loopback, all delivered", f"{rate['beeline']:,.0f}",
                     f"{rate['libhoney']:,.0f}", f"{ratio:.2f}x", ">= 3x", verdict(ratio >= 3)))
        rate = {k: max(events_per_second(k, sink, args.events, spans=True) for _ in range(args.repeat))
                for k in FACTORIES}
        ratio = rate["beeline"] / rate["libhoney"]
        rows.append(("  the same, beeline span events", f"{rate['beeline']:,.0f}",
                     f"{rate['libhoney']:,.0f}", f"{ratio:.2f}x", "(info)", "n/a"))

        costs = {k: min((send_cost_us(k, sink, args.events) for _ in range(args.repeat)), key=lambda c: c[0])
                 for k in FACTORIES}
        ours, theirs = costs["beeline"], costs["libhoney"]
        rows.append(("send() CPU on caller, us/event", f"{ours[0]:.3f}", f"{theirs[0]:.3f}",
                     f"{theirs[0] / ours[0]:.0f}x less", "<= 1 us", verdict(ours[0] <= 1.0)))
        rows.append(("send() wall on caller, us/event", f"{ours[1]:.3f}", f"{theirs[1]:.3f}",
                     f"{theirs[1] / ours[1]:.0f}x less", "(info)", "n/a"))
    finally:
        sink.close()

    if not args.no_web:
        from benchmarks import web_bench  # noqa: PLC0415 - only when the web figure runs

        rows.extend(web_bench.run(seconds=args.web_seconds, repeat=args.repeat))

    print()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.events:,} events per run, "
          f"best of {args.repeat}")
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
