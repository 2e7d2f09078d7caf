"""Flask: every request one trace, and one span per SQL statement.

    from beeline.middleware.flask import HoneyMiddleware
    HoneyMiddleware(app, db_events=True)

The request part is the shared WSGI middleware (`flask_http_<method>` root spans) around
`app.wsgi_app`, so the trace ends when the response is really finished, streamed or not, and
also when the app raises. Flask adds three fields to the root span:

* `request.route`: the URL rule (`/users/<name>`), like the other frameworks (honeycomb-beeline
  wrote the endpoint name here);
* `flask.endpoint`: the endpoint name;
* `request.error` / `request.error_detail` (plus `app.exception_*`) for an exception Flask turns
  into a 500.

No Flask hook registration is used (Flask refuses `before_request` and `teardown_request` after
the first request, and signals need blinker): the app instance's own `full_dispatch_request`
and `handle_exception` are wrapped, which works whenever the middleware is constructed. Each
step is done once per app and undone by `unpatch(app)`.

DB spans (`flask_db_query`) come from listeners on the app's Flask-SQLAlchemy engines (all
binds), attached the first time a request runs (Flask-SQLAlchemy may be set up after the
middleware). Pass `engines=[...]` for engines Flask-SQLAlchemy does not manage. An app without
Flask-SQLAlchemy and without `engines=` keeps honeycomb-beeline's scope: every engine, for
statements run inside that app's context.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any, Callable, Iterable, List, Optional

import flask

from beeline import patch
from beeline.internal import warn_once
from beeline.middleware import wsgi
from beeline.middleware.wsgi import ROOT_SPAN_KEY, error_fields

__all__ = ["DB_SPAN_NAME", "HoneyDBMiddleware", "HoneyMiddleware", "HoneyWSGIMiddleware", "unpatch"]

log = logging.getLogger("beeline")

DB_SPAN_NAME = "flask_db_query"
_EXTENSION_KEY = "beeline"
# The request object behind `flask.request` (raises outside a request context).
_current_request = flask.request._get_current_object
# Environ key: True when the view's response is already rendered into a list, with no close
# callbacks, so serving it runs no application code (see wsgi.HoneyWSGIMiddleware._ready_key).
_BODY_READY_KEY = "beeline.flask.body_ready"
# What werkzeug keeps a rendered body in (its `is_sequence`, without the property call).
_RENDERED = (list, tuple)
_WRAPPED_METHODS = ("full_dispatch_request", "handle_exception")


class HoneyWSGIMiddleware(wsgi.HoneyWSGIMiddleware):
    """The WSGI part of the Flask middleware, around `app.wsgi_app`: `flask_http_<method>`."""

    middleware_name = "flask"

    def __init__(self, app: Any) -> None:
        super().__init__(app)
        # Directly around Flask's own wsgi_app, the body is the one whose readiness the
        # dispatch hook reports (anything in between could wrap it in code of its own).
        if getattr(app, "__func__", None) is flask.Flask.wsgi_app:
            self._ready_key = _BODY_READY_KEY


class HoneyMiddleware:
    """Trace every request of `app` (and, with `db_events`, its SQL statements)."""

    def __init__(self, app: flask.Flask, db_events: bool = True, engines: Optional[Iterable[Any]] = None) -> None:
        self.app = app
        self.db: Optional[HoneyDBMiddleware] = None
        try:
            state = _instrumentation(app)
            state.install_wsgi()
            state.install_hooks()
        except Exception:
            warn_once("flask_install", "beeline: could not instrument the Flask app; its requests are not traced "
                      "or lack Flask fields", exc_info=True)
            return
        if db_events:
            self.db = HoneyDBMiddleware(app, engines=engines)

    def unpatch(self) -> bool:
        """Undo everything this middleware (or another for the same app) did to `app`."""
        return unpatch(self.app)


class HoneyDBMiddleware:
    """A `flask_db_query` span for each SQL statement the app's SQLAlchemy engines run.

    As in honeycomb-beeline, `HoneyDBMiddleware(app)` or `HoneyDBMiddleware()` then
    `init_app(app)`; a subclass may override `init_app` and the three SQLAlchemy listeners
    (`before_cursor_execute`, `after_cursor_execute`, `handle_error`), and its overrides are the
    listeners then attached (calling `super()` keeps the default span).
    """

    def __init__(self, app: Optional[flask.Flask] = None, engines: Optional[Iterable[Any]] = None) -> None:
        self.app = app
        self._engines = list(engines) if engines is not None else None
        # The tracer the default listeners hand each statement to, set when they are attached.
        self._delegate: Any = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: flask.Flask) -> None:
        """Attach the listeners to `app`'s engines (now, or at its first request)."""
        self.app = app
        try:
            state = _instrumentation(app)
            if _overrides_listeners(type(self)):
                state.db_middleware = self
            state.want_db(self._engines)
            state.install_hooks()
            if not state.db_pending:
                return
            if state.db_explicit is not None or _inside_app_context_of(app):
                state.attach_db()
            else:
                # Outside the app's context, only engines already made are found; otherwise the
                # first request (which runs in the app's context) attaches the listeners.
                found = _engines_made_for(app)
                if found:
                    state.attach_db(found)
        except Exception:
            warn_once("flask_db_install", "beeline: could not set up DB spans for the Flask app", exc_info=True)

    # The SQLAlchemy engine listeners, with SQLAlchemy's arguments.

    def before_cursor_execute(self, conn, cursor, statement, parameters, context, executemany) -> None:
        (self._delegate or _query_tracer()).before_cursor_execute(
            conn, cursor, statement, parameters, context, executemany)

    def after_cursor_execute(self, conn, cursor, statement, parameters, context, executemany) -> None:
        (self._delegate or _query_tracer()).after_cursor_execute(
            conn, cursor, statement, parameters, context, executemany)

    def handle_error(self, context) -> None:
        (self._delegate or _query_tracer()).handle_error(context)

    def listeners(self) -> list:
        return [(name, getattr(self, name)) for name in _DB_LISTENERS]


_DB_LISTENERS = ("before_cursor_execute", "after_cursor_execute", "handle_error")


def _overrides_listeners(cls: type) -> bool:
    return any(getattr(cls, name) is not getattr(HoneyDBMiddleware, name) for name in _DB_LISTENERS)


def unpatch(app: flask.Flask) -> bool:
    """Remove beeline from `app`: its WSGI middleware, the wrapped methods, the DB listeners.
    Returns False when the app was not instrumented."""
    state = app.extensions.pop(_EXTENSION_KEY, None)
    if not isinstance(state, _AppInstrumentation):
        return False
    state.remove()
    return True


# ---- per-app state ------------------------------------------------------------------------------


def _instrumentation(app: flask.Flask) -> "_AppInstrumentation":
    state = app.extensions.get(_EXTENSION_KEY)
    if not isinstance(state, _AppInstrumentation):
        state = _AppInstrumentation(app)
        app.extensions[_EXTENSION_KEY] = state
    return state


def _inside_app_context_of(app: flask.Flask) -> bool:
    return flask.has_app_context() and flask.current_app._get_current_object() is app


class _AppInstrumentation:
    """What beeline changed on one app, kept in `app.extensions["beeline"]` so that each change
    is made once and can be undone."""

    def __init__(self, app: flask.Flask) -> None:
        self._app = weakref.ref(app)
        self.wsgi_middleware: Optional[HoneyWSGIMiddleware] = None
        self.hooks_installed = False
        self.db_pending = False
        self.db_explicit: Optional[List[Any]] = None
        self.db_targets: List[Any] = []
        # A HoneyDBMiddleware subclass with listeners of its own: attached instead of ours.
        self.db_middleware: Optional[HoneyDBMiddleware] = None

    @property
    def app(self) -> Optional[flask.Flask]:
        return self._app()

    # ---- installing ------------------------------------------------------------------------

    def install_wsgi(self) -> None:
        app = self.app
        if app is None or self.wsgi_middleware is not None:
            return
        self.wsgi_middleware = HoneyWSGIMiddleware(app.wsgi_app)
        app.wsgi_app = self.wsgi_middleware

    def install_hooks(self) -> None:
        app = self.app
        if app is None or self.hooks_installed:
            return
        # The error hook first: if wrapping fails, the app is left with neither hook.
        patch.wrap(app, "handle_exception", self._around_unhandled)
        if not patch.is_wrapped(app, "full_dispatch_request"):
            app.full_dispatch_request = self._dispatch_hook(app.full_dispatch_request)  # type: ignore[method-assign]
        self.hooks_installed = True

    def want_db(self, engines: Optional[List[Any]]) -> None:
        if engines is not None:
            self.db_explicit = engines
            self.db_pending = True
        elif not self.db_targets:
            self.db_pending = True

    def attach_db(self, engines: Optional[List[Any]] = None) -> None:
        """Attach the query listeners to `engines`, or to the ones found from inside the app's
        context (Flask-SQLAlchemy 3 only gives them out there)."""
        self.db_pending = False
        app = self.app
        if app is None:
            return
        try:
            from beeline.middleware.sqlalchemy import instrument_engine
        except ImportError:
            log.debug("beeline: SQLAlchemy is not installed; no DB spans")
            return
        try:
            if self.db_explicit is not None:
                targets, tracer = self.db_explicit, _query_tracer()
            elif engines:
                targets, tracer = engines, _query_tracer()
            else:
                found = _flask_sqlalchemy_engines(app)
                if found is not None:
                    targets, tracer = found, _query_tracer()
                else:
                    from sqlalchemy.engine import Engine

                    log.info("beeline: no Flask-SQLAlchemy on %r and no engines= given; tracing the statements "
                             "of every SQLAlchemy engine inside this app's context", app.name)
                    targets, tracer = [Engine], _fallback_query_tracer()
                    _fallback_apps.add(app)
            middleware = self.db_middleware
            if middleware is not None:
                middleware._delegate = tracer
                tracer = middleware
            for target in targets:
                instrument_engine(target, tracer, owner=app)
                if target not in self.db_targets:
                    self.db_targets.append(target)
        except Exception:
            warn_once("flask_db_attach", "beeline: could not attach the SQLAlchemy listeners; no DB spans",
                      exc_info=True)

    # ---- removing --------------------------------------------------------------------------

    def remove(self) -> None:
        app = self.app
        if app is None:
            return
        mw = self.wsgi_middleware
        if mw is not None:
            if app.wsgi_app is mw:
                app.wsgi_app = mw.app
            else:
                mw.enabled = False  # wrapped by something else since: keep the chain, trace nothing
        if self.hooks_installed:
            for name in _WRAPPED_METHODS:
                if patch.unwrap(app, name):
                    # unwrap leaves the bound method as an instance attribute; the class's
                    # method is the original, so drop it.
                    vars(app).pop(name, None)
        _fallback_apps.discard(app)
        if self.db_targets:
            from beeline.middleware.sqlalchemy import uninstrument_engine

            for target in self.db_targets:
                uninstrument_engine(target, owner=app)
            self.db_targets = []

    # ---- the wrapped methods ----------------------------------------------------------------

    def _dispatch_hook(self, original: Callable[[], Any]) -> Callable[[], Any]:
        """The app's `full_dispatch_request`, reading the route first. A plain function in the
        app's instance dict rather than a wrapt wrapper: this runs on every request, and the
        wrapper's own dispatch cost about 0.5 us. It carries what `beeline.patch` looks for
        (its marker and `__wrapped__`), so `patch.is_wrapped` and `patch.unwrap` treat it as
        any other patch."""
        state = self

        def full_dispatch_request() -> Any:
            # Runs inside the request and app contexts, after routing and before any
            # before_request function: the rule is known and no query has run yet. The request
            # is taken from its proxy once: every attribute read through `flask.request` costs
            # a proxy lookup, several times the price of the read itself.
            environ = None
            try:
                if state.db_pending:
                    state.attach_db()
                request = _current_request()
                environ = request.environ
                environ[_BODY_READY_KEY] = False  # until this request's response says otherwise
                root = environ.get(ROOT_SPAN_KEY)
                if root is not None:
                    rule = request.url_rule
                    fields = root.fields
                    if rule is not None:
                        fields["request.route"] = rule.rule
                        fields["flask.endpoint"] = rule.endpoint  # what request.endpoint reads
                    else:
                        fields["request.route"] = fields["flask.endpoint"] = None
            except Exception:
                warn_once("flask_dispatch", "beeline: could not read the Flask route", exc_info=True)
            response = original()
            if environ is not None:
                try:
                    # Werkzeug serves a list through its own encoder and runs only the response's
                    # close callbacks at the end: with none, no application code runs.
                    on_close = getattr(response, "_on_close", None)
                    if (on_close is not None and not on_close and type(response.response) in _RENDERED
                            and not response.direct_passthrough):
                        environ[_BODY_READY_KEY] = True
                except Exception:
                    warn_once("flask_body_ready", "beeline: could not inspect the Flask response", exc_info=True)
            return response

        return patch.mark_patched(full_dispatch_request, original)

    def _around_unhandled(self, wrapped, instance, args, kwargs):
        try:
            exc = args[0] if args else kwargs.get("e")
            if isinstance(exc, Exception) and flask.has_request_context():
                root = flask.request.environ.get(ROOT_SPAN_KEY)
                if root is not None:
                    root.fields.update(error_fields(exc))
        except Exception:
            warn_once("flask_error", "beeline: could not record the Flask error", exc_info=True)
        return wrapped(*args, **kwargs)


# ---- DB helpers ---------------------------------------------------------------------------------

_tracers: dict = {}
# Apps whose statements the Engine-class fallback traces: statements run in the context of any
# other app (one without the middleware, or one that is gone) are left alone.
_fallback_apps: "weakref.WeakSet[flask.Flask]" = weakref.WeakSet()


def _in_instrumented_app_context() -> bool:
    return flask.has_app_context() and flask.current_app._get_current_object() in _fallback_apps


def _query_tracer():
    tracer = _tracers.get("app")
    if tracer is None:
        from beeline.middleware.sqlalchemy import QueryTracer

        tracer = _tracers["app"] = QueryTracer(DB_SPAN_NAME)
    return tracer


def _fallback_query_tracer():
    tracer = _tracers.get("fallback")
    if tracer is None:
        from beeline.middleware.sqlalchemy import QueryTracer

        tracer = _tracers["fallback"] = QueryTracer(DB_SPAN_NAME, should_trace=_in_instrumented_app_context)
    return tracer


def _flask_sqlalchemy_engines(app: flask.Flask) -> Optional[List[Any]]:
    """The engines Flask-SQLAlchemy made for `app` (every bind), or None without it."""
    ext = app.extensions.get("sqlalchemy")
    if ext is None:
        return None
    db = getattr(ext, "db", ext)  # Flask-SQLAlchemy 2 stores a state object holding `db`
    engines = getattr(db, "engines", None)  # 3.x: bind key -> Engine, for the current app
    if engines is not None:
        return list(engines.values())
    engine = getattr(db, "engine", None)
    return [engine] if engine is not None else None


def _engines_made_for(app: flask.Flask) -> Optional[List[Any]]:
    """Without an app context: the engines Flask-SQLAlchemy 3 already made for `app`, read from
    where it keeps them (None when that is not available; the first request finds them)."""
    ext = app.extensions.get("sqlalchemy")
    made = getattr(ext, "_app_engines", None)
    try:
        engines = made.get(app) if made is not None else None
    except Exception:
        return None
    return list(engines.values()) if engines else None
