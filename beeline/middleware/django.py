"""Trace every request a Django project serves, under WSGI or ASGI, with sync or async views.

    MIDDLEWARE = [
        "beeline.middleware.django.HoneyMiddleware",   # HTTP and database spans
        ...
    ]

`HoneyMiddlewareHttp` records the HTTP side only; `HoneyMiddlewareWithPOST` also records the
form body as `request.post` (it reads the body, so only choose it when nothing later needs the
raw stream). Each request is one trace whose root span, `django_http_<method>`, carries the
reference's request and response fields, continues the caller's trace from its headers through
the configured parser hook, and ends when the response is really finished: after the last chunk
of a streamed body, or when the request fails, with the error recorded.

Subclasses may override `get_context_from_request(request)` and
`get_context_from_response(request, response)`, as with honeycomb-beeline. An error in either is
logged once and the request goes on with the default fields.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

import django
from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest

import beeline
from beeline.decorators import stringify_exception
from beeline.internal import warn_once
from beeline.middleware import django_db
from beeline.middleware.django_db import HoneyDBWrapper
from beeline.middleware.django_stream import attach_to_streaming_response
from beeline.propagation import Request
from beeline.trace import Span, current_span_var

__all__ = [
    "DjangoRequest",
    "HoneyDBWrapper",
    "HoneyMiddleware",
    "HoneyMiddlewareBase",
    "HoneyMiddlewareHttp",
    "HoneyMiddlewareWithPOST",
]

log = logging.getLogger("beeline")

if django.VERSION < (4, 2):  # pragma: no cover - the test matrix starts at 4.2
    log.warning("beeline: Django %s is older than 4.2, the oldest version this middleware is tested with",
                django.get_version())

# The request's trace state rides on the request object: `process_exception` runs in another
# thread under ASGI, where the request's ContextVar state is not the one in effect.
_STATE_ATTRIBUTE = "_beeline_request_trace"


class DjangoRequest(Request):
    """A `beeline.propagation.Request` over a Django `HttpRequest`, for parser hooks."""

    __slots__ = ("_request",)

    def __init__(self, request: Any) -> None:
        self._request = request

    def header(self, key: str) -> Optional[str]:
        name = _META_NAMES.get(key) or _meta_name(key)
        if name in _UNPREFIXED:
            return self._request.META.get(name) or None
        return self._request.META.get(name)

    def method(self) -> Optional[str]:
        return self._request.method

    def scheme(self) -> Optional[str]:
        return _safely(lambda: self._request.scheme, None)

    def host(self) -> Optional[str]:
        return request_host(self._request)

    def path(self) -> Optional[str]:
        return self._request.path

    def query(self) -> Optional[str]:
        return self._request.META.get("QUERY_STRING")

    def middleware_request(self) -> Any:
        return self._request


# The two headers WSGI (and Django's ASGI handler) keep in META without the HTTP_ prefix.
_UNPREFIXED = frozenset(("CONTENT_TYPE", "CONTENT_LENGTH"))
# Header name -> META key. Parser hooks ask for the same few headers on every request; the cache
# stops growing at a size no real set of hooks reaches.
_META_NAMES: dict = {}


def _meta_name(key: str) -> str:
    name = key.upper().replace("-", "_")
    if name not in _UNPREFIXED:
        name = "HTTP_" + name
    if len(_META_NAMES) < 64:
        _META_NAMES[key] = name
    return name


def _safely(read: Callable[[], Any], default: Any) -> Any:
    try:
        return read()
    except Exception:
        return default


def request_host(request: Any) -> Optional[str]:
    """`request.get_host()`, or the raw Host header when Django refuses it (DisallowedHost): a
    bad Host is Django's to answer, never an exception from the middleware."""
    try:
        return request.get_host()
    except Exception:
        meta = request.META
        return meta.get("HTTP_HOST") or meta.get("SERVER_NAME")


def trace_name(request: Any) -> str:
    method = getattr(request, "method", None)
    return "django_http_%s" % method.lower() if method else "django_http"


def request_context(request: Any) -> dict:
    """The root span's request fields, with the reference's names and value types.

    This runs on every request, so the usual case reads what it can straight from META (one
    guarded block); anything unusual, or any error on the way, takes the careful path, which
    asks Django for each field separately and keeps whatever it can get."""
    try:
        context = _quick_request_context(request)
    except Exception:
        context = None
    return context if context is not None else _careful_request_context(request)


# Request classes whose host and scheme come from HttpRequest's own code (WSGIRequest and
# ASGIRequest, and subclasses that leave those alone): only for them may the quick path read
# META instead of calling get_host() and is_secure(). Looked up once per class.
_PLAIN_CLASSES: dict = {}


def _is_plain(cls: type) -> bool:
    plain = all(getattr(cls, name, None) is getattr(HttpRequest, name)
                for name in ("get_host", "_get_raw_host", "is_secure"))
    _PLAIN_CLASSES[cls] = plain
    return plain


def _quick_request_context(request: Any) -> Optional[dict]:
    """The fields of `_careful_request_context`, with the same values and types, at a fraction of
    the cost; None when the request is not one this shortcut is sure about."""
    cls = type(request)
    plain = _PLAIN_CLASSES.get(cls)
    if not (plain if plain is not None else _is_plain(cls)):
        return None
    meta = request.META
    method = request.method
    # get_host() returns the Host header itself when it is valid, and request_host() falls back
    # to that same header when it is not: with a non-empty Host and no X-Forwarded-Host (which
    # USE_X_FORWARDED_HOST may prefer), the answer is the header, validation or not.
    host = meta.get("HTTP_HOST")
    if not host or "HTTP_X_FORWARDED_HOST" in meta:
        host = request_host(request)
    scheme = request.scheme
    # request.GET parses the query on first use (and Django caches it on the request): with no
    # query string there is nothing to parse, unless something already set request.GET.
    query = request.__dict__.get("GET")
    if query is not None:
        query = query.dict()
    elif meta.get("QUERY_STRING"):
        query = request.GET.dict()
    else:
        query = {}
    return {
        "name": "django_http_" + method.lower() if method else "django_http",
        "type": "http_server",
        "request.host": host,
        "request.method": method,
        "request.path": request.path,
        "request.remote_addr": meta.get("REMOTE_ADDR"),
        "request.content_length": meta.get("CONTENT_LENGTH", 0),
        "request.user_agent": meta.get("HTTP_USER_AGENT"),
        "request.scheme": scheme,
        # is_secure() is `scheme == "https"` for the plain classes.
        "request.secure": scheme == "https",
        "request.query": query,
        "request.xhr": meta.get("HTTP_X_REQUESTED_WITH") == "XMLHttpRequest",
    }


def _careful_request_context(request: Any) -> dict:
    """Each field read on its own, so one that Django refuses does not cost the others."""
    meta = request.META
    return {
        "name": trace_name(request),
        "type": "http_server",
        "request.host": request_host(request),
        "request.method": request.method,
        "request.path": request.path,
        "request.remote_addr": meta.get("REMOTE_ADDR"),
        # The raw META string when present, the int 0 when absent, as in the reference.
        "request.content_length": meta.get("CONTENT_LENGTH", 0),
        "request.user_agent": meta.get("HTTP_USER_AGENT"),
        "request.scheme": _safely(lambda: request.scheme, None),
        "request.secure": _safely(request.is_secure, False),
        # Parsed once here and cached by Django; a query Django refuses (too many fields) is
        # left for Django to refuse to the view, not turned into an error here.
        "request.query": _safely(lambda: request.GET.dict(), {}),
        "request.xhr": meta.get("HTTP_X_REQUESTED_WITH") == "XMLHttpRequest",
    }


def error_fields(exc: BaseException) -> dict:
    return {"request.error": str(type(exc)), "request.error_detail": stringify_exception(exc)}


class HoneyMiddlewareBase:
    """The HTTP side: one `http_server` root span per request. Usable as sync or async
    middleware; Django picks the mode that avoids a thread switch."""

    sync_capable = True
    async_capable = True
    #: Whether queries made while serving the request become spans.
    trace_db = False

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response
        self._is_async = iscoroutinefunction(get_response)
        # With the default override points, the per-request code builds their fields itself
        # (same fields, fewer calls); a subclass that overrides one is always asked.
        cls = type(self)
        self._default_request_fields = cls.get_context_from_request is HoneyMiddlewareBase.get_context_from_request
        self._default_response_fields = (
            cls.get_context_from_response is HoneyMiddlewareBase.get_context_from_response)
        if self._is_async:
            markcoroutinefunction(self)
            if type(self).process_view is HoneyMiddlewareBase.process_view:
                # Django runs a synchronous process_view of an async middleware through
                # sync_to_async, a thread switch on every request; this one never blocks.
                self.process_view = self._process_view_async
        if self.trace_db:
            try:
                django_db.install()
            except Exception:
                warn_once("django_db_install", "beeline: database spans are off: could not install the wrapper",
                          exc_info=True)

    # ---- override points (the reference's names) ---------------------------------------------

    def get_context_from_request(self, request: Any) -> dict:
        return request_context(request)

    def get_context_from_response(self, request: Any, response: Any) -> dict:
        return {"response.status_code": int(response.status_code)}

    # ---- Django's middleware protocol -----------------------------------------------------------

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # The reference's middleware was synchronous, and so is an override of its
        # create_http_event: Django must call such a subclass synchronously.
        if "create_http_event" in vars(cls) and "async_capable" not in vars(cls):
            cls.async_capable = False

    def __call__(self, request: Any) -> Any:
        if self._is_async:
            return self.__acall__(request)
        return self.create_http_event(request)

    def create_http_event(self, request: Any) -> Any:
        """Serve one request synchronously inside its root span (the reference's name for it:
        a subclass may override it and call `super().create_http_event(request)`)."""
        trace = self._start(request)
        if trace is None:
            return self.get_response(request)
        try:
            response = self.get_response(request)
        except BaseException as exc:
            trace.failed(exc)
            raise
        return trace.responded(response)

    async def __acall__(self, request: Any) -> Any:
        trace = self._start(request)
        if trace is None:
            return await self.get_response(request)
        try:
            response = await self.get_response(request)
        except BaseException as exc:
            trace.failed(exc)
            raise
        return trace.responded(response)

    def process_view(self, request: Any, view_func: Callable, view_args: Any, view_kwargs: Any) -> None:
        """Adds `django.view_func` and `request.route` before the view runs, as the reference
        did; subclasses that extend it with `super().process_view(...)` keep working."""
        trace = getattr(request, _STATE_ATTRIBUTE, None)
        if trace is not None:
            try:
                trace.add_route(view_func)
            except Exception:
                warn_once("django_view", "beeline: could not record the view", exc_info=True)
        return None

    async def _process_view_async(self, request: Any, view_func: Callable, view_args: Any, view_kwargs: Any) -> None:
        # Not self.process_view: in async mode that name is this very method.
        return HoneyMiddlewareBase.process_view(self, request, view_func, view_args, view_kwargs)

    def process_exception(self, request: Any, exception: BaseException) -> None:
        """Called by Django with an exception the view raised, before it turns it into a
        response. Under ASGI this runs in another thread, hence the lookup on the request."""
        trace = getattr(request, _STATE_ATTRIBUTE, None)
        if trace is not None:
            try:
                trace.record_error(exception)
            except Exception:
                warn_once("django_exception", "beeline: could not record the view's exception", exc_info=True)
        return None

    # ---- internals ------------------------------------------------------------------------------

    def _start(self, request: Any) -> Optional["RequestTrace"]:
        if beeline.get_beeline() is None:
            return None
        try:
            if self._default_request_fields:
                context = request_context(request)
            else:
                context = self.get_context_from_request(request)
        except Exception:
            warn_once("django_request_context", "beeline: get_context_from_request failed; using the default fields",
                      exc_info=True)
            context = _safely(lambda: request_context(request), None) or {
                "name": trace_name(request), "type": "http_server"}
        prior = current_span_var.get()
        try:
            root = beeline.propagate_and_start_trace(context, DjangoRequest(request))
        except Exception:
            warn_once("django_start", "beeline: could not start the request's trace", exc_info=True)
            current_span_var.set(prior)
            return None
        if root is None:
            return None
        trace = RequestTrace(self, request, root, prior)
        try:
            setattr(request, _STATE_ATTRIBUTE, trace)
        except Exception:  # a request class with __slots__: only process_exception loses out
            pass
        return trace


class HoneyMiddlewareHttp(HoneyMiddlewareBase):
    """HTTP spans only, no database spans."""


class HoneyMiddleware(HoneyMiddlewareBase):
    """HTTP spans, plus a span for each query made on any connection while serving the request."""

    trace_db = True


class HoneyMiddlewareWithPOST(HoneyMiddleware):
    """Like `HoneyMiddleware`, and records the form fields as `request.post`. Reading
    `request.POST` consumes the body stream: a view or middleware that reads `request.body`
    or the raw stream afterwards gets nothing (honeycomb-beeline issue #74)."""

    def get_context_from_request(self, request: Any) -> dict:
        context = super().get_context_from_request(request)
        try:
            context["request.post"] = request.POST.dict()
        except Exception:
            # A body Django cannot parse: the view will meet the same error and answer it.
            warn_once("django_post", "beeline: could not read request.POST", exc_info=True)
        return context


class RequestTrace:
    """One request's trace: its root span, the state to restore, and how it ends."""

    __slots__ = ("middleware", "request", "root", "prior", "prior_db_root", "db", "inner", "done")

    def __init__(self, middleware: HoneyMiddlewareBase, request: Any, root: Span, prior: Optional[Span]) -> None:
        self.middleware = middleware
        self.request = request
        self.root = root
        self.prior = prior
        self.db = middleware.trace_db
        self.prior_db_root = django_db.request_root.get()
        if self.db:
            django_db.request_root.set(root)
        # The span active at the end of the middleware chain, made active again while a
        # streamed body is produced.
        self.inner: Optional[Span] = root
        self.done = False

    # ---- the request's two outcomes --------------------------------------------------------

    def failed(self, exc: BaseException) -> None:
        """The middleware chain raised (DEBUG_PROPAGATE_EXCEPTIONS, or the task was cancelled):
        the server answers 500 or nothing, and the trace ends now."""
        try:
            if isinstance(exc, Exception):
                self.record_error(exc)
                self.root.fields.setdefault("response.status_code", 500)
            self.add_route()
        except Exception:
            warn_once("django_failed", "beeline: could not record a failed request", exc_info=True)
        self.finish()
        self.restore()

    def responded(self, response: Any) -> Any:
        fields = self.root.fields
        try:
            if self.middleware._default_response_fields:
                try:
                    fields["response.status_code"] = int(response.status_code)
                except Exception:  # not a usual response: the general path logs and copes
                    self.add_response_fields(response)
            else:
                self.add_response_fields(response)
            if "django.view_func" not in fields or "request.route" not in fields:
                self.add_route()
        except Exception:
            warn_once("django_response", "beeline: could not record the response", exc_info=True)
        deferred = False
        if getattr(response, "streaming", False):
            try:
                self.inner = current_span_var.get()
                deferred = attach_to_streaming_response(response, self)
            except Exception:
                warn_once("django_streaming", "beeline: could not follow a streamed response; its trace ends "
                          "before the body is sent", exc_info=True)
        if not deferred:
            self.finish()
        self.restore()
        return response

    # ---- fields ------------------------------------------------------------------------------

    def record_error(self, exc: BaseException) -> None:
        fields = self.root.fields
        for key, value in error_fields(exc).items():
            fields.setdefault(key, value)

    def add_response_fields(self, response: Any) -> None:
        try:
            context = self.middleware.get_context_from_response(self.request, response)
        except Exception:
            warn_once("django_response_context", "beeline: get_context_from_response failed", exc_info=True)
            context = {"response.status_code": _safely(lambda: int(response.status_code), None)}
        if context:
            self.root.add_context(context)

    def add_route(self, view_func: Any = None) -> None:
        """`request.route` (the URL pattern) and `django.view_func` (the view's name), from the
        resolver match Django stored on the request. Also called after the response, for
        requests whose process_view never ran (another middleware answered first, or raised)."""
        fields = self.root.fields
        if "request.route" in fields and "django.view_func" in fields:
            return
        match = getattr(self.request, "resolver_match", None)
        if match is None:
            return
        route = getattr(match, "route", None)
        if route is not None:
            fields.setdefault("request.route", route)
        name = getattr(view_func if view_func is not None else getattr(match, "func", None), "__name__", None)
        if name is not None:
            fields.setdefault("django.view_func", name)

    # ---- state ---------------------------------------------------------------------------------

    def activate(self) -> tuple:
        """Make the request's spans current in the calling context (for one step of a streamed
        body); returns what `deactivate` needs to put the caller's state back."""
        return (
            current_span_var.set(self.inner),
            django_db.request_root.set(self.root if self.db else django_db.request_root.get()),
        )

    def deactivate(self, tokens: tuple) -> None:
        self.inner = current_span_var.get()
        current_span_var.reset(tokens[0])
        django_db.request_root.reset(tokens[1])

    def restore(self) -> None:
        """Give the context running the middleware back exactly what it had before the request,
        whatever the view left open, so nothing leaks into the next request."""
        current_span_var.set(self.prior)
        if self.db:
            django_db.request_root.set(self.prior_db_root)

    def finish(self) -> None:
        if self.done:
            return
        self.done = True
        # The request holds this object; letting go of the request breaks the cycle, so both
        # are freed as soon as the server drops them, not at the next garbage collection.
        self.request = None
        try:
            beeline.finish_trace(self.root)
        except Exception:
            warn_once("django_finish", "beeline: could not finish the request's trace", exc_info=True)
