"""The reference's deprecated functions still work, and warn of nothing, as in 3.6.0."""

import beeline
from beeline.testing import RecordingTransmission
from tests.warning_checks import no_warnings


def test_new_event_and_send_event_build_a_trace(beeline_recorder):
    with no_warnings():
        beeline.new_event({"a": 1}, trace_name="legacy-root")
        beeline.new_event(trace_name="legacy-child")
        beeline.add_field("f", 2)
        beeline.add({"g": 3})
        beeline.send_event()
        beeline.send_event()
    child = beeline_recorder.find(name="legacy-child")
    root = beeline_recorder.find(name="legacy-root")
    assert child["f"] == 2 and child["g"] == 3 and root["a"] == 1
    assert child["trace.parent_id"] == root["trace.span_id"]


def test_send_all_finishes_every_open_span(beeline_recorder):
    beeline.start_trace({"name": "root"})
    beeline.start_span({"name": "a"})
    beeline.start_span({"name": "b"})
    with no_warnings():
        beeline.send_all()
    assert [e["name"] for e in beeline_recorder.events] == ["b", "a", "root"]
    assert beeline.get_beeline().tracer_impl.get_active_span() is None


def test_send_now_sends_a_non_trace_event_through_the_hooks():
    recorder = RecordingTransmission()
    beeline.init(writekey="0" * 32, dataset="d", service_name="svc", transmission_impl=recorder,
                 presend_hook=lambda f: f.update(scrubbed=True))
    with no_warnings():
        beeline.send_now({"legacy": "yes"})
    event = recorder.events[0]
    assert event["legacy"] == "yes" and event["scrubbed"] is True
    assert event["service_name"] == "svc"
    assert "trace.trace_id" not in event


def test_send_now_uses_random_sampling_with_dropped_responses():
    recorder = RecordingTransmission()
    beeline.init(writekey="0" * 32, dataset="d", service_name="svc", transmission_impl=recorder, sample_rate=50)
    with no_warnings():
        for _ in range(400):
            beeline.send_now({"n": 1})
    assert 0 < len(recorder.events) < 40


def test_legacy_module_names_exist():
    from beeline import aiotrace, internal, trace

    assert callable(aiotrace.untraced)
    assert internal.stringify_exception(ValueError("x")) == "x"
    assert len(trace.generate_trace_id()) == 32 and len(trace.generate_span_id()) == 16
    assert trace.MAX_INT32 == 2**32 - 1


def test_internal_log_writes_only_in_debug_mode(caplog):
    import logging

    from beeline import internal

    caplog.set_level(logging.DEBUG, logger="beeline")
    internal.log("before init %s", 1)  # no beeline: nothing, no error
    beeline.init(writekey="0" * 32, dataset="d", service_name="s", transmission_impl=RecordingTransmission())
    internal.log("quiet %s", 2)
    beeline.close()
    beeline.init(writekey="0" * 32, dataset="d", service_name="s", transmission_impl=RecordingTransmission(),
                 debug=True)
    internal.log("loud %s", 3)
    assert "loud 3" in caplog.text
    assert "quiet 2" not in caplog.text and "before init 1" not in caplog.text
