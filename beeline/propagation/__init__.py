"""Trace context that crosses process boundaries, and the request adapters that carry it.

Integrations never read trace headers themselves: a middleware wraps its framework's request
in a :class:`Request` and hands it to a parser hook (``default``, ``honeycomb`` or ``w3c``
submodule, or the user's own); an outgoing-call patch asks a propagation hook for the headers
to add. Everything in this package is pure and cheap because it runs on every request.

This module deliberately imports none of its submodules, so they can import it freely.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "DictRequest",
    "PropagationContext",
    "Request",
    "propagate_dataset",
]

#: Whether the Honeycomb propagation hook writes ``dataset=`` into outgoing headers when it is
#: called without an explicit decision. Kept as a module attribute because code written for
#: honeycomb-beeline reads it; unlike the reference it is a plain bool from the start (the
#: reference held a truthy function object until ``init()`` ran).
propagate_dataset: bool = True

_log = logging.getLogger("beeline")

# Header values are logged for diagnosis, but only this many characters of them: a hostile
# client controls the value and must not be able to flood the log.
_LOGGED_VALUE_LIMIT = 200


class PropagationContext:
    """What one service tells the next about the trace it is part of.

    ``trace_fields`` holds the trace-level fields to carry along (``app.*`` fields, plus the
    W3C ``traceflags``/``tracestate`` when they came in that way). ``dataset`` is the caller's
    dataset when the header named one; whether to honour it is the tracer's decision.
    """

    __slots__ = ("dataset", "parent_id", "trace_fields", "trace_id")

    def __init__(
        self,
        trace_id: str | None,
        parent_id: str | None,
        trace_fields: dict[str, Any] | None = None,
        dataset: str | None = None,
    ) -> None:
        self.trace_id = trace_id
        self.parent_id = parent_id
        # A fresh dict per context: the reference shared one default dict between all of them,
        # so a field added to one context leaked into every later one.
        self.trace_fields = {} if trace_fields is None else trace_fields
        self.dataset = dataset

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PropagationContext):
            return NotImplemented
        return (
            self.trace_id == other.trace_id
            and self.parent_id == other.parent_id
            and self.trace_fields == other.trace_fields
            and self.dataset == other.dataset
        )

    # Mutable holder: equal contexts may later differ, so it must not be hashable.
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"PropagationContext(trace_id={self.trace_id!r}, parent_id={self.parent_id!r}, "
            f"trace_fields={self.trace_fields!r}, dataset={self.dataset!r})"
        )


class Request(abc.ABC):
    """The few things a parser hook may ask of an incoming request, whatever the framework."""

    __slots__ = ()

    @abc.abstractmethod
    def header(self, key: str) -> str | None:
        """The value of header ``key`` (case-insensitive), or None when it is absent."""

    @abc.abstractmethod
    def method(self) -> str | None:
        """The HTTP method, e.g. ``"GET"``."""

    @abc.abstractmethod
    def scheme(self) -> str | None:
        """``"http"`` or ``"https"``."""

    @abc.abstractmethod
    def host(self) -> str | None:
        """The host the request was addressed to."""

    @abc.abstractmethod
    def path(self) -> str | None:
        """The request path, without the query string."""

    @abc.abstractmethod
    def query(self) -> Any | None:
        """The query string (or the framework's parsed form of it)."""

    @abc.abstractmethod
    def middleware_request(self) -> Any:
        """The framework's own request object, for hooks that need more than the above."""


class DictRequest(Request):
    """A :class:`Request` over plain data: a header mapping and a dict of request properties.

    Useful for queues, RPC layers and tests. ``headers`` may be a mapping or an iterable of
    ``(name, value)`` pairs; lookups ignore case, and when two names differ only in case the
    first one wins. ``props`` may hold ``method``, ``scheme``, ``host``, ``path`` and
    ``query``; a missing one reads as None (the reference raised ``KeyError``).
    """

    __slots__ = ("_headers", "_lowered", "_props")

    def __init__(
        self,
        headers: Mapping[str, Any] | Iterable[tuple[str, Any]] | None,
        props: Mapping[str, Any] | None = None,
    ) -> None:
        if headers is None:
            headers = {}
        elif not isinstance(headers, Mapping):
            headers = list(headers)  # an iterator would be spent after the first pass
        self._headers = headers
        self._props: Mapping[str, Any] = props if props is not None else {}
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        lowered: dict[str, Any] = {}
        for name, value in pairs:
            # Lowercasing once here keeps each lookup a single dict access.
            lowered.setdefault(str(name).lower(), value)
        self._lowered = lowered

    def header(self, key: str) -> Any | None:
        return self._lowered.get(key.lower())

    def method(self) -> str | None:
        return self._props.get("method")

    def scheme(self) -> str | None:
        return self._props.get("scheme")

    def host(self) -> str | None:
        return self._props.get("host")

    def path(self) -> str | None:
        return self._props.get("path")

    def query(self) -> Any | None:
        return self._props.get("query")

    def middleware_request(self) -> dict[str, Any]:
        """``{"headers": ..., "props": ...}``, the objects as given, as honeycomb-beeline 3.6.0
        returned them (hooks written for it index this dict)."""
        return {"headers": self._headers, "props": self._props}


def _read_header(request: Request, name: str) -> str | None:
    """Header ``name`` as text, or None when absent or blank.

    ASGI servers hand over bytes; HTTP header bytes are Latin-1 by definition, so decoding
    that way never fails. Any other type is reported as a TypeError for the caller to log.
    """
    value = request.header(name)
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("latin-1")
    elif not isinstance(value, str):
        raise TypeError(f"{name} header is a {type(value).__name__}, not text")
    if not value.strip():
        return None
    return value


def _shorten(value: Any) -> str:
    """A header value cut to a loggable length, for warnings about malformed input."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) > _LOGGED_VALUE_LIMIT:
        return text[:_LOGGED_VALUE_LIMIT] + "..."
    return text
