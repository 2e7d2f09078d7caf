"""The beeline's default transmission, behind libhoney's ``transmission_impl`` interface.

``send()`` is the only method on the application's hot path. It appends the event to a deque
and, once per full batch, sets an Event to wake the sender; no lock, no I/O, no statsd. The
rest (batching, HTTP, retries, responses) happens on the sender and worker threads of
``pipeline.Pipeline`` and ``delivery.Delivery``.

Process lifecycle:
- ``close(timeout)`` is bounded, and runs at interpreter exit for every open transmission
  (libhoney only closes its global client at exit).
- After ``os.fork()`` the child gets an empty queue, fresh locks and no inherited connections;
  its sender starts with its first event. What the parent had queued is the parent's to send.
"""

from __future__ import annotations

import atexit
import logging
import os
import platform
import threading
import time
import weakref
from datetime import timedelta
from typing import Any, Optional, Union

from libhoney.version import VERSION as LIBHONEY_VERSION

from beeline.transmission.delivery import CLOSED_ERROR, MAX_BODY_BYTES, Delivery
from beeline.transmission.http import Connections
from beeline.transmission.pipeline import Marker, Pipeline
from beeline.transmission.responses import ResponseQueue, response
from beeline.transmission.retry import RetryPolicy
from beeline.transmission.stats import RateLimitedWarning, Stats
from beeline.version import VERSION

log = logging.getLogger("beeline")

PRODUCT = f"beeline-tracer/{VERSION}"
OVERFLOW_ERROR = "event dropped; queue overflow"  # libhoney's wording, which users may match on
# Most of close()'s time that is kept for winding down after giving up on delivery.
_WIND_DOWN = 0.5


def user_agent(addition: str = "") -> str:
    base = f"{PRODUCT} libhoney-py/{LIBHONEY_VERSION} python/{platform.python_version()}"
    addition = (addition or "").strip()
    # The product token is already there; do not repeat it when a caller passes it as addition.
    if addition and addition != PRODUCT:
        base += " " + addition
    return base


class BeelineTransmission:
    """Batching, retrying Events API transmission with libhoney's ``Transmission`` interface."""

    def __init__(
        self,
        max_concurrent_batches: int = 10,
        block_on_send: bool = False,
        block_on_response: bool = False,
        max_batch_size: int = 500,
        send_frequency: Union[float, timedelta] = 0.25,
        user_agent_addition: str = "",
        debug: bool = False,
        gzip_enabled: bool = True,
        gzip_compression_level: int = 1,
        proxies: Optional[dict] = None,
        max_pending: int = 10_000,
        max_responses: int = 2000,
        *,
        request_timeout: float = 10.0,
        retry_initial_delay: float = 0.1,
        retry_max_delay: float = 5.0,
        retry_max_attempts: int = 8,
        retry_max_elapsed: float = 30.0,
        close_timeout: float = 10.0,
        warning_interval: float = 60.0,
        max_batch_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        if isinstance(send_frequency, timedelta):
            send_frequency = send_frequency.total_seconds()
        self.max_concurrent_batches = max(1, int(max_concurrent_batches))
        self.block_on_send = bool(block_on_send)
        self.block_on_response = bool(block_on_response)
        self.max_batch_size = max(1, int(max_batch_size))
        self.send_frequency = float(send_frequency)
        self.max_pending = max(1, int(max_pending))
        self.max_batch_bytes = max(1, int(max_batch_bytes))
        self.gzip_enabled = bool(gzip_enabled)
        self.gzip_compression_level = int(gzip_compression_level)
        self.debug = bool(debug)
        self.user_agent = user_agent(user_agent_addition)
        self.close_timeout = float(close_timeout)
        self._proxies = dict(proxies or {})
        self._request_timeout = float(request_timeout)
        self._policy = RetryPolicy(initial_delay=retry_initial_delay, max_delay=retry_max_delay,
                                   max_attempts=max(1, int(retry_max_attempts)),
                                   max_elapsed=retry_max_elapsed)
        self._warning_interval = warning_interval
        self._responses = ResponseQueue(maxsize=max_responses)
        self._closed = False
        self._closing_deadline: Optional[float] = None
        self._fresh_state()
        _LIVE.add(self)

    # ------------------------------------------------------------- libhoney contract
    def start(self) -> None:
        """Start the sender (libhoney's Client calls this once). Reopens after close()."""
        try:
            with self._start_lock:
                if self._closed:
                    self._closed = False
                    self._closing_deadline = None
                    self._fresh_state(keep_responses=True)
                    _LIVE.add(self)
                self._pipe.start()
        except Exception:
            log.exception("beeline transmission: could not start the sender thread")

    def send(self, ev: Any) -> None:
        """Queue one event. O(1), no lock, no I/O; never raises."""
        pipe = self._pipe
        pending = pipe.pending
        if len(pending) < pipe.limit:
            pending.append(ev)
            if len(pending) >= pipe.batch_size and pipe.armed:
                pipe.armed = False
                pipe.wake.set()
            return
        self._send_slow(ev)

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait until every event queued before this call has been sent and answered.

        True when that happened within ``timeout`` seconds (None: no limit), False otherwise.
        The sender keeps running and nothing is added to the responses queue.
        """
        try:
            pipe = self._pipe
            if not pipe.started:
                return pipe.idle()
            deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
            return pipe.wait(pipe.request_flush(), deadline)
        except Exception:
            log.exception("beeline transmission: flush failed")
            return False

    def close(self, timeout: Optional[float] = None) -> None:
        """Deliver what is queued, stop the threads, then put the final ``None`` on the
        responses queue, all within ``timeout`` seconds (default ``close_timeout``). What is
        not delivered by then is reported failed."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._close(self.close_timeout if timeout is None else float(timeout))
        except Exception:
            log.exception("beeline transmission: close failed")
        finally:
            _LIVE.discard(self)

    def get_response_queue(self) -> ResponseQueue:
        return self._responses

    @property
    def stats(self) -> dict:
        """Counters: queued, pending, sent, failed, retried, batches (HTTP requests),
        dropped_overflow, dropped_closed. Sampling happens before the transmission, so sampled
        out events are not counted here."""
        pending = sum(1 for item in list(self._pipe.pending) if type(item) is not Marker)
        return self._stats.snapshot(pending)

    # ------------------------------------------------------------------- internals
    def _fresh_state(self, keep_responses: bool = False) -> None:
        """Everything a process needs of its own: at construction, after fork, on reopen."""
        if not keep_responses:
            self._responses.reset_after_fork()
        self._start_lock = threading.Lock()
        self._close_lock = threading.Lock()
        self._stats = Stats()
        self._warner = RateLimitedWarning(self._warning_interval)
        self._conns = Connections(self._request_timeout, self._proxies, self.max_concurrent_batches)
        abort = threading.Event()
        self._delivery = Delivery(
            connections=self._conns, policy=self._policy, user_agent=self.user_agent,
            gzip_enabled=self.gzip_enabled, gzip_level=self.gzip_compression_level,
            stats=self._stats, warner=self._warner, responses=self._responses,
            block_on_response=self.block_on_response, abort=abort,
            response_deadline=lambda: self._closing_deadline, debug=self.debug,
            max_body=self.max_batch_bytes)
        pipe = Pipeline(max_pending=self.max_pending, max_batch_size=self.max_batch_size,
                        send_frequency=self.send_frequency,
                        max_concurrent_batches=self.max_concurrent_batches,
                        deliver=self._delivery, reject=self._reject, stats=self._stats, abort=abort)
        self._pipe = pipe

    def _reject(self, ev: Any, why: str) -> None:
        self._delivery.fail([ev], 0, why, time.monotonic())

    def _send_slow(self, ev: Any) -> None:
        """Not started yet, closed, or full: rare, so this path may take locks."""
        try:
            pipe = self._pipe
            if self._closed:
                self._stats.add(dropped_closed=1)
                self._warner.note("dropped after close", 1)
                return
            if (not pipe.started or not pipe.limit) and not self._closed:
                # start() takes the start lock, so a start another thread is in the middle of
                # (sender running, queue limit not set yet) has finished when it returns.
                self.start()
            if pipe.started and len(pipe.pending) < pipe.limit:
                pipe.pending.append(ev)
                return
            if self.block_on_send:
                self._wait_for_room(pipe)
                if self._closed:
                    self._stats.add(dropped_closed=1)
                    self._warner.note("dropped after close", 1)
                    return
                pipe.pending.append(ev)
                return
            self._stats.add(dropped_overflow=1)
            self._warner.note("dropped (queue full)", 1, f"max_pending={self.max_pending}")
            self._responses.put_many([response(0, OVERFLOW_ERROR, 0, getattr(ev, "metadata", None))],
                                     self.block_on_response, self._closing_deadline)
        except Exception:
            log.exception("beeline transmission: could not queue an event")

    def _wait_for_room(self, pipe: Pipeline) -> None:
        with pipe.space:
            pipe.space_waiters += 1
            try:
                while len(pipe.pending) >= self.max_pending and not self._closed:
                    pipe.wake.set()
                    pipe.space.wait(0.05)
            finally:
                pipe.space_waiters -= 1

    def _close(self, timeout: float) -> None:
        now = time.monotonic()
        deadline = now + max(0.0, timeout)
        # The last part of the time is kept for giving up cleanly: abort, let the workers report
        # what they hold as failed, put the final None; so close() ends by the deadline.
        wind_down = min(_WIND_DOWN, timeout / 4)
        self._closing_deadline = deadline
        pipe = self._pipe
        if pipe.started:
            delivered = pipe.wait(pipe.request_flush(), deadline - wind_down)
            if not delivered:
                pipe.abort.set()
                self._conns.abort()
            pipe.stop(deadline, abort=not delivered)
        else:
            leftovers = [item for item in pipe.pending if type(item) is not Marker]
            pipe.pending.clear()
            self._delivery.fail(leftovers, 0, CLOSED_ERROR, now)
        if pipe.alive_threads():
            log.warning("beeline transmission: close() timed out; some events may be lost")
        self._delivery.responses_closed = True
        self._warner.report_pending()
        self._responses.put_final(self.block_on_response, deadline)
        self._conns.close()

    def _after_fork_in_child(self) -> None:
        self._closing_deadline = None
        self._fresh_state()


# One at-fork hook and one exit hook for all transmissions; weak references so neither keeps a
# transmission alive.
_LIVE: "weakref.WeakSet[BeelineTransmission]" = weakref.WeakSet()


def _reset_all_in_child() -> None:
    for xmit in list(_LIVE):
        try:
            xmit._after_fork_in_child()
        except Exception:
            log.exception("beeline transmission: could not reset after fork")


def _close_all_at_exit() -> None:
    for xmit in list(_LIVE):
        xmit.close()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_all_in_child)
atexit.register(_close_all_at_exit)
