"""The fields of every span event, with the reference's names and value types (section 2.8)."""

import re
import socket

import pytest

import beeline
from beeline.version import VERSION

HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")


def test_every_span_carries_the_reference_fields(beeline_recorder):
    with beeline.tracer(name="work"):
        beeline.add_context_field("user_id", 7)
        with beeline.tracer(name="child"):
            pass
    child, root = beeline_recorder.events
    for event in (child, root):
        assert event["service_name"] == "test-service"
        assert event["service.name"] == "test-service"
        assert event["meta.beeline_version"] == VERSION
        assert event["meta.local_hostname"] == socket.gethostname()
        assert HEX32.match(event["trace.trace_id"])
        assert HEX16.match(event["trace.span_id"])
        assert isinstance(event["duration_ms"], float) and event["duration_ms"] >= 0
    assert root["name"] == "work" and child["name"] == "child"
    assert root["user_id"] == 7 and "user_id" not in child
    assert root["meta.span_type"] == "root" and root["trace.parent_id"] is None
    assert "meta.span_type" not in child
    assert child["trace.parent_id"] == root["trace.span_id"]
    assert child["trace.trace_id"] == root["trace.trace_id"]


def test_spans_started_without_a_name_have_no_name_field(beeline_recorder):
    root = beeline.start_trace()
    span = beeline.start_span()
    beeline.finish_span(span)
    beeline.finish_trace(root)
    assert all("name" not in e for e in beeline_recorder.events)


def test_incoming_ids_are_used_verbatim_and_make_a_subroot(beeline_recorder):
    root = beeline.start_trace(trace_id="a-uuid-like-id", parent_span_id="upstream-span")
    beeline.finish_trace(root)
    event = beeline_recorder.find(trace__trace_id="a-uuid-like-id")
    assert event["trace.parent_id"] == "upstream-span"
    assert event["meta.span_type"] == "subroot"


def test_rollups_sum_on_the_span_and_on_the_root(beeline_recorder):
    # Reference: child db_ms=3.0, root db_ms=2.0 and rollup.db_ms=5.0.
    with beeline.tracer("root"):
        with beeline.tracer("child"):
            beeline.add_rollup_field("db_ms", 1)
            beeline.add_rollup_field("db_ms", 2)
        beeline.add_rollup_field("db_ms", 2)
    child = beeline_recorder.find(name="child")
    root = beeline_recorder.find(name="root")
    assert child["db_ms"] == 3.0 and "rollup.db_ms" not in child
    assert root["db_ms"] == 2.0 and root["rollup.db_ms"] == 5.0


def test_a_non_numeric_rollup_is_logged_not_raised(beeline_recorder, caplog):
    with beeline.tracer("root"):
        beeline.add_rollup_field("db_ms", "lots")
    assert "not a number" in caplog.text
    assert "db_ms" not in beeline_recorder.find(name="root")


def test_trace_fields_are_inherited_and_back_filled(beeline_recorder):
    with beeline.tracer("root"):
        with beeline.tracer("early"):
            pass
        beeline.add_trace_field("user", "bob")
        beeline.add_trace_field("app.plan", "gold")
        with beeline.tracer("late"):
            beeline.add_trace_field("user", "alice")
    early = beeline_recorder.find(name="early")
    late = beeline_recorder.find(name="late")
    root = beeline_recorder.find(name="root")
    # early finished before the field existed; later spans inherit it; no double prefix.
    assert "app.user" not in early
    assert late["app.user"] == "alice" and late["app.plan"] == "gold"
    assert root["app.user"] == "bob" and root["app.plan"] == "gold"
    assert "app.app.plan" not in root


def test_remove_trace_field_takes_the_same_name_as_add(beeline_recorder):
    # The reference prefixed again (app.app.x) and raised KeyError when absent.
    with beeline.tracer("root"):
        beeline.add_trace_field("app.x", 1)
        beeline.remove_trace_field("app.x")
        beeline.remove_trace_field("never-added")
        with beeline.tracer("child"):
            pass
    assert "app.x" not in beeline_recorder.find(name="child")
    assert "app.x" not in beeline_recorder.find(name="root")


def test_context_fields_can_be_removed(beeline_recorder):
    with beeline.tracer("root"):
        beeline.add_context({"a": 1, "b": 2})
        beeline.remove_context_field("a")
    root = beeline_recorder.find(name="root")
    assert "a" not in root and root["b"] == 2


def test_exception_fields_are_recorded_and_the_exception_propagates(beeline_recorder):
    with pytest.raises(ValueError):
        with beeline.tracer("root"):
            raise ValueError("boom")
    root = beeline_recorder.find(name="root")
    assert root["app.exception_type"] == "<class 'ValueError'>"
    assert root["app.exception_string"] == "boom"
    assert "Traceback (most recent call last)" in root["app.exception_stacktrace"]
    assert "ValueError: boom" in root["app.exception_stacktrace"]


def test_base_exceptions_are_not_recorded_as_errors(beeline_recorder):
    with pytest.raises(KeyboardInterrupt):
        with beeline.tracer("root"):
            raise KeyboardInterrupt
    root = beeline_recorder.find(name="root")
    assert "app.exception_type" not in root


def test_user_client_fields_reach_every_span(beeline_recorder):
    beeline.get_beeline().client.add_field("deploy", "v42")
    with beeline.tracer("root"):
        pass
    assert beeline_recorder.find(name="root")["deploy"] == "v42"


def test_client_fields_added_later_reach_later_spans_only(beeline_recorder):
    with beeline.tracer("before"):
        pass
    client = beeline.get_beeline().client
    client.add_field("deploy", "v43")
    client.add({"region": "eu-1", "service_name": "renamed"})
    with beeline.tracer("after"):
        pass
    before, after = beeline_recorder.find(name="before"), beeline_recorder.find(name="after")
    assert "deploy" not in before and before["service_name"] == "test-service"
    assert after["deploy"] == "v43" and after["region"] == "eu-1" and after["service_name"] == "renamed"


def test_client_dynamic_fields_are_evaluated_per_span(beeline_recorder):
    calls = []

    def request_number():
        calls.append(1)
        return len(calls)

    beeline.get_beeline().client.add_dynamic_field(request_number)
    for name in ("one", "two"):
        with beeline.tracer(name):
            pass
    assert beeline_recorder.find(name="one")["request_number"] == 1
    assert beeline_recorder.find(name="two")["request_number"] == 2


def test_a_span_field_wins_over_the_client_field_of_the_same_name(beeline_recorder):
    with beeline.tracer("root"):
        beeline.add_context_field("service_name", "overridden")
    event = beeline_recorder.find(name="root")
    assert event["service_name"] == "overridden" and event["service.name"] == "test-service"
    assert list(event)[:4] == ["service_name", "service.name", "meta.beeline_version", "meta.local_hostname"]


def test_changing_a_finished_span_does_not_change_its_event(beeline_recorder):
    span = beeline.start_trace({"name": "root"})
    beeline.finish_trace(span)
    span.fields["late"] = True
    event = beeline_recorder.find(name="root")
    assert "late" not in event and span.fields["trace.span_id"] == event["trace.span_id"]


def test_span_event_compatibility_view(beeline_recorder):
    with beeline.tracer("root") as span:
        span.event.add_field("legacy", True)
        assert span.event.fields()["legacy"] is True
        span.event.sample_rate = 5
    assert beeline_recorder.find(name="root")["legacy"] is True
    assert beeline_recorder.sent[0].sample_rate == 5


def test_events_carry_time_rate_and_dataset(beeline_recorder):
    with beeline.tracer("root"):
        pass
    event = beeline_recorder.sent[0]
    assert event.sample_rate == 1
    assert event.dataset == "test-dataset"
    assert event.created_at.tzinfo is not None
    assert event.writekey == "0" * 32
