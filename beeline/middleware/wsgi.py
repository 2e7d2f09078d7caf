"""WSGI: one trace per request around any WSGI application.

    from beeline.middleware.wsgi import HoneyWSGIMiddleware
    application = HoneyWSGIMiddleware(application)

The Flask, Bottle and Werkzeug middlewares are this one with a different name prefix (and, for
Flask and Bottle, a few framework fields), so the request fields, the error handling and the end
of the trace behave the same everywhere.

When the trace ends matters. A WSGI response is not finished when `start_response` is called
(where honeycomb-beeline ended it). A body that is a list or a tuple is complete when the
application returns it: no application code runs after that, only the server's write, so the
trace ends right there and the body goes to the server untouched. Any other body is produced
while the server iterates it, and the server signals the end by calling the iterable's
`close()`. So such a body is handed back wrapped: the trace ends when the body is exhausted,
when iterating it raises, or at `close()`, whichever comes first, and also when the application
raises before returning anything. A response that is dropped without any of these (a test
client whose body is never read) is finished when it is garbage-collected, so no trace stays
open.

Between those steps the request's spans are not left active in the server's context: the server
(or a test calling a test client) sees what it had before the request, and each step of the
body runs with the request's spans active again, so spans opened while streaming are children of
the request.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Iterable, Iterator, Optional

import beeline
from beeline.decorators import exception_fields, stringify_exception
from beeline.internal import warn_once
from beeline.propagation import Request, honeycomb, w3c
from beeline.propagation.default import http_trace_parser_hook as _default_parser_hook
from beeline.trace import Span, current_span_var

__all__ = ["ROOT_SPAN_KEY", "HoneyWSGIMiddleware", "WSGIRequest"]

log = logging.getLogger("beeline")

#: The environ key under which the request's root span is kept while the request runs, so that
#: framework hooks (and the application) can add fields to it whatever span is active.
ROOT_SPAN_KEY = "beeline.span"

_get_current = current_span_var.get
_set_current = current_span_var.set

# Headers that WSGI (like CGI) passes without the HTTP_ prefix.
_UNPREFIXED = frozenset(("CONTENT_TYPE", "CONTENT_LENGTH"))

# Header name as a parser hook asks for it -> its environ key. Hooks ask for the same few names
# on every request, so each is translated once; the bound keeps a hook that asks for arbitrary
# names from growing it without end.
_ENVIRON_KEYS: Dict[str, str] = {}
_ENVIRON_KEYS_LIMIT = 256

_SERVER_ERROR = "500 Internal Server Error"


def _environ_key(header: str) -> str:
    name = header.upper().replace("-", "_")
    if name not in _UNPREFIXED:
        name = "HTTP_" + name
    if len(_ENVIRON_KEYS) < _ENVIRON_KEYS_LIMIT:
        _ENVIRON_KEYS[header] = name
    return name


# The environ keys of the two headers the default parser hook reads: without either, a request
# starts a new trace and the hook need not run.
_HONEYCOMB_KEY = _environ_key(honeycomb.HEADER)
_TRACEPARENT_KEY = _environ_key(w3c.TRACEPARENT_HEADER)


class WSGIRequest(Request):
    """A :class:`beeline.propagation.Request` over a WSGI environ, for the parser hooks.

    `request_context()` gives the root span's fields, with the reference's names and types:
    `request.content_length` is the environ's string (int 0 when absent) and `request.query` the
    raw query string.
    """

    __slots__ = ("_middleware_name", "_environ")

    def __init__(self, middleware_name: str, environ: dict) -> None:
        self._middleware_name = middleware_name
        self._environ = environ

    def header(self, key: str) -> Optional[str]:
        name = _ENVIRON_KEYS.get(key)
        if name is None:
            name = _environ_key(key)
        return self._environ.get(name)

    def method(self) -> Optional[str]:
        return self._environ.get("REQUEST_METHOD")

    def scheme(self) -> Optional[str]:
        return self._environ.get("wsgi.url_scheme")

    def host(self) -> Optional[str]:
        return self._environ.get("HTTP_HOST")

    def path(self) -> Optional[str]:
        return self._environ.get("PATH_INFO")

    def query(self) -> Optional[str]:
        return self._environ.get("QUERY_STRING")

    def middleware_request(self) -> dict:
        return self._environ

    def request_context(self) -> dict:
        return _request_fields(self._middleware_name, self._environ)


# (middleware name, method) -> root span name, e.g. ("flask", "GET") -> "flask_http_get". The
# bound keeps clients sending made-up methods from growing it without end.
_SPAN_NAMES: Dict[Any, str] = {}
_SPAN_NAMES_LIMIT = 64


def _span_name(middleware_name: str, method: Optional[str]) -> str:
    name = "%s_http_%s" % (middleware_name, method.lower()) if method else middleware_name + "_http"
    if len(_SPAN_NAMES) < _SPAN_NAMES_LIMIT:
        _SPAN_NAMES[middleware_name, method] = name
    return name


def _request_fields(middleware_name: str, environ: dict) -> dict:
    method = environ.get("REQUEST_METHOD")
    name = _SPAN_NAMES.get((middleware_name, method))
    if name is None:
        name = _span_name(middleware_name, method)
    return {
        "name": name,
        "type": "http_server",
        "request.host": environ.get("HTTP_HOST"),
        "request.method": method,
        "request.path": environ.get("PATH_INFO"),
        "request.remote_addr": environ.get("REMOTE_ADDR"),
        "request.content_length": environ.get("CONTENT_LENGTH", 0),
        "request.user_agent": environ.get("HTTP_USER_AGENT"),
        "request.scheme": environ.get("wsgi.url_scheme"),
        "request.query": environ.get("QUERY_STRING"),
    }


def status_code(status: Any) -> Any:
    """200 for "200 OK"; a status line that does not start with a number is kept as given."""
    try:
        return int(status[:3] if type(status) is str else str(status)[:3])
    except ValueError:
        return status


def error_fields(exc: BaseException) -> dict:
    """The fields of an error that escaped the application: honeycomb-beeline's Flask names
    (`request.error` is the exception's type, `request.error_detail` its message) plus the
    `app.exception_*` fields its `tracer()` wrote, so the stack trace is kept too."""
    fields = exception_fields(exc)
    fields["request.error"] = str(type(exc))
    fields["request.error_detail"] = stringify_exception(exc)
    return fields


class HoneyWSGIMiddleware:
    """Wrap a WSGI application so that every request is one trace.

    The root span is named `<middleware_name>_http_<method>` (e.g. `wsgi_http_get`), typed
    `http_server`, carries the request fields of :class:`WSGIRequest` plus
    `response.status_code` (an int), and continues the caller's trace as read by the configured
    parser hook. Errors that escape the application add `request.error`,
    `request.error_detail` and the `app.exception_*` fields, and are re-raised untouched.
    """

    middleware_name = "wsgi"

    def __init__(self, app: Callable, middleware_name: Optional[str] = None) -> None:
        self.app = app
        if middleware_name:
            self.middleware_name = middleware_name
        #: False makes this a pass-through (used when the middleware cannot be removed because
        #: something else wrapped it since).
        self.enabled = True
        #: Set by a framework integration that knows when its application's body runs none of
        #: the application's code while it is iterated and closed (a response already rendered
        #: into a list): the environ key it sets to True for such a request. Such a body is
        #: treated like a list: the trace ends when the application returns it, and the body
        #: goes to the server unwrapped. Only for a middleware that wraps the framework's own
        #: WSGI callable directly, whose body it is.
        self._ready_key: Optional[str] = None
        # The extension points cost a call or two per request; skip them when they are ours.
        cls = type(self)
        self._own_request_context = cls.request_context is not HoneyWSGIMiddleware.request_context
        self._finish_hook: Optional[Callable[[dict, Span], None]] = (
            self.finish_context if cls.finish_context is not HoneyWSGIMiddleware.finish_context else None
        )

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        bl = beeline._GBL
        if bl is None or not self.enabled:
            return self.app(environ, start_response)
        enclosing = environ.get(ROOT_SPAN_KEY)
        if enclosing is not None and not enclosing.finished:
            # An instrumented app inside another one (both wrapped, or a dispatcher of
            # instrumented apps): the request already has its trace, from the outermost one.
            return self._inside(enclosing, environ, start_response)
        outer = _get_current()
        try:
            tracer = bl.tracer_impl
            if self._own_request_context:
                request = WSGIRequest(self.middleware_name, environ)
                root = tracer.propagate_and_start_trace(self.request_context(request), request)
            else:
                fields = _request_fields(self.middleware_name, environ)
                if (tracer.http_trace_parser_hook is _default_parser_hook and _HONEYCOMB_KEY not in environ
                        and _TRACEPARENT_KEY not in environ):
                    # What the default hook would conclude without a header to read: a new trace.
                    root = tracer.open_trace(fields)
                else:
                    root = tracer.propagate_and_open_trace(fields, WSGIRequest(self.middleware_name, environ))
        except Exception:
            warn_once("wsgi_start", "beeline: could not start the request's trace; the request runs untraced",
                      exc_info=True)
            _set_current(outer)
            root = None
        if root is None:
            return self.app(environ, start_response)
        environ[ROOT_SPAN_KEY] = root
        starter = _ResponseStart(root, start_response)
        try:
            body = self.app(environ, starter)
        except BaseException as exc:
            _end_trace(self, root, environ, starter.status, exc, False)
            _set_current(outer)
            raise
        kind = type(body)
        if kind is list or kind is tuple or (self._ready_key is not None and environ.get(self._ready_key) is True):
            # Already produced (a list or tuple has no close(); a body the framework reports
            # ready runs no application code while it is served): the trace ends now and the
            # server gets the body as it was.
            _end_trace(self, root, environ, starter.status, None, False)
            _set_current(outer)
            return body
        if hasattr(body, "__len__"):
            return _SizedTracedResponse(self, root, environ, starter, body, outer)
        return _TracedResponse(self, root, environ, starter, body, outer)

    # ---- extension points -------------------------------------------------------------------

    def request_context(self, request: WSGIRequest) -> dict:
        """The root span's fields at the start of the request. Override to add your own."""
        return request.request_context()

    def finish_context(self, environ: dict, span: Span) -> None:
        """Called just before the root span is sent, with the request's spans active: add
        fields known only at the end of the request (e.g. the matched route). When this
        middleware runs inside another one, it is called with that one's root span once the
        wrapped application has returned (or raised)."""

    # ---- internals --------------------------------------------------------------------------

    def _inside(self, enclosing: Span, environ: dict, start_response: Callable) -> Iterable[bytes]:
        # The framework's own fields still belong on the request's root span.
        try:
            return self.app(environ, start_response)
        finally:
            try:
                self.finish_context(environ, enclosing)
            except Exception:
                warn_once("wsgi_nested_finish", "beeline: could not add the framework's fields", exc_info=True)


class _ResponseStart:
    """The `start_response` handed to the application: remembers the status for the root span
    and records an error reported through `exc_info`."""

    __slots__ = ("_root", "_start_response", "status")

    def __init__(self, root: Span, start_response: Callable) -> None:
        self._root = root
        self._start_response = start_response
        self.status: Any = None

    def __call__(self, status: str, headers: list, exc_info: Any = None) -> Callable:
        self.status = status
        if exc_info is not None:
            # The PEP 3333 way to report an error once the status is chosen (Bottle does this).
            try:
                exc = exc_info[1]
                if isinstance(exc, Exception):
                    self._root.fields.update(error_fields(exc))
            except Exception:
                warn_once("wsgi_exc_info", "beeline: could not record the error passed to start_response",
                          exc_info=True)
            return self._start_response(status, headers, exc_info)
        return self._start_response(status, headers)


def _end_trace(mw: HoneyWSGIMiddleware, root: Span, environ: dict, status: Any,
               exc: Optional[BaseException], body_started: bool) -> None:
    """Add the response fields to the root span and finish the trace; never raises."""
    try:
        fields = root.fields
        if exc is not None and isinstance(exc, Exception):
            fields.update(error_fields(exc))
            if not body_started:
                # Nothing was sent yet, so the server answers 500 whatever status was set.
                status = _SERVER_ERROR
        if status is not None:
            try:
                fields["response.status_code"] = int(status[:3])
            except (TypeError, ValueError):
                fields["response.status_code"] = status_code(status)
        if mw._finish_hook is not None:
            mw._finish_hook(environ, root)
    except Exception:
        warn_once("wsgi_finish", "beeline: could not add the response fields", exc_info=True)
    try:
        bl = beeline._GBL
        if bl is not None:
            bl.tracer_impl.finish_trace(root)
    except Exception:
        warn_once("wsgi_finish_trace", "beeline: could not finish the request's trace", exc_info=True)


class _TracedResponse:
    """The body handed to the server for a body that is still to be produced: the application's
    body, iterated with the request's spans active, ending the trace when it is exhausted, fails
    or is closed."""

    __slots__ = (
        "_mw",
        "_root",
        "_environ",
        "_starter",
        "_body",
        "_chunks",
        "_inner",
        "_body_started",
        "_done",
        "_close_error",
        "__weakref__",
    )

    def __init__(self, mw: HoneyWSGIMiddleware, root: Span, environ: dict, starter: _ResponseStart, body: Any,
                 outer: Optional[Span]) -> None:
        self._mw = mw
        self._root = root
        self._environ = environ
        self._starter = starter
        self._body = body
        self._chunks: Optional[Iterator[bytes]] = None
        self._body_started = False
        self._done = False
        self._close_error: Optional[BaseException] = None
        # The request's spans as the application left them are made active around each step,
        # in the server's own context, which gets back what it had after the step. (Running
        # the steps in a copied Context is cheaper, but breaks bodies that set a ContextVar
        # while the application ran and reset it in a later step, such as Flask 2.2's
        # stream_with_context: a token cannot be reset from another Context.)
        self._inner = _get_current()
        _set_current(outer)

    # ---- what the server calls -----------------------------------------------------------

    def __iter__(self) -> "_TracedResponse":
        return self

    def __next__(self) -> bytes:
        if self._done:
            raise StopIteration
        outer = _get_current()
        _set_current(self._inner)
        try:
            chunks = self._chunks
            if chunks is None:
                chunks = self._chunks = iter(self._body)
            chunk = next(chunks)
        except StopIteration:
            # The server calls close() next: an error from the body's close() is raised there.
            self.end(None, defer_close_error=True)
            raise
        except BaseException as exc:
            self.end(exc)
            raise
        finally:
            if not self._done:
                self._inner = _get_current()
            _set_current(outer)
        if chunk:
            self._body_started = True
        return chunk

    def close(self) -> None:
        if self._done:
            error, self._close_error = self._close_error, None
            if error is not None:
                raise error
            return
        outer = _get_current()
        _set_current(self._inner)
        try:
            self.end(None)
        finally:
            _set_current(outer)

    def __del__(self) -> None:
        # Last resort for a response nobody iterated or closed (e.g. a test client's response
        # whose body was never read): send the trace rather than lose it.
        try:
            if not self._done:
                self._done = True
                _end_trace(self._mw, self._root, self._environ, self._starter.status, None, self._body_started)
        except Exception:
            pass  # nothing can be reported from a finaliser; the trace is lost, not the app

    # ---- the end ---------------------------------------------------------------------------

    def end(self, exc: Optional[BaseException], defer_close_error: bool = False) -> None:
        """Close the application's body, then finish the trace. Runs with the request's spans
        active. An error from the body's own close() is recorded and re-raised (by our close()
        when `defer_close_error`)."""
        if self._done:
            return
        self._done = True
        close_error: Optional[BaseException] = None
        close = getattr(self._body, "close", None)
        if close is not None:
            try:
                close()
            except BaseException as error:
                close_error = error
        _end_trace(self._mw, self._root, self._environ, self._starter.status,
                   exc if exc is not None else close_error, self._body_started)
        self._chunks = None
        if close_error is not None:
            if defer_close_error:
                self._close_error = close_error
            else:
                raise close_error


class _SizedTracedResponse(_TracedResponse):
    """For bodies with a length other than lists and tuples: servers such as wsgiref use len()
    to decide on a Content-Length, and that must not change because the body is wrapped."""

    __slots__ = ()

    def __len__(self) -> int:
        return len(self._body)
