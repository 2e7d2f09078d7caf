"""One span per SQL statement run through a SQLAlchemy engine, inside whatever trace is active.

    from beeline.middleware.sqlalchemy import instrument_engine
    instrument_engine(engine)

The Flask middleware uses this for the app's Flask-SQLAlchemy engines. Each span carries
honeycomb-beeline's `db.*` fields (`db.query`, `db.query_args`, `db.duration`,
`db.last_insert_id`, `db.rows_affected`, `db.error`) and adds the rollups `db.call_count` and
`db.total_duration`, so the request's root span gets `rollup.db.call_count` and
`rollup.db.total_duration`, as the Django middleware does.

The per-statement state (the span and its start time) lives on the statement's SQLAlchemy
execution context, or on the connection that runs it, never on a shared object: statements run
concurrently by different threads cannot see each other's start time (honeycomb-beeline stored it
on the middleware object, so durations were wrong under load).
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
import weakref
from typing import Any, Callable, Optional

from sqlalchemy import event

import beeline
from beeline.internal import warn_once
from beeline.trace import Span, current_span_var

__all__ = ["QueryTracer", "instrument_engine", "query_args", "uninstrument_engine"]

log = logging.getLogger("beeline")

# Attribute on the SQLAlchemy execution context, and key in Connection.info when there is none.
_STATE_ATTR = "_beeline_query"
_INFO_KEY = "beeline.queries"

_EVENTS = ("before_cursor_execute", "after_cursor_execute", "handle_error")
_DATE_TYPES = (datetime.datetime, datetime.date, datetime.time)


def query_args(parameters: Any) -> Any:
    """`db.query_args` as honeycomb-beeline wrote it: positional parameters as a list with dates
    in ISO format, named parameters as a list of "name=value" strings."""
    if isinstance(parameters, dict):
        return ["%s=%s" % (key, value) for key, value in parameters.items()]
    if isinstance(parameters, (list, tuple)):
        return [value.isoformat() if isinstance(value, _DATE_TYPES) else value for value in parameters]
    return parameters


class _Query:
    __slots__ = ("span", "start")

    def __init__(self, span: Span, start: float) -> None:
        self.span = span
        self.start = start


class QueryTracer:
    """The three engine listeners for one span name. `should_trace`, when given, is asked
    before each statement (the Flask fallback uses it to stay inside Flask app contexts)."""

    def __init__(self, span_name: str, should_trace: Optional[Callable[[], bool]] = None) -> None:
        self.span_name = span_name
        self.should_trace = should_trace

    # ---- listeners ---------------------------------------------------------------------------

    def before_cursor_execute(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if beeline.get_beeline() is None or current_span_var.get() is None:
            return
        try:
            if context is not None and getattr(context, _STATE_ATTR, None) is not None:
                return  # already traced by a listener registered on another target (class and engine)
            if self.should_trace is not None and not self.should_trace():
                return
            span = beeline.start_span(
                {
                    "name": self.span_name,
                    "type": "db",
                    "db.query": statement,
                    "db.query_args": query_args(parameters),
                }
            )
            if span is None:
                return
            _store(conn, context, _Query(span, time.perf_counter()))
        except Exception:
            warn_once("sqlalchemy_before", "beeline: could not start a query span", exc_info=True)

    def after_cursor_execute(self, conn, cursor, statement, parameters, context, executemany) -> None:
        query = _take(conn, context)
        if query is None:
            return
        try:
            fields = query.span.fields
            fields["db.last_insert_id"] = getattr(cursor, "lastrowid", None)
            fields["db.rows_affected"] = getattr(cursor, "rowcount", None)
        except Exception:
            warn_once("sqlalchemy_after", "beeline: could not read the cursor's results", exc_info=True)
        _finish(query)

    def handle_error(self, exception_context) -> None:
        query = _take(exception_context.connection, exception_context.execution_context)
        if query is None:
            return
        try:
            query.span.fields["db.error"] = str(exception_context.original_exception)
        except Exception:
            query.span.fields["db.error"] = "unable to decode exception"
        _finish(query)

    # ---- registration ------------------------------------------------------------------------

    def listeners(self) -> list:
        return [(name, getattr(self, name)) for name in _EVENTS]


def _store(conn: Any, context: Any, query: _Query) -> None:
    if context is not None:
        setattr(context, _STATE_ATTR, query)
    else:
        # A connection runs one statement at a time, in one thread; a list covers re-entry.
        conn.info.setdefault(_INFO_KEY, []).append(query)


def _take(conn: Any, context: Any) -> Optional[_Query]:
    try:
        if context is not None:
            query = getattr(context, _STATE_ATTR, None)
            if query is not None:
                setattr(context, _STATE_ATTR, None)
            return query
        if conn is not None:
            pending = conn.info.get(_INFO_KEY)
            if pending:
                return pending.pop()
    except Exception:
        warn_once("sqlalchemy_state", "beeline: lost track of a query span", exc_info=True)
    return None


def _finish(query: _Query) -> None:
    span = query.span
    try:
        duration_ms = (time.perf_counter() - query.start) * 1000.0
        span.fields["db.duration"] = duration_ms
        # Rollups go to the active span: make sure that is this query's span, whatever the
        # driver or other listeners did in between.
        token = current_span_var.set(span)
        try:
            beeline.add_rollup_field("db.call_count", 1)
            beeline.add_rollup_field("db.total_duration", duration_ms)
        finally:
            current_span_var.reset(token)
    except Exception:
        warn_once("sqlalchemy_finish", "beeline: could not record a query's duration", exc_info=True)
    try:
        beeline.finish_span(span)
    except Exception:
        warn_once("sqlalchemy_finish_span", "beeline: could not finish a query span", exc_info=True)


# ---- attaching and removing, once per target --------------------------------------------------

_lock = threading.Lock()


class _Registration:
    """The listeners on one target (an Engine, or the Engine class) and who wants them. An owner
    that can be weakly referenced (an app) stops counting once it is garbage; others (and the
    anonymous owner, None) count until they call `uninstrument_engine`."""

    __slots__ = ("tracer", "owners")

    def __init__(self, tracer: QueryTracer) -> None:
        self.tracer = tracer
        self.owners: dict = {}

    def add(self, owner: Any) -> None:
        if owner is None:
            self.owners[None] = None
            return
        try:
            self.owners[id(owner)] = weakref.ref(owner)
        except TypeError:
            self.owners[id(owner)] = owner

    def discard(self, owner: Any) -> None:
        self.owners.pop(None if owner is None else id(owner), None)

    def prune(self) -> bool:
        """Forget owners that are gone; True when somebody still wants the listeners."""
        dead = [key for key, ref in self.owners.items() if isinstance(ref, weakref.ref) and ref() is None]
        for key in dead:
            del self.owners[key]
        return bool(self.owners)


_registrations: "weakref.WeakKeyDictionary[Any, _Registration]" = weakref.WeakKeyDictionary()

_default_tracer = QueryTracer("sqlalchemy_query")


def instrument_engine(engine: Any, tracer: Optional[QueryTracer] = None, owner: Any = None) -> bool:
    """Trace every statement `engine` runs (an `Engine`, or the `Engine` class for all of them).

    Idempotent: listeners are attached once per engine, whoever asks. `owner` names who asked,
    so that `uninstrument_engine(engine, owner)` only removes them when nobody else wants them;
    an owner that is garbage-collected stops counting. Returns False when the engine was
    already instrumented.
    """
    with _lock:
        registration = _registrations.get(engine)
        if registration is not None:
            registration.add(owner)
            return False
        registration = _Registration(tracer or _default_tracer)
        for name, fn in registration.tracer.listeners():
            event.listen(engine, name, fn)
        registration.add(owner)
        _registrations[engine] = registration
        return True


def uninstrument_engine(engine: Any, owner: Any = None) -> bool:
    """Undo `instrument_engine` for `owner`; the listeners go when no owner is left. Returns
    True when they were removed."""
    with _lock:
        registration = _registrations.get(engine)
        if registration is None:
            return False
        registration.discard(owner)
        return _remove_if_unwanted(engine, registration)


def is_instrumented(engine: Any) -> bool:
    """Whether `engine` has the listeners (removing them first if every owner is gone)."""
    with _lock:
        registration = _registrations.get(engine)
        return registration is not None and not _remove_if_unwanted(engine, registration)


def _remove_if_unwanted(engine: Any, registration: _Registration) -> bool:
    if registration.prune():
        return False
    del _registrations[engine]
    for name, fn in registration.tracer.listeners():
        if event.contains(engine, name, fn):
            event.remove(engine, name, fn)
    return True
