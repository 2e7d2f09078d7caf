"""Sampling and hooks (reference section 3), with the reference's failure modes fixed."""

import pytest

import beeline

KEPT_AT_2 = "iow4KAFBl9u6lF4EYIcsFz60rXGvu7ph"
DROPPED_AT_2 = "4YeYygWjTZ41zOBKUoYUaSVxPGm78rdU"


def run_trace(trace_id, children=2):
    with beeline.tracer("root", trace_id=trace_id):
        for i in range(children):
            with beeline.tracer(f"child-{i}"):
                pass


def test_deterministic_sampling_keeps_or_drops_whole_traces(beeline_recorder_factory):
    recorder = beeline_recorder_factory(sample_rate=2)
    run_trace(KEPT_AT_2)
    run_trace(DROPPED_AT_2)
    assert {e["trace.trace_id"] for e in recorder.events} == {KEPT_AT_2}
    assert len(recorder.events) == 3
    assert all(ev.sample_rate == 2 for ev in recorder.sent)


def test_presend_hook_runs_only_on_kept_spans(beeline_recorder_factory):
    seen = []
    recorder = beeline_recorder_factory(sample_rate=2, presend_hook=lambda f: seen.append(f["trace.trace_id"]))
    run_trace(KEPT_AT_2)
    run_trace(DROPPED_AT_2)
    assert set(seen) == {KEPT_AT_2} and len(seen) == 3  # the reference ran it 6 times
    assert len(recorder.events) == 3


def test_presend_hook_can_scrub_and_delete(beeline_recorder_factory):
    def scrub(fields):
        fields["user_email"] = "[redacted]"
        fields.pop("secret", None)

    recorder = beeline_recorder_factory(presend_hook=scrub)
    with beeline.tracer("root"):
        beeline.add_context({"user_email": "a@b.c", "secret": "s"})
    root = recorder.find(name="root")
    assert root["user_email"] == "[redacted]" and "secret" not in root


def test_sampler_hook_replaces_deterministic_sampling(beeline_recorder_factory):
    calls = []

    def sampler(fields):
        calls.append(fields["name"])
        return fields["name"] != "child-0", 7

    recorder = beeline_recorder_factory(sample_rate=1000, sampler_hook=sampler)
    run_trace(DROPPED_AT_2)
    assert sorted(calls) == ["child-0", "child-1", "root"]
    assert sorted(e["name"] for e in recorder.events) == ["child-1", "root"]
    assert all(ev.sample_rate == 7 for ev in recorder.sent)


def test_raising_sampler_hook_falls_back_to_deterministic_rule(beeline_recorder_factory, caplog):
    def sampler(fields):
        raise RuntimeError("sampler bug")

    recorder = beeline_recorder_factory(sample_rate=2, sampler_hook=sampler)
    run_trace(KEPT_AT_2, children=0)
    run_trace(DROPPED_AT_2, children=0)
    assert [e["trace.trace_id"] for e in recorder.events] == [KEPT_AT_2]
    assert recorder.sent[0].sample_rate == 2
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "sampler_hook failed" in r.getMessage()]
    assert len(warnings) == 1  # logged once, not per span


def test_raising_presend_hook_drops_the_event(beeline_recorder_factory, caplog):
    def presend(fields):
        if fields["name"] == "child-0":
            raise RuntimeError("scrubber bug")

    recorder = beeline_recorder_factory(presend_hook=presend)
    run_trace("t1")
    assert sorted(e["name"] for e in recorder.events) == ["child-1", "root"]
    assert "presend_hook failed" in caplog.text


def test_sampler_hook_returning_a_bad_rate_falls_back(beeline_recorder_factory):
    recorder = beeline_recorder_factory(sample_rate=2, sampler_hook=lambda f: (True, 0))
    run_trace(KEPT_AT_2, children=0)
    assert recorder.sent[0].sample_rate == 2


@pytest.mark.parametrize("rate", [0, -1, 0.5, 2.5, "2", None, True])
def test_bad_sample_rates_are_rejected_at_init(rate):
    with pytest.raises(ValueError, match="sample_rate"):
        beeline.init(writekey="0" * 32, dataset="d", sample_rate=rate)
    assert beeline.get_beeline() is None


def test_whole_float_rate_is_accepted(beeline_recorder_factory):
    beeline_recorder_factory(sample_rate=2.0)
    assert beeline.get_beeline().sample_rate == 2


@pytest.mark.parametrize("dropping_answer", [(False, 0), (False, None), (0, 0), (None, "x"), ([], 1)])
def test_sampler_hook_returning_a_falsy_keep_drops_the_span(beeline_recorder_factory, dropping_answer):
    # The reference docs' own sampler drops with `return False, 0`; the rate is never looked at.
    recorder = beeline_recorder_factory(sample_rate=1, sampler_hook=lambda f: dropping_answer)
    run_trace(KEPT_AT_2, children=2)
    assert recorder.events == []


def test_sampler_hook_can_drop_some_spans_and_keep_others(beeline_recorder_factory):
    def sampler(fields):
        if fields.get("name") == "child-0":
            return False, 0
        return True, 1

    recorder = beeline_recorder_factory(sampler_hook=sampler)
    run_trace("t1", children=2)
    assert sorted(e["name"] for e in recorder.events) == ["child-1", "root"]


def test_sampler_keep_whose_truth_test_raises_falls_back(beeline_recorder_factory, caplog):
    class Undecided:
        def __bool__(self):
            raise RuntimeError("no truth value")

    recorder = beeline_recorder_factory(sample_rate=2, sampler_hook=lambda f: (Undecided(), 1))
    run_trace(KEPT_AT_2, children=0)
    run_trace(DROPPED_AT_2, children=0)
    assert [e["trace.trace_id"] for e in recorder.events] == [KEPT_AT_2]
    assert "sampler_hook failed" in caplog.text
