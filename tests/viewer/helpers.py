"""Building trace files and running the viewer the way a user does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BASE = datetime(2026, 11, 21, 5, 40, 1, tzinfo=timezone.utc)
ANSI = "\x1b["


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
