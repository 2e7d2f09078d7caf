"""Durability against a misbehaving API, each with exact counts: delivered (at the receiver, and
never twice), retried and dropped/failed (in stats and on the responses queue)."""

import logging


from beeline.transmission.retry import RetryPolicy, is_retryable_status, parse_retry_after
from tests.transmission.helpers import delivered_ids, drain, make, responses_by_metadata, send_n, wait_until


def test_receiver_down_at_start_and_back_later(rx):
    rx.stop()
    xmit = make(send_frequency=30)
    send_n(xmit, rx.url, 5)
    assert xmit.flush(0.05) is False
    assert wait_until(lambda: xmit.stats["batches"] >= 3)  # refused at least three times
    rx.start()
    assert xmit.flush(10)
    stats = xmit.stats
    assert delivered_ids(rx) == [0, 1, 2, 3, 4]
    assert stats["sent"] == 5 and stats["failed"] == 0
    assert stats["retried"] == 5 * (stats["batches"] - 1)
    assert rx.outcomes() == ["ok"]  # refused attempts never reached it
    xmit.close()


def test_500s_for_a_while_then_delivered_once(rx):
    rx.fail_next(3, status=500)
    xmit = make(send_frequency=30)
    send_n(xmit, rx.url, 10)
    assert xmit.flush(10)
    assert rx.outcomes() == ["fail", "fail", "fail", "ok"]
    assert delivered_ids(rx) == list(range(10))
    stats = xmit.stats
    assert (stats["sent"], stats["failed"], stats["retried"], stats["batches"]) == (10, 0, 30, 4)
    responses = drain(xmit.get_response_queue(), count=10)
    assert [r["status_code"] for r in responses] == [202] * 10
    xmit.close()


def test_retry_budget_in_attempts_reports_each_event_failed(rx, caplog):
    rx.fail_next(10, status=503)
    xmit = make(send_frequency=30, retry_max_attempts=3)
    send_n(xmit, rx.url, 4)
    with caplog.at_level(logging.WARNING, logger="beeline"):
        assert xmit.flush(10)
    assert rx.outcomes() == ["fail", "fail", "fail"]
    assert rx.events == []
    stats = xmit.stats
    assert (stats["sent"], stats["failed"], stats["retried"], stats["batches"]) == (0, 4, 8, 3)
    responses = drain(xmit.get_response_queue(), count=4)
    assert sorted(r["metadata"] for r in responses) == [0, 1, 2, 3]
    for r in responses:
        assert r["status_code"] == 503
        assert isinstance(r["error"], str) and "HTTP 503" in r["error"] and "gave up after 3" in r["error"]
    warnings = [r for r in caplog.records if r.name == "beeline" and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "4 failed" in warnings[0].getMessage()
    xmit.close()


def test_429_retry_after_is_honoured(rx):
    rx.fail_next(1, status=429, retry_after=1)
    xmit = make(send_frequency=30)
    send_n(xmit, rx.url, 3)
    assert xmit.flush(10)
    first, second = rx.requests
    assert (first["outcome"], second["outcome"]) == ("fail", "ok")
    # The backoff alone would be a few ms; the second attempt waited for Retry-After.
    assert second["received_at"] - first["received_at"] >= 0.95
    assert delivered_ids(rx) == [0, 1, 2]
    assert (xmit.stats["retried"], xmit.stats["sent"]) == (3, 3)
    xmit.close()


def test_retry_after_beyond_the_budget_fails_without_waiting(rx):
    rx.fail_next(1, status=429, retry_after=3600)
    xmit = make(send_frequency=30, retry_max_elapsed=2.0)
    send_n(xmit, rx.url, 2)
    assert xmit.flush(5)
    assert rx.outcomes() == ["fail"]
    assert (xmit.stats["failed"], xmit.stats["retried"]) == (2, 0)
    assert all(r["status_code"] == 429 for r in drain(xmit.get_response_queue(), count=2))
    xmit.close()


def test_other_4xx_is_not_retried_and_reported_per_event(rx):
    rx.fail_next(1, status=400)
    xmit = make(send_frequency=30)
    send_n(xmit, rx.url, 3)
    assert xmit.flush(5)
    assert rx.outcomes() == ["fail"]
    responses = drain(xmit.get_response_queue(), count=3)
    assert [(r["status_code"], r["error"]) for r in responses] == [(400, "HTTP 400: injected 400")] * 3
    assert (xmit.stats["failed"], xmit.stats["retried"], xmit.stats["sent"]) == (3, 0, 0)
    xmit.close()


def test_receiver_slower_than_the_client_timeout(rx):
    rx.delay_next(1, 1.0)
    xmit = make(send_frequency=30, request_timeout=0.2)
    send_n(xmit, rx.url, 4)
    assert xmit.flush(10)
    assert wait_until(lambda: len(rx.requests) == 2)
    assert sorted(rx.outcomes()) == ["abandoned", "ok"]
    assert delivered_ids(rx) == [0, 1, 2, 3]
    assert (xmit.stats["retried"], xmit.stats["sent"], xmit.stats["batches"]) == (4, 4, 2)
    xmit.close()


def test_connection_reset_mid_request(rx):
    rx.reset_next(2)
    xmit = make(send_frequency=30)
    send_n(xmit, rx.url, 6)
    assert xmit.flush(10)
    assert rx.outcomes() == ["reset", "reset", "ok"]
    assert delivered_ids(rx) == list(range(6))
    assert (xmit.stats["retried"], xmit.stats["sent"], xmit.stats["failed"]) == (12, 6, 0)
    xmit.close()


def test_kept_alive_connection_closed_by_a_restart_is_replaced(rx):
    xmit = make(send_frequency=30)
    send_n(xmit, rx.url, 2)
    assert xmit.flush(5)
    rx.stop()  # drops the kept-alive connection
    rx.start()
    send_n(xmit, rx.url, 2, start=2)
    assert xmit.flush(5)
    assert delivered_ids(rx) == [0, 1, 2, 3]
    assert xmit.stats["failed"] == 0
    assert len({r["client_port"] for r in rx.requests}) == 2
    xmit.close()


def test_malformed_status_array_is_reported_not_retried(rx):
    rx.status_array_next(1, b'[{"status": 202}, {"sta')
    xmit = make(send_frequency=30)
    send_n(xmit, rx.url, 3)
    assert xmit.flush(5)
    assert rx.outcomes() == ["status_array"]
    assert len(rx.events) == 3  # the receiver has them; we cannot tell, so we say so
    responses = drain(xmit.get_response_queue(), count=3)
    assert all(r["status_code"] == 200 and "unreadable status array" in r["error"] for r in responses)
    assert (xmit.stats["sent"], xmit.stats["failed"], xmit.stats["retried"]) == (0, 3, 0)
    xmit.close()


def test_partial_status_array_reports_missing_events(rx):
    rx.status_array_next(1, [{"status": 202}, {"status": 400, "error": "too big"}])
    xmit = make(send_frequency=30)
    send_n(xmit, rx.url, 4)
    assert xmit.flush(5)
    by_meta = responses_by_metadata(xmit, count=4)
    assert (by_meta[0]["status_code"], by_meta[0]["error"]) == (202, None)
    assert (by_meta[1]["status_code"], by_meta[1]["error"]) == (400, "too big")
    for i in (2, 3):
        assert (by_meta[i]["status_code"], by_meta[i]["error"]) == (200, "no status for this event in the response")
    assert (xmit.stats["sent"], xmit.stats["failed"], xmit.stats["retried"]) == (1, 3, 0)
    assert len(rx.requests) == 1
    xmit.close()


def test_retry_policy_and_retry_after_parsing():
    assert [is_retryable_status(s) for s in (408, 429, 500, 502, 503, 504, 599)] == [True] * 7
    assert [is_retryable_status(s) for s in (400, 401, 403, 404, 413, 501, 505)] == [False] * 7
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    policy = RetryPolicy(initial_delay=0.1, max_delay=1.0, max_attempts=4, max_elapsed=10.0)
    for n in range(1, 10):
        cap = min(1.0, 0.1 * 2 ** (n - 1))
        assert cap / 2 <= policy.delay(n) <= cap
    assert policy.delay(1, retry_after=3.0) == 3.0
    assert policy.allows(3, started=0.0, wait=1.0, now=1.0)
    assert not policy.allows(4, started=0.0, wait=1.0, now=1.0)
    assert not policy.allows(1, started=0.0, wait=5.0, now=6.0)
