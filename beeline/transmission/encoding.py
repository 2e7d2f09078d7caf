"""Turning queued events into the Events API batch body.

The batch body is a JSON array of ``{"time", "samplerate", "data"}``. Encoding happens on a
worker thread, once per batch (retries reuse the bytes). A value JSON cannot represent is sent
as its ``str()``, as libhoney does; an event that cannot be encoded at all (say, a dict with
tuple keys) is rejected on its own instead of failing its whole batch.

The beeline's own span events take a shorter road (see ``_span_item``): the client's fields
arrive pre-encoded with the event's class and are spliced in as text, and the time is formatted
from the span's float start time without building a datetime. Every other event (libhoney's,
a user's) is read through ``created_at`` and ``fields()`` as libhoney's transmissions read it.
Both roads give the same JSON text for the same event.

With orjson installed (the ``fast`` extra), a span's own fields are encoded by orjson when their
values are all of the plain types (str, int, float, bool, None) and the text it gives means the
same (see ``_fast_members``): about half the cost of the stdlib encoder, on a thread that holds
the GIL while it encodes. The text is then the same except for the spelling of floats below
1e-4 (``0.00001`` where the stdlib writes ``1e-05``), which parse to the same number.
"""

from __future__ import annotations

import json
import json.encoder
import time
import zlib
from datetime import datetime
from typing import Any, Callable, Optional, Sequence

from beeline.events import SpanEvent
from beeline.finite import finite

try:
    from orjson import dumps as _orjson_dumps
except ImportError:  # the `fast` extra is not installed: the stdlib encoder does it all
    _orjson_dumps = None

#: The encoder ``_fast_members`` uses: orjson's ``dumps`` when it is installed, else None.
#: Tests and benchmarks set it to None to measure the stdlib road alone.
fast_dumps: Optional[Callable[[Any], bytes]] = _orjson_dumps

# Kept byte for byte: users may already filter on this value in their datasets.
UNENCODABLE = "libhoney was unable to encode value"


def _fallback(value: Any) -> str:
    try:
        return str(value)
    except Exception:
        return UNENCODABLE


# Compact separators: smaller bodies. No circular check: a self-referencing value raises
# RecursionError instead, which rejects that one event like any other encoding failure.
# No NaN or Infinity: they are not JSON, and the Events API refuses the whole batch for one of
# them. The encoder raises instead, and that event is encoded again through ``finite``.
_ENCODER = json.JSONEncoder(default=_fallback, check_circular=False, separators=(",", ":"),
                            allow_nan=False)


def _chunk_encoder() -> Callable[[Any, int], Any]:
    """The C encoder behind ``_ENCODER``, built once. ``JSONEncoder.encode`` builds a new one
    on every call, a fixed cost (~0.8 us) that per-event encoding cannot afford. Same settings,
    so the same text; the pure-Python encoder stands in where the C one is missing."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is not None:
        try:
            return make(None, _fallback, json.encoder.encode_basestring_ascii, None, ":", ",",
                        False, False, False)
        except Exception:
            pass
    return lambda value, _level: (_ENCODER.encode(value),)


_encode_chunks = _chunk_encoder()
_join = "".join


# The value types orjson writes as the stdlib encoder does. Not an Enum (orjson writes its
# value, the stdlib its str()), a datetime, a dataclass, a subclass, a dict or a list (inside
# which a NaN could hide).
_PLAIN_TYPES = frozenset((str, int, float, bool, type(None)))
_NONE_TYPE = type(None)


def _fast_members(own: dict) -> Optional[str]:
    """``own`` as JSON text through orjson, or None when its text could mean something else
    than the stdlib encoder's: a value not of a plain type, a NaN or an infinity (orjson writes
    them as null, the stdlib road as a string, see ``beeline.finite``), a key that is not a str
    or an int beyond 64 bits (orjson refuses them), or any non-ASCII character (the stdlib
    escapes them, and ``split_bodies`` counts characters as bytes)."""
    types = [*map(type, own.values())]
    if not _PLAIN_TYPES.issuperset(types):
        return None
    try:
        out = fast_dumps(own)  # type: ignore[misc]
    except Exception:
        return None
    # Every null orjson wrote must be a None: one more is a NaN or an infinity.
    if float in types and out.count(b"null") != types.count(_NONE_TYPE):
        return None
    if not out.isascii():
        return None
    return out.decode("ascii")


def _dumps(value: Any) -> str:
    return _join(_encode_chunks(value, 0))


def _dumps_item(value: Any) -> str:
    """``_dumps``, with NaN and infinities sent as strings (see ``beeline.finite``)."""
    try:
        return _dumps(value)
    except ValueError:
        return _dumps(finite(value))


def event_time(created_at: Any) -> str:
    """ISO 8601 time of an event: naive datetimes are UTC and get a ``Z``."""
    if isinstance(created_at, datetime):
        text = created_at.isoformat()
        return text + "Z" if created_at.tzinfo is None else text
    return str(created_at)


# The fast path formats times up to the last second of year 9999, where datetime stops.
_MAX_WALL = 253402300799.0

# The last whole second formatted, with its text: events of one batch mostly start within
# the same second. One tuple, replaced whole, so concurrent workers never see half an update.
_last_second: tuple = (-1, "")


def wall_time(wall: float) -> str:
    """``datetime.fromtimestamp(wall, timezone.utc).isoformat()`` without the datetime, for
    ``0 <= wall < _MAX_WALL``: microseconds rounded as datetime rounds them (half to even on
    the fraction), and left out when they are zero, as isoformat leaves them out."""
    global _last_second
    whole = int(wall)
    # wall - whole is exact (both within a factor of two), so this is datetime's modf rounding.
    micros = round((wall - whole) * 1e6)
    if micros >= 1000000:
        whole += 1
        micros -= 1000000
    cached = _last_second
    if cached[0] == whole:
        second = cached[1]
    else:
        t = time.gmtime(whole)
        second = (f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
                  f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}")
        _last_second = (whole, second)
    if micros:
        return "%s.%06d+00:00" % (second, micros)
    return second + "+00:00"


def _span_item(ev: Any) -> Optional[str]:
    """The batch item of a beeline span event as JSON text, or None when the event cannot take
    this road (it then goes the ordinary way, with the same result).

    The road: the client's fields were pre-encoded (``base_json``) and none of them is
    overridden by the span's own fields, so they are spliced in before the span's own, the
    keys and order ``fields()`` would give; the time is the span's float start time, formatted
    by ``wall_time`` (unless someone set ``created_at``); the rate is a plain int."""
    base = ev.base_json
    rate = ev.sample_rate
    if not base or ev._created_at is not None or type(rate) is not int:
        return None
    wall = getattr(ev, "_start_wall", None)
    if type(wall) is not float or not 0.0 <= wall < _MAX_WALL:
        return None
    own = ev._data
    if not ev.base_fields.keys().isdisjoint(own.keys()):
        return None
    when = wall_time(wall)
    if own:
        members = (fast_dumps is not None and _fast_members(own)) or _join(_encode_chunks(own, 0))
        return f'{{"time":"{when}","samplerate":{rate},"data":{{{base},{members[1:]}}}'
    return f'{{"time":"{when}","samplerate":{rate},"data":{{{base}}}}}'


def encode_events(events: Sequence[Any]) -> tuple[list[str], list[Any], list[tuple[Any, str]]]:
    """Each event as the JSON text of its batch item.

    Returns ``(texts, encoded, rejected)``: ``texts[i]`` is the item of ``encoded[i]``, in the
    order given; ``rejected`` pairs each event left out with the reason.
    """
    texts: list[str] = []
    encoded: list[Any] = []
    rejected: list[tuple[Any, str]] = []
    for ev in events:
        text = None
        if isinstance(ev, SpanEvent):
            try:
                text = _span_item(ev)
            except Exception:
                text = None  # the ordinary way says what is wrong with it
        if text is None:
            text = _other_item(ev, rejected)
            if text is None:
                continue
        texts.append(text)
        encoded.append(ev)
    return texts, encoded, rejected


def _other_item(ev: Any, rejected: list) -> Optional[str]:
    """The ordinary road, as libhoney reads an event: ``created_at`` and ``fields()``."""
    try:
        item = {"time": event_time(ev.created_at), "samplerate": ev.sample_rate, "data": ev.fields()}
    except Exception as exc:
        rejected.append((ev, f"event could not be read: {exc!r}"))
        return None
    try:
        return _dumps_item(item)
    except Exception as exc:
        rejected.append((ev, f"event could not be encoded as JSON: {exc!r}"))
        return None


def join_items(texts: Sequence[str]) -> bytes:
    return ("[" + ",".join(texts) + "]").encode("utf-8")


def split_bodies(texts: list[str], events: list[Any], max_bytes: int) -> list[tuple[bytes, list[Any]]]:
    """The batch as request bodies of at most ``max_bytes`` each (the Events API refuses a
    larger body, and with it every event inside), in order. An event too large on its own
    gets a body of its own, so that only it is refused."""
    # The text is ASCII (the encoder escapes the rest), so characters are bytes.
    if sum(map(len, texts)) + len(texts) + 1 <= max_bytes:
        return [(join_items(texts), events)]
    bodies = []
    start, size = 0, 1
    for i, text in enumerate(texts):
        if i > start and size + len(text) + 1 > max_bytes:
            bodies.append((join_items(texts[start:i]), events[start:i]))
            start, size = i, 1
        size += len(text) + 1
    bodies.append((join_items(texts[start:]), events[start:]))
    return bodies


def gzip_bytes(data: bytes, level: int) -> bytes:
    """Gzip framing (wbits 31) straight from zlib: the gzip module adds a file object per call."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()
