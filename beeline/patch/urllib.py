"""Client spans and trace headers for `urllib.request`.

    import beeline.patch.urllib  # applies itself; beeline.patch.urllib.unpatch() undoes it

`OpenerDirector.open` is wrapped rather than the module attribute `urlopen` (which
honeycomb-beeline replaced), because every way of opening a URL goes through it: `urlopen`,
a `urlopen` imported with `from urllib.request import urlopen` before the patch, and openers
made with `build_opener()`. Redirects and auth retries re-enter `open` for each hop; those hops
belong to the span of the outer call and get headers of their own, checked against the
destination allow-list per hop.

Headers are added as "unredirected" headers, which urllib never copies onto a redirect, and
are taken off the Request again when the call ends, so a Request object the caller reuses
outside a trace does not carry an old trace header.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from contextvars import ContextVar
from typing import Any, Optional

import beeline
from beeline.decorators import stringify_exception
from beeline.internal import warn_once
from beeline.patch import unwrap, wrap
from beeline.propagation.destinations import propagation_headers_for, without_userinfo
from beeline.trace import active_span

__all__ = ["patch", "unpatch"]

_TARGET = "OpenerDirector.open"

# The span of the urllib call in progress in this context, so that nested hops join it.
_current_span: ContextVar[Optional[Any]] = ContextVar("beeline_urllib_span", default=None)


def _as_request(fullurl: Any, data: Any) -> Any:
    """What `OpenerDirector.open` does first, done here so the headers can be set on it."""
    if isinstance(fullurl, str):
        return urllib.request.Request(fullurl, data)
    if data is not None:
        fullurl.data = data
    return fullurl


def _open_arguments(fullurl: Any, data: Any = None, *args: Any, **kwargs: Any) -> tuple:
    return fullurl, data, args, kwargs


def _add_headers(req: Any) -> list:
    """Add the trace headers the caller did not set; returns what was added, for removal."""
    if getattr(req, "type", None) not in ("http", "https"):
        return []
    headers = propagation_headers_for(req.full_url)
    if not headers:
        return []
    added = []
    for name, value in headers.items():
        key = name.capitalize()  # urllib's own spelling of header names
        if req.has_header(key):
            continue
        req.add_unredirected_header(key, value)
        added.append((key, value))
    return added


def _remove_headers(req: Any, added: list) -> None:
    for key, value in added:
        if req.unredirected_hdrs.get(key) == value:
            del req.unredirected_hdrs[key]


def _response_fields(response: Any) -> dict:
    headers = getattr(response, "headers", None)
    status = getattr(response, "status", None)
    if status is None:
        status = getattr(response, "code", None)
    return {
        "response.status_code": status,
        "response.content_type": headers.get("content-type") if headers is not None else None,
        "response.content_length": headers.get("content-length") if headers is not None else None,
    }


def _start_span(req: Any) -> Any:
    method = str(req.get_method()).upper()
    return beeline.start_span(
        {
            "name": "urllib_" + method,
            "meta.type": "http_client",
            "request.method": method,
            "request.uri": without_userinfo(req.full_url),
        }
    )


def _wrap_open(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    outer = _current_span.get()
    if outer is None and active_span() is None:
        return wrapped(*args, **kwargs)
    try:
        fullurl, data, rest, rest_kw = _open_arguments(*args, **kwargs)
        req = _as_request(fullurl, data)
        span = None if outer is not None else _start_span(req)
    except Exception:
        warn_once("urllib_span", "beeline: could not start a urllib span", exc_info=True)
        return wrapped(*args, **kwargs)
    if outer is None and span is None:
        return wrapped(*args, **kwargs)
    token = _current_span.set(span) if span is not None else None
    added: list = []
    try:
        try:
            added = _add_headers(req)
        except Exception:
            warn_once("urllib_inject", "beeline: could not add trace headers to a urllib call", exc_info=True)
        try:
            response = wrapped(req, None, *rest, **rest_kw)
        except Exception as exc:
            if span is not None:
                _record_error(span, exc)
            raise
        if span is not None:
            try:
                span.add_context(_response_fields(response))
            except Exception:
                warn_once("urllib_response", "beeline: could not record a urllib response", exc_info=True)
        return response
    finally:
        if added:
            try:
                _remove_headers(req, added)
            except Exception:
                warn_once("urllib_cleanup", "beeline: could not remove trace headers from a urllib Request")
        if span is not None:
            _current_span.reset(token)
            beeline.finish_span(span)


def _record_error(span: Any, exc: BaseException) -> None:
    try:
        span.add_context_field("request.error_type", str(type(exc)))
        span.add_context_field("request.error", stringify_exception(exc))
        if isinstance(exc, urllib.error.HTTPError):
            # An HTTPError is also the response: keep its status, which the reference lost.
            span.add_context(_response_fields(exc))
    except Exception:
        warn_once("urllib_error", "beeline: could not record a urllib error", exc_info=True)


def patch() -> bool:
    """Instrument `urllib.request`. Returns False when it already was."""
    return wrap(urllib.request, _TARGET, _wrap_open)


def unpatch() -> bool:
    """Remove the instrumentation. Returns False when there was none."""
    return unwrap(urllib.request, _TARGET)


patch()
