"""End a Django request's trace when its streamed body is really done.

A `StreamingHttpResponse` leaves the middleware before its body exists: the server pulls the
chunks afterwards (under WSGI in the request's thread, under ASGI from the request's task or,
for a synchronous iterator, from a worker thread). Its `streaming_content` is therefore wrapped
in a tail that

* makes the request's spans current while each chunk is produced, so spans and queries made by
  the body's generator belong to the request (and to nothing else in between);
* ends the trace after the last chunk, when the body raises (recording the error), when Django
  closes the response early (client gone), or, as a last resort, when the response is dropped
  without ever being closed (an ASGI request cancelled mid-body), so no trace is left open.

A `FileResponse` keeps its file object, so a WSGI server can still use `wsgi.file_wrapper`
(sendfile); its trace ends when the server closes the response, which it does after the body.
"""

from __future__ import annotations

from typing import Any, Iterator

from beeline.internal import warn_once


def attach_to_streaming_response(response: Any, trace: Any) -> bool:
    """Make `trace` (a RequestTrace) end with `response`'s body. False when it cannot, and the
    caller ends it at once."""
    if getattr(response, "file_to_stream", None) is not None:
        closers = getattr(response, "_resource_closers", None)
        if isinstance(closers, list):
            closers.append(trace.finish)
            return True
    content = response.streaming_content
    if getattr(response, "is_async", False):
        response.streaming_content = AsyncBodyTail(content, trace)
    else:
        response.streaming_content = BodyTail(content, trace)
    # Django registers the tail's close() with the response, so closing the response (which
    # every WSGI server and Django's ASGI handler do) ends the trace if the body did not.
    return True


class BodyTail:
    """A synchronous body iterator that ends the request's trace when the body is done."""

    __slots__ = ("_inner", "_trace")

    def __init__(self, inner: Any, trace: Any) -> None:
        self._inner: Iterator = iter(inner)
        self._trace = trace

    def __iter__(self) -> "BodyTail":
        return self

    def __next__(self) -> Any:
        trace = self._trace
        if trace.done:
            return next(self._inner)
        tokens = trace.activate()
        try:
            return next(self._inner)
        except StopIteration:
            trace.finish()
            raise
        except BaseException as exc:
            body_failed(trace, exc)
            raise
        finally:
            trace.deactivate(tokens)

    def close(self) -> None:
        self._trace.finish()

    def __del__(self) -> None:
        finish_abandoned(self)


class AsyncBodyTail:
    """The asynchronous counterpart, for async iterators (Django 4.2+ under ASGI)."""

    __slots__ = ("_inner", "_trace")

    def __init__(self, inner: Any, trace: Any) -> None:
        self._inner = inner.__aiter__()
        self._trace = trace

    def __aiter__(self) -> "AsyncBodyTail":
        return self

    async def __anext__(self) -> Any:
        trace = self._trace
        if trace.done:
            return await self._inner.__anext__()
        tokens = trace.activate()
        try:
            return await self._inner.__anext__()
        except StopAsyncIteration:
            trace.finish()
            raise
        except BaseException as exc:
            # CancelledError lands here too when the client goes away mid-body.
            body_failed(trace, exc)
            raise
        finally:
            trace.deactivate(tokens)

    async def aclose(self) -> None:
        try:
            closer = getattr(self._inner, "aclose", None)
            if closer is not None:
                await closer()
        finally:
            self._trace.finish()

    def close(self) -> None:
        # Django's response.close() calls this synchronously; the inner iterator is Django's own
        # wrapper around the view's, which Django does not close either.
        self._trace.finish()

    def __del__(self) -> None:
        finish_abandoned(self)


def body_failed(trace: Any, exc: BaseException) -> None:
    """The body raised part-way: the status line is already sent, the error is what remains."""
    if isinstance(exc, Exception):
        try:
            trace.record_error(exc)
        except Exception:
            warn_once("django_body_error", "beeline: could not record a streamed body's error", exc_info=True)
    trace.finish()


def finish_abandoned(tail: Any) -> None:
    try:
        trace = tail._trace
        if not trace.done:
            trace.finish()
    except Exception:  # interpreter shutdown, or a tail that never finished __init__
        pass
