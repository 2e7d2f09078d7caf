"""Queue -> batches -> workers, for one process.

Callers append to a ``collections.deque`` (atomic, no lock) and wake the sender thread only when
a full batch is waiting; otherwise the sender wakes on its own every ``send_frequency`` seconds
and batches whatever is there, so an event waits at most about that long. The sender groups
events by (write key, dataset, API host) into batches of at most ``max_batch_size`` and hands
them to at most ``max_concurrent_batches`` worker threads, started as load needs them.

Memory stays bounded: the sender stops taking events off the queue while a full round of
batches is already waiting for a worker, so a slow or absent API fills the queue, and
``send()`` then drops (or waits, with ``block_on_send``) instead of growing without limit.

``flush()`` puts a marker in the queue. When the sender reaches it, every event queued before
it is in a batch numbered at most the current batch number; the flush is done when no batch
up to that number is still unfinished.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any, Callable, Optional

from beeline.transmission.stats import Stats

log = logging.getLogger("beeline")

Key = tuple  # (writekey, dataset, api_host)


class Batch:
    __slots__ = ("events", "key", "seq")

    def __init__(self, key: Key, events: list, seq: int) -> None:
        self.key = key
        self.events = events
        self.seq = seq


class Marker:
    """A flush request travelling through the queue."""

    __slots__ = ("seq",)

    def __init__(self) -> None:
        self.seq: Optional[int] = None  # set by the sender when it reaches the marker


class Pipeline:
    def __init__(self, *, max_pending: int, max_batch_size: int, send_frequency: float,
                 max_concurrent_batches: int, deliver: Callable[[Batch], None],
                 reject: Callable[[Any, str], None], stats: Stats,
                 abort: Optional[threading.Event] = None) -> None:
        # Read by send() on the caller's thread: keep these plain attributes.
        self.pending: deque = deque()
        self.limit = 0                      # max_pending once started; 0 routes send() to the slow path
        self.batch_size = max(1, int(max_batch_size))
        self.armed = True                   # a size wake-up may be sent
        self.wake = threading.Event()

        self._max_pending = max(1, int(max_pending))
        self._frequency = max(0.001, float(send_frequency))
        self._max_workers = max(1, int(max_concurrent_batches))
        self._backlog_limit = self.batch_size * self._max_workers
        self._deliver = deliver
        self._reject = reject
        self._stats = stats

        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)   # workers wait for batches
        self._done = threading.Condition(self._lock)   # flushes wait for batches to finish
        self._ready: deque = deque()
        self._ready_events = 0
        self._unfinished: set = set()
        self._seq = 0
        self._idle = 0
        self._workers: list = []
        self._workers_stop = False
        self._starved = False

        self.space = threading.Condition(threading.Lock())  # block_on_send waiters
        self.space_waiters = 0

        self._stopping = False
        self._sender: Optional[threading.Thread] = None
        self.abort = abort if abort is not None else threading.Event()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._sender is not None:
            return
        self._sender = threading.Thread(target=self._run_sender, name="beeline-transmission",
                                        daemon=True)
        self._sender.start()
        self._spawn_worker()
        self.limit = self._max_pending

    @property
    def started(self) -> bool:
        return self._sender is not None

    def stop(self, deadline: float, abort: bool) -> None:
        """Stop taking events, hand the rest to the workers, wait for them until ``deadline``.

        ``abort``: give up on delivery, so that workers report what they hold as failed at once.
        """
        self.limit = 0
        if abort:
            self.abort.set()
        self._stopping = True
        self.wake.set()
        with self.space:
            self.space.notify_all()
        if self._sender is not None:
            self._sender.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._workers_stop = True
            self._work.notify_all()
            workers = list(self._workers)
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))

    def alive_threads(self) -> int:
        threads = [self._sender, *self._workers]
        return sum(1 for t in threads if t is not None and t.is_alive())

    # ---------------------------------------------------------------------- flush
    def request_flush(self) -> Marker:
        marker = Marker()
        self.pending.append(marker)
        self.wake.set()
        return marker

    def wait(self, marker: Marker, deadline: Optional[float]) -> bool:
        with self._done:
            while True:
                seq = marker.seq
                if seq is not None and not any(s <= seq for s in self._unfinished):
                    return True
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._done.wait(left)

    def idle(self) -> bool:
        with self._lock:
            return not self.pending and not self._unfinished

    # --------------------------------------------------------------------- sender
    def _run_sender(self) -> None:
        while True:
            self.wake.wait(self._frequency)
            self.wake.clear()
            self.armed = True
            stopping = self._stopping
            try:
                self._drain(final=stopping)
            except Exception:
                log.exception("beeline transmission: the sender thread hit an unexpected error")
            if stopping and not self.pending:
                return

    def _drain(self, final: bool) -> None:
        pending = self.pending
        room = len(pending) if final else self._backlog_limit - self._ready_events
        batch_size = self.batch_size
        groups: dict = {}
        taken = 0
        while pending:
            item = pending[0]
            if type(item) is Marker:
                # Everything before the marker goes into batches now, before it is numbered.
                pending.popleft()
                self._emit_all(groups)
                groups = {}
                with self._done:
                    item.seq = self._seq
                    self._done.notify_all()
                continue
            if room <= 0:
                with self._lock:
                    room = self._backlog_limit - self._ready_events
                    # Full: the next worker to take a batch wakes the sender for more.
                    self._starved = room <= 0
                if room <= 0:
                    break
            pending.popleft()
            taken += 1
            room -= 1
            try:
                key = (item.writekey, item.dataset, item.api_host)
                group = groups.get(key)
                if group is None:
                    group = groups[key] = []
                group.append(item)
            except Exception as exc:
                self._reject(item, f"event could not be batched: {exc!r}")
                continue
            if len(group) >= batch_size:
                self._emit(key, group)
                groups[key] = []
        self._emit_all(groups)
        if taken:
            self._stats.taken += taken
        if self.space_waiters:
            with self.space:
                self.space.notify_all()

    def _emit_all(self, groups: dict) -> None:
        for key, group in groups.items():
            if group:
                self._emit(key, group)

    def _emit(self, key: Key, events: list) -> None:
        spawn = False
        with self._lock:
            self._seq += 1
            batch = Batch(key, events, self._seq)
            self._unfinished.add(batch.seq)
            self._ready.append(batch)
            self._ready_events += len(events)
            # Idle workers have not taken earlier batches yet when several arrive at once, so
            # compare with what is waiting, not with zero.
            if len(self._ready) > self._idle and len(self._workers) < self._max_workers:
                spawn = True
            else:
                self._work.notify()
        if spawn and not self._spawn_worker():
            # No new thread possible (interpreter shutting down): deliver here, in order.
            self._run_ready_inline()

    # -------------------------------------------------------------------- workers
    def _spawn_worker(self) -> bool:
        worker = threading.Thread(target=self._run_worker, daemon=True,
                                  name=f"beeline-transmission-worker-{len(self._workers) + 1}")
        try:
            worker.start()
        except RuntimeError:
            return bool(self._workers)
        with self._lock:
            self._workers.append(worker)
        return True

    def _take(self) -> Optional[Batch]:
        with self._work:
            while not self._ready:
                if self._workers_stop:
                    return None
                self._idle += 1
                try:
                    self._work.wait()
                finally:
                    self._idle -= 1
            batch = self._ready.popleft()
            self._ready_events -= len(batch.events)
            starved, self._starved = self._starved, False
        if starved:
            self.wake.set()
        return batch

    def _run_worker(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            self._finish(batch)

    def _run_ready_inline(self) -> None:
        while True:
            with self._lock:
                if not self._ready:
                    return
                batch = self._ready.popleft()
                self._ready_events -= len(batch.events)
            self._finish(batch)

    def _finish(self, batch: Batch) -> None:
        try:
            self._deliver(batch)
        except Exception:
            log.exception("beeline transmission: a batch could not be processed")
        finally:
            with self._done:
                self._unfinished.discard(batch.seq)
                self._done.notify_all()
