"""Trace state is correct where the reference's was not (reference section 7), each with a test."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import beeline


def test_explicit_trace_id_inside_a_trace_keeps_the_outer_trace(beeline_recorder):
    # Reference: the inner trace replaced the outer one and wiped it on exit.
    with beeline.tracer("outer") as outer:
        with beeline.tracer("inner", trace_id="other-trace"):
            pass
        with beeline.tracer("after") as after:
            pass
    assert after.trace_id == outer.trace_id
    assert beeline_recorder.find(name="after")["trace.parent_id"] == outer.id
    assert beeline_recorder.find(name="inner")["trace.trace_id"] == "other-trace"
    assert beeline_recorder.find(name="outer")["meta.span_type"] == "root"


def test_out_of_order_finish_leaves_no_stale_span(beeline_recorder):
    root = beeline.start_trace({"name": "root"})
    a = beeline.start_span({"name": "a"})
    b = beeline.start_span({"name": "b"})
    beeline.finish_span(a)  # out of order: b is still open
    beeline.finish_span(b)
    c = beeline.start_span({"name": "c"})
    assert c.parent_id == root.id  # not a (the reference parented to the stale a)
    beeline.finish_span(c)
    beeline.finish_trace(root)
    assert beeline.get_beeline().tracer_impl.get_active_span() is None
    assert sorted(e["name"] for e in beeline_recorder.events) == ["a", "b", "c", "root"]


def test_finishing_a_span_twice_sends_it_once(beeline_recorder):
    root = beeline.start_trace({"name": "root"})
    span = beeline.start_span({"name": "a"})
    beeline.finish_span(span)
    beeline.finish_span(span)
    beeline.finish_trace(root)
    assert len(beeline_recorder.spans(name="a")) == 1


def test_nothing_leaks_into_the_next_request_whatever_user_code_raised(beeline_recorder):
    def request(fail):
        root = beeline.start_trace({"name": "request"})
        try:
            beeline.start_span({"name": "left-open"})  # user code forgets to finish
            if fail:
                raise RuntimeError("view failed")
        finally:
            beeline.finish_trace(root)

    with pytest.raises(RuntimeError):
        request(fail=True)
    assert beeline.get_beeline().tracer_impl.get_active_span() is None
    request(fail=False)
    roots = beeline_recorder.spans(name="request")
    assert len(roots) == 2 and roots[0]["trace.trace_id"] != roots[1]["trace.trace_id"]
    assert all(r["trace.parent_id"] is None for r in roots)


def test_a_raising_hook_leaves_the_state_consistent(beeline_recorder_factory):
    def presend(fields):
        raise RuntimeError("bad hook")

    recorder = beeline_recorder_factory(presend_hook=presend)
    with beeline.tracer("root"):
        with beeline.tracer("child"):
            pass
    assert beeline.get_beeline().tracer_impl.get_active_span() is None
    assert recorder.events == []  # dropped, never sent unscrubbed


def test_start_span_without_a_trace_returns_none(beeline_recorder):
    assert beeline.start_span({"name": "orphan"}) is None
    assert beeline_recorder.events == []


def test_traced_thread_carries_the_trace_and_restores_the_worker(beeline_recorder):
    seen = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        with beeline.tracer("request") as root:

            @beeline.traced_thread
            def work():
                with beeline.tracer("in-worker") as span:
                    beeline.add_trace_field("from_worker", 1)
                    beeline.add_rollup_field("worker_ms", 4)
                    seen.append(span.parent_id)

            pool.submit(work).result()
        # The worker thread must not keep the copied trace (reference bug).
        leaked = pool.submit(lambda: beeline.get_beeline().tracer_impl.get_active_span()).result()
    assert seen == [root.id]
    assert leaked is None
    root_event = beeline_recorder.find(name="request")
    assert root_event["app.from_worker"] == 1  # trace fields from workers reach the trace
    assert root_event["rollup.worker_ms"] == 4.0


def test_traced_thread_without_a_trace_is_a_pass_through(beeline_recorder):
    def work():
        return 5

    assert beeline.traced_thread(work) is work


def test_threads_do_not_see_each_others_spans(beeline_recorder):
    barrier = threading.Barrier(4)
    errors = []

    def request(i):
        try:
            with beeline.tracer(f"req-{i}") as root:
                barrier.wait(timeout=5)
                with beeline.tracer(f"child-{i}") as child:
                    assert child.parent_id == root.id
                barrier.wait(timeout=5)
        except Exception as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=request, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors
    assert len(beeline_recorder.traces()) == 4
    for i in range(4):
        child = beeline_recorder.find(name=f"child-{i}")
        assert child["trace.parent_id"] == beeline_recorder.find(name=f"req-{i}")["trace.span_id"]


def test_untraced_detaches_and_restores(beeline_recorder):
    @beeline.untraced
    def background():
        return beeline.get_beeline().tracer_impl.get_active_span()

    with beeline.tracer("root") as root:
        assert background() is None
        assert beeline.get_beeline().tracer_impl.get_active_span() is root


def test_a_span_finished_elsewhere_stays_the_parent_while_its_trace_runs(beeline_recorder):
    import contextvars

    root = beeline.start_trace({"name": "request"})
    spawner = beeline.start_span({"name": "spawner"})
    task_context = contextvars.copy_context()  # e.g. a task created under "spawner"
    beeline.finish_span(spawner)
    late = task_context.run(beeline.start_span, {"name": "late"})
    assert late.parent_id == spawner.id
    task_context.run(beeline.finish_span, late)
    beeline.finish_trace(root)
    # Once the trace has ended, that context no longer adds anything to it.
    assert task_context.run(beeline.start_span, {"name": "after-the-end"}) is None
    assert [e["name"] for e in beeline_recorder.events] == ["spawner", "late", "request"]


def test_the_reference_tracer_names_are_the_one_tracer():
    import beeline.aiotrace
    import beeline.trace

    assert beeline.SynchronousTracer is beeline.trace.SynchronousTracer is beeline.trace.Tracer
    assert beeline.aiotrace.AsyncioTracer is beeline.aiotrace.Tracer is beeline.trace.Tracer
