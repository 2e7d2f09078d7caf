"""Shared pieces for the transmission tests: a transmission with short timings, events, and
reading the responses queue."""

from __future__ import annotations

import queue
import time
from datetime import datetime, timezone
from typing import Any, Optional

from beeline.transmission import BeelineTransmission
from beeline.transmission.encoding import encode_events, join_items

# Short backoff so retries take milliseconds; generous budgets so they are never the limit
# unless a test says so.
FAST = dict(send_frequency=0.02, retry_initial_delay=0.005, retry_max_delay=0.05,
            retry_max_elapsed=10.0, request_timeout=5.0, close_timeout=5.0)


def make(**overrides: Any) -> BeelineTransmission:
    settings = dict(FAST)
    settings.update(overrides)
    xmit = BeelineTransmission(**settings)
    xmit.start()
    return xmit


class Ev:
    """The attributes a transmission reads from an event, nothing more (like the core's)."""

    def __init__(self, data: dict, api_host: str, dataset: str = "d", writekey: str = "key",
                 sample_rate: int = 1, created_at: Optional[datetime] = None, metadata: Any = None) -> None:
        self._data = data
        self.api_host = api_host
        self.dataset = dataset
        self.writekey = writekey
        self.sample_rate = sample_rate
        self.created_at = created_at or datetime.now(timezone.utc).replace(tzinfo=None)
        self.metadata = metadata

    def fields(self) -> dict:
        return self._data


def send_n(xmit: BeelineTransmission, rx_url: str, n: int, start: int = 0, **kw: Any) -> None:
    for i in range(start, start + n):
        xmit.send(Ev({"i": i}, rx_url, metadata=i, **kw))


def drain(q: "queue.Queue", timeout: float = 5.0, until_none: bool = False, count: Optional[int] = None) -> list:
    """Responses from the queue: up to ``count``, or up to the final None, or what is there."""
    out = []
    while count is None or len(out) < count:
        try:
            item = q.get(timeout=timeout if (until_none or count is not None) else 0.05)
        except queue.Empty:
            break
        if item is None:
            out.append(None)
            break
        out.append(item)
    return out


def encode_batch(events: list) -> tuple:
    """``events`` as one request body, as the transmission encodes a batch that fits in one:
    ``(body, encoded, rejected)``, the last two as ``encode_events`` gives them."""
    texts, encoded, rejected = encode_events(events)
    return join_items(texts), encoded, rejected


def responses_by_metadata(xmit: BeelineTransmission, **drain_args: Any) -> dict:
    """The responses ``drain`` reads (close()'s final None left out), keyed by metadata."""
    return {r["metadata"]: r for r in drain(xmit.get_response_queue(), **drain_args) if r is not None}


def delivered_ids(rx: Any) -> list:
    return sorted(e["data"]["i"] for e in rx.events)


def wait_until(predicate, timeout: float = 5.0) -> bool:
    """Poll `predicate` until it holds or `timeout` seconds pass (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()
