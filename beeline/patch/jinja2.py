"""Spans for rendering Jinja2 templates.

    import beeline.patch.jinja2  # applies itself; beeline.patch.jinja2.unpatch() undoes it

Inside a trace, rendering a template makes a span named `jinja2_render_template` with
`template.name` (the template's name, or "[string]" for one made from a string), as in
honeycomb-beeline. It covers `Template.render` as before and also `render_async`, `generate`,
`generate_async` and `stream`; all share the one span name, so a query keeps working when an
app switches from rendering to streaming, and `template.render_method` says which was used.

A streamed template is rendered a piece at a time while the consumer iterates. Its span is
active only while a piece is being rendered, so spans the consumer makes in between are not
put under it, and it ends when the stream is exhausted or closed.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Optional

import jinja2

import beeline
from beeline.decorators import exception_fields
from beeline.internal import warn_once
from beeline.patch import unwrap, wrap
from beeline.trace import active_span, current_span_var

__all__ = ["patch", "unpatch"]

SPAN_NAME = "jinja2_render_template"

_TARGETS = {
    "Template.render": "_wrap_render",
    "Template.render_async": "_wrap_render_async",
    "Template.generate": "_wrap_generate",
    "Template.generate_async": "_wrap_generate_async",
    "Template.stream": "_wrap_stream",
}

# The template whose span is open in this context. Jinja2 implements some entry points with
# others (render() in async mode runs render_async(), stream() calls generate()); the inner
# call must not make a second span for the same rendering.
_rendering: ContextVar[Optional[Any]] = ContextVar("beeline_jinja2_rendering", default=None)
# Set by stream() around its call to generate(), so that span says "stream".
_method_label: ContextVar[Optional[str]] = ContextVar("beeline_jinja2_method", default=None)


def _fields(template: Any, method: str) -> dict:
    return {
        "name": SPAN_NAME,
        "template.name": getattr(template, "name", None) or "[string]",
        "template.render_method": method,
    }


def _wanted(template: Any) -> bool:
    return active_span() is not None and _rendering.get() is not template


def _start(template: Any, method: str) -> Any:
    try:
        return beeline.start_span(_fields(template, method))
    except Exception:
        warn_once("jinja2_span", "beeline: could not start a jinja2 span", exc_info=True)
        return None


def _record(span: Any, exc: BaseException) -> None:
    if span is not None and isinstance(exc, Exception):
        try:
            span.add_context(exception_fields(exc))
        except Exception:
            warn_once("jinja2_error", "beeline: could not record a jinja2 error", exc_info=True)


# ---- render / render_async ----------------------------------------------------------------------


def _wrap_render(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    if not _wanted(instance):
        return wrapped(*args, **kwargs)
    span = _start(instance, "render")
    if span is None:
        return wrapped(*args, **kwargs)
    mark = _rendering.set(instance)
    try:
        return wrapped(*args, **kwargs)
    except BaseException as exc:
        _record(span, exc)
        raise
    finally:
        _rendering.reset(mark)
        beeline.finish_span(span)


def _wrap_render_async(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    return _render_async(wrapped, instance, args, kwargs)


async def _render_async(wrapped: Any, template: Any, args: tuple, kwargs: dict) -> Any:
    # Decided when awaited: that is where the work happens, in the awaiting task's context.
    if not _wanted(template):
        return await wrapped(*args, **kwargs)
    span = _start(template, "render_async")
    if span is None:
        return await wrapped(*args, **kwargs)
    mark = _rendering.set(template)
    try:
        return await wrapped(*args, **kwargs)
    except BaseException as exc:
        _record(span, exc)
        raise
    finally:
        _rendering.reset(mark)
        beeline.finish_span(span)


# ---- generate / stream --------------------------------------------------------------------------


def _wrap_generate(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    # Decided when generate() is called: the stream may be consumed after the trace ended, and
    # must not start spans of its own then.
    if not _wanted(instance):
        return wrapped(*args, **kwargs)
    parent = active_span()
    method = _method_label.get() or "generate"
    return _stepped(wrapped(*args, **kwargs), instance, method, parent)


def _stepped(pieces: Any, template: Any, method: str, parent: Any) -> Any:
    span = None
    started = False
    try:
        while True:
            token = current_span_var.set(span if span is not None else parent)
            mark = _rendering.set(template)
            try:
                if not started:
                    started = True
                    span = _start(template, method)
                piece = next(pieces)
            except StopIteration:
                return
            except BaseException as exc:
                _record(span, exc)
                raise
            finally:
                _rendering.reset(mark)
                current_span_var.reset(token)
            yield piece
    finally:
        pieces.close()
        if span is not None:
            beeline.finish_span(span)


def _wrap_generate_async(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    if not _wanted(instance):
        return wrapped(*args, **kwargs)
    return _stepped_async(wrapped(*args, **kwargs), instance, active_span())


async def _stepped_async(pieces: Any, template: Any, parent: Any) -> Any:
    span = None
    started = False
    try:
        while True:
            token = current_span_var.set(span if span is not None else parent)
            mark = _rendering.set(template)
            try:
                if not started:
                    started = True
                    span = _start(template, "generate_async")
                piece = await pieces.__anext__()
            except StopAsyncIteration:
                return
            except BaseException as exc:
                _record(span, exc)
                raise
            finally:
                _rendering.reset(mark)
                current_span_var.reset(token)
            yield piece
    finally:
        await pieces.aclose()
        if span is not None:
            beeline.finish_span(span)


def _wrap_stream(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    label = _method_label.set("stream")
    try:
        return wrapped(*args, **kwargs)
    finally:
        _method_label.reset(label)


# ---- patching -----------------------------------------------------------------------------------


def patch() -> bool:
    """Instrument `jinja2.Template`. Returns False when it already was."""
    done = [wrap(jinja2, target, globals()[wrapper]) for target, wrapper in _TARGETS.items()]
    return any(done)


def unpatch() -> bool:
    """Remove the instrumentation. Returns False when there was none."""
    return any([unwrap(jinja2, target) for target in _TARGETS])


patch()
