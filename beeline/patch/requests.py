"""Client spans and trace headers for `requests`.

    import beeline.patch.requests  # applies itself; beeline.patch.requests.unpatch() undoes it

Inside a trace, each call through `requests` (the module functions and `Session`) becomes one
`http_client` span named `requests_<METHOD>`, and the trace headers go on that request only.
Two methods are wrapped: `Session.request` opens the span (one per call, redirects included,
as in honeycomb-beeline), and `Session.send` writes the headers into each PreparedRequest it
sends, so every redirect hop is checked against the destination allow-list again. A
`Session.send()` made directly, without `Session.request()`, gets its own span.

Unlike honeycomb-beeline, nothing is written into `Session.headers`, where a trace header
outlived its trace and went out with later, untraced requests.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Optional

import requests.sessions

import beeline
from beeline.decorators import stringify_exception
from beeline.internal import warn_once
from beeline.patch import unwrap, wrap
from beeline.propagation.destinations import allowed_url, without_userinfo
from beeline.trace import active_span

__all__ = ["patch", "unpatch"]

_TARGETS = ("Session.request", "Session.send")


class _Call:
    """One instrumented call: its span and the trace headers it wrote, so that later hops of
    the same call (redirects) can tell our headers from the caller's."""

    __slots__ = ("span", "injected", "refused", "headers", "headers_ready")

    def __init__(self, span: Any, refused: frozenset) -> None:
        self.span = span
        self.injected: dict = {}  # lowercased header name -> value we wrote
        self.refused = refused  # names the caller set to None in headers=: never add those
        self.headers: Optional[dict] = None
        self.headers_ready = False

    def trace_headers(self) -> Optional[dict]:
        if not self.headers_ready:
            # Asked while our span is the active one, so the headers name it as the parent.
            self.headers = beeline.http_trace_propagation_hook()
            self.headers_ready = True
        return self.headers


_current_call: ContextVar[Optional[_Call]] = ContextVar("beeline_requests_call", default=None)


def _method_text(method: Any) -> str:
    if isinstance(method, bytes):
        method = method.decode("ascii", "replace")
    return str(method).upper()


def _url_text(url: Any) -> Any:
    if isinstance(url, bytes):
        url = url.decode("utf-8", "replace")
    return without_userinfo(url)


def _open_call(method: Any, url: Any, caller_headers: Any) -> Optional[_Call]:
    # Everything that could fail is done before the span starts, so a failure here never
    # leaves a started span behind.
    method = _method_text(method)
    fields = {
        "name": "requests_" + method,
        "meta.type": "http_client",
        "request.method": method,
        "request.url": _url_text(url),
    }
    refused: frozenset = frozenset()
    if caller_headers:
        pairs = caller_headers.items() if hasattr(caller_headers, "items") else caller_headers
        refused = frozenset(str(k).lower() for k, v in pairs if v is None)
    span = beeline.start_span(fields)
    if span is None:
        return None
    return _Call(span, refused)


def _inject(call: _Call, prepared: Any) -> None:
    """Write (or, for a destination outside the allow-list, take back) our trace headers on
    one PreparedRequest. A header the caller set is never touched."""
    headers = prepared.headers
    if not allowed_url(prepared.url):
        # A redirect hop copies the previous hop's headers, ours included.
        for key, value in call.injected.items():
            if headers.get(key) == value:
                del headers[key]
        return
    trace_headers = call.trace_headers()
    if not trace_headers:
        return
    for name, value in trace_headers.items():
        key = name.lower()
        if key in call.refused:
            continue
        existing = headers.get(name)
        if existing is not None and existing != call.injected.get(key):
            continue
        headers[name] = value
        call.injected[key] = value


def _record_response(span: Any, response: Any) -> None:
    span.add_context(
        {
            "response.status_code": response.status_code,
            "response.content_type": response.headers.get("content-type"),
            "response.content_length": response.headers.get("content-length"),
        }
    )


def _record_error(span: Any, exc: BaseException) -> None:
    span.add_context_field("request.error_type", str(type(exc)))
    span.add_context_field("request.error", stringify_exception(exc))
    response = getattr(exc, "response", None)
    if response is not None and hasattr(response, "status_code"):
        _record_response(span, response)


def _run(call: _Call, wrapped: Any, args: tuple, kwargs: dict, prepared: Any = None) -> Any:
    token = _current_call.set(call)
    try:
        if prepared is not None:
            try:
                _inject(call, prepared)
            except Exception:
                warn_once("requests_inject", "beeline: could not add trace headers to a requests call", exc_info=True)
        try:
            response = wrapped(*args, **kwargs)
        except Exception as exc:
            try:
                _record_error(call.span, exc)
            except Exception:
                warn_once("requests_error", "beeline: could not record a requests error", exc_info=True)
            raise
        try:
            _record_response(call.span, response)
        except Exception:
            warn_once("requests_response", "beeline: could not record a requests response", exc_info=True)
        return response
    finally:
        _current_call.reset(token)
        beeline.finish_span(call.span)


def _request_arguments(method: Any, url: Any, params: Any = None, data: Any = None, headers: Any = None,
                       *args: Any, **kwargs: Any) -> tuple:
    return method, url, headers


def _wrap_request(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    if active_span() is None:
        return wrapped(*args, **kwargs)
    try:
        method, url, caller_headers = _request_arguments(*args, **kwargs)
        call = _open_call(method, url, caller_headers)
    except Exception:
        warn_once("requests_span", "beeline: could not start a requests span", exc_info=True)
        call = None
    if call is None:
        return wrapped(*args, **kwargs)
    return _run(call, wrapped, args, kwargs)


def _wrap_send(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    call = _current_call.get()
    if call is None and active_span() is None:
        return wrapped(*args, **kwargs)
    prepared = args[0] if args else kwargs.get("request")
    if call is not None:
        # A hop of a call already traced by _wrap_request (or a redirect of a direct send).
        try:
            _inject(call, prepared)
        except Exception:
            warn_once("requests_inject", "beeline: could not add trace headers to a requests call", exc_info=True)
        return wrapped(*args, **kwargs)
    try:
        call = _open_call(prepared.method, prepared.url, None)
    except Exception:
        warn_once("requests_span", "beeline: could not start a requests span", exc_info=True)
        call = None
    if call is None:
        return wrapped(*args, **kwargs)
    return _run(call, wrapped, args, kwargs, prepared)


def patch() -> bool:
    """Instrument `requests`. Returns False when it already was."""
    sent = wrap(requests.sessions, "Session.send", _wrap_send)
    requested = wrap(requests.sessions, "Session.request", _wrap_request)
    return sent or requested


def unpatch() -> bool:
    """Remove the instrumentation. Returns False when there was none."""
    return any([unwrap(requests.sessions, name) for name in _TARGETS])


patch()
