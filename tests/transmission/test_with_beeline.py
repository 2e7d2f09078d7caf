"""Spans from the beeline's public API reach the receiver through this transmission, with
beeline.flush() and beeline.close() driving it (what init() gets once core uses it by default)."""

import beeline
from beeline.transmission import BeelineTransmission
from tests.receiver import LoopbackReceiver
from tests.transmission.helpers import FAST, drain


def test_a_trace_is_delivered_through_init_flush_and_close():
    with LoopbackReceiver() as rx:
        xmit = BeelineTransmission(**FAST)
        beeline.init(writekey="a" * 32, dataset="my app/traces", service_name="svc", api_host=rx.url,
                     transmission_impl=xmit)
        with beeline.tracer("root"):
            with beeline.tracer("child"):
                beeline.add_context_field("n", 1)
        assert beeline.flush(5) is True
        assert {e["data"]["name"] for e in rx.events} == {"root", "child"}
        assert rx.requests[0]["path"] == "/1/batch/my%20app%2Ftraces"
        assert all(e["dataset"] == "my app/traces" for e in rx.events)
        by_name = {e["data"]["name"]: e["data"] for e in rx.events}
        assert by_name["child"]["trace.parent_id"] == by_name["root"]["trace.span_id"]
        assert by_name["child"]["n"] == 1
        queue = beeline.get_responses_queue()
        assert queue is xmit.get_response_queue()
        beeline.close()
        responses = drain(queue, until_none=True)
        assert [r["status_code"] for r in responses[:-1]] == [202, 202] and responses[-1] is None
        assert xmit.stats["sent"] == 2 and len(rx.events) == 2
