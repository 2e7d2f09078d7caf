"""`import beeline.patch.tornado`: trace Tornado applications and their outgoing calls.

Importing this module applies the patches (the reference's entry point); `patch()` applies them
again if `unpatch()` removed them, and neither ever wraps twice.

Server side (see `beeline.middleware.tornado`): every request served by a `RequestHandler`
becomes a trace named `tornado_http_<method>`, continuing the caller's trace headers.

Client side: inside a trace, each `AsyncHTTPClient.fetch` (and so the blocking `HTTPClient`,
which drives it) is a child span named `tornado_http_client_<method>` with `meta.type:
http_client`, and that request, only that one, carries the propagation hook's headers.
Outside a trace nothing is added.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Callable, Optional

import tornado
import tornado.httpclient
import tornado.web
from tornado.httputil import HTTPHeaders

import beeline
from beeline.internal import warn_once
from beeline.middleware import tornado as server
from beeline.patch import is_wrapped, unwrap, wrap
from beeline.propagation.destinations import allowed_url, without_userinfo
from beeline.trace import Span, active_span, current_span_var

__all__ = ["is_patched", "patch", "unpatch"]

log = logging.getLogger("beeline")

# The methods wrapped exist with these meanings from Tornado 6.0 on (`_execute` became a native
# coroutine there); older versions are left alone.
MIN_TORNADO = (6, 0)


def _targets() -> list:
    return [
        (tornado.web, "RequestHandler._execute", server.traced_execute),
        (tornado.web, "RequestHandler.finish", server.traced_finish),
        (tornado.web, "RequestHandler._handle_request_exception", server.traced_handle_request_exception),
        (tornado.web, "_HandlerDelegate.data_received", server.traced_data_received),
        (tornado.httpclient, "AsyncHTTPClient.fetch", traced_fetch),
    ]


def patch() -> bool:
    """Apply the Tornado patches. True when something was newly wrapped; False when everything
    was already patched, or when this Tornado is too old (with a warning)."""
    if tuple(tornado.version_info[:2]) < MIN_TORNADO:
        log.warning("beeline: Tornado %s is older than 6.0; Tornado is not traced", tornado.version)
        return False
    changed = False
    for module, name, wrapper in _targets():
        changed = wrap(module, name, wrapper) or changed
    return changed


def unpatch() -> bool:
    """Remove every Tornado patch. True when something was unwrapped."""
    changed = False
    for module, name, _ in _targets():
        changed = unwrap(module, name) or changed
    return changed


def is_patched() -> bool:
    """True when every Tornado patch is in place."""
    return all(is_wrapped(module, name) for module, name, _ in _targets())


# ---- AsyncHTTPClient.fetch --------------------------------------------------------------------------


# Set on the copy of the request we send, so a redirect hop (Tornado's simple client fetches
# the new location with a copy of that request) is recognised: (our span, headers we added).
_HOP_ATTRIBUTE = "_beeline_client_hop"


def traced_fetch(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
    """`AsyncHTTPClient.fetch(request, raise_error=True, **kwargs)` as a client span."""
    bl = beeline.get_beeline()
    if bl is None:
        return wrapped(*args, **kwargs)
    request_arg = args[0] if args else kwargs.get("request")
    if active_span() is None and getattr(request_arg, _HOP_ATTRIBUTE, None) is None:
        return wrapped(*args, **kwargs)
    try:
        prepared = _prepare(bl, args, kwargs)
    except Exception:
        warn_once("tornado_fetch_start", "beeline: could not trace an AsyncHTTPClient.fetch", exc_info=True)
        prepared = None
    if prepared is None:
        return wrapped(*args, **kwargs)
    span, request, raise_error = prepared
    if span is None:
        return wrapped(request, raise_error)
    tracer = bl.tracer_impl
    try:
        future = wrapped(request, raise_error)
    except BaseException as exc:
        _record_error(span, exc)
        tracer.finish_span(span)
        raise
    try:
        future.add_done_callback(lambda done: _finish_fetch_span(tracer, span, done))
    except Exception:
        warn_once("tornado_fetch_done", "beeline: could not follow an AsyncHTTPClient.fetch", exc_info=True)
        tracer.finish_span(span)
    return future


def _bind(request: Any, raise_error: bool = True, **kwargs: Any) -> tuple:
    return request, raise_error, kwargs


def _prepare(bl: Any, args: tuple, kwargs: dict) -> Optional[tuple]:
    """(client span or None, the request to send, raise_error), or None to call fetch untouched.

    The request sent is always our own copy with its own headers, so neither the caller's
    `HTTPRequest` (which may be reused) nor the client's `defaults` ever carry a trace header
    into another request.
    """
    try:
        request, raise_error, rest = _bind(*args, **kwargs)
    except TypeError:
        return None  # fetch raises the same error itself
    if isinstance(request, tornado.httpclient.HTTPRequest):
        if rest:
            return None  # fetch refuses keyword arguments with a request object
        request = copy.copy(request)
    else:
        try:
            # Exactly what fetch does with a URL string, done here so that the request we send
            # is an object we own.
            request = tornado.httpclient.HTTPRequest(url=request, **rest)
        except (TypeError, ValueError):
            return None
    headers = HTTPHeaders(request.headers) if request.headers is not None else HTTPHeaders()
    request.headers = headers
    parent = active_span()
    earlier = request.__dict__.pop(_HOP_ATTRIBUTE, None)
    if earlier is not None:
        # A redirect: take back the headers the previous hop got from us (they name its span,
        # and the new location may not be allowed to see them), and nest under that hop.
        earlier_span, injected = earlier
        for name, value in injected.items():
            if headers.get(name) == value:
                del headers[name]
        if not earlier_span.finished:
            parent = earlier_span
    if parent is None:
        return None, request, raise_error
    method = str(request.method or "GET").upper()
    url = request.url
    span = bl.tracer_impl.open_detached_span(
        {
            "name": "tornado_http_client_" + method.lower(),
            "meta.type": "http_client",
            "request.method": method,
            "request.url": without_userinfo(url),
        },
        parent,
    )
    # The span is not made active: fetch returns at once, and the caller may start other
    # fetches (or spans) before this one completes; they are siblings, not children.
    if allowed_url(url):
        added = {}
        for name, value in (_headers_for(span) or {}).items():
            if name not in headers:  # a header the caller set explicitly wins
                headers[name] = value
                added[name] = value
        if added:
            setattr(request, _HOP_ATTRIBUTE, (span, added))
    return span, request, raise_error


def _headers_for(span: Span) -> Optional[dict]:
    """The propagation hook's headers for `span`, which is briefly made the active span so the
    configured hook sees this call's span id as the parent."""
    token = current_span_var.set(span)
    try:
        return beeline.http_trace_propagation_hook()
    finally:
        current_span_var.reset(token)


def _finish_fetch_span(tracer: Any, span: Span, future: Any) -> None:
    try:
        if future.cancelled():
            span.fields["request.error_type"] = "cancelled"
            span.fields["request.error"] = "the fetch was cancelled"
        else:
            exc = future.exception()
            if exc is not None:
                _record_error(span, exc)
            else:
                _record_response(span, future.result())
    except Exception:
        warn_once("tornado_fetch_finish", "beeline: could not record an AsyncHTTPClient response", exc_info=True)
    tracer.finish_span(span)


# Tornado's code for "no HTTP response at all" (timeouts, connection errors).
_NO_RESPONSE = 599


def _record_response(span: Span, response: Any) -> None:
    # With raise_error=False an error status comes back as a normal response: the caller asked
    # for it, so it is a status, not an error (connection failures still raise, since 6.0).
    _record_status(span.fields, response)


def _record_error(span: Span, exc: BaseException) -> None:
    """The reference's client error fields; an HTTP error reply also keeps its status."""
    fields = span.fields
    fields["request.error_type"] = str(type(exc))
    fields["request.error"] = str(exc)
    response = getattr(exc, "response", None)
    if response is not None and "response.status_code" not in fields:
        _record_status(fields, response)


def _record_status(fields: dict, response: Any) -> None:
    code = getattr(response, "code", None)
    if isinstance(code, int) and code != _NO_RESPONSE:
        fields["response.status_code"] = code
    headers = getattr(response, "headers", None)
    if headers is not None:
        # Header text, as the reference's requests spans have them.
        fields["response.content_type"] = headers.get("Content-Type")
        fields["response.content_length"] = headers.get("Content-Length")


patch()
