"""W3C Trace Context headers: ``traceparent`` and ``tracestate``.

``traceparent`` is ``<version>-<trace id>-<parent id>-<flags>``: 2, 32, 16 and 2 lowercase
hex digits. The incoming flags and the raw ``tracestate`` are kept as the trace fields
``traceflags`` and ``tracestate`` and written out again on outgoing calls (the reference lost
them and always sent ``-01``).

Outgoing ids must be W3C-shaped even when the trace began with a Honeycomb-style id (older
beelines used UUIDs). Such an id is converted deterministically, so every service and every
span of one trace produces the same W3C id:

* lowercase it and drop dashes; if that leaves valid hex of the right length, use it
  (a UUID trace id becomes its 32 hex digits);
* otherwise use the first 32 (trace) or 16 (span) hex digits of its SHA-256.

An all-zero id is invalid in W3C, so it is hashed too.
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any

from beeline.propagation import PropagationContext, Request, _read_header, _shorten

__all__ = [
    "http_trace_parser_hook",
    "http_trace_propagation_hook",
    "marshal_propagation_context_w3c",
    "marshal_traceparent",
    "marshal_tracestate",
    "unmarshal_propagation_context_w3c",
    "unmarshal_traceparent",
    "unmarshal_tracestate",
]

TRACEPARENT_HEADER = "traceparent"
TRACESTATE_HEADER = "tracestate"
DEFAULT_FLAGS = "01"

# Surrounding blanks are tolerated; a future version may append "-<anything>".
_TRACEPARENT = re.compile(
    r"\s*(?P<version>[0-9a-f]{2})-(?P<trace_id>[0-9a-f]{32})-(?P<parent_id>[0-9a-f]{16})"
    r"-(?P<flags>[0-9a-f]{2})(?P<suffix>-.*)?\s*"
)
_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_SPAN_ID = re.compile(r"[0-9a-f]{16}")
_FLAGS = re.compile(r"[0-9a-fA-F]{2}")
_ZERO_TRACE_ID = "0" * 32
_ZERO_SPAN_ID = "0" * 16

_log = logging.getLogger("beeline")


def unmarshal_propagation_context_w3c(
    traceparent: str | None, tracestate: str | None
) -> tuple[str, str, dict[str, Any]]:
    """``(trace_id, parent_id, trace_fields)`` from the two header values.

    Raises ValueError when ``traceparent`` is missing or malformed. ``trace_fields`` holds
    ``traceflags`` and, when the header was sent, is not blank and is printable ASCII, the raw
    ``tracestate``.
    """
    if traceparent is None:
        raise ValueError("traceparent is missing")
    if not isinstance(traceparent, str):
        raise TypeError(f"traceparent is a {type(traceparent).__name__}, not text")
    match = _TRACEPARENT.fullmatch(traceparent)
    if match is None:
        raise ValueError("traceparent does not match version-traceid-parentid-flags")
    version, trace_id, parent_id, flags, suffix = match.group(
        "version", "trace_id", "parent_id", "flags", "suffix"
    )
    if version == "ff":
        raise ValueError("traceparent version ff is forbidden")
    if version == "00" and suffix is not None:
        raise ValueError("traceparent version 00 has extra fields")
    if trace_id == _ZERO_TRACE_ID:
        raise ValueError("traceparent trace id is all zeros")
    if parent_id == _ZERO_SPAN_ID:
        raise ValueError("traceparent parent id is all zeros")
    trace_fields: dict[str, Any] = {"traceflags": flags}
    # A tracestate that could not be sent on again (control or non-ASCII characters) is
    # dropped while the traceparent is still honoured, as the W3C spec asks.
    if isinstance(tracestate, str) and tracestate.strip() and _header_safe(tracestate):
        trace_fields["tracestate"] = tracestate
    return trace_id, parent_id, trace_fields


def marshal_propagation_context_w3c(
    propagation_context: PropagationContext | None,
) -> tuple[str | None, str | None]:
    """``(traceparent, tracestate)`` for a context; ``(None, None)`` without both ids.

    ``tracestate`` is None unless the trace fields carry one. Flags come from the
    ``traceflags`` trace field (``"01"``, sampled, when absent or not two hex digits).
    """
    ctx = propagation_context
    if ctx is None or not ctx.trace_id or not ctx.parent_id:
        return None, None
    fields = ctx.trace_fields or {}
    traceparent = "00-{}-{}-{}".format(
        _w3c_id(ctx.trace_id, _TRACE_ID, 32),
        _w3c_id(ctx.parent_id, _SPAN_ID, 16),
        _flags(fields.get("traceflags", DEFAULT_FLAGS)),
    )
    tracestate = fields.get("tracestate")
    if (
        not isinstance(tracestate, str)
        or not tracestate.strip()
        or not _header_safe(tracestate)
    ):
        # An unusable tracestate is dropped: the trace itself still propagates.
        tracestate = None
    return traceparent, tracestate


# The reference's four helpers, same arguments and return values, for custom hooks built on them.


def marshal_traceparent(propagation_context: PropagationContext | None) -> str | None:
    """The ``traceparent`` value for a context; None without a context (or, unlike the
    reference, which wrote ``00-None-...``, without both ids)."""
    return marshal_propagation_context_w3c(propagation_context)[0]


def marshal_tracestate(propagation_context: PropagationContext | None) -> str | None:
    """The ``tracestate`` value for a context: its ``tracestate`` trace field, or None."""
    return marshal_propagation_context_w3c(propagation_context)[1]


def unmarshal_traceparent(header: str) -> tuple[str, str, str] | None:
    """``(trace_id, parent_id, trace_flags)`` from a ``traceparent`` value; None when it is
    not a valid one."""
    try:
        trace_id, parent_id, fields = unmarshal_propagation_context_w3c(header, None)
    except (TypeError, ValueError):
        return None
    return trace_id, parent_id, fields["traceflags"]


def unmarshal_tracestate(header: str | None) -> str | None:
    """The ``tracestate`` value as it came: the reference treats it as opaque, and so do we."""
    return header


def _header_safe(value: str) -> bool:
    """True when ``value`` can go out as a header without the HTTP client rejecting it."""
    return value.isascii() and value.isprintable()


def _w3c_id(value: Any, shape: re.Pattern[str], length: int) -> str:
    """``value`` if it is a valid W3C id already, else its deterministic conversion."""
    text = value if isinstance(value, str) else str(value)
    if shape.fullmatch(text) and text.count("0") != length:
        return text
    stripped = text.replace("-", "").lower()
    if shape.fullmatch(stripped) and stripped.count("0") != length:
        return stripped
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]
    if (
        digest.count("0") == length
    ):  # not going to happen, but an all-zero id is invalid
        digest = digest[:-1] + "1"
    return digest


def _flags(value: Any) -> str:
    if isinstance(value, str) and _FLAGS.fullmatch(value):
        return value.lower()
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0xFF:
        return format(value, "02x")
    return DEFAULT_FLAGS


def http_trace_parser_hook(request: Request) -> PropagationContext | None:
    """Parser hook: the context from ``traceparent``/``tracestate``, or None.

    None when ``traceparent`` is absent (silently) or malformed (with one warning).
    """
    traceparent: Any = None
    try:
        traceparent = _read_header(request, TRACEPARENT_HEADER)
        if traceparent is None:
            return None
        tracestate = _read_header(request, TRACESTATE_HEADER)
        trace_id, parent_id, trace_fields = unmarshal_propagation_context_w3c(
            traceparent, tracestate
        )
    except Exception as exc:  # noqa: BLE001 - never let a bad header or request adapter reach the app
        _log.warning(
            "ignoring malformed %s header %r: %s",
            TRACEPARENT_HEADER,
            _shorten(traceparent),
            exc,
        )
        return None
    return PropagationContext(trace_id, parent_id, trace_fields)


def http_trace_propagation_hook(
    propagation_context: PropagationContext | None,
) -> dict[str, str] | None:
    """Propagation hook: ``traceparent``, plus ``tracestate`` when the trace carries one."""
    try:
        traceparent, tracestate = marshal_propagation_context_w3c(propagation_context)
    except Exception as exc:  # noqa: BLE001 - a context of the wrong shape must not fail the request
        _log.warning("could not write the %s header: %r", TRACEPARENT_HEADER, exc)
        return None
    if traceparent is None:
        return None
    headers = {TRACEPARENT_HEADER: traceparent}
    if tracestate is not None:
        headers[TRACESTATE_HEADER] = tracestate
    return headers
