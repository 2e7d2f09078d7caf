"""Pre-fork servers: `init()` runs once in the parent, then workers are forked; every worker
must send its own events, once each, to the real API endpoint (a loopback receiver here).

The reference lost every event of a forked worker until `init()` was called again in it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

import beeline
from tests.receiver import LoopbackReceiver

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not hasattr(os, "fork"), reason="pre-fork servers need os.fork"),
]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "gunicorn"
VENV_BIN = Path(sys.executable).parent
WRITEKEY = "0" * 32


def free_port() -> int:
    # gunicorn cannot be told to use port 0; take one the OS hands out and give it back.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gunicorn_supports(flag: str) -> bool:
    out = subprocess.run([str(VENV_BIN / "gunicorn"), "--help"], capture_output=True, text=True, timeout=30)
    return flag in out.stdout


class Gunicorn:
    """The example app under a real gunicorn master, in its own process group, always stopped."""

    def __init__(self, rx: LoopbackReceiver, config: str, *extra: str) -> None:
        self.port = free_port()
        env = dict(os.environ)
        env.update(
            HONEYCOMB_WRITEKEY=WRITEKEY,
            HONEYCOMB_DATASET="prefork",
            HONEYCOMB_API_HOST=rx.url,
            SERVICE_NAME="prefork-test",
            BIND=f"127.0.0.1:{self.port}",
            WEB_CONCURRENCY="2",
            WORK_SECONDS="0.2",
            PYTHONPATH=str(ROOT),
        )
        env.pop("BEELINE_DISABLED", None)
        args = [str(VENV_BIN / "gunicorn"), "-c", str(EXAMPLE / config), "--chdir", str(EXAMPLE)]
        if gunicorn_supports("--no-control-socket"):
            args.append("--no-control-socket")
        args += [*extra, "app:app"]
        self.log = open(os.devnull, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(args, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "gunicorn exited early"
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("gunicorn did not answer within %.0f s" % timeout)

    def stop(self) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(5)
        finally:
            self.log.close()


def serve_until_both_workers_answered(server: Gunicorn, rounds: int = 10, per_round: int = 8) -> list:
    """Concurrent requests, in rounds, until two worker pids have answered (bounded)."""
    answers = []

    def one_request(_):
        # A new connection each time: a kept-alive one would stay with the worker that took it.
        return httpx.get(server.url + "/work", headers={"Connection": "close"}, timeout=15)

    with ThreadPoolExecutor(max_workers=per_round) as pool:
        for _ in range(rounds):
            batch = list(pool.map(one_request, range(per_round)))
            assert all(r.status_code == 200 for r in batch)
            answers += [r.json() for r in batch]
            if len({a["pid"] for a in answers}) >= 2:
                break
    return answers


def work_events(rx: LoopbackReceiver) -> list:
    """Every event except those of the readiness probes (`/health`, one span each)."""
    return [e for e in rx.events if e["data"].get("request.path") != "/health"]


def assert_every_trace_arrived(rx: LoopbackReceiver, answers: list) -> None:
    expected = 2 * len(answers)  # a flask_http_get root and a compute child per request
    deadline = time.monotonic() + 20
    while len(work_events(rx)) < expected and time.monotonic() < deadline:
        rx.wait_for(len(rx.events) + 1, timeout=0.5)
    # A moment more: a duplicate (a queue inherited across fork and sent twice) would show here.
    time.sleep(0.5)
    events = work_events(rx)
    assert len(events) == expected
    roots = [e["data"] for e in events if e["data"].get("name") == "flask_http_get"]
    assert sorted(r["trace.trace_id"] for r in roots) == sorted(a["trace_id"] for a in answers)
    pids = {a["pid"] for a in answers}
    assert len(pids) == 2, "both workers should have served requests"
    assert {r["worker_pid"] for r in roots} == pids
    children = {e["data"]["trace.parent_id"] for e in events if e["data"].get("name") == "compute"}
    assert children == {r["trace.span_id"] for r in roots}
    assert {e["dataset"] for e in events} == {"prefork"}


@pytest.mark.parametrize(
    "config, extra",
    [
        pytest.param("gunicorn.conf.py", (), id="sync-init-in-master"),
        pytest.param("gunicorn.conf.py", ("--worker-class", "gthread", "--threads", "2"), id="gthread-init-in-master"),
        pytest.param("gunicorn_post_fork.conf.py", (), id="sync-documented-post-fork-hook"),
    ],
)
def test_gunicorn_workers_send_every_trace(config, extra):
    with LoopbackReceiver() as rx:
        server = Gunicorn(rx, config, *extra)
        try:
            server.wait_ready()
            answers = serve_until_both_workers_answered(server)
            assert_every_trace_arrived(rx, answers)
        finally:
            server.stop()


# ---- plain os.fork: what uWSGI (with py-call-osafterfork) and Celery's prefork pool do ----------


def _run_children(count: int, child_body) -> None:
    pids = []
    for i in range(count):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child, which reports through its exit code
            code = 1
            try:
                child_body(i)
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    deadline = time.monotonic() + 30
    codes = {}
    while len(codes) < len(pids) and time.monotonic() < deadline:
        for pid in pids:
            if pid in codes:
                continue
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                codes[pid] = os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    for pid in pids:
        if pid not in codes:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    assert sorted(codes.values()) == [0] * count, codes


@pytest.fixture(params=["default", "libhoney"])
def rx_beeline(request):
    """A beeline sending to a loopback receiver, through the default transmission or through
    libhoney's own threaded one (which an application may still pass as transmission_impl)."""
    with LoopbackReceiver() as rx:
        beeline.close()
        extra = {}
        if request.param == "libhoney":
            from libhoney.transmission import Transmission

            extra["transmission_impl"] = Transmission()
        beeline.init(writekey=WRITEKEY, dataset="d", service_name="s", api_host=rx.url, **extra)
        try:
            yield rx
        finally:
            beeline.close()


def test_forked_children_send_their_events(rx_beeline):
    def child(i):
        with beeline.tracer("child-work") as span:
            span.add_context_field("pid", os.getpid())
            span.add_context_field("child", i)
        beeline.close()

    _run_children(2, child)
    events = rx_beeline.wait_for(2, timeout=15)
    assert sorted(e["data"]["child"] for e in events) == [0, 1]
    assert len({e["data"]["pid"] for e in events}) == 2
    assert os.getpid() not in {e["data"]["pid"] for e in events}


def test_events_queued_before_the_fork_are_sent_once(rx_beeline):
    # Queued in the parent, maybe not yet sent when the children are forked: the children must
    # not send the parent's copy again.
    for i in range(5):
        with beeline.tracer("before-fork") as span:
            span.add_context_field("n", i)

    def child(i):
        with beeline.tracer("in-child"):
            pass
        beeline.close()

    _run_children(2, child)
    beeline.close()
    time.sleep(0.5)
    names = sorted(e["data"]["name"] for e in rx_beeline.events)
    assert names == ["before-fork"] * 5 + ["in-child"] * 2


def test_the_parent_keeps_sending_after_forking(rx_beeline):
    _run_children(1, lambda i: beeline.close())
    with beeline.tracer("parent-after-fork"):
        pass
    beeline.close()
    events = rx_beeline.wait_for(1, timeout=15)
    assert [e["data"]["name"] for e in events] == ["parent-after-fork"]


def test_reinit_in_the_child_still_works(rx_beeline):
    # The post-fork hook honeycomb-beeline documented (uWSGI @postfork, Celery
    # worker_process_init): init() again in the child.
    url = rx_beeline.url

    def child(i):
        beeline.init(writekey=WRITEKEY, dataset="d", service_name="s", api_host=url)
        with beeline.tracer("after-reinit") as span:
            span.add_context_field("pid", os.getpid())
        beeline.close()

    _run_children(2, child)
    events = rx_beeline.wait_for(2, timeout=15)
    time.sleep(0.3)
    assert [e["data"]["name"] for e in rx_beeline.events] == ["after-reinit"] * 2
    assert len({e["data"]["pid"] for e in events}) == 2
