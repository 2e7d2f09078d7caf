"""Watch a growing file and hand over each trace once it looks finished.

A trace is "finished" when its root (or subroot) has been seen and no span of it arrived for
`settle` seconds: children finish before their parents, so the root is normally the last span
written, but spans from other threads or services can still trail it a little.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Iterator
from typing import BinaryIO, TextIO

from .reading import Span
from .tree import Trace

# How long a printed trace is remembered, so a late span redraws it rather than starting a
# headless trace of its own. Bounded so that a long watch does not hold every trace forever.
REMEMBER_PRINTED_S = 60.0


class TraceGate:
    """Collects spans as they arrive and releases traces that have gone quiet."""

    def __init__(self, settle: float = 1.0) -> None:
        self.settle = settle
        self._open: dict[str, Trace] = {}
        self._last_seen: dict[str, float] = {}
        self._late: dict[str, int] = {}  # trace id -> spans that arrived after it was printed
        self._printed: dict[str, tuple[Trace, float]] = {}
        self._rooted: set[str] = set()  # open traces whose root (or a subroot) has arrived
        self.traces_seen = 0
        self.spans_seen = 0
        self.errors_seen = 0

    def add(self, span: Span, now: float) -> None:
        """Take one span that has a trace id."""
        trace_id = span.trace_id
        assert trace_id is not None
        self.spans_seen += 1
        self.errors_seen += span.error is not None
        trace = self._open.get(trace_id)
        if trace is None:
            remembered = self._printed.pop(trace_id, None)
            if remembered is not None:
                trace = remembered[0]
                if trace.has_root:
                    self._rooted.add(trace_id)
                self._late[trace_id] = 0
            else:
                trace = Trace(trace_id)
                self.traces_seen += 1
            self._open[trace_id] = trace
        if trace_id in self._late:
            self._late[trace_id] += 1
        trace.add(span)
        if span.starts_trace:
            self._rooted.add(trace_id)
        self._last_seen[trace_id] = now

    def due(self, now: float) -> list[tuple[Trace, str]]:
        """Traces whose root is in and that have been quiet for `settle` seconds."""
        ready = [
            trace_id
            for trace_id, seen in self._last_seen.items()
            if now - seen >= self.settle and trace_id in self._rooted
        ]
        self._forget_old(now)
        return self._release(ready, now)

    def rest(self, now: float) -> list[tuple[Trace, str]]:
        """Everything still held, for the end of the watch (finished or not)."""
        return self._release(list(self._open), now)

    def _release(self, trace_ids: list[str], now: float) -> list[tuple[Trace, str]]:
        out = []
        for trace_id in trace_ids:
            trace = self._open.pop(trace_id)
            del self._last_seen[trace_id]
            self._rooted.discard(trace_id)
            late = self._late.pop(trace_id, 0)
            note = f"updated: {late} late span{'s' if late != 1 else ''}" if late else ""
            if not trace.has_root:
                note = "; ".join(filter(None, [note, "incomplete"]))
            self._printed[trace_id] = (trace, now)
            out.append((trace, note))
        out.sort(key=lambda item: item[0].sort_key())
        return out

    def _forget_old(self, now: float) -> None:
        stale = [k for k, (_, at) in self._printed.items() if now - at > REMEMBER_PRINTED_S]
        for trace_id in stale:
            del self._printed[trace_id]


class FileTail:
    """Complete lines appended to a file, and None whenever there is nothing new.

    Waits for the file to appear, starts over if it is truncated or replaced (log rotation),
    and holds a trailing partial line until its newline arrives; when the watch ends, the
    caller reads what is still held from `pending`.
    """

    def __init__(self, path: str, poll: float = 0.1) -> None:
        self.path = path
        self.poll = poll
        self._pending = b""

    @property
    def pending(self) -> str:
        return self._pending.decode("utf-8", "replace")

    def __iter__(self) -> Iterator[str | None]:
        while True:
            try:
                handle = open(self.path, "rb")  # noqa: SIM115 - closed by the with below
            except FileNotFoundError:
                yield None
                time.sleep(self.poll)
                continue
            with handle:
                yield from self._read(handle)
            if self._pending:
                # The file was replaced while its last line was unfinished: pass that line on
                # so it is parsed (and counted if broken) rather than silently lost.
                line, self._pending = self._pending, b""
                yield line.decode("utf-8", "replace")

    def _read(self, handle: BinaryIO) -> Iterator[str | None]:
        """Lines of one open file, until it is truncated or replaced."""
        stat = os.fstat(handle.fileno())
        identity = (stat.st_dev, stat.st_ino)
        while True:
            chunk = handle.readline()
            if chunk:
                if chunk.endswith(b"\n"):
                    line, self._pending = self._pending + chunk, b""
                    yield line.decode("utf-8", "replace")
                else:
                    self._pending += chunk
                continue
            if self._replaced(handle, identity):
                return
            yield None
            time.sleep(self.poll)

    def _replaced(self, handle: BinaryIO, identity: tuple[int, int]) -> bool:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return False  # removed: keep the old one until a new file appears
        if (stat.st_dev, stat.st_ino) != identity:
            return True
        return stat.st_size < handle.tell()


def stream_lines(stream: TextIO, poll: float = 0.1) -> Iterator[str | None]:
    """Yield lines from a pipe as they come, and None every `poll` seconds of silence.

    A thread does the blocking reads so the watch can still stop on time when the writer
    goes quiet. The generator ends when the pipe closes.
    """
    lines: queue.Queue[str | None] = queue.Queue(maxsize=10000)

    def pump() -> None:
        try:
            for line in stream:
                lines.put(line)
        except (OSError, ValueError):
            pass
        finally:
            lines.put(None)

    threading.Thread(target=pump, name="beeline-view-stdin", daemon=True).start()
    while True:
        try:
            line = lines.get(timeout=poll)
        except queue.Empty:
            yield None
            continue
        if line is None:
            return
        yield line
