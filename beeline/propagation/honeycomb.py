"""Honeycomb's own trace header, ``X-Honeycomb-Trace`` (format version 1).

Value layout: ``1;`` then comma-separated ``key=value`` parts, in this order when written:
``dataset`` (URL-quoted, optional), ``trace_id``, ``parent_id``, ``context`` (base64 of the
JSON trace fields). Every Honeycomb beeline speaks it, so the written form matches the
reference byte for byte; the reader is more forgiving than the reference where other beelines
write differently (beeline-ruby uses URL-safe base64 for ``context``).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from typing import Any
from urllib.parse import quote, unquote

import beeline.propagation as _propagation
from beeline import finite
from beeline.propagation import PropagationContext, Request, _read_header, _shorten

__all__ = [
    "InvalidHeader",
    "UnsupportedVersion",
    "http_trace_parser_hook",
    "http_trace_propagation_hook",
    "marshal_propagation_context",
    "unmarshal_propagation_context",
    "unmarshal_propagation_context_with_dataset",
]

HEADER = "X-Honeycomb-Trace"
VERSION = "1"

# These trace fields only mean something in a traceparent/tracestate pair; other beelines
# would turn them into bogus ``app.`` fields, so they stay out of the Honeycomb context.
_W3C_ONLY_FIELDS = ("traceflags", "tracestate")

# Maps the URL-safe base64 alphabet onto the standard one, so one decoder reads both.
_URLSAFE_TO_STANDARD = str.maketrans("-_", "+/")

_log = logging.getLogger("beeline")


class InvalidHeader(ValueError):
    """An ``X-Honeycomb-Trace`` value that cannot be read."""


class UnsupportedVersion(InvalidHeader):
    """An ``X-Honeycomb-Trace`` value in a format version this package does not know."""


def marshal_propagation_context(
    propagation_context: PropagationContext | None, propagate_dataset: bool | None = None
) -> str | None:
    """The ``X-Honeycomb-Trace`` value for a context, or None when it has no trace id.

    ``dataset=`` is written only when the context has one and ``propagate_dataset`` is true;
    by default that is :data:`beeline.propagation.propagate_dataset`, as in honeycomb-beeline
    (``init()`` sets it False for Environments & Services keys).

    Trace fields that JSON cannot represent are written as their ``str()`` rather than
    failing the outgoing request. Raises ValueError when an id could not travel in a header
    (a comma, a control or non-ASCII character): an HTTP client would refuse the request,
    and a receiver would reject the header anyway.
    """
    ctx = propagation_context
    if ctx is None or not ctx.trace_id:
        return None
    if propagate_dataset is None:
        propagate_dataset = bool(_propagation.propagate_dataset)
    parts = []
    if propagate_dataset and ctx.dataset:
        parts.append("dataset=" + quote(ctx.dataset))
    parts.append(f"trace_id={ctx.trace_id}")
    if ctx.parent_id is not None:
        parts.append(f"parent_id={ctx.parent_id}")
    ids = ",".join(parts)
    if ids.count(",") != len(parts) - 1 or not (ids.isascii() and ids.isprintable()):
        raise ValueError("trace_id or parent_id cannot be sent in a header")
    return VERSION + ";" + ids + ",context=" + _encode_context(ctx.trace_fields)


def _encode_context(trace_fields: dict[str, Any] | None) -> str:
    fields = trace_fields or {}
    if any(key in fields for key in _W3C_ONLY_FIELDS):
        fields = {k: v for k, v in fields.items() if k not in _W3C_ONLY_FIELDS}
    # Default separators on purpose: they make the header identical to the reference's.
    # A NaN or infinity as a string: the reference wrote a bare NaN, which strict parsers
    # (beelines in other languages) refuse, losing every trace field.
    text = finite.dumps(fields, default=str)
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def unmarshal_propagation_context(
    header: str,
) -> tuple[str | None, str | None, dict[str, Any]]:
    """``(trace_id, parent_id, trace_fields)`` from a header value; raises :class:`InvalidHeader`."""
    trace_id, parent_id, context, _dataset = unmarshal_propagation_context_with_dataset(
        header
    )
    return trace_id, parent_id, context


def unmarshal_propagation_context_with_dataset(
    header: str,
) -> tuple[str | None, str | None, dict[str, Any], str | None]:
    """``(trace_id, parent_id, trace_fields, dataset)`` from a header value; the dataset is
    None unless :data:`beeline.propagation.propagate_dataset` is true.

    Raises :class:`InvalidHeader` (a ValueError) for anything malformed, and its subclass
    :class:`UnsupportedVersion` for a version other than 1. Unknown keys are skipped so newer
    writers can add some. A missing trace id is allowed when a parent id is present, as
    in honeycomb-beeline; :func:`http_trace_parser_hook` refuses such a header.
    """
    if not isinstance(header, str):
        raise InvalidHeader(f"expected text, got {type(header).__name__}")
    version, separator, payload = header.strip().partition(";")
    if not separator:
        raise InvalidHeader("no ';' after the version")
    if version.strip() != VERSION:
        raise UnsupportedVersion(f"unsupported version {version.strip()[:20]!r}")

    trace_id = parent_id = dataset = None
    context: dict[str, Any] = {}
    for part in payload.split(","):
        key, equals, value = part.partition("=")
        if not equals:
            raise InvalidHeader(f"part {part[:40]!r} has no '='")
        key = key.strip()
        value = value.strip()
        if key == "trace_id":
            trace_id = value or None
        elif key == "parent_id":
            parent_id = value or None
        elif key == "dataset":
            # As in honeycomb-beeline: an Environments & Services key never takes a caller's
            # dataset, whoever calls this (custom parser hooks do, as Honeycomb's docs show).
            if _propagation.propagate_dataset:
                dataset = unquote(value) or None
        elif key == "context":
            context = _decode_context(value)

    if trace_id is None and parent_id is None:
        raise InvalidHeader("neither trace_id nor parent_id is present")
    return trace_id, parent_id, context, dataset


def _decode_context(value: str) -> dict[str, Any]:
    """JSON object from base64 in either alphabet, padded or not (beeline-ruby #97)."""
    if not value:
        return {}
    unpadded = value.rstrip("=")
    if "=" in unpadded or len(unpadded) % 4 == 1:
        raise InvalidHeader("context is not valid base64")
    normalized = unpadded.translate(_URLSAFE_TO_STANDARD)
    normalized += "=" * (-len(normalized) % 4)
    try:
        raw = base64.b64decode(normalized, validate=True)
        fields = json.loads(raw.decode("utf-8"))
    except binascii.Error as exc:
        raise InvalidHeader(f"context is not valid base64: {exc}") from None
    except (ValueError, RecursionError) as exc:
        # UnicodeDecodeError and JSONDecodeError are both ValueErrors; a deeply nested
        # document from a hostile client surfaces as RecursionError.
        raise InvalidHeader(
            f"context is not valid JSON: {type(exc).__name__}"
        ) from None
    if not isinstance(fields, dict):
        # Valid JSON that is not an object carries no trace fields; the ids still hold, as
        # honeycomb-beeline kept them.
        return {}
    return fields


# The ids an incoming header may carry: what every beeline writes (hex, UUIDs), and no more,
# so a hostile header cannot put arbitrary text into every span and downstream call.
_ID_SHAPE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _check_incoming_ids(trace_id: str | None, parent_id: str | None) -> None:
    if trace_id is None:
        # A parent in no trace: continuing it would make a span whose parent exists nowhere.
        raise InvalidHeader("no trace_id; starting a new trace")
    for name, value in (("trace_id", trace_id), ("parent_id", parent_id)):
        if value is not None and not _ID_SHAPE.fullmatch(value):
            raise InvalidHeader(f"{name} is not 1 to 64 of A-Z a-z 0-9 _ . -")


def http_trace_parser_hook(request: Request) -> PropagationContext | None:
    """Parser hook: the context from ``X-Honeycomb-Trace``, or None when absent or unreadable.

    A malformed header (an unsupported version included) logs one warning and yields None, so
    the default parser can still fall back to W3C headers. The reference returned an all-None
    context for an unknown version, which silently blocked that fallback.
    """
    value: Any = None
    try:
        value = _read_header(request, HEADER)
        if value is None:
            return None
        trace_id, parent_id, context, dataset = (
            unmarshal_propagation_context_with_dataset(value)
        )
        _check_incoming_ids(trace_id, parent_id)
    except Exception as exc:  # noqa: BLE001 - never let a bad header or request adapter reach the app
        _log.warning(
            "ignoring malformed %s header %r: %s", HEADER, _shorten(value), exc
        )
        return None
    return PropagationContext(trace_id, parent_id, context, dataset)


def http_trace_propagation_hook(
    propagation_context: PropagationContext | None,
    propagate_dataset: bool | None = None,
) -> dict[str, str] | None:
    """Propagation hook: ``{"X-Honeycomb-Trace": value}``, or None when there is nothing to send.

    ``propagate_dataset`` defaults to :data:`beeline.propagation.propagate_dataset`, read at
    call time, so the one-argument ``hook(ctx)`` contract of the reference still holds.
    """
    if propagate_dataset is None:
        propagate_dataset = bool(_propagation.propagate_dataset)
    try:
        value = marshal_propagation_context(propagation_context, propagate_dataset)
    except Exception as exc:  # noqa: BLE001 - e.g. self-referencing trace fields; the request must still go
        _log.warning("could not write the %s header: %r", HEADER, exc)
        return None
    if value is None:
        return None
    return {HEADER: value}
