"""Delivering one batch: encode, POST, retry within budget, report one response per event.

Runs on a worker thread and never raises. Every event of the batch ends with exactly one
outcome: counted as sent or failed, and one response dict on the responses queue.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
from typing import Any, Callable, Optional

from beeline.transmission.encoding import encode_events, gzip_bytes, split_bodies
from beeline.transmission.exchange import header_block
from beeline.transmission.http import Connections, Endpoint, Reply, TransportError, batch_path, parse_api_host
from beeline.transmission.pipeline import Batch
from beeline.transmission.responses import ResponseQueue, response
from beeline.transmission.retry import RetryPolicy, is_retryable_status, parse_retry_after
from beeline.transmission.stats import RateLimitedWarning, Stats

log = logging.getLogger("beeline")

# Errors that on a kept-alive connection usually mean the server closed it while idle.
_STALE = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, http.client.RemoteDisconnected)

CLOSED_ERROR = "transmission closed before the event was delivered"
# The Events API's limit on one batch request body: a larger one is refused with every event.
MAX_BODY_BYTES = 5_000_000


class Delivery:
    def __init__(self, *, connections: Connections, policy: RetryPolicy, user_agent: str,
                 gzip_enabled: bool, gzip_level: int, stats: Stats, warner: RateLimitedWarning,
                 responses: ResponseQueue, block_on_response: bool, abort: threading.Event,
                 response_deadline: Callable[[], Optional[float]], debug: bool = False,
                 max_body: int = MAX_BODY_BYTES) -> None:
        self._conns = connections
        self._max_body = max_body
        self._policy = policy
        self._user_agent = user_agent
        self._gzip = gzip_enabled
        self._gzip_level = gzip_level
        self._stats = stats
        self._warner = warner
        self._responses = responses
        self._block_on_response = block_on_response
        self._abort = abort
        self._response_deadline = response_deadline
        self._debug = debug
        self._endpoints: dict[str, Endpoint] = {}
        self._header_blocks: dict[str, bytes] = {}
        self.responses_closed = False

    # ------------------------------------------------------------------------ entry
    def __call__(self, batch: Batch) -> None:
        started = time.monotonic()
        writekey, dataset, api_host = batch.key
        events = batch.events
        try:
            if self._abort.is_set():
                self.fail(events, 0, CLOSED_ERROR, started)
                return
            endpoint = self._endpoint(api_host)
            texts, events, rejected = encode_events(events)
            for ev, why in rejected:
                self.fail([ev], 0, why, started)
            if not events:
                return
            bodies = split_bodies(texts, events, self._max_body)
            headers = self._headers(writekey)
            path = batch_path(endpoint, dataset)
        except Exception as exc:
            self.fail(events, 0, f"batch could not be prepared: {exc!r}", started)
            return
        for body, part in bodies:
            try:
                if self._gzip:
                    body = gzip_bytes(body, self._gzip_level)
            except Exception as exc:
                self.fail(part, 0, f"batch could not be compressed: {exc!r}", started)
                continue
            self._send(endpoint, path, body, headers, part, started)

    def _headers(self, writekey: str) -> bytes:
        """The fixed header lines of a batch request for ``writekey``, made once per key."""
        block = self._header_blocks.get(writekey)
        if block is None:
            headers = {"X-Honeycomb-Team": writekey, "Content-Type": "application/json",
                       "User-Agent": self._user_agent}
            if self._gzip:
                headers["Content-Encoding"] = "gzip"
            block = header_block(headers)  # ValueError for a key that would split the request
            if len(self._header_blocks) >= 64:
                self._header_blocks.clear()  # many keys: a bounded cache, not a leak
            self._header_blocks[writekey] = block
        return block

    def _endpoint(self, api_host: str) -> Endpoint:
        endpoint = self._endpoints.get(api_host)
        if endpoint is None:
            endpoint = self._endpoints[api_host] = parse_api_host(api_host)
        return endpoint

    # -------------------------------------------------------------------- sending
    def _send(self, endpoint: Endpoint, path: str, body: bytes, headers: bytes, events: list,
              started: float) -> None:
        attempt = 1
        while True:
            if self._abort.is_set():
                self.fail(events, 0, CLOSED_ERROR, started)
                return
            self._stats.add(batches=1)
            retry_after = None
            immediate = False
            try:
                reply = self._conns.post(endpoint, path, body, headers)
            except TransportError as exc:
                status, error, text = 0, str(exc), ""
                immediate = exc.reused and attempt == 1 and isinstance(exc.cause, _STALE)
            except Exception as exc:
                # Not a network error but a request that cannot be made at all (a TLS setup
                # that fails, say): trying again would fail the same way.
                self.fail(events, 0, f"request could not be made: {exc!r}", started)
                return
            else:
                if 200 <= reply.status < 300:
                    self._report(reply, events, started)
                    return
                status, text = reply.status, _text(reply.body)
                error = _error_of(reply, text)
                if not is_retryable_status(status):
                    self.fail(events, status, error, started, body=text)
                    return
                retry_after = parse_retry_after(reply.headers.get("retry-after"))
            wait = 0.0 if immediate else self._policy.delay(attempt, retry_after)
            if not self._policy.allows(attempt, started, wait, time.monotonic()):
                self.fail(events, status, f"{error} (gave up after {attempt} attempts)", started, body=text)
                return
            if self._debug:
                log.debug("beeline transmission: retrying %d events in %.3fs after: %s", len(events), wait, error)
            self._stats.add(retried=len(events))
            if wait and self._abort.wait(wait):
                self.fail(events, 0, CLOSED_ERROR, started)
                return
            attempt += 1

    def _report(self, reply: Reply, events: list, started: float) -> None:
        duration = (time.monotonic() - started) * 1000
        keep = not self._responses.would_drop(self._block_on_response)
        status = _all_accepted(reply.body, len(events))
        if status:
            # The usual answer: every event accepted with the same status and nothing else.
            # Counted in one step; responses built only when someone can receive them.
            self._stats.add(sent=len(events))
            if self._debug:
                log.debug("beeline transmission: batch of %d: %d accepted, 0 rejected", len(events), len(events))
            if keep:
                self._put([response(status, None, duration, ev.metadata) for ev in events])
            return
        try:
            statuses = json.loads(reply.body)
        except ValueError:
            statuses = None
        if not isinstance(statuses, list):
            why = f"unreadable status array in the response: {_text(reply.body)[:200]!r}"
            self.fail(events, reply.status, why, started)
            return
        out: list = []
        sent = failed = 0
        last_error = ""
        for i, ev in enumerate(events):
            item = statuses[i] if i < len(statuses) else None
            status = item.get("status") if isinstance(item, dict) else None
            if isinstance(status, int) and not isinstance(status, bool):
                error = item.get("error")
                if 200 <= status < 300:
                    sent += 1
                    if keep:
                        out.append(response(status, str(error) if error else None, duration, ev.metadata))
                    continue
                error = str(error) if error else f"event rejected with status {status}"
            else:
                status, error = reply.status, "no status for this event in the response"
            failed += 1
            last_error = error
            out.append(response(status, error, duration, ev.metadata))
        self._stats.add(sent=sent, failed=failed)
        if failed:
            self._warner.note("failed", failed, last_error)
        if self._debug:
            log.debug("beeline transmission: batch of %d: %d accepted, %d rejected", len(events), sent, failed)
        if out:
            self._put(out)

    def fail(self, events: list, status: int, error: str, started: float, body: str = "") -> None:
        """Final failure for ``events``: counted, warned about (rate-limited) and reported."""
        if not events:
            return
        duration = (time.monotonic() - started) * 1000
        self._stats.add(failed=len(events))
        self._warner.note("failed", len(events), error)
        self._put([response(status, error, duration, _metadata(ev), body) for ev in events])

    def _put(self, items: list) -> None:
        if self.responses_closed:
            return  # after close()'s final None nothing more may appear
        self._responses.put_many(items, self._block_on_response, self._response_deadline())


# Floats kept as their text: no JSON float is a status, and as text a 202.0 cannot pass for 202
# in _all_accepted's comparison (it would as a float; the per-event loop rejects it).
_STATUS_DECODER = json.JSONDecoder(parse_float=str)


# The answer of the Events API when it takes a whole batch, byte for byte, per batch size:
# recognised by one comparison, before any parsing. Bounded: batch sizes are few.
_ACCEPTED_BODIES: dict[int, bytes] = {}


def _all_accepted(body: bytes, count: int) -> int:
    """The status when the answer is exactly ``count`` items ``{"status": <2xx int>}``, all the
    same (what the API answers when it takes a whole batch); else 0, and the caller reads the
    array event by event. The API's own compact answer is compared as bytes; other spellings
    are parsed and their items compared in C (``list.count``), not one by one here."""
    accepted = _ACCEPTED_BODIES.get(count)
    if accepted is None and count > 0:
        accepted = b"[" + b",".join([b'{"status":202}'] * count) + b"]"
        if len(_ACCEPTED_BODIES) < 64:
            _ACCEPTED_BODIES[count] = accepted
    if body == accepted:
        return 202
    try:
        statuses = _STATUS_DECODER.decode(body.decode("utf-8"))
    except ValueError:
        return 0
    if type(statuses) is not list or len(statuses) != count or not count:
        return 0
    first = statuses[0]
    if type(first) is not dict or len(first) != 1:
        return 0
    status = first.get("status")
    if type(status) is not int or not 200 <= status < 300:
        return 0
    return status if statuses.count(first) == count else 0


def _metadata(ev: Any) -> Any:
    return getattr(ev, "metadata", None)


def _text(body: bytes) -> str:
    return body[:2000].decode("utf-8", "replace")


def _error_of(reply: Reply, text: str) -> str:
    try:
        detail = json.loads(text).get("error")
    except (ValueError, AttributeError):
        detail = None
    detail = detail or text.strip()[:200]
    return f"HTTP {reply.status}" + (f": {detail}" if detail else "")
