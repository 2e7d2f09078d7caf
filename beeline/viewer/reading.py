"""Turn JSON lines into span records.

The viewer reads files written by libhoney's FileTransmission and by our local sink (the same
shape: ``{"time", "samplerate", "dataset", "user_agent", "data": {fields}}``), and also lines
that are only the fields object. Nothing here may raise on bad input: a line that cannot be
understood is counted and skipped, because a half-written last line is normal for a file that a
running program is still appending to.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timedelta, timezone
from typing import Any

# datetime.UTC only exists from Python 3.11; the package supports 3.9.
UTC = timezone.utc  # noqa: UP017

# Fields that identify a span or that the waterfall draws by itself; `--fields` leaves them out.
ID_FIELDS = ("trace.trace_id", "trace.span_id", "trace.parent_id")
DRAWN_FIELDS = ("name", "service_name", "service.name", "duration_ms", "time")

# Span types the reference sets on spans that start a trace in this process: "root" without a
# parent, "subroot" when the trace was continued from an upstream service's headers.
ROOT_SPAN_TYPES = ("root", "subroot")

# Any of these at the top level of a line means the line is a bare fields object.
_SPAN_KEYS = ("trace.trace_id", "trace.span_id", "name", "duration_ms", "service_name", "service.name")

_ISO_RE = re.compile(
    r"^\s*(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?"
    r"\s*(Z|z|[+-]\d{2}:?\d{2})?\s*$"
)


class Span:
    """One event from the file: a span of a trace, or a standalone event (no trace id)."""

    __slots__ = (
        "duration_ms",
        "error",
        "fields",
        "lineno",
        "name",
        "parent_id",
        "seq",
        "service",
        "span_id",
        "span_type",
        "start_us",
        "trace_id",
    )

    def __init__(
        self,
        fields: dict[str, Any],
        start_us: int | None,
        lineno: int,
        seq: int,
    ) -> None:
        self.fields = fields
        self.trace_id = _ident(fields.get("trace.trace_id"))
        self.span_id = _ident(fields.get("trace.span_id"))
        self.parent_id = _ident(fields.get("trace.parent_id"))
        name = fields.get("name")
        if name in (None, "") and fields.get("meta.annotation_type") == "link":
            # A span link (e.g. one per upstream trace of a Lambda batch) points at another trace.
            name = f"link to trace {fields.get('trace.link.trace_id') or '?'}"
        self.name = str(name) if name not in (None, "") else "(unnamed)"
        service = fields.get("service_name")
        if service in (None, ""):
            service = fields.get("service.name")
        self.service = str(service) if service not in (None, "") else ""
        # Microseconds since the epoch, UTC, as an int: exact, so offsets within a trace do not
        # pick up float noise. None when the line had no usable time.
        self.start_us = start_us
        self.duration_ms = _number(fields.get("duration_ms"))
        span_type = fields.get("meta.span_type")
        self.span_type = span_type if isinstance(span_type, str) else None
        self.error = error_reason(fields)
        self.lineno = lineno
        self.seq = seq

    @property
    def starts_trace(self) -> bool:
        """True for a span that begins the trace in its service (a root or a subroot)."""
        return self.parent_id is None or self.span_type in ROOT_SPAN_TYPES

    def __repr__(self) -> str:  # for test failure messages
        return f"Span({self.name!r}, trace={self.trace_id}, id={self.span_id}, parent={self.parent_id})"


class LineParser:
    """Parses lines one at a time and keeps count of the ones it had to skip."""

    def __init__(self) -> None:
        self.lineno = 0
        self.broken = 0
        self.broken_linenos: list[int] = []
        self._seq = 0

    def feed(self, line: str) -> Span | None:
        """Parse one line; return its span, or None for a blank or broken line."""
        self.lineno += 1
        if not line or line.isspace():
            return None
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):  # bad JSON, odd input, absurdly deep nesting
            return self._skip()
        span = self._from_object(obj)
        if span is None:
            return self._skip()
        return span

    def _skip(self) -> None:
        self.broken += 1
        if len(self.broken_linenos) < 20:
            self.broken_linenos.append(self.lineno)

    def _from_object(self, obj: Any) -> Span | None:
        if not isinstance(obj, dict):
            return None
        if "data" in obj and not any(key in obj for key in _SPAN_KEYS):
            # The envelope. (A bare fields object may have a field called "data" of its own;
            # its span keys at the top level tell the two apart.)
            fields = obj["data"]
            if not isinstance(fields, dict):
                return None
            start = parse_time(obj.get("time"))
            if start is None:
                start = parse_time(fields.get("time"))
        else:
            fields = obj
            start = parse_time(fields.get("time"))
        if not fields:
            return None
        self._seq += 1
        return Span(fields, start, self.lineno, self._seq)


def parse_time(value: Any) -> int | None:
    """Microseconds since the epoch for an ISO 8601 timestamp (``Z``, offset or naive = UTC)."""
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return _parse_time_slowly(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return (moment - _EPOCH) // _MICROSECOND
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # Epoch seconds, milli-, micro- or nanoseconds, as other senders write them; the size
        # tells which (seconds reach 1e11 only in the year 5138).
        number = float(value)
        if not math.isfinite(number) or number <= 0:
            return None
        for limit, scale in ((1e11, 1_000_000), (1e14, 1_000), (1e17, 1), (1e20, 0.001)):
            if number < limit:
                micros = round(number * scale)
                return micros if micros < _LAST_US else None
    return None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_LAST_US = (datetime(9999, 12, 31, tzinfo=UTC) - _EPOCH) // _MICROSECOND  # datetime's own limit


def _parse_time_slowly(value: str) -> int | None:
    # Older Pythons' fromisoformat only takes 0, 3 or 6 fractional digits; other writers use
    # nanoseconds or a "+0000" offset. This covers them without a dependency.
    match = _ISO_RE.match(value)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second or 0),
            tzinfo=UTC,
        )
    except ValueError:
        return None
    micros = (moment - _EPOCH) // _MICROSECOND
    if fraction:
        micros += int(fraction[:6].ljust(6, "0"))  # beyond microseconds: cut, as fromisoformat does
    if zone and zone not in ("Z", "z"):
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        micros -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60) * 1_000_000
    return micros


def error_reason(fields: dict[str, Any]) -> str | None:
    """A short description of why a span counts as failed, or None if it did not fail."""
    exc_type = fields.get("app.exception_type")
    if _present(exc_type):
        text = _short_class(str(exc_type))
        message = fields.get("app.exception_string")
        if _present(message):
            text = f"{text}: {message}"
        return text
    for key in ("request.error", "db.error", "error"):
        value = fields.get(key)
        if _present(value):
            return str(value) if value is not True else key
    status = _status_code(fields.get("response.status_code"))
    if status is not None and status >= 500:
        return f"HTTP {status}"
    return None


def _short_class(text: str) -> str:
    # The reference records str(type(e)), e.g. "<class 'ValueError'>"; show "ValueError".
    if text.startswith("<class '") and text.endswith("'>"):
        text = text[8:-2]
        text = text.removeprefix("builtins.")
    return text


def _status_code(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    if isinstance(value, str):
        # Bottle and Werkzeug report the status line, e.g. "500 INTERNAL SERVER ERROR".
        head = value.strip().split(" ", 1)[0]
        if head.isdigit():
            return int(head)
    return None


def _present(value: Any) -> bool:
    return value not in (None, "", False, 0)


def _ident(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    text = str(value)
    return text if text else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    if not math.isfinite(number) or number < 0:
        return None
    return number
