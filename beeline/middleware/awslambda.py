"""AWS Lambda: each invocation of a handler is one trace.

    import beeline
    from beeline.middleware.awslambda import beeline_wrapper

    beeline.init(writekey="...", dataset="...", service_name="orders")

    @beeline_wrapper                       # or @beeline_wrapper(record_input=False)
    def handler(event, context):
        ...

The root span is named after the handler and carries `app.function_name`,
`app.function_version`, `app.request_id`, `meta.cold_start`, `app.event` and `app.response`
(the last two can be turned off), plus the `app.exception_*` fields when the handler raises.
The trace continues the caller's when the event carries one: the headers of an API Gateway
(REST or HTTP API) or ALB event, or the message attributes of a single SNS or SQS record. A
batch of several records cannot continue several traces, so it starts its own, and each
record's upstream trace is recorded as a span link.

Lambda may freeze the process as soon as the handler returns, so the spans are delivered
before that: the wrapper asks the transmission to flush, waiting at most `flush_timeout`
seconds (and never past the invocation's deadline). The sender keeps running between
invocations; nothing is torn down.

Async handlers (`async def`) stay coroutine functions. The Lambda Python runtime calls
handlers synchronously, so run one from a plain entry point, e.g.
`def handler(event, context): return asyncio.run(async_handler(event, context))`.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from typing import Any, Callable, Dict, List, Optional, Tuple

import beeline
from beeline.decorators import exception_fields
from beeline.internal import warn_once
from beeline.propagation import DictRequest, Request

__all__ = ["COLD_START", "DEFAULT_FLUSH_TIMEOUT", "MAX_LINKS", "LambdaRequest", "beeline_wrapper"]

#: True until the first invocation in this execution environment has started.
COLD_START = True

#: Most span links recorded for one batch invocation.
MAX_LINKS = 100

#: Longest the wrapper waits for the spans to be delivered after an invocation, in seconds.
DEFAULT_FLUSH_TIMEOUT = 2.0

# Time left to the Lambda runtime after the flush, so the flush never makes an invocation time out.
_DEADLINE_MARGIN = 0.1


def _lowered(mapping: Any, pick: Callable[[Any], Any] = lambda value: value) -> Dict[str, Any]:
    if not isinstance(mapping, dict):
        return {}
    out: Dict[str, Any] = {}
    for name, value in mapping.items():
        value = pick(value)
        if value is not None:
            out.setdefault(str(name).lower(), value)
    return out


def _first(values: Any) -> Any:
    if isinstance(values, (list, tuple)):
        return values[0] if values else None
    return values


def _records(event: Any) -> List[Any]:
    records = event.get("Records") if isinstance(event, dict) else None
    return records if isinstance(records, list) else []


def _record_attributes(record: Any) -> Dict[str, Any]:
    """Message attributes of an SNS or SQS record, as header-like name -> string value."""
    if not isinstance(record, dict):
        return {}
    sns = record.get("Sns")
    if isinstance(sns, dict):
        return _lowered(sns.get("MessageAttributes"), _attribute_value("Value"))
    return _lowered(record.get("messageAttributes"), _attribute_value("stringValue"))


def _attribute_value(key: str) -> Callable[[Any], Any]:
    # SNS keeps an attribute's text under "Value", SQS under "stringValue".
    return lambda attribute: attribute.get(key) if isinstance(attribute, dict) else None


def _event_headers(event: Any) -> Dict[str, Any]:
    """Header-like values the caller's trace can come in: HTTP headers (API Gateway v1/v2, ALB,
    single- or multi-value), else the attributes of a single SNS/SQS record."""
    if not isinstance(event, dict):
        return {}
    headers = _lowered(event.get("headers"))
    if not headers:
        headers = _lowered(event.get("multiValueHeaders"), _first)
    if headers:
        return headers
    records = _records(event)
    if len(records) == 1:
        return _record_attributes(records[0])
    return {}


class LambdaRequest(Request):
    """A Lambda event as a `beeline.propagation.Request`, for parser hooks. Header names are
    matched without regard to case. Method, scheme, host, path and query come from API Gateway
    and ALB events and are None for other events."""

    __slots__ = ("_event", "_headers")

    def __init__(self, event: Any) -> None:
        self._event = event
        self._headers = _event_headers(event)

    def header(self, key: str) -> Optional[str]:
        return self._headers.get(key.lower())

    def _http(self) -> Dict[str, Any]:
        context = self._event.get("requestContext") if isinstance(self._event, dict) else None
        http = context.get("http") if isinstance(context, dict) else None
        return http if isinstance(http, dict) else {}

    def method(self) -> Optional[str]:
        if not isinstance(self._event, dict):
            return None
        return self._event.get("httpMethod") or self._http().get("method")

    def scheme(self) -> Optional[str]:
        return self.header("x-forwarded-proto")

    def host(self) -> Optional[str]:
        return self.header("host")

    def path(self) -> Optional[str]:
        if not isinstance(self._event, dict):
            return None
        return self._event.get("path") or self._event.get("rawPath") or self._http().get("path")

    def query(self) -> Any:
        if not isinstance(self._event, dict):
            return None
        if "rawQueryString" in self._event:
            return self._event.get("rawQueryString")
        return self._event.get("queryStringParameters")

    def middleware_request(self) -> Any:
        return self._event


def _upstream_links(event: Any) -> List[Tuple[str, str]]:
    """(trace id, span id) of every record's upstream trace in a batch of several records, each
    pair once, as the configured parser hook reads them."""
    records = _records(event)
    if len(records) < 2:
        return []
    links: List[Tuple[str, str]] = []
    seen = set()
    for record in records:
        attributes = _record_attributes(record)
        if not attributes:
            continue
        context = beeline.http_trace_parser_hook(DictRequest(attributes))
        trace_id = getattr(context, "trace_id", None)
        span_id = getattr(context, "parent_id", None)
        if trace_id and span_id and (trace_id, span_id) not in seen:
            seen.add((trace_id, span_id))
            links.append((trace_id, span_id))
    return links


def _add_links(root: Any, links: List[Tuple[str, str]]) -> None:
    # Honeycomb's span-link convention: an annotation event whose parent is the linking span.
    # A batch can hold thousands of records (SQS with a batching window); past MAX_LINKS the
    # rest are counted on the root span instead of each costing an event.
    for trace_id, span_id in links[:MAX_LINKS]:
        link = beeline.start_span(
            {"meta.annotation_type": "link", "trace.link.trace_id": trace_id, "trace.link.span_id": span_id},
            parent_id=root.id,
        )
        beeline.finish_span(link)
    if len(links) > MAX_LINKS:
        root.add_context_field("meta.links_dropped", len(links) - MAX_LINKS)


def _start(handler: Callable, event: Any, context: Any, record_input: bool) -> Any:
    """The invocation's root span, or None (instrumentation trouble never stops the handler)."""
    global COLD_START
    cold, COLD_START = COLD_START, False
    try:
        fields = {
            "name": getattr(handler, "__name__", "handler"),
            "app.function_name": getattr(context, "function_name", ""),
            "app.function_version": getattr(context, "function_version", ""),
            "app.request_id": getattr(context, "aws_request_id", ""),
            "meta.cold_start": cold,
        }
        if record_input:
            fields["app.event"] = event
        root = beeline.propagate_and_start_trace(fields, LambdaRequest(event))
    except Exception:
        warn_once("lambda_start", "beeline: could not start the Lambda invocation's trace", exc_info=True)
        return None
    if root is not None:
        try:
            _add_links(root, _upstream_links(event))
        except Exception:
            # The root span is started: it must still be returned, so the trace gets finished.
            warn_once("lambda_links", "beeline: could not record the batch's span links", exc_info=True)
    return root


def _record_result(root: Any, result: Any, record_output: bool) -> None:
    if root is not None and record_output and result is not None:
        try:
            root.add_context_field("app.response", result)
        except Exception:
            warn_once("lambda_response", "beeline: could not record the handler's response", exc_info=True)


def _record_exception(root: Any, exc: BaseException) -> None:
    if root is None:
        return
    try:
        root.add_context(exception_fields(exc))
    except Exception:
        warn_once("lambda_exception", "beeline: could not record the handler's exception", exc_info=True)


def _flush_budget(context: Any, flush_timeout: float) -> float:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return flush_timeout
    try:
        left = remaining() / 1000.0 - _DEADLINE_MARGIN
    except Exception:
        return flush_timeout
    return max(0.0, min(flush_timeout, left))


def _finish_trace(root: Any) -> None:
    try:
        beeline.finish_trace(root)
    except Exception:
        warn_once("lambda_finish", "beeline: could not finish the Lambda invocation's trace", exc_info=True)


def _flush(timeout: float) -> None:
    try:
        delivered = beeline.flush(timeout)
    except Exception:
        warn_once("lambda_flush", "beeline: flushing spans at the end of a Lambda invocation failed", exc_info=True)
        return
    if not delivered:
        warn_once(
            "lambda_flush",
            "beeline: not every span was delivered when the Lambda invocation ended (the transmission "
            "cannot flush, or it took longer than %.1f s); spans may arrive late or be lost if the "
            "function is frozen",
            timeout,
        )


def _wrap_sync(handler: Callable, record_input: bool, record_output: bool, flush_timeout: float) -> Callable:
    @functools.wraps(handler)
    def traced_handler(event: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
        if beeline.get_beeline() is None:
            return handler(event, context, *args, **kwargs)
        root = _start(handler, event, context, record_input)
        try:
            result = handler(event, context, *args, **kwargs)
        except Exception as exc:
            _record_exception(root, exc)
            raise
        else:
            _record_result(root, result, record_output)
            return result
        finally:
            _finish_trace(root)
            _flush(_flush_budget(context, flush_timeout))

    return traced_handler


def _wrap_async(handler: Callable, record_input: bool, record_output: bool, flush_timeout: float) -> Callable:
    @functools.wraps(handler)
    async def traced_handler(event: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
        if beeline.get_beeline() is None:
            return await handler(event, context, *args, **kwargs)
        root = _start(handler, event, context, record_input)
        try:
            result = await handler(event, context, *args, **kwargs)
        except Exception as exc:
            _record_exception(root, exc)
            raise
        else:
            _record_result(root, result, record_output)
            return result
        finally:
            _finish_trace(root)
            # The flush blocks while it waits; other tasks on the loop keep running meanwhile.
            budget = _flush_budget(context, flush_timeout)
            await asyncio.get_running_loop().run_in_executor(None, _flush, budget)

    return traced_handler


def beeline_wrapper(
    handler: Optional[Callable] = None,
    record_input: bool = True,
    record_output: bool = True,
    flush_timeout: float = DEFAULT_FLUSH_TIMEOUT,
) -> Callable:
    """Trace a Lambda handler: `@beeline_wrapper` or `@beeline_wrapper(record_input=False)`.

    `record_input` / `record_output` put the event and the return value on the root span.
    `flush_timeout` bounds how long the end of an invocation waits for delivery. Without
    `beeline.init()` the handler runs untouched.
    """
    if isinstance(flush_timeout, bool) or not isinstance(flush_timeout, (int, float)) or flush_timeout < 0:
        raise ValueError(f"beeline_wrapper: flush_timeout must be a number >= 0, got {flush_timeout!r}")

    def decorate(fn: Callable) -> Callable:
        if inspect.iscoroutinefunction(fn):
            return _wrap_async(fn, record_input, record_output, float(flush_timeout))
        return _wrap_sync(fn, record_input, record_output, float(flush_timeout))

    if handler is not None:
        return decorate(handler)
    return decorate
