"""Where events go when no write key is set: nothing leaves the machine.

Each finished trace is printed on stderr as a small indented tree, one compact line per span,
once its root span arrives (spans finish children first). When a trace file is named
(`BEELINE_TRACE_FILE` or `init(trace_file=...)`), every event is also appended to it as one
JSON line in libhoney's FileTransmission format, which `python -m beeline view FILE` draws.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import OrderedDict
from datetime import datetime, timezone
from typing import IO, Any, Optional

from beeline import finite

MAX_PENDING_TRACES = 1000


def json_default(value: Any) -> str:
    try:
        return str(value)
    except Exception:
        return "unencodable value"


def event_time(ev: Any) -> str:
    created = getattr(ev, "created_at", None) or datetime.now(timezone.utc)
    text = created.isoformat()
    return text + "Z" if created.tzinfo is None else text


def event_record(ev: Any, user_agent: str) -> dict:
    return {
        "time": event_time(ev),
        "samplerate": ev.sample_rate,
        "dataset": ev.dataset,
        "user_agent": user_agent,
        "data": ev.fields(),
    }


class LocalSink:
    """A transmission (libhoney's interface) that keeps events on this machine."""

    def __init__(
        self, show: bool = True, path: Optional[str] = None, user_agent: str = "", stream: Optional[IO[str]] = None
    ) -> None:
        self._show = show
        # None means whatever sys.stderr is when a trace is printed (test runners swap it).
        self._stream = stream
        self.path = path
        self._user_agent = user_agent
        self._file: Optional[IO[str]] = None
        self._lock = threading.Lock()
        self._pending: "OrderedDict[str, list]" = OrderedDict()

    def start(self) -> None:
        if self.path and self._file is None:
            directory = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(directory, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8", buffering=1)

    def send(self, ev: Any) -> None:
        if self._file is not None:
            # NaN and infinities as strings, as the transmission sends them: a bare NaN is not
            # JSON, and readers other than our viewer (jq, JSON Lines tools) refuse the line.
            line = finite.dumps(event_record(ev, self._user_agent), default=json_default)
            with self._lock:
                self._file.write(line + "\n")
        if self._show:
            self._collect(ev.fields())

    def _collect(self, fields: dict) -> None:
        trace_id = str(fields.get("trace.trace_id") or "")
        if not trace_id:
            self._write(render_trace([fields]))
            return
        done = None
        with self._lock:
            spans = self._pending.setdefault(trace_id, [])
            spans.append(fields)
            if fields.get("meta.span_type") in ("root", "subroot") or not fields.get("trace.parent_id"):
                done = [self._pending.pop(trace_id)]
            elif len(self._pending) > MAX_PENDING_TRACES:
                done = [self._pending.popitem(last=False)[1]]
        for trace in done or ():
            self._write(render_trace(trace))

    def _write(self, text: str) -> None:
        stream = self._stream or sys.stderr
        try:
            stream.write(text)
            stream.flush()
        except Exception:
            pass  # a closed stderr must never break the app

    def flush(self, timeout: Optional[float] = None) -> bool:
        with self._lock:
            leftovers = list(self._pending.values())
            self._pending.clear()
        for trace in leftovers:
            self._write(render_trace(trace))
        if self._file is not None:
            with self._lock:
                self._file.flush()
        return True

    def close(self, timeout: Optional[float] = None) -> None:
        self.flush()
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def get_response_queue(self) -> None:
        return None


def render_trace(spans: list) -> str:
    """An indented tree, children under parents in start order, spans with an unknown parent
    at the top level."""
    by_id = {s.get("trace.span_id"): s for s in spans}
    children: dict = {}
    tops = []
    for span in spans:
        parent = span.get("trace.parent_id")
        if parent and parent in by_id:
            children.setdefault(parent, []).append(span)
        else:
            tops.append(span)
    first = tops[0] if tops else spans[0]
    trace_id = first.get("trace.trace_id") or "-"
    service = first.get("service.name") or first.get("service_name") or ""
    lines = [f"beeline: trace {trace_id} ({service}, {len(spans)} span{'s' if len(spans) != 1 else ''})"]

    def walk(span: dict, depth: int) -> None:
        name = str(span.get("name") or "(unnamed)")
        duration = span.get("duration_ms")
        took = f"{duration:9.2f} ms" if isinstance(duration, (int, float)) else " " * 12
        label = ("  " * depth + name)[:48]
        error = _error_of(span)
        lines.append(f"  {label:<48} {took}" + (f"  ERROR {error}" if error else ""))
        for child in children.get(span.get("trace.span_id"), ()):
            walk(child, depth + 1)

    for top in tops:
        walk(top, 0)
    return "\n".join(lines) + "\n"


def _error_of(span: dict) -> str:
    for key in ("app.exception_type", "request.error", "db.error", "error"):
        if span.get(key):
            return str(span[key])[:60]
    return ""

