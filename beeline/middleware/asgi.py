"""Trace every HTTP request served by an ASGI 3 application (Starlette, FastAPI, Django's ASGI
handler, Quart, or any other).

    from beeline.middleware.asgi import HoneyASGIMiddleware
    app = HoneyASGIMiddleware(app)

Each HTTP request becomes a trace whose root span carries the same fields as the WSGI
middlewares (`request.method`, `request.path`, `request.query`, `request.host`, ...), continues
the caller's trace from its headers, and ends only after the last body chunk went out, so
streaming responses are timed whole. (After a 5xx response it ends when the app returns, so the
exception that frameworks re-raise after sending their error page is recorded on it.)

The reference had no ASGI support, and its asyncio tracer merged concurrent requests whenever
`init()` ran before the loop started. Here the state is a ContextVar and every request runs in
its own task, so concurrent requests never share a trace.

Lifespan and websocket scopes are passed through untouched: a websocket handler may start its
own traces with `beeline.tracer(...)`.
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable, Iterable, MutableMapping, Optional, Tuple

import beeline
from beeline.internal import warn_once
from beeline.middleware.wsgi import error_fields
from beeline.propagation import Request
from beeline.trace import Span, current_span_var

__all__ = ["SCOPE_SPAN_KEY", "ASGIRequest", "HoneyASGIMiddleware", "request_context"]

log = logging.getLogger("beeline")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SCOPE_SPAN_KEY = "beeline.span"


def _text(value: Any) -> Optional[str]:
    # ASGI header names and values are bytes; HTTP defines them as Latin-1, which never fails.
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin-1")
    return value


class ASGIRequest(Request):
    """A `beeline.propagation.Request` over an ASGI HTTP scope, for parser hooks."""

    __slots__ = ("_scope",)

    def __init__(self, scope: Scope) -> None:
        self._scope = scope

    def header(self, key: str) -> Optional[str]:
        wanted = key.lower().encode("latin-1")
        for name, value in self._scope.get("headers") or ():
            # Servers send lowercase names (the spec requires it); lower() covers hand-built scopes.
            if name == wanted or name.lower() == wanted:
                return _text(value)
        return None

    def method(self) -> Optional[str]:
        return self._scope.get("method")

    def scheme(self) -> Optional[str]:
        return self._scope.get("scheme", "http")

    def host(self) -> Optional[str]:
        return _host(self._scope, self.header("host"))

    def path(self) -> Optional[str]:
        return self._scope.get("path")

    def query(self) -> Optional[str]:
        return _text(self._scope.get("query_string", b""))

    def middleware_request(self) -> Scope:
        return self._scope


def _host(scope: Scope, header: Optional[str]) -> Optional[str]:
    if header:
        return header
    # HTTP/1.0 clients may omit Host; the server's own address is what WSGI would report.
    server = scope.get("server")
    if server and server[0] is not None:
        return f"{server[0]}:{server[1]}" if server[1] is not None else str(server[0])
    return None


def request_context(scope: Scope, name_prefix: str = "asgi") -> dict:
    """The root span's fields for an HTTP scope, named as the WSGI middlewares name them."""
    host = user_agent = None
    content_length = 0
    headers: Iterable[Tuple[bytes, bytes]] = scope.get("headers") or ()
    for name, value in headers:
        if name == b"host":
            host = _text(value)
        elif name == b"user-agent":
            user_agent = _text(value)
        elif name == b"content-length":
            # The header's text, as the WSGI, Django and Tornado integrations (and the reference) send it.
            content_length = _text(value)
    method = scope.get("method") or ""
    client = scope.get("client")
    return {
        "name": f"{name_prefix}_http_{method.lower()}" if method else f"{name_prefix}_http",
        "type": "http_server",
        "request.method": method,
        "request.path": scope.get("path"),
        "request.query": _text(scope.get("query_string", b"")),
        "request.host": _host(scope, host),
        "request.scheme": scope.get("scheme", "http"),
        "request.user_agent": user_agent,
        "request.remote_addr": client[0] if client else None,
        "request.content_length": content_length,
    }


def route_from_scope(scope: Scope, root_path_at_entry: str) -> Optional[str]:
    """The route template the framework matched, when it tells the server which: Starlette and
    FastAPI put the matched route object in `scope["route"]` (a mounted sub-application's
    routes are reported with the mount's path in front); a framework may also put a string."""
    route = scope.get("route")
    if route is None:
        return None
    if isinstance(route, str):
        return route
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return None
    root_path = scope.get("root_path") or ""
    mounted = root_path[len(root_path_at_entry):] if root_path.startswith(root_path_at_entry) else ""
    if not mounted:
        return path
    # A Mount matched by itself (static files, a sub-app without routes): its matched prefix is
    # the route. Otherwise the inner route is relative to the mount.
    if getattr(route, "routes", None) is not None:
        return mounted
    return mounted + path


class HoneyASGIMiddleware:
    """ASGI 3 middleware: one `http_server` root span per HTTP request.

    Override `get_context_from_scope(scope)` to add request fields, and
    `get_context_from_response(scope, message)` to add fields when the response starts
    (`message` is the `http.response.start` message). Errors in either are logged once and the
    request goes on.
    """

    def __init__(self, app: ASGIApp, name_prefix: str = "asgi") -> None:
        self.app = app
        self.name_prefix = name_prefix

    def get_context_from_scope(self, scope: Scope) -> dict:
        return request_context(scope, self.name_prefix)

    def get_context_from_response(self, scope: Scope, message: Message) -> dict:
        return {"response.status_code": message.get("status")}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or beeline.get_beeline() is None:
            await self.app(scope, receive, send)
            return
        prior = current_span_var.get()
        root = self._start(scope)
        if root is None:
            await self.app(scope, receive, send)
            return
        # As `environ["beeline.span"]` under WSGI: code holding the scope (a Starlette
        # `request.scope`) can add fields to the root whatever span is active.
        scope[SCOPE_SPAN_KEY] = root
        response = _ResponseWatch(self, scope, root)
        try:
            await self.app(scope, receive, response.send_through(send))
        except BaseException as exc:
            response.app_failed(exc)
            raise
        finally:
            response.finish()
            # The last chunk may have been sent from another task (Starlette streams from a
            # task group), which ended the trace there; make sure this task is clean as well.
            current_span_var.set(prior)

    def _start(self, scope: Scope) -> Optional[Span]:
        try:
            context = self.get_context_from_scope(scope)
        except Exception:
            warn_once("asgi_context", "beeline: get_context_from_scope failed; using the default fields",
                      exc_info=True)
            context = request_context(scope, self.name_prefix)
        try:
            return beeline.propagate_and_start_trace(context, ASGIRequest(scope))
        except Exception:
            warn_once("asgi_start", "beeline: could not start the request's trace", exc_info=True)
            return None


class _ResponseWatch:
    """Follows one response's messages and ends the trace after its final message."""

    __slots__ = ("middleware", "scope", "root", "root_path", "started", "status", "trailers", "done")

    def __init__(self, middleware: HoneyASGIMiddleware, scope: Scope, root: Span) -> None:
        self.middleware = middleware
        self.scope = scope
        self.root = root
        self.root_path = scope.get("root_path") or ""
        self.started = False
        self.status: Optional[int] = None
        self.trailers = False
        self.done = False

    def send_through(self, send: Send) -> Send:
        async def send_and_watch(message: Message) -> None:
            kind = message.get("type")
            if kind == "http.response.start":
                self.response_started(message)
            await send(message)
            if self.done:
                return
            if kind == "http.response.body":
                if not message.get("more_body", False) and not self.trailers:
                    self.response_complete()
            elif kind == "http.response.trailers":
                if not message.get("more_trailers", False):
                    self.response_complete()
            elif kind in ("http.response.pathsend", "http.response.zerocopysend"):
                if kind == "http.response.pathsend" or not message.get("more_body", False):
                    self.response_complete()

        return send_and_watch

    def response_complete(self) -> None:
        # A server error is usually followed by its exception: Starlette sends the 500 page and
        # then re-raises. Wait for the app to return so the span carries what went wrong.
        if self.status is not None and self.status >= 500:
            return
        self.finish()

    def response_started(self, message: Message) -> None:
        self.started = True
        status = message.get("status")
        self.status = status if isinstance(status, int) else None
        self.trailers = bool(message.get("trailers", False))
        try:
            self.root.add_context(self.middleware.get_context_from_response(self.scope, message))
        except Exception:
            warn_once("asgi_response_context", "beeline: get_context_from_response failed", exc_info=True)
            self.root.add_context_field("response.status_code", message.get("status"))
        self.add_route()

    def add_route(self) -> None:
        if "request.route" in self.root.fields:
            return
        try:
            route = route_from_scope(self.scope, self.root_path)
        except Exception:
            warn_once("asgi_route", "beeline: could not read the matched route", exc_info=True)
            return
        if route is not None:
            self.root.add_context_field("request.route", route)

    def app_failed(self, exc: BaseException) -> None:
        if self.done:
            return
        # Cancellation and interpreter exit are not application errors (as in `tracer()`).
        if isinstance(exc, Exception):
            # The same error fields as the WSGI middlewares: request.error, request.error_detail
            # and the app.exception_* trio.
            self.root.add_context(error_fields(exc))
            if not self.started:
                # What the server answers when an app raises before starting its response.
                self.root.add_context_field("response.status_code", 500)

    def finish(self) -> None:
        if self.done:
            return
        self.done = True
        self.add_route()
        try:
            beeline.finish_trace(self.root)
        except Exception:
            warn_once("asgi_finish", "beeline: could not finish the request's trace", exc_info=True)
