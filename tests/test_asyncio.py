"""asyncio: with `init()` done before any loop runs (the normal, import-time case), concurrent
tasks keep their own spans under the right parent, with no task factory involved."""

from __future__ import annotations

import asyncio
import sys

import pytest

import beeline
from beeline.trace import active_span

pytestmark = pytest.mark.timeout(60)


def run(coro_fn, *args, loop_factory=None):
    """asyncio.run, optionally on a loop we set up first (custom task factory, uvloop)."""
    if loop_factory is None:
        return asyncio.run(coro_fn(*args))
    loop = loop_factory()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(coro_fn(*args))
    finally:
        asyncio.set_event_loop(None)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


@beeline.traced("fetch")
async def fetch(label: str, pause: float = 0.001) -> str:
    beeline.add_context_field("label", label)
    await asyncio.sleep(pause)
    with beeline.tracer(f"parse-{label}"):
        await asyncio.sleep(0)
    return label


class TestTasks:
    def test_gather_children_are_siblings_under_the_caller(self, beeline_recorder):
        async def main():
            with beeline.tracer("request") as root:
                labels = await asyncio.gather(*(fetch(str(i), 0.001 * (3 - i)) for i in range(3)))
            return root, labels

        root, labels = run(main)
        assert labels == ["0", "1", "2"]
        fetches = beeline_recorder.spans(name="fetch")
        assert len(fetches) == 3
        for ev in fetches:
            # Each task's span hangs off the request, never off a sibling task's open span.
            assert ev["trace.parent_id"] == root.id
            assert ev["trace.trace_id"] == root.trace_id
            parse = beeline_recorder.find(name=f"parse-{ev['label']}")
            assert parse["trace.parent_id"] == ev["trace.span_id"]

    def test_an_open_span_in_one_task_does_not_adopt_a_siblings_spans(self, beeline_recorder):
        a_open = asyncio.Event

        async def main():
            opened = a_open()
            b_done = a_open()

            async def task_a():
                with beeline.tracer("a"):
                    opened.set()
                    await b_done.wait()  # "a" stays open while b works

            async def task_b():
                await opened.wait()
                with beeline.tracer("b"):
                    pass
                b_done.set()

            with beeline.tracer("request") as root:
                await asyncio.gather(task_a(), task_b())
            return root

        root = run(main)
        assert beeline_recorder.find(name="b")["trace.parent_id"] == root.id
        assert beeline_recorder.find(name="a")["trace.parent_id"] == root.id

    def test_create_task_runs_under_the_span_it_was_created_in(self, beeline_recorder):
        async def main():
            with beeline.tracer("request") as root:
                with beeline.tracer("spawner") as spawner:
                    task = asyncio.create_task(fetch("task", 0.001))
                    with beeline.tracer("sibling"):
                        await task
            return root, spawner

        root, spawner = run(main)
        # The task's span is a child of "spawner", not of "sibling" (open when the task ran).
        assert beeline_recorder.find(name="fetch")["trace.parent_id"] == spawner.id
        assert beeline_recorder.find(name="sibling")["trace.parent_id"] == spawner.id

    def test_a_task_outliving_its_spawning_span_stays_in_the_trace(self, beeline_recorder):
        async def main():
            with beeline.tracer("request") as root:
                with beeline.tracer("spawner"):
                    task = asyncio.create_task(fetch("late", 0.005))
                await task
            return root

        root = run(main)
        assert beeline_recorder.find(name="fetch")["trace.trace_id"] == root.trace_id

    def test_a_task_outliving_its_spawning_span_keeps_it_as_parent(self, beeline_recorder):
        async def main():
            with beeline.tracer("request"):
                with beeline.tracer("spawner") as spawner:
                    task = asyncio.create_task(fetch("late", 0.005))
                await task
            return spawner

        spawner = run(main)
        assert beeline_recorder.find(name="fetch")["trace.parent_id"] == spawner.id

    @pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.TaskGroup is new in 3.11")
    def test_task_group_children(self, beeline_recorder):
        async def main():
            with beeline.tracer("request") as root:
                async with asyncio.TaskGroup() as group:
                    for i in range(4):
                        group.create_task(fetch(f"g{i}"))
            return root

        root = run(main)
        fetches = beeline_recorder.spans(name="fetch")
        assert len(fetches) == 4
        assert {ev["trace.parent_id"] for ev in fetches} == {root.id}

    def test_concurrent_requests_in_one_loop_are_separate_traces(self, beeline_recorder):
        # The reference's tracer, chosen at init() with no loop running, merged these.
        async def request(i):
            with beeline.tracer("request") as root:
                beeline.add_context_field("i", i)
                await asyncio.sleep(0.001 * (i % 5))
                await fetch(f"r{i}")
                with beeline.tracer(f"after-{i}"):
                    await asyncio.sleep(0)
            return root

        async def main():
            return await asyncio.gather(*(request(i) for i in range(50)))

        roots = run(main)
        traces = beeline_recorder.traces()
        assert len(traces) == 50
        for i, root in enumerate(roots):
            spans = traces[root.trace_id]
            assert len(spans) == 4
            names = {ev["name"] for ev in spans}
            assert names == {"request", "fetch", f"parse-r{i}", f"after-{i}"}
            assert beeline_recorder.find(name=f"after-{i}")["trace.parent_id"] == root.id
            assert beeline_recorder.find(label=f"r{i}")["trace.parent_id"] == root.id
            assert beeline_recorder.root(root.trace_id)["i"] == i

    def test_rollups_and_trace_fields_from_tasks_reach_the_root(self, beeline_recorder):
        # The reference copied the trace into each task without its rollups, so they were lost.
        async def query(i):
            with beeline.tracer(f"query-{i}"):
                await asyncio.sleep(0)
                beeline.add_rollup_field("db_ms", 2)
                beeline.add_trace_field(f"shard_{i}", i)

        async def main():
            with beeline.tracer("request"):
                await asyncio.gather(*(query(i) for i in range(5)))

        run(main)
        root = beeline_recorder.find(name="request")
        assert root["rollup.db_ms"] == pytest.approx(10.0)
        assert all(root[f"app.shard_{i}"] == i for i in range(5))

    def test_init_inside_a_running_loop_uses_the_same_tracer(self, beeline_recorder_factory):
        async def main():
            rec = beeline_recorder_factory()
            loop = asyncio.get_running_loop()
            with beeline.tracer("request") as root:
                await asyncio.gather(fetch("x"), fetch("y"))
            return rec, root, loop.get_task_factory()

        rec, root, factory = run(main)
        assert factory is None  # no task factory was installed
        assert {ev["trace.parent_id"] for ev in rec.spans(name="fetch")} == {root.id}

    def test_to_thread_carries_the_task_context(self, beeline_recorder):
        def blocking():
            with beeline.tracer("blocking"):
                pass

        async def main():
            with beeline.tracer("request") as root:
                await asyncio.to_thread(blocking)
            return root

        root = run(main)
        assert beeline_recorder.find(name="blocking")["trace.parent_id"] == root.id


class TestTaskFactories:
    def test_a_custom_task_factory_is_left_in_place_and_still_traced(self, beeline_recorder_factory):
        made = []

        def factory(loop, coro, **kwargs):
            made.append(coro)
            return asyncio.Task(coro, loop=loop, **kwargs)

        def loop_with_factory():
            loop = asyncio.new_event_loop()
            loop.set_task_factory(factory)
            return loop

        async def main():
            # The reference raised AttributeError here, reading its marker off a foreign factory.
            rec = beeline_recorder_factory()
            with beeline.tracer("request") as root:
                await asyncio.gather(fetch("a"), fetch("b"))
            return rec, root, asyncio.get_running_loop().get_task_factory()

        rec, root, installed = run(main, loop_factory=loop_with_factory)
        assert installed is factory
        assert len(made) >= 2
        # The factory received the user's coroutines, not wrappers.
        assert {getattr(c, "__name__", None) for c in made} >= {"fetch"}
        assert {ev["trace.parent_id"] for ev in rec.spans(name="fetch")} == {root.id}

    @pytest.mark.parametrize("with_parent", [False, True], ids=["alone", "over-a-custom-factory"])
    def test_the_reference_task_factory_can_still_be_installed(self, beeline_recorder, with_parent):
        from beeline.aiotrace import create_task_factory

        made = []

        def parent(loop, coro, **kwargs):
            made.append(coro)
            return asyncio.Task(coro, loop=loop, **kwargs)

        def loop_with_factory():
            loop = asyncio.new_event_loop()
            # What code written for honeycomb-beeline did at startup.
            loop.set_task_factory(create_task_factory(parent if with_parent else None))
            return loop

        async def main():
            with beeline.tracer("request") as root:
                await asyncio.gather(fetch("a"), fetch("b"))
            return root

        root = run(main, loop_factory=loop_with_factory)
        assert {ev["trace.parent_id"] for ev in beeline_recorder.spans(name="fetch")} == {root.id}
        assert (len(made) >= 2) is with_parent

    def test_uvloop(self, beeline_recorder):
        uvloop = pytest.importorskip("uvloop")

        async def main():
            with beeline.tracer("request") as root:
                await asyncio.gather(fetch("u1"), fetch("u2"))
            return root

        root = run(main, loop_factory=uvloop.new_event_loop)
        assert {ev["trace.parent_id"] for ev in beeline_recorder.spans(name="fetch")} == {root.id}


class TestTracedCoroutines:
    def test_the_span_covers_the_whole_await(self, beeline_recorder):
        @beeline.traced("outer")
        async def outer():
            await asyncio.sleep(0)
            return await fetch("inner")

        async def main():
            with beeline.tracer("request"):
                return await outer()

        assert run(main) == "inner"
        names = [ev["name"] for ev in beeline_recorder.events]
        # Finished innermost first: the traced coroutine's span ends after what it awaited.
        assert names == ["parse-inner", "fetch", "outer", "request"]
        outer_ev = beeline_recorder.find(name="outer")
        assert beeline_recorder.find(name="fetch")["trace.parent_id"] == outer_ev["trace.span_id"]

    def test_traced_coroutine_without_a_trace_starts_one(self, beeline_recorder):
        run(fetch, "alone")
        ev = beeline_recorder.find(name="fetch")
        assert ev["meta.span_type"] == "root"
        assert beeline_recorder.find(name="parse-alone")["trace.parent_id"] == ev["trace.span_id"]

    def test_exceptions_are_recorded_and_raised(self, beeline_recorder):
        @beeline.traced("failing")
        async def failing():
            await asyncio.sleep(0)
            raise KeyError("missing")

        async def main():
            with beeline.tracer("request"):
                with pytest.raises(KeyError):
                    await failing()
                assert active_span().fields["name"] == "request"

        run(main)
        ev = beeline_recorder.find(name="failing")
        assert ev["app.exception_type"] == "<class 'KeyError'>"

    def test_cancellation_finishes_the_span_without_error_fields(self, beeline_recorder):
        @beeline.traced("slow")
        async def slow():
            await asyncio.sleep(30)

        async def main():
            with beeline.tracer("request") as root:
                task = asyncio.create_task(slow())
                await asyncio.sleep(0.01)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                assert active_span() is root
            return root

        root = run(main)
        ev = beeline_recorder.find(name="slow")
        assert ev["trace.parent_id"] == root.id
        assert "app.exception_type" not in ev


class TestAsyncGenerators:
    def test_generator_span_covers_iteration_and_consumer_spans_stay_with_the_consumer(self, beeline_recorder):
        @beeline.traced("rows")
        async def rows(n):
            for i in range(n):
                with beeline.tracer(f"produce-{i}"):
                    await asyncio.sleep(0)
                yield i

        async def main():
            got = []
            with beeline.tracer("request") as root:
                async for row in rows(3):
                    with beeline.tracer(f"consume-{row}"):
                        got.append(row)
            return root, got

        root, got = run(main)
        assert got == [0, 1, 2]
        gen = beeline_recorder.find(name="rows")
        assert gen["trace.parent_id"] == root.id
        for i in range(3):
            assert beeline_recorder.find(name=f"produce-{i}")["trace.parent_id"] == gen["trace.span_id"]
            # The reference (sync generators) put these under the generator's span.
            assert beeline_recorder.find(name=f"consume-{i}")["trace.parent_id"] == root.id
        names = [ev["name"] for ev in beeline_recorder.events]
        # The generator's span ends when it is exhausted, after everything it produced.
        assert names.index("rows") > names.index("produce-2")

    def test_closing_early_finishes_the_span(self, beeline_recorder):
        @beeline.traced("stream")
        async def stream():
            i = 0
            while True:
                yield i
                i += 1

        async def main():
            with beeline.tracer("request") as root:
                agen = stream()
                async for item in agen:
                    if item == 2:
                        break
                await agen.aclose()
                assert active_span() is root
            return root

        root = run(main)
        assert beeline_recorder.find(name="stream")["trace.parent_id"] == root.id

    def test_async_generators_in_concurrent_tasks(self, beeline_recorder):
        @beeline.traced("pages")
        async def pages(label):
            for i in range(3):
                await asyncio.sleep(0)
                with beeline.tracer(f"page-{label}-{i}"):
                    pass
                yield i

        async def consume(label):
            with beeline.tracer(f"consumer-{label}") as span:
                async for _ in pages(label):
                    await asyncio.sleep(0)
            return span

        async def main():
            return await asyncio.gather(*(consume(str(i)) for i in range(5)))

        consumers = run(main)
        assert len(beeline_recorder.traces()) == 5
        for i, consumer in enumerate(consumers):
            page0 = beeline_recorder.find(name=f"page-{i}-0")
            gen = beeline_recorder.find(name="pages", trace__span_id=page0["trace.parent_id"])
            assert gen["trace.parent_id"] == consumer.id
            assert page0["trace.trace_id"] == consumer.trace_id


class TestUntraced:
    def test_fire_and_forget_work_is_not_part_of_the_request(self, beeline_recorder):
        @beeline.untraced
        async def background():
            await asyncio.sleep(0.005)
            with beeline.tracer("background"):
                pass

        async def main():
            with beeline.tracer("request") as root:
                task = asyncio.create_task(background())
            await task
            return root

        root = run(main)
        bg = beeline_recorder.find(name="background")
        assert bg["trace.trace_id"] != root.trace_id
        assert bg["meta.span_type"] == "root"

    def test_without_untraced_the_task_stays_in_the_request(self, beeline_recorder):
        # The control for the test above: the task inherits the request's context.
        async def background():
            with beeline.tracer("background"):
                pass

        async def main():
            with beeline.tracer("request") as root:
                await asyncio.create_task(background())
            return root

        root = run(main)
        assert beeline_recorder.find(name="background")["trace.parent_id"] == root.id

    def test_untraced_restores_the_callers_span(self, beeline_recorder):
        @beeline.untraced
        async def detached():
            return active_span()

        async def main():
            with beeline.tracer("request") as root:
                seen = await detached()
                assert active_span() is root
            return seen

        assert run(main) is None
