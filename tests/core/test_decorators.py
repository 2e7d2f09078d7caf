"""traced() on functions, generators, coroutines and async generators; tracer() without init."""

import asyncio

import pytest

import beeline


def test_traced_function_before_init_runs_untouched_and_traces_after_init(beeline_recorder_factory):
    @beeline.traced("compute")
    def compute(x):
        return x * 2

    beeline.close()
    assert compute(2) == 4  # no beeline: plain call
    recorder = beeline_recorder_factory()
    assert compute(3) == 6
    assert recorder.find(name="compute")["meta.span_type"] == "root"
    assert compute.__name__ == "compute"


def test_tracer_without_init_yields_none():
    with beeline.tracer("nothing") as span:
        assert span is None


def test_traced_records_exceptions(beeline_recorder):
    @beeline.traced("fails")
    def fails():
        raise KeyError("k")

    with pytest.raises(KeyError):
        fails()
    assert beeline_recorder.find(name="fails")["app.exception_type"] == "<class 'KeyError'>"


def test_generator_span_does_not_adopt_the_consumers_spans(beeline_recorder):
    @beeline.traced("producer")
    def produce():
        for i in range(2):
            with beeline.tracer("inside-producer"):
                pass
            yield i

    with beeline.tracer("consumer") as consumer:
        for _ in produce():
            with beeline.tracer("consumer-work"):
                pass
    producer = beeline_recorder.find(name="producer")
    assert producer["trace.parent_id"] == consumer.id
    for work in beeline_recorder.spans(name="consumer-work"):
        assert work["trace.parent_id"] == consumer.id  # the reference parented these to producer
    for inside in beeline_recorder.spans(name="inside-producer"):
        assert inside["trace.parent_id"] == producer["trace.span_id"]


def test_generator_send_throw_and_return_value(beeline_recorder):
    @beeline.traced("echo")
    def echo():
        received = []
        try:
            while True:
                received.append((yield len(received)))
        except ValueError:
            return received

    def drive():
        gen = echo()
        assert next(gen) == 0
        assert gen.send("a") == 1
        with pytest.raises(StopIteration) as stop:
            gen.throw(ValueError())
        return stop.value.value

    with beeline.tracer("root"):
        assert drive() == ["a"]
    assert beeline_recorder.find(name="echo")["duration_ms"] >= 0


def test_generator_closed_early_finishes_its_span(beeline_recorder):
    @beeline.traced("infinite")
    def infinite():
        while True:
            yield 1

    with beeline.tracer("root"):
        gen = infinite()
        next(gen)
        gen.close()
    assert len(beeline_recorder.spans(name="infinite")) == 1


def test_coroutine_span_covers_the_await(beeline_recorder):
    @beeline.traced("slow")
    async def slow():
        await asyncio.sleep(0.02)
        return "done"

    async def main():
        with beeline.tracer("root"):
            return await slow()

    assert asyncio.run(main()) == "done"
    slow_event = beeline_recorder.find(name="slow")
    assert slow_event["duration_ms"] >= 15
    assert slow_event["trace.parent_id"] == beeline_recorder.find(name="root")["trace.span_id"]


def test_async_generators_are_traced_over_their_whole_life(beeline_recorder):
    @beeline.traced("ticker")
    async def ticker():
        for i in range(3):
            await asyncio.sleep(0.01)
            yield i

    async def main():
        with beeline.tracer("root") as root:
            got = [i async for i in ticker()]
            with beeline.tracer("after"):
                pass
            return got, root

    got, root = asyncio.run(main())
    assert got == [0, 1, 2]
    ticker_event = beeline_recorder.find(name="ticker")
    assert ticker_event["duration_ms"] >= 25  # the reference recorded ~0 ms
    assert ticker_event["trace.parent_id"] == root.id
    assert beeline_recorder.find(name="after")["trace.parent_id"] == root.id


def test_concurrent_tasks_get_their_own_parents(beeline_recorder):
    @beeline.traced("task")
    async def task(i):
        beeline.add_context_field("i", i)
        await asyncio.sleep(0.01 * (3 - i))
        with beeline.tracer(f"inner-{i}"):
            await asyncio.sleep(0)

    async def main():
        with beeline.tracer("root"):
            await asyncio.gather(*(task(i) for i in range(3)))

    asyncio.run(main())
    for i in range(3):
        task_event = beeline_recorder.find(name="task", i=i)
        inner = beeline_recorder.find(name=f"inner-{i}")
        assert inner["trace.parent_id"] == task_event["trace.span_id"]


def test_untraced_coroutine(beeline_recorder):
    @beeline.untraced
    async def detached():
        return beeline.get_beeline().tracer_impl.get_active_span()

    async def main():
        with beeline.tracer("root"):
            return await asyncio.create_task(detached())

    assert asyncio.run(main()) is None
