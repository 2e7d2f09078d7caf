"""Celery: a real worker runs the tasks. In-process (memory broker, a worker thread with its own
empty context, so the trace can only travel in the message headers), and as a separate prefork
worker process on a filesystem broker (the example app), sending to a loopback receiver."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker

import beeline
import beeline.middleware.celery as beeline_celery
from beeline.trace import active_span
from tests.receiver import LoopbackReceiver

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

app = Celery("beeline_celery_tests", broker="memory://", backend="cache+memory://")
app.conf.update(task_acks_late=False, worker_hijack_root_logger=False, result_expires=None)

attempts: dict = {}


@app.task(name="tests.add")
def add(a, b):
    with beeline.tracer("adding"):
        beeline.add_rollup_field("ops", 1)
    return a + b


@app.task(name="tests.fail")
def fail():
    raise LookupError("nothing here")


@app.task(name="tests.flaky", bind=True, max_retries=3)
def flaky(self, key):
    attempts[key] = attempts.get(key, 0) + 1
    if self.request.retries < 1:
        raise self.retry(countdown=0, exc=ConnectionError("try later"))
    return attempts[key]


@app.task(name="tests.where")
def where():
    span = active_span()
    return span.trace_id if span else None


@pytest.fixture(scope="module")
def worker():
    with start_worker(app, pool="threads", concurrency=4, perform_ping_check=False, shutdown_timeout=20):
        yield


@pytest.fixture
def patched():
    beeline_celery.patch()
    yield
    beeline_celery.patch()


def spans_when_ready(rec, count: int, timeout: float = 15.0, **match) -> list:
    """The task's span ends in postrun, just after its result is stored: wait (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = rec.spans(**match)
        if len(found) >= count:
            return found
        time.sleep(0.02)
    return rec.spans(**match)


class TestWorker:
    def test_task_continues_the_enqueuing_trace(self, worker, beeline_recorder):
        with beeline.tracer("enqueue") as enqueuer:
            beeline.add_trace_field("tenant", "acme")
            result = add.delay(2, 3)
        assert result.get(timeout=15) == 5
        (task,) = spans_when_ready(beeline_recorder, 1, name="tests.add")
        assert task["trace.trace_id"] == enqueuer.trace_id
        assert task["trace.parent_id"] == enqueuer.id
        assert task["meta.span_type"] == "subroot"
        assert task["type"] == "celery_task"
        assert task["celery.task_name"] == "tests.add"
        assert task["celery.task_id"] == result.id
        assert task["celery.retries"] == 0
        assert task["celery.state"] == "SUCCESS"
        assert task["celery.queue"] == "celery"
        assert task["app.tenant"] == "acme"
        assert task["rollup.ops"] == 1.0
        inner = beeline_recorder.find(name="adding")
        assert inner["trace.parent_id"] == task["trace.span_id"]
        assert inner["app.tenant"] == "acme"

    def test_the_worker_thread_has_no_trace_of_its_own(self, worker, beeline_recorder):
        # The trace reaches the task through the message headers only: a task enqueued outside
        # any trace runs as a new trace, not inside whatever the test thread had.
        with beeline.tracer("unrelated"):
            pass
        result = where.delay()
        task_trace = result.get(timeout=15)
        (task,) = spans_when_ready(beeline_recorder, 1, name="tests.where")
        assert task["meta.span_type"] == "root"
        assert task["trace.parent_id"] is None
        assert task_trace == task["trace.trace_id"]
        assert task_trace != beeline_recorder.find(name="unrelated")["trace.trace_id"]

    def test_failure_fields(self, worker, beeline_recorder):
        with beeline.tracer("enqueue") as enqueuer:
            result = fail.delay()
        with pytest.raises(LookupError):
            result.get(timeout=15)
        (task,) = spans_when_ready(beeline_recorder, 1, name="tests.fail")
        assert task["trace.parent_id"] == enqueuer.id
        assert task["celery.state"] == "FAILURE"
        assert task["app.exception_type"] == "<class 'LookupError'>"
        assert task["app.exception_string"] == "nothing here"
        assert "nothing here" in task["app.exception_stacktrace"]

    def test_a_retry_is_the_next_span_of_the_same_trace(self, worker, beeline_recorder):
        with beeline.tracer("enqueue") as enqueuer:
            result = flaky.delay("retry-1")
        assert result.get(timeout=15) == 2
        runs = spans_when_ready(beeline_recorder, 2, name="tests.flaky")
        assert len(runs) == 2
        first = next(r for r in runs if r["celery.retries"] == 0)
        second = next(r for r in runs if r["celery.retries"] == 1)
        assert first["celery.state"] == "RETRY"
        assert "try later" in first["celery.retry_reason"]
        assert second["celery.state"] == "SUCCESS"
        assert first["trace.trace_id"] == second["trace.trace_id"] == enqueuer.trace_id
        assert first["trace.parent_id"] == enqueuer.id
        assert second["trace.parent_id"] == first["trace.span_id"]
        assert first["celery.task_id"] == second["celery.task_id"] == result.id

    def test_a_chain_links_each_task_to_the_previous_one(self, worker, beeline_recorder):
        from celery import chain

        with beeline.tracer("enqueue") as enqueuer:
            result = chain(add.s(1, 2), add.s(10)).apply_async()
        assert result.get(timeout=15) == 13
        runs = spans_when_ready(beeline_recorder, 2, name="tests.add")
        assert len(runs) == 2
        first = next(r for r in runs if r["trace.parent_id"] == enqueuer.id)
        second = next(r for r in runs if r is not first)
        assert second["trace.parent_id"] == first["trace.span_id"]
        assert {r["trace.trace_id"] for r in runs} == {enqueuer.trace_id}

    def test_concurrent_enqueuers_keep_their_own_traces(self, worker, beeline_recorder):
        count = 16
        enqueuers = {}
        results = {}
        barrier = threading.Barrier(count)

        def enqueue(i):
            barrier.wait(10)
            with beeline.tracer(f"enqueue-{i}") as span:
                enqueuers[i] = span
                results[i] = add.delay(i, 1000)

        threads = [threading.Thread(target=enqueue, args=(i,)) for i in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
        assert sorted(results[i].get(timeout=20) for i in range(count)) == [1000 + i for i in range(count)]
        runs = spans_when_ready(beeline_recorder, count, name="tests.add")
        assert len(runs) == count
        by_task_id = {r["celery.task_id"]: r for r in runs}
        for i in range(count):
            task = by_task_id[results[i].id]
            assert task["trace.trace_id"] == enqueuers[i].trace_id
            assert task["trace.parent_id"] == enqueuers[i].id
            # The task's inner span is in the same trace, under the task.
            inner = beeline_recorder.find(name="adding", trace__parent_id=task["trace.span_id"])
            assert inner["trace.trace_id"] == enqueuers[i].trace_id

    def test_without_init_tasks_run_untouched(self, worker):
        beeline.close()
        assert add.delay(1, 1).get(timeout=15) == 2


class TestEager:
    def test_an_eager_task_is_a_child_span_of_the_caller(self, beeline_recorder):
        with beeline.tracer("request") as request:
            assert add.apply(args=(4, 4)).get() == 8
            assert active_span() is request
        task = beeline_recorder.find(name="tests.add")
        assert task["trace.parent_id"] == request.id
        assert "meta.span_type" not in task
        assert task["celery.state"] == "SUCCESS"
        assert beeline_recorder.find(name="adding")["trace.parent_id"] == task["trace.span_id"]

    def test_an_eager_task_outside_a_trace_is_its_own_trace(self, beeline_recorder):
        add.apply(args=(1, 2))
        task = beeline_recorder.find(name="tests.add")
        assert task["meta.span_type"] == "root"
        assert active_span() is None


class TestPatching:
    def test_patch_is_idempotent_and_undoable(self, patched, beeline_recorder):
        assert beeline_celery.patch() is False
        assert beeline_celery.unpatch() is True
        assert beeline_celery.unpatch() is False
        add.apply(args=(1, 1))
        assert beeline_recorder.spans(name="tests.add") == []
        assert beeline_celery.patch() is True
        add.apply(args=(1, 1))
        assert len(beeline_recorder.spans(name="tests.add")) == 1

    def test_headers_are_not_added_outside_a_trace(self, beeline_recorder):
        headers = {"id": "x"}
        beeline_celery._before_task_publish(headers=headers)
        assert headers == {"id": "x"}
        with beeline.tracer("request"):
            beeline_celery._before_task_publish(headers=headers)
        assert set(headers) - {"id"}, "the trace headers were added"

    def test_a_failing_propagation_hook_does_not_stop_the_publish(self, beeline_recorder_factory, caplog):
        def broken(ctx):
            raise RuntimeError("hook bug")

        beeline_recorder_factory(http_trace_propagation_hook=broken)
        headers = {}
        with beeline.tracer("request"):
            beeline_celery._before_task_publish(headers=headers)
        assert headers == {}

    def test_headers_request_adapter(self):
        class Ctx:
            headers = {"X-Honeycomb-Trace": "1;trace_id=a,parent_id=b"}
            traceparent = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
            hostname = "w1"

        req = beeline_celery.TaskHeadersRequest(Ctx())
        assert req.header("x-honeycomb-trace") == "1;trace_id=a,parent_id=b"
        assert req.header("traceparent") == Ctx.traceparent
        assert req.header("tracestate") is None
        assert req.host() == "w1"


# ---- a separate prefork worker process --------------------------------------------------------


class CeleryWorkerProcess:
    """`celery -A tasks worker --pool=prefork -c 2` on the example app, always stopped."""

    def __init__(self, rx: LoopbackReceiver, broker_dir: Path) -> None:
        self.env = dict(os.environ)
        self.env.update(
            HONEYCOMB_WRITEKEY="0" * 32,
            HONEYCOMB_DATASET="celery",
            HONEYCOMB_API_HOST=rx.url,
            SERVICE_NAME="celery-test",
            CELERY_BROKER_DIR=str(broker_dir),
            WORK_SECONDS="0.2",
            PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "examples" / "celery")]),
        )
        self.env.pop("BEELINE_DISABLED", None)
        self.log = open(broker_dir / "worker.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "celery"), "-A", "tasks", "worker", "--pool=prefork", "--concurrency=2",
             "--loglevel=warning", "--without-heartbeat", "--without-mingle", "--without-gossip"],
            cwd=str(ROOT / "examples" / "celery"), env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(5)
        finally:
            self.log.close()


def test_prefork_worker_processes_each_send_their_events(tmp_path):
    tasks_to_send = 8
    with LoopbackReceiver() as rx:
        worker_proc = CeleryWorkerProcess(rx, tmp_path)
        try:
            # Enqueue from another process too, as an application would (enqueue.py).
            enqueue = subprocess.run(
                [sys.executable, "enqueue.py", str(tasks_to_send)], cwd=str(ROOT / "examples" / "celery"),
                env=worker_proc.env, capture_output=True, text=True, timeout=60,
            )
            assert enqueue.returncode == 0, enqueue.stderr
            trace_id = enqueue.stdout.strip().splitlines()[-1]
            # upload_batch (1) + per task: task + download + resize (3) + the failed first
            # attempt of task 0 (task + download: 2).
            expected = 1 + 3 * tasks_to_send + 2
            deadline = time.monotonic() + 60
            while len(rx.events) < expected and time.monotonic() < deadline and worker_proc.proc.poll() is None:
                rx.wait_for(expected, timeout=0.5)
            time.sleep(0.5)  # a duplicate would arrive here
        finally:
            worker_proc.stop()
        events = [e["data"] for e in rx.events]
    log_text = (tmp_path / "worker.log").read_text()
    assert len(events) == expected, log_text[-3000:]
    assert {e["trace.trace_id"] for e in events} == {trace_id}
    (batch,) = [e for e in events if e["name"] == "upload_batch"]
    runs = [e for e in events if e["name"] == "tasks.resize_image"]
    assert len(runs) == tasks_to_send + 1
    first_attempts = [r for r in runs if r["celery.retries"] == 0]
    assert len(first_attempts) == tasks_to_send
    assert {r["trace.parent_id"] for r in first_attempts} == {batch["trace.span_id"]}
    (retry,) = [r for r in runs if r["celery.retries"] == 1]
    (failed,) = [r for r in first_attempts if r["celery.state"] == "RETRY"]
    assert retry["trace.parent_id"] == failed["trace.span_id"]
    pids = {r["worker_pid"] for r in runs}
    assert len(pids) == 2, "both prefork child processes should have run tasks"
    assert all(e["app.batch"] == "demo" for e in events)
