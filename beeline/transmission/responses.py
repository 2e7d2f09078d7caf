"""The responses queue: libhoney's per-event outcome dicts, then a final ``None`` at close.

A ``queue.Queue`` (what users of ``beeline.get_responses_queue()`` already read) that can take
a whole batch of responses under one lock acquisition, and be reset in a forked child.
"""

from __future__ import annotations

import queue
import time
from typing import Any, Iterable, Optional


def response(status_code: int, error: Optional[str], duration_ms: float, metadata: Any,
             body: str = "") -> dict:
    return {"status_code": status_code, "body": body, "error": error,
            "duration": duration_ms, "metadata": metadata}


class ResponseQueue(queue.Queue):
    def would_drop(self, block: bool) -> bool:
        """True when a non-blocking put would drop everything: the usual state when nobody
        reads responses, so callers skip building them. Read without the lock: a stale answer
        only costs one batch of responses built or skipped."""
        return not block and 0 < self.maxsize <= len(self.queue)

    def put_many(self, items: Iterable[Any], block: bool, deadline: Optional[float] = None) -> int:
        """Append items in order; returns how many were dropped for lack of room.

        ``block``: wait for room (until ``deadline``, a ``time.monotonic()`` value, if given),
        as ``block_on_response=True`` asks; otherwise drop what does not fit, like libhoney.
        """
        items = list(items)
        dropped = 0
        with self.not_full:
            for i, item in enumerate(items):
                if 0 < self.maxsize <= self._qsize():
                    if not block:
                        dropped = len(items) - i
                        break
                    while self._qsize() >= self.maxsize:
                        left = None if deadline is None else deadline - time.monotonic()
                        if left is not None and left <= 0:
                            break
                        self.not_full.wait(left)
                    if self._qsize() >= self.maxsize:
                        dropped = len(items) - i
                        break
                self._put(item)
                self.unfinished_tasks += 1
            if dropped < len(items):
                self.not_empty.notify_all()
        return dropped

    def reset_after_fork(self) -> None:
        """New locks and no items: another thread may have held the old lock at fork time."""
        queue.Queue.__init__(self, self.maxsize)

    def put_final(self, block: bool, deadline: float) -> None:
        """Put close()'s ``None``. Without ``block_on_response`` nobody promised to read, and a
        full queue is the norm (2000 responses fill it), so the oldest response makes room
        instead of close() waiting for a reader that may never come."""
        if block and self.put_many([None], True, deadline) == 0:
            return
        with self.not_full:
            if 0 < self.maxsize <= self._qsize():
                self._get()
                self.unfinished_tasks -= 1
            self._put(None)
            self.unfinished_tasks += 1
            self.not_empty.notify()
