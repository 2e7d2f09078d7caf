"""Turning queued events into the Events API batch body.

The batch body is a JSON array of ``{"time", "samplerate", "data"}``. Encoding happens on a
worker thread, once per batch (retries reuse the bytes). A value JSON cannot represent is sent
as its ``str()``, as libhoney does; an event that cannot be encoded at all (say, a dict with
tuple keys) is rejected on its own instead of failing its whole batch.
"""

from __future__ import annotations

import json
import zlib
from datetime import datetime
from typing import Any, Sequence

# Kept byte for byte: users may already filter on this value in their datasets.
UNENCODABLE = "libhoney was unable to encode value"


def _fallback(value: Any) -> str:
    try:
        return str(value)
    except Exception:
        return UNENCODABLE


# Compact separators: smaller bodies. No circular check: a self-referencing value raises
# RecursionError instead, which rejects that one event like any other encoding failure.
_ENCODER = json.JSONEncoder(default=_fallback, check_circular=False, separators=(",", ":"))


def event_time(created_at: Any) -> str:
    """ISO 8601 time of an event: naive datetimes are UTC and get a ``Z``."""
    if isinstance(created_at, datetime):
        text = created_at.isoformat()
        return text + "Z" if created_at.tzinfo is None else text
    return str(created_at)


def encode_batch(events: Sequence[Any]) -> tuple[bytes, list[Any], list[tuple[Any, str]]]:
    """Encode ``events`` as one JSON array.

    Returns ``(body, encoded, rejected)``: ``encoded`` lists the events in ``body`` in order,
    ``rejected`` pairs each event left out with the reason.
    """
    items = []
    encoded = []
    rejected: list[tuple[Any, str]] = []
    for ev in events:
        try:
            items.append({"time": event_time(ev.created_at), "samplerate": ev.sample_rate,
                          "data": ev.fields()})
            encoded.append(ev)
        except Exception as exc:
            rejected.append((ev, f"event could not be read: {exc!r}"))
    try:
        return _ENCODER.encode(items).encode("utf-8"), encoded, rejected
    except Exception:
        pass
    # Some event cannot be encoded: find it (them) one by one, keep the rest.
    parts = []
    kept = []
    for ev, item in zip(encoded, items):
        try:
            parts.append(_ENCODER.encode(item))
            kept.append(ev)
        except Exception as exc:
            rejected.append((ev, f"event could not be encoded as JSON: {exc!r}"))
    return ("[" + ", ".join(parts) + "]").encode("utf-8"), kept, rejected


def gzip_bytes(data: bytes, level: int) -> bytes:
    """Gzip framing (wbits 31) straight from zlib: the gzip module adds a file object per call."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()
