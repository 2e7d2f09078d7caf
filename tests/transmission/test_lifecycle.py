"""Bounded memory, flush and close, exit and fork."""

import logging
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from tests.transmission.helpers import delivered_ids, drain, make, send_n, wait_until

ROOT = Path(__file__).resolve().parents[2]


def test_overflow_without_blocking_drops_the_new_events_and_says_so(rx, caplog):
    # A 30 s age and batches larger than the queue: nothing leaves until flush().
    xmit = make(send_frequency=30, max_batch_size=100, max_pending=10)
    with caplog.at_level(logging.WARNING, logger="beeline"):
        send_n(xmit, rx.url, 15)
    stats = xmit.stats
    assert (stats["queued"], stats["pending"], stats["dropped_overflow"]) == (10, 10, 0 + 5)
    dropped = drain(xmit.get_response_queue(), count=5)
    assert [r["metadata"] for r in dropped] == [10, 11, 12, 13, 14]
    assert all((r["status_code"], r["error"]) == (0, "event dropped; queue overflow") for r in dropped)
    warnings = [r for r in caplog.records if r.name == "beeline"]
    assert len(warnings) == 1 and "dropped (queue full)" in warnings[0].getMessage()
    assert xmit.flush(5)
    assert delivered_ids(rx) == list(range(10))
    assert xmit.stats["sent"] == 10
    xmit.close()


def test_overflow_with_blocking_waits_then_delivers_everything(rx):
    rx.stop()
    # One worker, batches of one: the receiver being down holds one batch in the worker, one
    # waiting for it, and the queue's three; the sixth send() has to wait.
    xmit = make(send_frequency=0.01, max_batch_size=1, max_concurrent_batches=1, max_pending=3,
                block_on_send=True, retry_max_attempts=10_000, retry_max_elapsed=30)
    sender = threading.Thread(target=send_n, args=(xmit, rx.url, 10), daemon=True)
    sender.start()
    assert wait_until(lambda: xmit.stats["pending"] == 3 and xmit.stats["batches"] >= 2)
    sender.join(0.3)
    assert sender.is_alive()  # blocked in send(), not dropping
    assert xmit.stats["dropped_overflow"] == 0
    rx.start()
    sender.join(10)
    assert not sender.is_alive()
    assert xmit.flush(10)
    assert delivered_ids(rx) == list(range(10))
    stats = xmit.stats
    assert (stats["sent"], stats["failed"], stats["dropped_overflow"], stats["queued"]) == (10, 0, 0, 10)
    xmit.close()


def test_flush_times_out_without_stopping_or_polluting_responses(rx):
    rx.delay_next(1, 1.0)
    xmit = make(send_frequency=30)
    send_n(xmit, rx.url, 2)
    assert xmit.flush(timeout=0.1) is False
    assert xmit.flush(timeout=5) is True
    send_n(xmit, rx.url, 2, start=2)  # still running after flushes
    assert xmit.flush(timeout=5) is True
    responses = drain(xmit.get_response_queue())
    assert None not in responses
    assert sorted(r["metadata"] for r in responses) == [0, 1, 2, 3]
    assert delivered_ids(rx) == [0, 1, 2, 3]
    xmit.close()
    assert drain(xmit.get_response_queue(), until_none=True) == [None]


def test_flush_with_nothing_queued_is_true(rx):
    xmit = make()
    assert xmit.flush(1) is True
    xmit.close()


def test_close_is_bounded_when_the_receiver_is_down(rx):
    rx.stop()
    xmit = make(send_frequency=0.01, retry_max_attempts=10_000, retry_max_elapsed=60)
    send_n(xmit, rx.url, 4)
    closer = threading.Thread(target=xmit.close, kwargs={"timeout": 1.0})
    closer.start()
    closer.join(10)
    assert not closer.is_alive()
    responses = drain(xmit.get_response_queue(), until_none=True)
    assert responses[-1] is None
    assert sorted(r["metadata"] for r in responses[:-1]) == [0, 1, 2, 3]
    assert all(r["error"] == "transmission closed before the event was delivered" for r in responses[:-1])
    stats = xmit.stats
    assert (stats["sent"], stats["failed"], stats["queued"]) == (0, 4, 4)


def test_close_delivers_then_puts_one_final_none(rx):
    xmit = make(send_frequency=30)
    send_n(xmit, rx.url, 5)
    xmit.close()
    xmit.close()  # idempotent
    responses = drain(xmit.get_response_queue(), until_none=True)
    assert len(responses) == 6 and responses[-1] is None
    assert delivered_ids(rx) == [0, 1, 2, 3, 4]
    assert drain(xmit.get_response_queue()) == []


def test_close_with_a_full_responses_queue_and_no_reader_still_ends_with_none(rx):
    xmit = make(send_frequency=30, max_responses=2)
    send_n(xmit, rx.url, 5)
    xmit.close()
    # Nobody read: the oldest response made room for the final None; close() did not wait.
    responses = drain(xmit.get_response_queue(), until_none=True)
    assert [r["metadata"] for r in responses[:-1]] == [1] and responses[-1] is None
    assert delivered_ids(rx) == [0, 1, 2, 3, 4]


def test_send_after_close_is_counted_not_sent(rx):
    xmit = make()
    xmit.close()
    send_n(xmit, rx.url, 3)
    assert xmit.stats["dropped_closed"] == 3
    assert rx.events == []


def test_close_runs_at_interpreter_exit(rx):
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from tests.transmission.helpers import make, send_n
        xmit = make(send_frequency=30)
        send_n(xmit, {rx.url!r}, 7)
        # no close(): the exit hook must deliver them
    """)
    proc = subprocess.run([sys.executable, "-c", script], timeout=30, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert delivered_ids(rx) == list(range(7))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_with_events_in_flight(rx):
    rx.delay_next(1, 0.5)  # the parent's first batch is mid-request when we fork
    xmit = make(send_frequency=30, max_batch_size=3)
    send_n(xmit, rx.url, 3)  # a full batch: goes out now and waits in the receiver
    assert wait_until(lambda: rx._in_flight == 1)
    send_n(xmit, rx.url, 2, start=3)  # queued, not yet sent
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            ok = xmit.stats["queued"] == 0
            send_n(xmit, rx.url, 2, start=100)
            ok = ok and xmit.flush(10) and xmit.stats["sent"] == 2
            xmit.close(5)
            code = 0 if ok else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert xmit.flush(10)
    assert delivered_ids(rx) == [0, 1, 2, 3, 4, 100, 101]
    assert xmit.stats["sent"] == 5 and xmit.stats["failed"] == 0
    xmit.close()


def test_block_on_response_keeps_every_response_for_a_slow_reader(rx):
    xmit = make(send_frequency=30, max_batch_size=2, max_responses=2, block_on_response=True)
    send_n(xmit, rx.url, 10)
    flushed = []
    flusher = threading.Thread(target=lambda: flushed.append(xmit.flush(10)), daemon=True)
    flusher.start()
    responses = drain(xmit.get_response_queue(), count=10)  # read one by one while it waits
    flusher.join(10)
    assert flushed == [True]
    assert sorted(r["metadata"] for r in responses) == list(range(10))
    xmit.close()
    assert drain(xmit.get_response_queue(), until_none=True) == [None]


def test_without_block_on_response_extra_responses_are_dropped(rx):
    xmit = make(send_frequency=30, max_responses=2)
    send_n(xmit, rx.url, 10)
    assert xmit.flush(5)
    assert len(drain(xmit.get_response_queue())) == 2
    assert xmit.stats["sent"] == 10
    xmit.close()


def test_threads_racing_the_first_send_lose_nothing(rx):
    # A forked worker's transmission starts on its first send. Threads sending at that moment
    # (gthread workers) used to see the sender started but the queue limit not yet set, and
    # counted their event as a queue overflow.
    from beeline.transmission import BeelineTransmission
    from tests.transmission.helpers import FAST, Ev

    threads_per_round, rounds = 16, 25
    for round_number in range(rounds):
        xmit = BeelineTransmission(**FAST)  # not started, as in a freshly forked child
        barrier = threading.Barrier(threads_per_round)

        def send_one(i, xmit=xmit, barrier=barrier, round_number=round_number):
            barrier.wait(5)
            xmit.send(Ev({"round": round_number, "i": i}, rx.url))

        threads = [threading.Thread(target=send_one, args=(i,)) for i in range(threads_per_round)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert xmit.flush(10)
        assert xmit.stats["dropped_overflow"] == 0, f"round {round_number}"
        xmit.close(5)
    assert len(rx.wait_for(threads_per_round * rounds, timeout=10)) == threads_per_round * rounds
