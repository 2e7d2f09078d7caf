"""propagate_and_start_trace: the reference's regression (dropped trace fields) fixed."""

import pytest

import beeline
from beeline.propagation import DictRequest, PropagationContext
from beeline.propagation.honeycomb import marshal_propagation_context
from tests.warning_checks import no_warnings

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"


def honeycomb_header(fields, dataset=None):
    ctx = PropagationContext("trace-1", "parent-1", fields, dataset)
    return marshal_propagation_context(ctx, propagate_dataset=True)


def test_propagated_trace_fields_flow_through_and_downstream(beeline_recorder):
    request = DictRequest({"X-Honeycomb-Trace": honeycomb_header({"app.user": "bob", "tenant": 3})})
    root = beeline.propagate_and_start_trace({"name": "incoming"}, request)
    with beeline.tracer("child"):
        outgoing = beeline.http_trace_propagation_hook()
    beeline.finish_trace(root)
    event = beeline_recorder.find(name="incoming")
    assert event["trace.trace_id"] == "trace-1" and event["trace.parent_id"] == "parent-1"
    assert event["meta.span_type"] == "subroot"
    assert event["app.user"] == "bob" and event["app.tenant"] == 3
    assert beeline_recorder.find(name="child")["app.user"] == "bob"
    ctx = beeline.get_beeline().tracer_impl.http_trace_parser_hook(DictRequest(outgoing))
    assert ctx.trace_id == "trace-1"
    assert ctx.trace_fields == {"app.user": "bob", "app.tenant": 3}


def test_w3c_flags_and_state_are_carried_through(beeline_recorder_factory):
    from beeline.propagation import w3c

    beeline_recorder_factory(http_trace_propagation_hook=w3c.http_trace_propagation_hook)
    request = DictRequest({"traceparent": TRACEPARENT, "tracestate": "vendor=abc"})
    root = beeline.propagate_and_start_trace({"name": "incoming"}, request)
    headers = beeline.http_trace_propagation_hook()
    beeline.finish_trace(root)
    assert headers["traceparent"] == f"00-0af7651916cd43dd8448eb211c80319c-{root.id}-00"
    assert headers["tracestate"] == "vendor=abc"


def test_w3c_state_is_not_sent_as_span_fields(beeline_recorder):
    root = beeline.propagate_and_start_trace({"name": "incoming"}, DictRequest({"traceparent": TRACEPARENT}))
    beeline.finish_trace(root)
    event = beeline_recorder.find(name="incoming")
    assert not any("traceflags" in key for key in event)


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Honeycomb-Trace": "garbage"},
        {"X-Honeycomb-Trace": "1;trace_id=t,parent_id=p,context=!!!"},
        {"traceparent": "not-a-traceparent"},
        {"X-Honeycomb-Trace": "99;trace_id=t,parent_id=p", "traceparent": "zz"},
    ],
)
def test_malformed_headers_start_a_fresh_trace(beeline_recorder, headers):
    root = beeline.propagate_and_start_trace({"name": "incoming"}, DictRequest(headers))
    beeline.finish_trace(root)
    event = beeline_recorder.find(name="incoming")
    assert event["meta.span_type"] == "root" and event["trace.parent_id"] is None


def test_unsupported_honeycomb_version_falls_back_to_traceparent(beeline_recorder):
    headers = {"X-Honeycomb-Trace": "2;trace_id=t,parent_id=p", "traceparent": TRACEPARENT}
    root = beeline.propagate_and_start_trace({"name": "incoming"}, DictRequest(headers))
    beeline.finish_trace(root)
    assert beeline_recorder.find(name="incoming")["trace.trace_id"] == "0af7651916cd43dd8448eb211c80319c"


def test_a_raising_custom_parser_hook_starts_a_fresh_trace(beeline_recorder_factory):
    def parser(request):
        raise RuntimeError("hook bug")

    recorder = beeline_recorder_factory(http_trace_parser_hook=parser)
    root = beeline.propagate_and_start_trace(None, DictRequest({}))
    beeline.finish_trace(root)
    assert recorder.events[0]["parser_hook_error"] == repr(RuntimeError)


def test_custom_parser_hook_is_honoured(beeline_recorder_factory):
    recorder = beeline_recorder_factory(http_trace_parser_hook=lambda r: PropagationContext("custom", "p"))
    root = beeline.propagate_and_start_trace({"name": "in"}, DictRequest({}))
    beeline.finish_trace(root)
    assert recorder.find(name="in")["trace.trace_id"] == "custom"


def test_header_without_trace_id_starts_a_new_trace_with_one_warning(beeline_recorder, caplog):
    header = "1;parent_id=p1,context=e30="
    with caplog.at_level("WARNING", logger="beeline"):
        root = beeline.propagate_and_start_trace({"name": "in"}, DictRequest({"X-Honeycomb-Trace": header}))
        beeline.finish_trace(root)
    event = beeline_recorder.find(name="in")
    assert len(event["trace.trace_id"]) == 32 and event["trace.parent_id"] is None
    assert event["meta.span_type"] == "root"
    assert len([r for r in caplog.records if r.name == "beeline"]) == 1


def test_custom_hook_parent_without_trace_id_starts_a_new_trace(beeline_recorder_factory, caplog):
    recorder = beeline_recorder_factory(http_trace_parser_hook=lambda r: PropagationContext(None, "p1"))
    with caplog.at_level("WARNING", logger="beeline"):
        root = beeline.propagate_and_start_trace({"name": "in"}, DictRequest({}))
        beeline.finish_trace(root)
    event = recorder.find(name="in")
    assert event["trace.parent_id"] is None and event["meta.span_type"] == "root"
    assert len([r for r in caplog.records if r.name == "beeline"]) == 1


def test_classic_keys_send_spans_to_the_upstream_dataset(beeline_recorder):
    request = DictRequest({"X-Honeycomb-Trace": honeycomb_header({}, dataset="upstream ds")})
    root = beeline.propagate_and_start_trace({"name": "in"}, request)
    with beeline.tracer("child"):
        pass
    beeline.finish_trace(root)
    assert [ev.dataset for ev in beeline_recorder.sent] == ["upstream ds", "upstream ds"]


def test_environment_keys_ignore_the_upstream_dataset(beeline_recorder_factory):
    recorder = beeline_recorder_factory(writekey="abcdefghijklmnopqrstuv", service_name="svc")
    request = DictRequest({"X-Honeycomb-Trace": honeycomb_header({}, dataset="upstream")})
    root = beeline.propagate_and_start_trace({"name": "in"}, request)
    beeline.finish_trace(root)
    assert recorder.sent[0].dataset == "svc"


def test_propagation_hook_outside_a_trace_returns_none(beeline_recorder):
    assert beeline.http_trace_propagation_hook() is None


def test_marshal_trace_context_is_deprecated_but_works(beeline_recorder):
    with beeline.tracer("root") as root:
        with no_warnings():
            value = beeline.marshal_trace_context()
    from beeline.trace import unmarshal_trace_context

    assert unmarshal_trace_context(value) == (root.trace_id, root.id, {})
