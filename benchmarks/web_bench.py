"""gunicorn + Flask hello world under wrk: throughput and worker CPU per request, for the
uninstrumented app and the app traced by beeline with each transmission.

One sync worker, wrk on loopback (1 thread, 8 connections), every span posted to the
benchmarks/_sink.py receiver. After each run the app's /__flush delivers what is queued and the
receiver's count is checked against the spans the app produced. wrk comes from the Debian
package: when it is missing this tries `apt-get install -y wrk` (as root) and otherwise skips
the figure with a message.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MODES = ("none", "discard", "libhoney", "beeline", "beeline-stdlib")


def find_wrk() -> Optional[str]:
    path = shutil.which("wrk")
    if path or os.geteuid() != 0 or not shutil.which("apt-get"):
        return path
    print("web benchmark: wrk not found, trying apt-get install -y wrk ...", file=sys.stderr)
    for cmd in (["apt-get", "install", "-y", "-qq", "wrk"], ["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "wrk"]):
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
        path = shutil.which("wrk")
        if path:
            return path
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stat_cpu_seconds(stat: Path) -> float:
    """User + system CPU seconds from a /proc ``stat`` file (a process's or one thread's)."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    return stat_cpu_seconds(Path(f"/proc/{pid}/stat"))


def thread_cpu_seconds(pid: int) -> dict:
    """CPU seconds of each live thread of ``pid``, by thread id. The request thread of a sync
    worker is the process's first thread (thread id = pid); the rest are the transmission's."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[int(task.name)] = stat_cpu_seconds(task / "stat")
        except OSError:
            continue  # the thread ended meanwhile
    return out


def get(url: str, timeout: float = 60) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback only
        return resp.read()


class Gunicorn:
    def __init__(self, mode: str, sink_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, BENCH_MODE=mode, BENCH_SINK=sink_url, PYTHONPATH=str(ROOT))
        gunicorn = str(Path(sys.executable).with_name("gunicorn"))
        self.proc = subprocess.Popen(
            [gunicorn, "-w", "1", "-k", "sync", "-b", f"127.0.0.1:{self.port}", "--log-level", "warning",
             "benchmarks._webapp:app"], cwd=ROOT, env=env)
        deadline = time.monotonic() + 30
        while True:
            try:
                get(self.url + "/", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"gunicorn ({mode}) did not start") from None
                time.sleep(0.1)
        self.worker = self._worker_pid()

    def _worker_pid(self) -> int:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        return int(children[0])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def wrk(wrk_path: str, url: str, seconds: float) -> int:
    out = subprocess.run([wrk_path, "-t1", "-c8", f"-d{seconds:g}s", url + "/"], capture_output=True,
                         text=True, timeout=seconds + 60).stdout
    match = re.search(r"(\d+) requests in", out)
    if not match:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"wrk saw {errors.group(1)} error responses")
    return int(match.group(1))


def measure(mode: str, sink, wrk_path: str, seconds: float) -> dict:
    sink.reset()
    app = Gunicorn(mode, sink.url)
    try:
        wrk(wrk_path, app.url, 2)  # warm up
        json.loads(get(app.url + "/__flush"))
        sink.reset()
        before = json.loads(get(app.url + "/__flush"))["spans"]
        cpu0 = cpu_seconds(app.worker)
        threads0 = thread_cpu_seconds(app.worker)
        requests = wrk(wrk_path, app.url, seconds)
        cpu = cpu_seconds(app.worker) - cpu0
        threads1 = thread_cpu_seconds(app.worker)
        report = json.loads(get(app.url + "/__flush"))
        spans = report["spans"] - before
        delivered = sink.wait_for(spans, timeout=30) if mode not in ("none", "discard") else None
    finally:
        app.stop()
    request_thread = threads1.get(app.worker, 0.0) - threads0.get(app.worker, 0.0)
    return {"rps": requests / seconds, "cpu_us": cpu / requests * 1e6, "requests": requests,
            "request_thread_us": request_thread / requests * 1e6,
            "spans": spans, "delivered": delivered, "stats": report.get("stats")}


def run(seconds: float = 10.0, repeat: int = 3) -> list:
    from benchmarks.transmission_bench import Sink, verdict  # noqa: PLC0415

    wrk_path = find_wrk()
    if not wrk_path:
        print("web benchmark skipped: wrk is not installed (Debian: apt-get install -y wrk)", file=sys.stderr)
        return [("gunicorn+Flask throughput ratio", "skipped", "skipped", "-", ">= 0.90", "n/a")]
    sink = Sink()
    results: dict = {}
    every: dict = {mode: [] for mode in MODES}
    try:
        # Interleave the modes, so that drifting machine load affects them alike; keep the best.
        for _ in range(repeat):
            for mode in MODES:
                r = measure(mode, sink, wrk_path, seconds)
                if mode != "none" and r["spans"] < r["requests"]:
                    raise RuntimeError(f"{mode}: {r['spans']} spans for {r['requests']} requests; "
                                       "is the Flask middleware working?")
                if r["delivered"] is not None and r["delivered"] < r["spans"]:
                    raise RuntimeError(f"{mode}: {r['delivered']} of {r['spans']} spans delivered")
                every[mode].append(r)
                if mode not in results or r["rps"] > results[mode]["rps"]:
                    results[mode] = r
    finally:
        sink.close()
    base = results["none"]["rps"]
    base_cpu = results["none"]["cpu_us"]
    ours, theirs, discard = results["beeline"], results["libhoney"], results["discard"]
    ratio, ratio_cpu = ours["rps"] / base, base_cpu / ours["cpu_us"]

    def median(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in every[mode])

    def threads_us(mode: str) -> float:
        return statistics.median(r["cpu_us"] - r["request_thread_us"] for r in every[mode])

    base_median = median("none", "rps")
    stdlib = results["beeline-stdlib"]
    encoder = "orjson" if importlib.util.find_spec("orjson") else "stdlib json"
    rows = [
        ("gunicorn+Flask req/s (uninstrumented)", f"{base:,.0f}", f"{base:,.0f}", "-", "-", "n/a"),
        (f"gunicorn+Flask req/s ratio, all delivered ({encoder})", f"{ratio:.2f}", f"{theirs['rps'] / base:.2f}",
         f"{ours['rps'] / theirs['rps']:.2f}x", ">= 0.90", verdict(ratio >= 0.90)),
        (f"  medians of the {repeat} runs instead of the best", f"{median('beeline', 'rps') / base_median:.2f}",
         f"{median('libhoney', 'rps') / base_median:.2f}", "-", "(info)", "n/a"),
        # Without the `fast` extra: span events encoded by the stdlib json module.
        ("  stdlib json only: best, median", f"{stdlib['rps'] / base:.2f}, "
         f"{median('beeline-stdlib', 'rps') / base_median:.2f}", "-", "-", "(info)", "n/a"),
        ("  same ratio from worker CPU per request", f"{ratio_cpu:.2f}",
         f"{base_cpu / theirs['cpu_us']:.2f}", f"{theirs['cpu_us'] / ours['cpu_us']:.2f}x", ">= 0.90",
         verdict(ratio_cpu >= 0.90)),
        # Both ratios of the mode that discards: the libhoney column has no such mode.
        ("  transmission discarding events: ratio, from CPU", f"{discard['rps'] / base:.2f}, "
         f"{base_cpu / discard['cpu_us']:.2f}", "-", "-", "(info)", "n/a"),
        ("worker CPU per request, us", f"{ours['cpu_us']:.0f}", f"{theirs['cpu_us']:.0f}",
         f"{theirs['cpu_us'] / ours['cpu_us']:.2f}x less", "(info)", "n/a"),
        ("  uninstrumented / discarding, us", f"{base_cpu:.0f}", f"{discard['cpu_us']:.0f}", "-", "(info)", "n/a"),
        ("  added by the transmission, us", f"{ours['cpu_us'] - discard['cpu_us']:.0f}",
         f"{theirs['cpu_us'] - discard['cpu_us']:.0f}", "-", "(info)", "n/a"),
        # Medians: where the added CPU runs. The request thread's share is what the transmission's
        # threads cost it indirectly (GIL hand-overs, caches), beyond send() itself.
        ("  request thread: none/discard/ours, us",
         "/".join(f"{median(m, 'request_thread_us'):.0f}" for m in ("none", "discard", "beeline")),
         f"{median('libhoney', 'request_thread_us'):.0f}", "-", "(info)", "n/a"),
        ("  transmission threads, us", f"{threads_us('beeline'):.1f}", f"{threads_us('libhoney'):.1f}",
         "-", "(info)", "n/a"),
        ("spans delivered / produced", f"{ours['delivered']}/{ours['spans']}",
         f"{theirs['delivered']}/{theirs['spans']}", "-", "all", verdict(
             ours["delivered"] >= ours["spans"] and theirs["delivered"] >= theirs["spans"])),
    ]
    return rows
