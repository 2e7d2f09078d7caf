"""Building trace files and running the viewer the way a user does."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BASE = datetime(2026, 11, 21, 5, 40, 1, tzinfo=timezone.utc)
ANSI = "\x1b["
WAIT_S = 30  # upper bound for anything the viewer should do promptly


def span(
    trace_id: str | None,
    span_id: str | None,
    parent_id: str | None,
    name: str,
    start_ms: float,
    duration_ms: float | None,
    service: str = "shop",
    **extra: Any,
) -> dict:
    """The fields of one span as the beeline sends them (reference field names)."""
    fields: dict[str, Any] = {
        "service_name": service,
        "service.name": service,
        "meta.beeline_version": "0.1.0",
        "meta.local_hostname": "web-1",
        "name": name,
    }
    if trace_id is not None:
        fields["trace.trace_id"] = trace_id
        fields["trace.span_id"] = span_id
        fields["trace.parent_id"] = parent_id
    if duration_ms is not None:
        fields["duration_ms"] = duration_ms
    fields.update(extra)
    fields["_start_ms"] = start_ms
    return fields


def line(fields: dict, style: str = "libhoney") -> str:
    """One JSON line: libhoney's FileTransmission envelope ("Z" time), "offset" (aware time),
    "naive" (no zone), or "bare" (just the fields, with the time among them)."""
    fields = dict(fields)
    start = BASE + timedelta(milliseconds=fields.pop("_start_ms"))
    if style == "bare":
        fields["time"] = start.isoformat()
        return json.dumps(fields)
    naive = start.replace(tzinfo=None).isoformat()
    when = {"libhoney": naive + "Z", "offset": start.isoformat(), "naive": naive}[style]
    envelope = {"time": when, "samplerate": 1, "dataset": "shop", "user_agent": "libhoney-py/2.4.0", "data": fields}
    return json.dumps(envelope)


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(item + "\n" for item in lines), encoding="utf-8")
    return path


def clean_env(**extra: str) -> dict:
    """The environment for a child process: no colour or width hints, no Honeycomb key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HONEYCOMB_", "BEELINE_"))}
    for name in ("COLUMNS", "NO_COLOR", "TERM", "PYTHONWARNINGS"):
        env.pop(name, None)
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(extra)
    return env


def view(*args: str, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m beeline view ARGS`, output captured through pipes (so not a terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "beeline", "view", *args],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=REPO,
        env=env or clean_env(),
        timeout=60,
    )


class Viewer:
    """A `--follow` viewer in a subprocess, its output lines gathered by a reader thread."""

    def __init__(self, *args: str, stdin: int | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "beeline", "view", "--follow", *args],
            stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
            cwd=REPO, env=clean_env(),
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for text in self.process.stdout:
            self.lines.put(text.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, fragment: str) -> None:
        """Read output until a line contains `fragment` (bounded by WAIT_S)."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            try:
                text = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            if text is None:
                break
            self.seen.append(text)
            if fragment in text:
                return
        self.stop()
        raise AssertionError(f"{fragment!r} never printed; output so far: {self.seen}")

    def stop(self) -> None:
        """Kill the viewer if it is still running (after a failed expectation)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=WAIT_S)

    def finish(self) -> tuple[int, str, str]:
        try:
            code = self.process.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            self.stop()
            raise
        while (text := self.lines.get(timeout=WAIT_S)) is not None:
            self.seen.append(text)
        assert self.process.stderr is not None
        return code, "\n".join(self.seen), self.process.stderr.read()


StartViewer = Callable[..., Viewer]  # the type of the `follow_viewer` fixture
