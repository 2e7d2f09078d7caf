"""What the fast paths must keep: the optimised span, event and no-op paths behave exactly as the
plain ones did. (Speed itself is measured by benchmarks/, never asserted here.)"""

import re
import time

import libhoney
import pytest

import beeline
from beeline.propagation.honeycomb import unmarshal_propagation_context
from beeline.trace import Span, UnsampledSpan, generate_span_id, generate_trace_id
from tests.warning_checks import no_warnings

KEPT_AT_2 = "iow4KAFBl9u6lF4EYIcsFz60rXGvu7ph"
DROPPED_AT_2 = "4YeYygWjTZ41zOBKUoYUaSVxPGm78rdU"
HEX16 = re.compile(r"^[0-9a-f]{16}$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")


def active():
    return beeline.get_beeline().tracer_impl.get_active_span()


class TestIds:
    def test_ids_are_zero_padded_lowercase_hex_of_the_w3c_lengths(self):
        span_ids = {generate_span_id() for _ in range(2000)}
        trace_ids = {generate_trace_id() for _ in range(2000)}
        assert all(HEX16.match(i) for i in span_ids) and len(span_ids) == 2000
        assert all(HEX32.match(i) for i in trace_ids) and len(trace_ids) == 2000

    def test_spans_from_every_start_path_get_such_ids(self, beeline_recorder):
        root = beeline.start_trace({"name": "root"})
        child = beeline.start_span({"name": "child"})
        with beeline.tracer("cm"):
            pass
        beeline.finish_span(child)
        beeline.finish_trace(root)
        for ev in beeline_recorder.events:
            assert HEX32.match(ev["trace.trace_id"]) and HEX16.match(ev["trace.span_id"])


class TestSpansOfDroppedTraces:
    """Spans of a trace that sampling dropped cost no event, but the application cannot tell."""

    def test_nesting_fields_and_finish_order_are_kept(self, beeline_recorder_factory):
        recorder = beeline_recorder_factory(sample_rate=2)
        root = beeline.start_trace({"name": "root"}, trace_id=DROPPED_AT_2)
        child = beeline.start_span({"name": "child"})
        assert isinstance(child, Span) and isinstance(child, UnsampledSpan)
        assert active() is child and child.trace_id == DROPPED_AT_2 and not child.is_root()
        beeline.add_context_field("rows", 3)
        assert child.fields == {"name": "child", "rows": 3}
        grandchild = beeline.start_span()
        assert grandchild.parent_id == child.id and child.parent_id == root.id
        beeline.finish_span(grandchild)
        assert active() is child
        beeline.finish_span(child)
        assert active() is root
        beeline.finish_trace(root)
        assert active() is None
        assert recorder.events == []

    def test_a_span_id_is_made_once_and_then_stable(self, beeline_recorder_factory):
        beeline_recorder_factory(sample_rate=2)
        root = beeline.start_trace(trace_id=DROPPED_AT_2)
        child = beeline.start_span()
        first = child.id
        assert HEX16.match(first) and child.id == first and first != root.id
        child.id = "00f067aa0ba902b7"
        assert child.id == "00f067aa0ba902b7"
        beeline.finish_span(child)
        beeline.finish_trace(root)

    def test_propagation_from_inside_names_the_unsampled_span(self, beeline_recorder_factory):
        beeline_recorder_factory(sample_rate=2)
        root = beeline.start_trace(trace_id=DROPPED_AT_2)
        beeline.add_trace_field("tenant", "acme")
        child = beeline.start_span({"name": "call"})
        headers = beeline.http_trace_propagation_hook()
        trace_id, parent_id, fields = unmarshal_propagation_context(headers["X-Honeycomb-Trace"])
        assert (trace_id, parent_id, fields) == (DROPPED_AT_2, child.id, {"app.tenant": "acme"})
        beeline.finish_span(child)
        beeline.finish_trace(root)

    def test_start_time_is_the_parents(self, beeline_recorder_factory):
        beeline_recorder_factory(sample_rate=2)
        root = beeline.start_trace(trace_id=DROPPED_AT_2)
        child = beeline.start_span()
        assert child.start_time == pytest.approx(root.start_time, abs=0.5)
        beeline.finish_span(child)
        beeline.finish_trace(root)

    def test_deprecated_new_event_and_send_event_pop_the_right_span(self, beeline_recorder_factory):
        recorder = beeline_recorder_factory(sample_rate=2)
        root = beeline.start_trace({"name": "root"}, trace_id=DROPPED_AT_2)
        with no_warnings():
            beeline.new_event({"step": 1}, trace_name="legacy")
            assert active() is not root
            beeline.send_event()
        assert active() is root  # the root is still open: the trace did not end early
        beeline.finish_trace(root)
        assert recorder.events == []

    def test_traced_and_tracer_work_and_record_errors_without_sending(self, beeline_recorder_factory):
        recorder = beeline_recorder_factory(sample_rate=2)

        @beeline.traced("work")
        def work():
            raise KeyError("x")

        with beeline.tracer("root", trace_id=DROPPED_AT_2):
            with pytest.raises(KeyError):
                work()
            with beeline.tracer("inner") as inner:
                assert active() is inner and inner.fields["name"] == "inner"
        assert active() is None and recorder.events == []

    def test_a_kept_trace_after_a_dropped_one_is_complete(self, beeline_recorder_factory):
        recorder = beeline_recorder_factory(sample_rate=2)
        for trace_id in (DROPPED_AT_2, KEPT_AT_2):
            root = beeline.start_trace({"name": "root"}, trace_id=trace_id)
            beeline.finish_span(beeline.start_span({"name": "child"}))
            beeline.finish_trace(root)
        assert [(e["name"], e["trace.trace_id"]) for e in recorder.events] == [
            ("child", KEPT_AT_2),
            ("root", KEPT_AT_2),
        ]


class TestEventsOfKeptSpans:
    def test_event_carries_the_beelines_settings(self, beeline_recorder_factory):
        recorder = beeline_recorder_factory(dataset="orders", sample_rate=1, api_host="http://127.0.0.1:9")
        before = time.time()
        with beeline.tracer("root"):
            with beeline.tracer("child") as child:
                child.event.sample_rate = 7
        after = time.time()
        child_ev, root_ev = recorder.sent
        for ev in (child_ev, root_ev):
            assert isinstance(ev, libhoney.Event)
            assert (ev.dataset, ev.writekey, ev.api_host) == ("orders", "0" * 32, "http://127.0.0.1:9")
            assert ev.metadata is None
            created = ev.created_at.timestamp()
            assert before - 0.001 <= created <= after + 0.001
            assert ev.created_at.utcoffset().total_seconds() == 0
        assert (child_ev.sample_rate, root_ev.sample_rate) == (7, 1)
        assert root_ev.created_at <= child_ev.created_at

    def test_a_propagated_dataset_goes_on_that_traces_events_only(self, beeline_recorder_factory):
        from beeline.propagation import DictRequest

        recorder = beeline_recorder_factory(dataset="mine")  # a classic key honours the header
        header = "1;trace_id=abc,parent_id=def,dataset=upstream"
        root = beeline.propagate_and_start_trace({"name": "in"}, DictRequest({"X-Honeycomb-Trace": header}))
        beeline.finish_trace(root)
        with beeline.tracer("own"):
            pass
        assert [ev.dataset for ev in recorder.sent] == ["upstream", "mine"]

    def test_event_fields_are_a_new_dict_not_the_spans(self, beeline_recorder):
        with beeline.tracer("root") as root:
            pass
        ev = beeline_recorder.sent[0]
        assert ev.fields() is not root.fields
        root.fields["late"] = 1
        assert "late" not in ev.fields()


class TestTraceFieldsOnSpans:
    def test_a_span_keeps_the_value_it_started_with_and_gets_later_ones(self, beeline_recorder):
        with beeline.tracer("root"):
            beeline.add_trace_field("plan", "free")
            with beeline.tracer("child") as child:
                assert child.fields["app.plan"] == "free"
                with beeline.tracer("sibling-starter"):
                    beeline.add_trace_field("plan", "pro")
                    beeline.add_trace_field("region", "eu")
        child_ev = beeline_recorder.find(name="child")
        root_ev = beeline_recorder.find(name="root")
        assert (child_ev["app.plan"], child_ev["app.region"]) == ("free", "eu")
        assert (root_ev["app.plan"], root_ev["app.region"]) == ("free", "eu")

    def test_context_overrides_a_trace_field_of_the_same_name(self, beeline_recorder):
        with beeline.tracer("root"):
            beeline.add_trace_field("plan", "free")
            span = beeline.start_span({"name": "child", "app.plan": "override"})
            beeline.finish_span(span)
        assert beeline_recorder.find(name="child")["app.plan"] == "override"

    def test_a_removed_trace_field_is_not_sent_on_the_span_that_removed_it(self, beeline_recorder):
        with beeline.tracer("root"):
            beeline.add_trace_field("secret", "s")
            with beeline.tracer("child"):
                beeline.remove_trace_field("secret")
        assert "app.secret" not in beeline_recorder.find(name="child")


class TestNoopPaths:
    def test_tracer_without_init_is_a_shared_reentrant_noop(self):
        assert beeline.get_beeline() is None
        first, second = beeline.tracer("a"), beeline.tracer("b")
        assert first is second
        with first as outer:
            with second as inner:
                assert outer is None and inner is None
        with pytest.raises(ValueError):
            with beeline.tracer("c"):
                raise ValueError("propagates")

    def test_traced_without_init_passes_arguments_and_results(self):
        @beeline.traced("f")
        def f(a, b=2, *rest, **kw):
            return a, b, rest, kw

        assert f(1, 3, 4, k=5) == (1, 3, (4,), {"k": 5})

    def test_calls_outside_a_trace_do_nothing(self, beeline_recorder):
        beeline.add_context_field("a", 1)
        beeline.add_context({"b": 2})
        beeline.add_trace_field("c", 3)
        beeline.add_rollup_field("d", 4)
        assert beeline.start_span() is None
        beeline.finish_span(None)
        assert beeline.http_trace_propagation_hook() is None
        assert beeline_recorder.events == []
