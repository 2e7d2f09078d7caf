"""Batches by size and age, bounded concurrency, kept-alive connections, and a hot path that
takes no lock and wakes the sender at most once per batch."""

import sys
import threading


from beeline.transmission import BeelineTransmission
from tests.transmission.helpers import FAST, Ev, delivered_ids, drain, make, send_n


def test_max_batch_size_is_respected_exactly(rx):
    xmit = make(send_frequency=30, max_batch_size=7)  # no age flush: batches come from size only
    send_n(xmit, rx.url, 50)
    assert xmit.flush(5)
    sizes = [len(r["body"]) for r in rx.requests]
    assert sum(sizes) == 50 and max(sizes) == 7
    assert delivered_ids(rx) == list(range(50))
    assert xmit.stats["batches"] == len(rx.requests)
    xmit.close()


def test_a_lone_event_is_sent_by_age_without_flush(rx):
    xmit = make(send_frequency=0.05, max_batch_size=100)
    send_n(xmit, rx.url, 1)
    assert len(rx.wait_for(1, timeout=5)) == 1
    assert xmit.flush(5)
    assert xmit.stats["sent"] == 1 and xmit.stats["batches"] == 1
    xmit.close()


def test_full_batch_wakes_the_sender_before_the_age_limit(rx):
    # With a 30 s send_frequency only the size trigger can send within the wait below.
    xmit = make(send_frequency=30, max_batch_size=10)
    send_n(xmit, rx.url, 10)
    assert len(rx.wait_for(10, timeout=5)) == 10
    assert len(rx.requests) == 1
    xmit.close()


def test_at_most_max_concurrent_batches_in_flight(rx):
    rx.delay_next(12, 0.1)
    xmit = make(send_frequency=30, max_batch_size=2, max_concurrent_batches=3)
    send_n(xmit, rx.url, 24)
    assert xmit.flush(10)
    assert rx.max_in_flight <= 3
    assert delivered_ids(rx) == list(range(24))
    assert len(rx.requests) == 12
    xmit.close()


def test_one_kept_alive_connection_serves_sequential_batches(rx):
    xmit = make(send_frequency=30, max_concurrent_batches=4)
    for round_ in range(5):
        send_n(xmit, rx.url, 3, start=round_ * 3)
        assert xmit.flush(5)
    assert len({r["client_port"] for r in rx.requests}) == 1
    assert len(rx.requests) == 5
    xmit.close()


class CountingEvent(threading.Event):
    def __init__(self):
        super().__init__()
        self.sets = 0

    def set(self):
        self.sets += 1
        super().set()


def test_send_wakes_the_sender_at_most_once_per_batch(rx):
    xmit = BeelineTransmission(**dict(FAST, send_frequency=30, max_batch_size=100))
    counter = CountingEvent()
    xmit._pipe.wake = counter  # before start(), so the sender thread waits on this one
    xmit.start()
    send_n(xmit, rx.url, 1000)
    assert 1 <= counter.sets <= 10
    assert xmit.flush(5)
    assert delivered_ids(rx) == list(range(1000))
    xmit.close()


def test_send_calls_nothing_but_len_and_append_below_a_full_batch(rx):
    """No lock, no I/O, no queue.Queue, no statsd: send() only appends to a deque."""
    xmit = make(send_frequency=30, max_batch_size=1000)
    events = [Ev({"i": i}, rx.url) for i in range(500)]
    calls = []

    def profiler(frame, event, arg):
        if event == "c_call":
            calls.append(arg.__qualname__)
        elif event == "call" and frame.f_code.co_name != "send":
            calls.append(frame.f_code.co_qualname)

    send = xmit.send
    sys.setprofile(profiler)
    try:
        for ev in events:
            send(ev)
    finally:
        sys.setprofile(None)
    assert set(calls) <= {"len", "deque.append", "setprofile"}, sorted(set(calls))
    assert xmit.flush(5)
    assert len(rx.events) == 500
    xmit.close()


def test_stats_count_every_event_once(rx):
    rx.status_array_next(1, [{"status": 202}, {"status": 400, "error": "bad event"}, {"status": 202}])
    xmit = make(send_frequency=30)
    send_n(xmit, rx.url, 3)
    assert xmit.flush(5)
    assert xmit.stats == {"queued": 3, "pending": 0, "sent": 2, "failed": 1, "retried": 0,
                          "batches": 1, "dropped_overflow": 0, "dropped_closed": 0}
    responses = drain(xmit.get_response_queue(), count=3)
    by_meta = {r["metadata"]: r for r in responses}
    assert (by_meta[1]["status_code"], by_meta[1]["error"]) == (400, "bad event")
    xmit.close()
