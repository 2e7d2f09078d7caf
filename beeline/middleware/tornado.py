"""Server-side Tornado tracing: every request a `RequestHandler` serves is one trace.

Tornado has no middleware layer, so `beeline.patch.tornado` wraps three methods of
`tornado.web.RequestHandler` with the functions below:

* `_execute`, the coroutine that runs prepare(), the verb method and the automatic finish().
  Tornado runs it in a task of its own, so the root span started there is the active span of
  everything the handler does and awaits, and concurrent requests never see each other's spans.
* `finish`, which ends the root span once the response is complete (after `on_finish()`), with
  the status code the client got. Handlers that turn off auto-finish and call `finish()` later
  from another callback are covered too.
* `_handle_request_exception`, where every exception that escapes a handler passes.

`_HandlerDelegate.data_received` is wrapped as well, so the chunks of a
`@stream_request_body` handler, which Tornado hands over from the connection's own task, are
handled with the request's span active.

Nothing here raises into the application: failures are logged once on the `beeline` logger
and the request goes on untraced.
"""

from __future__ import annotations

import inspect
import weakref
from typing import Any, Awaitable, Callable, Optional

import tornado.web

import beeline
from beeline.decorators import exception_fields, stringify_exception
from beeline.internal import warn_once
from beeline.propagation import Request
from beeline.trace import Span, current_span_var

__all__ = [
    "TornadoRequest",
    "finish_request_trace",
    "record_exception",
    "request_context",
    "request_route",
    "start_request_trace",
    "traced_data_received",
    "traced_execute",
    "traced_finish",
    "traced_handle_request_exception",
]

# The root span rides on the handler instance: one handler object serves exactly one request.
SPAN_ATTRIBUTE = "_beeline_root_span"


class TornadoRequest(Request):
    """A `beeline.propagation.Request` over Tornado's `HTTPServerRequest`, for parser hooks."""

    __slots__ = ("_request",)

    def __init__(self, request: Any) -> None:
        self._request = request

    def header(self, key: str) -> Optional[str]:
        # HTTPHeaders matches names without regard to case.
        return self._request.headers.get(key)

    def method(self) -> Optional[str]:
        return self._request.method

    def scheme(self) -> Optional[str]:
        return self._request.protocol

    def host(self) -> Optional[str]:
        return self._request.host

    def path(self) -> Optional[str]:
        return self._request.path

    def query(self) -> Optional[str]:
        return self._request.query

    def middleware_request(self) -> Any:
        return self._request


def request_context(handler: tornado.web.RequestHandler) -> dict:
    """The root span's starting fields: the names (and value types) of the reference's WSGI
    fields, so Tornado requests query the same way as Flask, Bottle or Werkzeug ones."""
    request = handler.request
    method = request.method or ""
    headers = request.headers
    fields = {
        "name": "tornado_http_" + method.lower() if method else "tornado_http",
        "type": "http_server",
        "request.host": request.host,
        "request.method": method,
        # Path only: the query has a field of its own (the reference's Tornado hook put the
        # whole URI here).
        "request.path": request.path,
        "request.remote_addr": request.remote_ip,
        # As in the reference's WSGI fields: the header's text when present, 0 when absent.
        "request.content_length": headers.get("Content-Length", 0),
        "request.user_agent": headers.get("User-Agent"),
        "request.scheme": request.protocol,
        "request.query": request.query,
    }
    route = request_route(handler)
    if route is not None:
        fields["request.route"] = route
    return fields


def request_route(handler: tornado.web.RequestHandler) -> Optional[str]:
    """The URL pattern of the rule that sent this request to this handler, e.g.
    `/users/([^/]+)`, or None (Tornado's 404 handler, custom matchers).

    Tornado does not tell the handler which rule matched, so the application's routing rules
    are searched for the ones that target this handler's class; only those are matched against
    the request again, which keeps this to one regular-expression match in the usual case.
    """
    application = getattr(handler, "application", None)
    router = getattr(application, "default_router", None)
    if router is None:
        return None
    return _find_route(router, handler.request, type(handler), 0)


# Routers nest (hosts, then paths); real applications stay a few levels deep.
_MAX_ROUTER_DEPTH = 8

# router -> (its rule count when indexed, {handler class: the rules that may lead to it}).
# Rules are only ever appended (`add_handlers`, `add_rules`), so a changed count means the
# index is rebuilt; weak keys let routers (and test applications) be collected.
_rules_index: "weakref.WeakKeyDictionary[Any, tuple]" = weakref.WeakKeyDictionary()


def _find_route(router: Any, request: Any, handler_class: type, depth: int) -> Optional[str]:
    if depth > _MAX_ROUTER_DEPTH:
        return None
    for rule in _rules_toward(router, handler_class):
        if rule.target is handler_class:
            if rule.matcher.match(request) is not None:
                return _pattern_of(rule.matcher)
        elif rule.matcher.match(request) is not None:
            found = _find_route(rule.target, request, handler_class, depth + 1)
            if found is not None:
                return found
    return None


def _rules_toward(router: Any, handler_class: type) -> list:
    """The rules of `router`, in order, that target `handler_class` or a nested router: the
    only ones worth matching, so the cost does not grow with the number of routes."""
    rules = getattr(router, "rules", None) or ()
    try:
        entry = _rules_index.get(router)
    except TypeError:  # a router that cannot be weakly referenced: no index
        entry = None
    if entry is None or entry[0] != len(rules):
        entry = (len(rules), {})
        try:
            _rules_index[router] = entry
        except TypeError:
            pass
    by_class = entry[1]
    relevant = by_class.get(handler_class)
    if relevant is None:
        relevant = [rule for rule in rules if rule.target is handler_class or hasattr(rule.target, "rules")]
        by_class[handler_class] = relevant
    return relevant


def _pattern_of(matcher: Any) -> Optional[str]:
    regex = getattr(matcher, "regex", None)
    if regex is None:
        return None
    pattern = regex.pattern
    # Tornado anchors every path pattern by appending "$"; show the pattern as it was written.
    if isinstance(pattern, str) and pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1]
    return pattern


def start_request_trace(handler: tornado.web.RequestHandler) -> Optional[Span]:
    """Start the request's root span (continuing the caller's trace from its headers) and make
    it the active span of the calling context. None when the beeline is not initialised."""
    if SPAN_ATTRIBUTE in handler.__dict__:
        return handler.__dict__[SPAN_ATTRIBUTE]
    try:
        context = request_context(handler)
        span = beeline.propagate_and_start_trace(context, TornadoRequest(handler.request))
    except Exception:
        warn_once("tornado_start", "beeline: could not start a trace for a Tornado request", exc_info=True)
        return None
    if span is not None:
        handler.__dict__[SPAN_ATTRIBUTE] = span
    return span


def finish_request_trace(handler: tornado.web.RequestHandler) -> None:
    """Send the request's root span with the response status. Safe to call more than once."""
    span = handler.__dict__.pop(SPAN_ATTRIBUTE, None)
    if span is None:
        return
    try:
        # Only a status the handler really sent is the one the client saw: not for a handler
        # abandoned because the client went away, nor for a FallbackHandler, whose fallback
        # (e.g. a WSGIContainer) writes its own response past the handler.
        if getattr(handler, "_finished", False) and getattr(handler, "_headers_written", False):
            span.fields["response.status_code"] = int(handler.get_status())
        beeline.finish_trace(span)
    except Exception:
        warn_once("tornado_finish", "beeline: could not finish the trace of a Tornado request", exc_info=True)


def record_exception(handler: tornado.web.RequestHandler, exc: Optional[BaseException]) -> None:
    """Put what a handler raised on its root span.

    `tornado.web.Finish` is a way to end a request, not an error: ignored. An `HTTPError` is a
    reply the handler chose, so it gets `request.error` / `request.error_detail` only; any other
    exception also gets the reference's `app.exception_*` fields, stack trace included.
    """
    span = handler.__dict__.get(SPAN_ATTRIBUTE)
    if span is None or exc is None or isinstance(exc, tornado.web.Finish):
        return
    try:
        fields = span.fields
        fields["request.error"] = str(type(exc))  # as the WSGI, Flask and Django integrations
        fields["request.error_detail"] = stringify_exception(exc)
        if not isinstance(exc, tornado.web.HTTPError):
            fields.update(exception_fields(exc))
    except Exception:
        warn_once("tornado_exception", "beeline: could not record a Tornado handler's exception", exc_info=True)


# ---- wrapt-style wrappers, applied by beeline.patch.tornado ----------------------------------------


def traced_execute(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
    """`RequestHandler._execute`: run the whole handler inside the request's root span."""
    if beeline.get_beeline() is None:
        return wrapped(*args, **kwargs)
    return _execute_in_trace(wrapped, instance, args, kwargs)


async def _execute_in_trace(wrapped: Callable, handler: Any, args: tuple, kwargs: dict) -> Any:
    # This coroutine runs in the task Tornado creates for the handler, so the span set active
    # here stays inside that task (and the tasks it spawns) and never leaks into the connection.
    span = start_request_trace(handler)
    try:
        return await wrapped(*args, **kwargs)
    finally:
        # finish() normally ended the span already. What is left: a detached connection (e.g.
        # a protocol upgrade), or a request Tornado gave up on because the client went away
        # (auto-finish on, yet unfinished). With auto-finish off, finish() comes later.
        if span is not None and (getattr(handler, "_finished", True) or getattr(handler, "_auto_finish", True)):
            finish_request_trace(handler)


def traced_finish(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
    """`RequestHandler.finish`: end the root span after the response and `on_finish()`."""
    try:
        return wrapped(*args, **kwargs)
    finally:
        # finish() may raise before finishing (e.g. a body with a 204); the request then goes on
        # to the error handler, which finishes it, and the span must still be open for that.
        if getattr(instance, "_finished", False):
            finish_request_trace(instance)


def traced_handle_request_exception(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
    """`RequestHandler._handle_request_exception(e)`: record `e`, then let Tornado reply."""
    exc = args[0] if args else kwargs.get("e")
    record_exception(instance, exc)
    return wrapped(*args, **kwargs)


def traced_data_received(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
    """`_HandlerDelegate.data_received`: a streamed request body arrives through the connection's
    task, outside the handler's; make the request's span active while the handler reads it."""
    handler = getattr(instance, "handler", None)
    span = handler.__dict__.get(SPAN_ATTRIBUTE) if handler is not None else None
    if span is None:
        return wrapped(*args, **kwargs)
    token = current_span_var.set(span)
    try:
        result = wrapped(*args, **kwargs)
    finally:
        current_span_var.reset(token)
    if result is not None and inspect.isawaitable(result):
        return _await_with_span(result, span)
    return result


async def _await_with_span(awaitable: Awaitable, span: Span) -> Any:
    # Awaited by the connection's task: the span is active for exactly this await.
    token = current_span_var.set(span)
    try:
        return await awaitable
    finally:
        current_span_var.reset(token)
