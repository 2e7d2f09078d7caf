"""AWS Lambda wrapper: real-shaped API Gateway v1/v2, ALB, SNS and SQS events and a context
object with the attributes the Lambda Python runtime gives (only AWS itself is imitated)."""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import logging
import pathlib
import threading
import time
import uuid

import libhoney.transmission
import pytest

import beeline
from beeline.internal import reset_warnings
from beeline.middleware import awslambda
from beeline.middleware.awslambda import LambdaRequest, beeline_wrapper
from beeline.testing import RecordingTransmission
from beeline.transmission import BeelineTransmission
from tests.receiver import LoopbackReceiver

EVENTS = pathlib.Path(__file__).resolve().parents[2] / "examples" / "lambda" / "events"

# The upstream trace written into the sample events' X-Honeycomb-Trace values.
UPSTREAM_TRACE = "5b3e2a1d9c8f4e7a6b5c4d3e2f1a0b9c"
UPSTREAM_SPAN = "a1b2c3d4e5f60718"
OTHER_TRACE = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
OTHER_SPAN = "0f1e2d3c4b5a6978"
# The ALB sample carries a W3C traceparent instead.
W3C_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
W3C_SPAN = "00f067aa0ba902b7"


def load(name: str) -> dict:
    return json.loads((EVENTS / f"{name}.json").read_text())


class LambdaContext:
    """The attributes and method of the context object the Lambda Python runtime passes."""

    def __init__(self, remaining_ms: int = 30_000, function_name: str = "order-service") -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.memory_limit_in_mb = "256"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "2024/01/12/[$LATEST]0123456789abcdef0123456789abcdef"
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + remaining_ms / 1000.0

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class FlushRecorder(RecordingTransmission):
    """Also notes every flush and what had been sent by then."""

    def __init__(self) -> None:
        super().__init__()
        self.flushes: list = []
        self.starts = 0
        self.closes = 0

    def start(self) -> None:
        self.starts += 1
        super().start()

    def flush(self, timeout=None) -> bool:
        self.flushes.append((timeout, [ev.fields().get("name") for ev in self.sent]))
        return True

    def close(self, timeout=None) -> None:
        self.closes += 1
        super().close(timeout)


@pytest.fixture(autouse=True)
def warm_container(monkeypatch):
    # Each test starts warm; the cold-start test sets it back explicitly.
    monkeypatch.setattr(awslambda, "COLD_START", False)


@pytest.fixture
def recorder():
    beeline.close()
    rec = FlushRecorder()
    beeline.init(writekey="0" * 32, dataset="d", service_name="s", transmission_impl=rec)
    yield rec
    beeline.close()


@beeline_wrapper
def get_order(event, context):
    """Return the order."""
    with beeline.tracer("load_order"):
        pass
    return {"statusCode": 200, "body": json.dumps({"order": 42})}


class TestRootSpan:
    def test_reference_fields(self, recorder):
        event, context = load("apigateway-v1"), LambdaContext()
        result = get_order(event, context)
        assert result == {"statusCode": 200, "body": '{"order": 42}'}
        root = recorder.find(name="get_order")
        assert root["app.function_name"] == "order-service"
        assert root["app.function_version"] == "$LATEST"
        assert root["app.request_id"] == context.aws_request_id
        assert root["meta.cold_start"] is False
        assert root["app.event"] == event
        assert root["app.response"] == result
        child = recorder.find(name="load_order")
        assert child["trace.parent_id"] == root["trace.span_id"]

    def test_cold_start_only_on_the_first_invocation(self, recorder, monkeypatch):
        monkeypatch.setattr(awslambda, "COLD_START", True)
        get_order(load("apigateway-v2"), LambdaContext())
        get_order(load("apigateway-v2"), LambdaContext())
        assert [e["meta.cold_start"] for e in recorder.spans(name="get_order")] == [True, False]

    def test_missing_context_attributes_default_to_empty_strings(self, recorder):
        get_order({}, object())
        root = recorder.find(name="get_order")
        assert (root["app.function_name"], root["app.function_version"], root["app.request_id"]) == ("", "", "")

    def test_record_input_and_output_can_be_turned_off(self, recorder):
        @beeline_wrapper(record_input=False, record_output=False)
        def quiet(event, context):
            return {"secret": "value"}

        assert quiet(load("sns"), LambdaContext()) == {"secret": "value"}
        root = recorder.find(name="quiet")
        assert "app.event" not in root
        assert "app.response" not in root

    def test_a_none_response_is_not_recorded(self, recorder):
        @beeline_wrapper
        def returns_nothing(event, context):
            return None

        returns_nothing({}, LambdaContext())
        assert "app.response" not in recorder.find(name="returns_nothing")

    def test_exception_fields_and_the_exception_is_raised(self, recorder):
        @beeline_wrapper
        def failing(event, context):
            raise KeyError("order 42")

        with pytest.raises(KeyError):
            failing(load("apigateway-v1"), LambdaContext())
        root = recorder.find(name="failing")
        assert root["app.exception_type"] == "<class 'KeyError'>"
        assert root["app.exception_string"] == "'order 42'"
        assert "KeyError: 'order 42'" in root["app.exception_stacktrace"]
        assert "app.response" not in root
        # Delivered before the exception left the invocation.
        assert recorder.flushes and "failing" in recorder.flushes[-1][1]

    def test_functools_wraps(self):
        assert get_order.__name__ == "get_order"
        assert get_order.__doc__ == "Return the order."
        assert get_order.__wrapped__.__name__ == "get_order"

    def test_without_init_the_handler_runs_untouched(self):
        beeline.close()
        assert get_order({}, LambdaContext())["statusCode"] == 200

    def test_no_trace_is_left_active_after_the_invocation(self, recorder):
        with beeline.tracer("outer") as outer:
            get_order(load("sqs"), LambdaContext())
            assert beeline.get_beeline().tracer_impl.get_active_span() is outer
        get_order(load("sqs"), LambdaContext())
        assert beeline.get_beeline().tracer_impl.get_active_span() is None

    def test_instrumentation_trouble_never_stops_the_handler(self, recorder, caplog):
        class BrokenContext(LambdaContext):
            @property
            def function_name(self):
                raise RuntimeError("runtime changed")

            @function_name.setter
            def function_name(self, value):
                pass

        reset_warnings()
        caplog.set_level(logging.WARNING, logger="beeline")
        assert get_order(load("sqs"), BrokenContext())["statusCode"] == 200
        assert any("Lambda invocation" in r.getMessage() for r in caplog.records)

    def test_flush_timeout_must_be_a_non_negative_number(self):
        with pytest.raises(ValueError, match="flush_timeout"):
            beeline_wrapper(flush_timeout=-1)
        with pytest.raises(ValueError, match="flush_timeout"):
            beeline_wrapper(flush_timeout="2")


class TestPropagation:
    @pytest.mark.parametrize("name", ["apigateway-v1", "apigateway-v2", "alb-multivalue", "sns", "sqs"])
    def test_honeycomb_header_continues_the_trace(self, recorder, name):
        get_order(load(name), LambdaContext())
        root = recorder.find(name="get_order")
        assert root["trace.trace_id"] == UPSTREAM_TRACE
        assert root["trace.parent_id"] == UPSTREAM_SPAN
        assert root["meta.span_type"] == "subroot"
        # Propagated trace fields arrive, on the root and on the children.
        assert root["app.order_source"] == "web"
        assert recorder.find(name="load_order")["app.order_source"] == "web"

    def test_alb_traceparent_continues_the_trace(self, recorder):
        get_order(load("alb"), LambdaContext())
        root = recorder.find(name="get_order")
        assert (root["trace.trace_id"], root["trace.parent_id"]) == (W3C_TRACE, W3C_SPAN)

    def test_an_event_without_trace_context_starts_a_trace(self, recorder):
        event = load("apigateway-v2")
        del event["headers"]["x-honeycomb-trace"]
        get_order(event, LambdaContext())
        root = recorder.find(name="get_order")
        assert root["meta.span_type"] == "root"
        assert root["trace.parent_id"] is None
        assert root["trace.trace_id"] != UPSTREAM_TRACE

    def test_the_configured_parser_hook_gets_a_lambda_request(self, beeline_recorder_factory):
        seen = []
        beeline_recorder_factory(http_trace_parser_hook=lambda request: seen.append(request))
        get_order(load("apigateway-v1"), LambdaContext())
        (request,) = seen
        assert isinstance(request, LambdaRequest)
        assert request.header("x-forwarded-proto") == "https"


class TestBatches:
    def test_sqs_batch_starts_its_own_trace_and_links_each_upstream_trace_once(self, recorder):
        get_order(load("sqs-batch"), LambdaContext())
        root = recorder.find(name="get_order")
        assert root["meta.span_type"] == "root"
        assert root["trace.parent_id"] is None
        assert root["trace.trace_id"] not in (UPSTREAM_TRACE, OTHER_TRACE)
        assert "app.order_source" not in root
        links = recorder.spans(meta__annotation_type="link")
        assert [(link["trace.link.trace_id"], link["trace.link.span_id"]) for link in links] == [
            (UPSTREAM_TRACE, UPSTREAM_SPAN),
            (OTHER_TRACE, OTHER_SPAN),
        ]
        for link in links:
            assert link["trace.parent_id"] == root["trace.span_id"]
            assert link["trace.trace_id"] == root["trace.trace_id"]
        # Links do not become parents of the handler's spans.
        assert recorder.find(name="load_order")["trace.parent_id"] == root["trace.span_id"]

    def test_sns_batch(self, recorder):
        event = load("sns")
        second = copy.deepcopy(event["Records"][0])
        second["Sns"]["MessageAttributes"]["X-Honeycomb-Trace"]["Value"] = (
            f"1;trace_id={OTHER_TRACE},parent_id={OTHER_SPAN},context=e30="
        )
        event["Records"].append(second)
        get_order(event, LambdaContext())
        links = recorder.spans(meta__annotation_type="link")
        assert {link["trace.link.trace_id"] for link in links} == {UPSTREAM_TRACE, OTHER_TRACE}
        assert recorder.find(name="get_order")["meta.span_type"] == "root"
        assert "meta.links_dropped" not in recorder.find(name="get_order")

    def test_links_past_the_limit_are_counted_not_sent(self, recorder, monkeypatch):
        monkeypatch.setattr(awslambda, "MAX_LINKS", 2)
        event = load("sqs-batch")
        template = event["Records"][0]
        event["Records"] = []
        for n in range(5):
            record = copy.deepcopy(template)
            record["messageAttributes"]["X-Honeycomb-Trace"]["stringValue"] = (
                f"1;trace_id={n + 1:032x},parent_id={n + 1:016x},context=e30="
            )
            event["Records"].append(record)
        get_order(event, LambdaContext())
        links = recorder.spans(meta__annotation_type="link")
        assert [link["trace.link.trace_id"] for link in links] == [f"{1:032x}", f"{2:032x}"]
        assert recorder.find(name="get_order")["meta.links_dropped"] == 3

    def test_trouble_reading_the_batch_still_ends_the_trace(self, recorder, monkeypatch):
        def broken(event):
            raise RuntimeError("unexpected record shape")

        monkeypatch.setattr(awslambda, "_upstream_links", broken)
        assert get_order(load("sqs-batch"), LambdaContext())["statusCode"] == 200
        recorder.find(name="get_order")
        assert recorder.spans(meta__annotation_type="link") == []
        assert beeline.get_beeline().tracer_impl.get_active_span() is None

    def test_batch_without_trace_context_has_no_links(self, recorder):
        event = load("sqs-batch")
        for record in event["Records"]:
            record["messageAttributes"] = {}
        get_order(event, LambdaContext())
        assert recorder.spans(meta__annotation_type="link") == []


class TestLambdaRequest:
    def test_api_gateway_v1(self):
        request = LambdaRequest(load("apigateway-v1"))
        assert request.header("x-honeycomb-trace").startswith("1;trace_id=" + UPSTREAM_TRACE)
        assert (request.method(), request.path(), request.scheme()) == ("GET", "/orders/42", "https")
        assert request.host() == "r4nd0m1d.execute-api.us-east-1.amazonaws.com"
        assert request.query() == {"verbose": "1"}

    def test_api_gateway_v2(self):
        request = LambdaRequest(load("apigateway-v2"))
        assert (request.method(), request.path(), request.query()) == ("POST", "/orders", "dry_run=true")
        assert request.header("X-Honeycomb-Trace") is not None

    def test_alb_multi_value_headers(self):
        request = LambdaRequest(load("alb-multivalue"))
        assert request.header("X-Forwarded-Proto") == "http"
        assert request.method() == "GET"

    def test_queue_events_have_no_http_properties(self):
        request = LambdaRequest(load("sqs"))
        assert request.header("X-HONEYCOMB-TRACE") is not None
        assert (request.method(), request.scheme(), request.host(), request.path(), request.query()) == (None,) * 5
        assert request.middleware_request()["Records"][0]["eventSource"] == "aws:sqs"

    @pytest.mark.parametrize("event", [None, [], "text", {"headers": None}, {"Records": "x"}, {"Records": [None]}])
    def test_odd_events_have_no_headers(self, event):
        assert LambdaRequest(event).header("x-honeycomb-trace") is None


class TestDelivery:
    def test_flushed_after_the_trace_ended_within_the_remaining_time(self, recorder):
        get_order(load("sqs"), LambdaContext(remaining_ms=60_000))
        get_order(load("sqs"), LambdaContext(remaining_ms=60_000))
        assert len(recorder.flushes) == 2
        timeout, sent_by_then = recorder.flushes[0]
        assert timeout == awslambda.DEFAULT_FLUSH_TIMEOUT
        assert sent_by_then == ["load_order", "get_order"]
        # The sender is neither restarted nor closed per invocation.
        assert (recorder.starts, recorder.closes) == (1, 0)

    def test_flush_never_runs_past_the_deadline(self, recorder):
        get_order(load("sqs"), LambdaContext(remaining_ms=50))
        assert recorder.flushes[0][0] == 0.0
        get_order(load("sqs"), LambdaContext(remaining_ms=1_000))
        assert 0.0 < recorder.flushes[1][0] <= 0.9

    def test_flush_timeout_is_configurable(self, recorder):
        @beeline_wrapper(flush_timeout=0.5)
        def quick(event, context):
            return "ok"

        quick({}, LambdaContext())
        assert recorder.flushes[0][0] == 0.5

    def test_loopback_delivery_before_the_invocation_returns(self):
        beeline.close()
        with LoopbackReceiver() as rx:
            xmit = BeelineTransmission(send_frequency=10.0)  # only the flush can send in time
            beeline.init(writekey="0" * 32, dataset="orders", service_name="s", api_host=rx.url,
                         transmission_impl=xmit)
            try:
                for n in range(3):
                    get_order(load("sqs"), LambdaContext())
                    # Already on the wire when the handler returned: no waiting here.
                    assert len(rx.events) == 2 * (n + 1)
                names = [e["data"]["name"] for e in rx.events]
                assert names == ["load_order", "get_order"] * 3
                assert all(e["data"]["trace.trace_id"] == UPSTREAM_TRACE for e in rx.events)
                # Responses are real answers; no None pushed in by a flush.
                queue = beeline.get_responses_queue()
                answers = [queue.get_nowait() for _ in range(queue.qsize())]
                assert None not in answers
                assert {a["status_code"] for a in answers} == {202}
            finally:
                beeline.close()

    def test_libhoney_transmission_is_not_restarted_and_gets_no_none(self, caplog):
        beeline.close()
        reset_warnings()
        caplog.set_level(logging.WARNING, logger="beeline")
        with LoopbackReceiver() as rx:
            xmit = libhoney.transmission.Transmission(send_frequency=0.05)
            beeline.init(writekey="0" * 32, dataset="orders", service_name="s", api_host=rx.url,
                         transmission_impl=xmit)
            try:
                threads_before = {t.ident for t in threading.enumerate()}
                get_order(load("sqs"), LambdaContext())
                get_order(load("sqs"), LambdaContext())
                # libhoney's own flush would have stopped and replaced its sender threads.
                assert {t.ident for t in threading.enumerate()} >= threads_before
                warnings = [r.getMessage() for r in caplog.records if "not every span" in r.getMessage()]
                assert len(warnings) == 1
                assert len(rx.wait_for(4, timeout=5)) == 4
                queue = beeline.get_responses_queue()
                assert None not in [queue.get_nowait() for _ in range(queue.qsize())]
            finally:
                beeline.close()


class TestAsyncHandlers:
    def test_async_handler_is_awaited_inside_its_trace(self, recorder):
        @beeline_wrapper
        async def handle(event, context):
            with beeline.tracer("awaited_work"):
                await asyncio.sleep(0)
            return {"ok": True}

        assert asyncio.iscoroutinefunction(handle)
        assert asyncio.run(handle(load("apigateway-v2"), LambdaContext())) == {"ok": True}
        root = recorder.find(name="handle")
        assert root["trace.trace_id"] == UPSTREAM_TRACE
        assert root["app.response"] == {"ok": True}
        assert recorder.find(name="awaited_work")["trace.parent_id"] == root["trace.span_id"]
        assert recorder.flushes and recorder.flushes[0][1] == ["awaited_work", "handle"]

    def test_async_handler_exception(self, recorder):
        @beeline_wrapper(record_input=False)
        async def handle(event, context):
            raise ValueError("bad order")

        with pytest.raises(ValueError):
            asyncio.run(handle({}, LambdaContext()))
        root = recorder.find(name="handle")
        assert root["app.exception_type"] == "<class 'ValueError'>"
        assert "app.event" not in root

    def test_concurrent_async_invocations_stay_apart(self, recorder):
        @beeline_wrapper
        async def handle(event, context):
            await asyncio.sleep(0.01)
            with beeline.tracer("step"):
                await asyncio.sleep(0)
            return context.aws_request_id

        async def main():
            return await asyncio.gather(*(handle({}, LambdaContext()) for _ in range(3)))

        ids = asyncio.run(main())
        assert len(recorder.traces()) == 3
        for trace in recorder.traces().values():
            root = next(e for e in trace if e["name"] == "handle")
            step = next(e for e in trace if e["name"] == "step")
            assert step["trace.parent_id"] == root["trace.span_id"]
            assert root["app.request_id"] in ids

    def test_async_without_init(self):
        beeline.close()

        @beeline_wrapper
        async def handle(event, context):
            return 7

        assert asyncio.run(handle({}, LambdaContext())) == 7


def test_a_handler_without_a_name_is_traced_as_handler(recorder):
    decorate = beeline_wrapper(record_output=False)
    wrapped = decorate(functools.partial(lambda event, context, extra: extra, extra=3))
    assert wrapped({}, LambdaContext()) == 3
    assert "app.response" not in recorder.find(name="handler")
