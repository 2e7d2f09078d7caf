"""Counters kept in memory, and warnings that cannot flood the log.

libhoney sends two statsd UDP packets per event; here counting costs nothing on the caller's
thread: events taken off the queue are counted by the sender thread, outcomes once per batch
by the worker that sent it. Only drops on the caller's thread (a cold path) take the lock.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Optional

log = logging.getLogger("beeline")


class Stats:
    """Outcome counters. ``snapshot()`` is what ``transmission.stats`` returns."""

    __slots__ = ("_lock", "batches", "dropped_closed", "dropped_overflow", "failed", "retried",
                 "sent", "taken")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.taken = 0              # events the sender thread took off the queue (one writer)
        self.sent = 0               # events the API accepted (per-event 2xx)
        self.failed = 0             # events that reached a final failure (reported per event)
        self.retried = 0            # event sends repeated after a retryable failure
        self.batches = 0            # HTTP requests made, retries included
        self.dropped_overflow = 0   # send() found the queue full (block_on_send=False)
        self.dropped_closed = 0     # send() after close()

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def snapshot(self, pending: int) -> dict:
        with self._lock:
            return {
                "queued": self.taken + pending,
                "pending": pending,
                "sent": self.sent,
                "failed": self.failed,
                "retried": self.retried,
                "batches": self.batches,
                "dropped_overflow": self.dropped_overflow,
                "dropped_closed": self.dropped_closed,
            }


class RateLimitedWarning:
    """Warn about lost events at most once per ``interval`` seconds, with totals since the last
    warning, so an outage produces a handful of lines rather than one per event."""

    def __init__(self, interval: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last: Optional[float] = None
        self._counts: dict[str, int] = {}
        self._last_reason: dict[str, str] = {}

    def note(self, kind: str, n: int, reason: str = "") -> None:
        now = self._clock()
        with self._lock:
            self._counts[kind] = self._counts.get(kind, 0) + n
            if reason:
                self._last_reason[kind] = reason
            if self._last is not None and now - self._last < self._interval:
                return
            self._last = now
            counts, reasons = self._take()
        self._emit(counts, reasons)

    def report_pending(self) -> None:
        """Log what was counted since the last warning (at close, so nothing goes unsaid)."""
        with self._lock:
            counts, reasons = self._take()
        if counts:
            self._emit(counts, reasons)

    def _take(self) -> tuple[dict, dict]:
        counts, self._counts = self._counts, {}
        reasons, self._last_reason = self._last_reason, {}
        return counts, reasons

    @staticmethod
    def _emit(counts: dict, reasons: dict) -> None:
        parts = []
        for name, count in sorted(counts.items()):
            why = reasons.get(name)
            parts.append(f"{count} {name}" + (f" (last: {why})" if why else ""))
        log.warning("beeline transmission: events not delivered: %s", "; ".join(parts))
