"""Threads: work handed to a thread pool stays in the trace that handed it over, and leaves
nothing behind on the pooled thread."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, wait

import pytest

import beeline
from beeline.threads import ContextExecutor, bind, submit
from beeline.trace import active_span

pytestmark = pytest.mark.timeout(60)


def _active_trace_id():
    span = active_span()
    return span.trace_id if span is not None else None


def _child_work(label: str) -> str:
    with beeline.tracer(f"work-{label}"):
        with beeline.tracer(f"inner-{label}"):
            pass
    return label


class TestContextExecutor:
    def test_spans_in_workers_are_children_of_the_submitting_span(self, beeline_recorder):
        with ContextExecutor(max_workers=4) as pool:
            with beeline.tracer("request") as root:
                futures = [pool.submit(_child_work, str(i)) for i in range(8)]
                assert sorted(f.result(timeout=10) for f in futures) == [str(i) for i in range(8)]

        request = beeline_recorder.find(name="request")
        assert request["trace.span_id"] == root.id
        for i in range(8):
            work = beeline_recorder.find(name=f"work-{i}")
            inner = beeline_recorder.find(name=f"inner-{i}")
            assert work["trace.trace_id"] == root.trace_id
            assert work["trace.parent_id"] == root.id
            assert inner["trace.parent_id"] == work["trace.span_id"]
        assert len(beeline_recorder.traces()) == 1

    def test_a_plain_executor_does_not_carry_the_trace(self, beeline_recorder):
        # The problem ContextExecutor solves: without it the worker sees no trace at all.
        with ThreadPoolExecutor(max_workers=1) as pool:
            with beeline.tracer("request"):
                seen = pool.submit(_active_trace_id).result(timeout=10)
        assert seen is None

    def test_map_carries_the_context(self, beeline_recorder):
        with ContextExecutor(max_workers=3) as pool:
            with beeline.tracer("request") as root:
                seen = list(pool.map(lambda _: _active_trace_id(), range(6), timeout=10))
        assert seen == [root.trace_id] * 6

    def test_the_worker_thread_is_left_as_it_was(self, beeline_recorder):
        # One worker thread runs every task, so anything a task leaves behind is seen by the next.
        with ContextExecutor(max_workers=1) as pool:
            with beeline.tracer("first") as first:
                assert pool.submit(_active_trace_id).result(timeout=10) == first.trace_id
            assert pool.submit(_active_trace_id).result(timeout=10) is None
            with beeline.tracer("second") as second:
                assert pool.submit(_active_trace_id).result(timeout=10) == second.trace_id
            # A task that starts (and leaves open) a span of its own does not leak it either.
            pool.submit(beeline.start_span, {"name": "left-open"}).result(timeout=10)
            assert pool.submit(_active_trace_id).result(timeout=10) is None

    def test_context_is_taken_at_submit_time_not_at_pool_creation(self, beeline_recorder):
        with beeline.tracer("made-the-pool"):
            pool = ContextExecutor(max_workers=1)
        try:
            with beeline.tracer("request") as request:
                assert pool.submit(_active_trace_id).result(timeout=10) == request.trace_id
        finally:
            pool.shutdown(wait=True)

    def test_worker_spans_do_not_change_the_submitters_active_span(self, beeline_recorder):
        with ContextExecutor(max_workers=1) as pool:
            with beeline.tracer("request") as root:
                pool.submit(beeline.start_span, {"name": "worker-open"}).result(timeout=10)
                assert active_span() is root
                with beeline.tracer("after"):
                    pass
        assert beeline_recorder.find(name="after")["trace.parent_id"] == root.id

    def test_event_loop_default_executor(self, beeline_recorder):
        # asyncio's run_in_executor does not copy the context (asyncio.to_thread does);
        # a ContextExecutor as the loop's default executor makes it.
        async def main(executor):
            loop = asyncio.get_running_loop()
            if executor is not None:
                loop.set_default_executor(executor)
            with beeline.tracer("request") as root:
                seen = await loop.run_in_executor(None, _active_trace_id)
            return root.trace_id, seen

        trace_id, seen = asyncio.run(main(ContextExecutor(max_workers=1)))
        assert seen == trace_id
        _, seen_plain = asyncio.run(main(None))
        assert seen_plain is None


class TestSubmitHelper:
    def test_submit_carries_the_context_into_any_thread_pool(self, beeline_recorder):
        with ThreadPoolExecutor(max_workers=2) as pool:
            with beeline.tracer("request") as root:
                future = submit(pool, _child_work, "x")
                assert future.result(timeout=10) == "x"
            # ...and leaves the worker clean.
            assert submit(pool, _active_trace_id).result(timeout=10) is None
            assert pool.submit(_active_trace_id).result(timeout=10) is None
        work = beeline_recorder.find(name="work-x")
        assert work["trace.parent_id"] == root.id

    def test_keyword_arguments_pass_through(self, beeline_recorder):
        def join(a, b, sep="-"):
            return f"{a}{sep}{b}"

        with ContextExecutor(max_workers=1) as pool:
            assert pool.submit(join, "a", "b", sep="+").result(timeout=10) == "a+b"
            assert submit(pool, join, "a", "b", sep="/").result(timeout=10) == "a/b"

    def test_a_process_pool_is_submitted_to_unchanged(self, beeline_recorder):
        # A Context cannot be pickled; the helper must not try to send one to another process.
        with ProcessPoolExecutor(max_workers=1) as pool:
            with beeline.tracer("request"):
                assert submit(pool, pow, 2, 10).result(timeout=30) == 1024

    def test_exceptions_reach_the_future(self, beeline_recorder):
        def boom():
            with beeline.tracer("failing"):
                raise ValueError("no")

        with ContextExecutor(max_workers=1) as pool:
            with beeline.tracer("request") as root:
                future = pool.submit(boom)
                with pytest.raises(ValueError):
                    future.result(timeout=10)
        failing = beeline_recorder.find(name="failing")
        assert failing["trace.parent_id"] == root.id
        assert failing["app.exception_string"] == "no"


class TestBind:
    def test_bound_callback_runs_in_the_binding_context(self, beeline_recorder):
        seen = []
        done = threading.Event()

        def callback():
            seen.append(_active_trace_id())
            with beeline.tracer("callback"):
                pass
            done.set()

        with beeline.tracer("request") as root:
            timer = threading.Timer(0.01, bind(callback))
            timer.start()
            assert done.wait(10)
        timer.join(10)
        assert seen == [root.trace_id]
        assert beeline_recorder.find(name="callback")["trace.parent_id"] == root.id

    def test_bound_outside_a_trace_runs_detached(self, beeline_recorder):
        detached = bind(_active_trace_id)
        with beeline.tracer("request"):
            assert detached() is None
            assert _active_trace_id() is not None

    def test_bind_keeps_the_function_name(self):
        assert bind(_child_work).__name__ == "_child_work"
        assert bind(_child_work).__wrapped__ is _child_work


class TestTracedThread:
    def test_thread_spans_join_the_trace(self, beeline_recorder):
        with beeline.tracer("request") as root:
            thread = threading.Thread(target=beeline.traced_thread(_child_work), args=("t",))
            thread.start()
            thread.join(10)
        assert beeline_recorder.find(name="work-t")["trace.parent_id"] == root.id

    def test_a_pooled_worker_is_not_left_holding_the_trace(self, beeline_recorder):
        # The reference attached the copied trace to the worker thread for good, so unrelated
        # later tasks on that thread joined the old trace.
        with ThreadPoolExecutor(max_workers=1) as pool:
            with beeline.tracer("request") as root:
                seen = pool.submit(beeline.traced_thread(_active_trace_id)).result(timeout=10)
            assert seen == root.trace_id
            assert pool.submit(_active_trace_id).result(timeout=10) is None

    def test_without_a_trace_the_function_is_returned_as_is(self, beeline_recorder):
        assert beeline.traced_thread(_child_work) is _child_work


class TestWorkerFieldsReachTheirTrace:
    def test_rollups_and_trace_fields_from_workers_reach_the_root(self, beeline_recorder):
        def record(i):
            beeline.add_rollup_field("db_ms", 1.5)
            beeline.add_trace_field(f"worker_{i}", i)
            with beeline.tracer(f"query-{i}"):
                beeline.add_rollup_field("db_ms", 0.5)

        with ContextExecutor(max_workers=4) as pool:
            with beeline.tracer("request"):
                wait([pool.submit(record, i) for i in range(10)], timeout=10)

        root = beeline_recorder.find(name="request")
        assert root["rollup.db_ms"] == pytest.approx(20.0)
        # Rollups recorded with no span of the worker's own belong to the submitting span.
        assert root["db_ms"] == pytest.approx(15.0)
        assert {root[f"app.worker_{i}"] for i in range(10)} == set(range(10))
        assert beeline_recorder.find(name="query-3")["db_ms"] == pytest.approx(0.5)


class TestStress:
    REQUESTS = 24
    TASKS = 12

    def test_many_requests_share_one_pool_without_crossing_traces(self, beeline_recorder):
        """Concurrent request threads each fan work out to one shared pool: every span lands in
        its own request's trace, under the right parent, with exact rollup totals."""
        start = threading.Barrier(self.REQUESTS)
        pool = ContextExecutor(max_workers=8)
        errors = []

        def task(req: int, n: int) -> None:
            with beeline.tracer(f"task-{req}-{n}"):
                beeline.add_rollup_field("units", 1)
                beeline.add_trace_field(f"task_{n}", req)
                with beeline.tracer(f"leaf-{req}-{n}"):
                    beeline.add_context_field("req", req)
                    beeline.add_rollup_field("units", 2)

        def request(req: int) -> None:
            try:
                start.wait(10)
                with beeline.tracer(f"request-{req}"):
                    beeline.add_context_field("req", req)
                    with beeline.tracer(f"fanout-{req}"):
                        futures = [pool.submit(task, req, n) for n in range(self.TASKS)]
                        for f in futures:
                            f.result(timeout=20)
            except BaseException as exc:  # surfaced below with the request number
                errors.append((req, exc))

        threads = [threading.Thread(target=request, args=(r,)) for r in range(self.REQUESTS)]
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
        finally:
            pool.shutdown(wait=True)
        assert errors == []
        assert not any(t.is_alive() for t in threads)

        events = beeline_recorder.events
        assert len(events) == self.REQUESTS * (2 + 2 * self.TASKS)
        traces = beeline_recorder.traces()
        assert len(traces) == self.REQUESTS
        by_id = {ev["trace.span_id"]: ev for ev in events}
        for req in range(self.REQUESTS):
            root = beeline_recorder.find(name=f"request-{req}")
            fanout = beeline_recorder.find(name=f"fanout-{req}")
            trace = traces[root["trace.trace_id"]]
            assert len(trace) == 2 + 2 * self.TASKS
            assert fanout["trace.parent_id"] == root["trace.span_id"]
            for n in range(self.TASKS):
                task_ev = beeline_recorder.find(name=f"task-{req}-{n}")
                leaf = beeline_recorder.find(name=f"leaf-{req}-{n}")
                assert task_ev["trace.trace_id"] == root["trace.trace_id"]
                assert task_ev["trace.parent_id"] == fanout["trace.span_id"]
                assert leaf["trace.parent_id"] == task_ev["trace.span_id"]
                assert leaf["req"] == req
                # Trace fields set by this request's workers, never another request's.
                assert root[f"app.task_{n}"] == req
            assert root["rollup.units"] == pytest.approx(3.0 * self.TASKS)
            # Every parent of every span of this trace is in the same trace.
            for ev in trace:
                parent = ev["trace.parent_id"]
                if parent is not None:
                    assert by_id[parent]["trace.trace_id"] == ev["trace.trace_id"]


class TestTraceFieldsUnderConcurrentFinish:
    def test_no_span_is_lost_while_a_worker_adds_trace_fields(self, beeline_recorder):
        import sys

        SPANS = 20000
        stop = threading.Event()
        churning = threading.Barrier(3)

        def churn_trace_fields():
            churning.wait(10)
            i = 0
            while not stop.is_set():
                beeline.add_trace_field(f"churn_{i % 64}", i)
                beeline.remove_trace_field(f"churn_{(i + 32) % 64}")
                i += 1

        # A short switch interval makes the two threads interleave often, as they do under load
        # on many cores; it is restored before the test ends.
        previous = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        try:
            with ContextExecutor(max_workers=2) as pool:
                with beeline.tracer("request"):
                    churners = [pool.submit(churn_trace_fields) for _ in range(2)]
                    churning.wait(10)
                    try:
                        for _ in range(SPANS):
                            with beeline.tracer("child"):
                                pass
                    finally:
                        stop.set()
                        wait(churners, timeout=10)
        finally:
            sys.setswitchinterval(previous)
        assert len(beeline_recorder.spans(name="child")) == SPANS
