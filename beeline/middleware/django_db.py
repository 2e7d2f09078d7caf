"""Database spans for Django: one span per query, through `connection.execute_wrappers`.

`HoneyDBWrapper` is the reference's public wrapper, usable on its own:

    with connection.execute_wrapper(HoneyDBWrapper()):
        run_queries()

Inside a trace each query becomes a child span named `django_<vendor>_query` (for example
`django_sqlite_query`) with `type: db`, `db.query`, `db.query_args`, `db.duration` (ms), and on
failure `db.error` (the exception type) and `db.error_detail` (its message). It adds the
rollups `db.call_count` and `db.total_duration`, so the request's root span carries
`rollup.db.call_count` and `rollup.db.total_duration`.

`HoneyMiddleware` does not wrap connections per request, as the reference did: the reference
wrapped the connections of the thread running the middleware, which under ASGI is not the
thread that runs the queries (Django gives each request its own thread for synchronous code,
with its own connections). Instead one gated wrapper is put, once, on every connection the
process uses (as each connects, and at the start of each request for connections that already
exist), and it records a query only when the request being served asked for DB spans: the
middleware marks that in a ContextVar, which `sync_to_async` and the ORM's async methods carry
into whatever thread runs the query. Outside such a request the wrapper only passes the call on.
"""

from __future__ import annotations

import logging
import threading
import time
from contextvars import ContextVar
from typing import Any, Callable, Optional

from django.core.signals import request_started
from django.db import connections
from django.db.backends.signals import connection_created

import beeline
from beeline.decorators import exception_fields, stringify_exception
from beeline.internal import warn_once
from beeline.trace import Span, active_span

__all__ = ["HoneyDBWrapper", "install", "request_root", "uninstall"]

log = logging.getLogger("beeline")

#: The root span of the request whose queries are recorded by the installed wrapper; None (the
#: default) outside such a request. Set by `HoneyMiddleware` for the duration of a request and
#: during each step of a streamed body.
request_root: ContextVar[Optional[Span]] = ContextVar("beeline_django_db_root", default=None)

# True while a query is inside one of our spans, so that a second wrapper of ours further in
# the chain (a user's HoneyDBWrapper on a connection that also has the installed one) does not
# record the same query twice.
_in_query: ContextVar[bool] = ContextVar("beeline_django_db_in_query", default=False)

_SIGNAL_UID = "beeline.middleware.django_db"


class HoneyDBWrapper:
    """A `connection.execute_wrapper` that records each query as a span.

    With no trace active it starts one per query, as the reference did, so a management
    command that wraps its connection still reports its queries.
    """

    def __call__(self, execute: Callable, sql: Any, params: Any, many: bool, context: dict) -> Any:
        if _in_query.get() or beeline.get_beeline() is None:
            return execute(sql, params, many, context)
        return self._traced(execute, sql, params, many, context)

    def _open(self, sql: Any, params: Any, context: dict) -> Optional[Span]:
        fields = {
            "name": "django_%s_query" % _vendor(context),
            "type": "db",
            "db.query": sql,
            "db.query_args": params,
        }
        if active_span() is None:
            return beeline.start_trace(fields)
        return beeline.start_span(fields)

    def _traced(self, execute: Callable, sql: Any, params: Any, many: bool, context: dict) -> Any:
        try:
            span = self._open(sql, params, context)
        except Exception:
            warn_once("django_db_start", "beeline: could not start a database span", exc_info=True)
            span = None
        if span is None:
            return execute(sql, params, many, context)
        token = _in_query.set(True)
        error: Optional[BaseException] = None
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        except BaseException as exc:
            error = exc
            raise
        finally:
            duration_ms = (time.perf_counter() - start) * 1000.0
            _in_query.reset(token)
            _close(span, duration_ms, context, error)


class _RequestDBWrapper(HoneyDBWrapper):
    """The wrapper `HoneyMiddleware` installs on every connection: records queries only inside a
    request served by `HoneyMiddleware`, and only as part of the trace active there (code run
    with `beeline.untraced` stays untraced)."""

    enabled = True

    def __call__(self, execute: Callable, sql: Any, params: Any, many: bool, context: dict) -> Any:
        root = request_root.get()
        if (
            root is None
            or root.finished
            or not self.enabled
            or _in_query.get()
            or active_span() is None
            or beeline.get_beeline() is None
        ):
            return execute(sql, params, many, context)
        return self._traced(execute, sql, params, many, context)


def _vendor(context: dict) -> str:
    connection = context.get("connection") if isinstance(context, dict) else None
    return getattr(connection, "vendor", None) or "unknown"


def _cursor_fields(context: dict) -> dict:
    """`db.last_insert_id` and `db.rows_affected` from the DB-API cursor, when it has them (the
    reference asked only PostgreSQL and MySQL; psycopg 3 has no `lastrowid`)."""
    wrapper = context.get("cursor") if isinstance(context, dict) else None
    if wrapper is None:
        return {}
    cursor = getattr(wrapper, "cursor", wrapper)
    fields = {}
    for field, attribute in (("db.last_insert_id", "lastrowid"), ("db.rows_affected", "rowcount")):
        try:
            fields[field] = getattr(cursor, attribute)
        except Exception:  # a closed or exotic cursor: the field is simply absent
            continue
    return fields


def _close(span: Span, duration_ms: float, context: dict, error: Optional[BaseException]) -> None:
    """Fill in and finish a query span; never raises (the query's own outcome stands)."""
    try:
        fields = {"db.duration": duration_ms}
        fields.update(_cursor_fields(context))
        if isinstance(error, Exception):
            fields["db.error"] = str(type(error))
            fields["db.error_detail"] = stringify_exception(error)
            fields.update(exception_fields(error))
        span.add_context(fields)
        if active_span() is span:
            # Rollups go to the active span and its trace: ours, while it is still open.
            beeline.add_rollup_field("db.call_count", 1)
            beeline.add_rollup_field("db.total_duration", duration_ms)
    except Exception:
        warn_once("django_db_fields", "beeline: could not record a query's fields", exc_info=True)
    try:
        if span.is_root():
            beeline.finish_trace(span)
        else:
            beeline.finish_span(span)
    except Exception:
        warn_once("django_db_finish", "beeline: could not finish a database span", exc_info=True)


# ---- installation --------------------------------------------------------------------------

_REQUEST_WRAPPER = _RequestDBWrapper()


def _add_to(connection: Any) -> None:
    wrappers = getattr(connection, "execute_wrappers", None)
    if isinstance(wrappers, list) and _REQUEST_WRAPPER not in wrappers:
        # First in the list is outermost, so the span times every other wrapper too. Never
        # appended: `connection.execute_wrapper()` removes the last entry when its block ends,
        # and a connection made inside such a block must not lose the user's wrapper for ours.
        wrappers.insert(0, _REQUEST_WRAPPER)


def _on_connection_created(sender: Any, connection: Any = None, **kwargs: Any) -> None:
    try:
        _add_to(connection)
    except Exception:
        warn_once("django_db_install", "beeline: could not wrap a database connection", exc_info=True)


# The wrapper goes on each connection as it connects (connection_created); only connections that
# were already open when `install()` ran lack it, and a thread can only have those until its
# first scan after that install. So each thread scans once per install, not on every request.
_install_generation = 0
_scanned = threading.local()


def add_to_open_connections(**kwargs: Any) -> None:
    """Wrap the connections this thread (or task) already holds. Connected to `request_started`,
    which Django sends from the thread that runs the request's synchronous code (connections
    belong to a thread)."""
    generation = _install_generation
    if getattr(_scanned, "generation", None) == generation:
        return
    try:
        for connection in connections.all(initialized_only=True):
            _add_to(connection)
        _scanned.generation = generation
    except Exception:
        warn_once("django_db_install", "beeline: could not wrap a database connection", exc_info=True)


def install() -> None:
    """Put the gated wrapper on every connection from now on. Idempotent."""
    global _install_generation
    _install_generation += 1  # connections opened while uninstalled: every thread scans again
    _RequestDBWrapper.enabled = True
    connection_created.connect(_on_connection_created, weak=False, dispatch_uid=_SIGNAL_UID)
    request_started.connect(add_to_open_connections, weak=False, dispatch_uid=_SIGNAL_UID)
    add_to_open_connections()


def uninstall() -> None:
    """Stop recording queries. Connections of other threads keep the (now inert) wrapper until
    they close; this thread's connections lose it at once."""
    _RequestDBWrapper.enabled = False
    connection_created.disconnect(dispatch_uid=_SIGNAL_UID)
    request_started.disconnect(dispatch_uid=_SIGNAL_UID)
    try:
        for connection in connections.all(initialized_only=True):
            wrappers = getattr(connection, "execute_wrappers", None)
            while isinstance(wrappers, list) and _REQUEST_WRAPPER in wrappers:
                wrappers.remove(_REQUEST_WRAPPER)
    except Exception:
        warn_once("django_db_uninstall", "beeline: could not unwrap a database connection", exc_info=True)
