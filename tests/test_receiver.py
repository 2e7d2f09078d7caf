"""The loopback receiver speaks the Events API batch endpoint the way clients expect.

Driven with libhoney's real Client and Transmission, and with raw http.client requests where a
fault has to be observed exactly (libhoney hides retries and errors behind its responses queue).
"""

import gzip
import http.client
import json
import socket

import libhoney
import pytest

from tests.receiver import LoopbackReceiver


def _post(rx, path, events, gzipped=True, timeout=5.0, headers=None):
    body = json.dumps(events).encode()
    hdrs = {"Content-Type": "application/json", "X-Honeycomb-Team": "key"}
    if gzipped:
        body = gzip.compress(body)
        hdrs["Content-Encoding"] = "gzip"
    hdrs.update(headers or {})
    conn = http.client.HTTPConnection("127.0.0.1", rx.port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def _events(n):
    return [{"time": "2024-01-01T00:00:00Z", "samplerate": 1, "data": {"i": i}} for i in range(n)]


def test_libhoney_client_events_arrive_with_headers_gzip_and_user_agent():
    with LoopbackReceiver() as rx:
        client = libhoney.Client(writekey="k", dataset="d", api_host=rx.url,
                                 user_agent_addition="probe/1.0")
        for i in range(3):
            ev = client.new_event()
            ev.add({"n": i, "name": "e"})
            ev.send()
        client.close()
        events = rx.wait_for(3, timeout=5)

        assert sorted(e["data"]["n"] for e in events) == [0, 1, 2]
        for e in events:
            assert e["dataset"] == "d"
            assert e["samplerate"] == 1
            assert e["time"].endswith("Z")
            assert e["headers"]["X-Honeycomb-Team"] == "k"
            assert e["headers"]["x-honeycomb-team"] == "k"
            ua = e["headers"]["User-Agent"]
            assert ua.startswith(f"libhoney-py/{libhoney.version.VERSION} probe/1.0 python/")
            assert e["status"] == 202
        assert rx.requests and all(r["gzip"] for r in rx.requests)
        assert all(r["path"] == "/1/batch/d" for r in rx.requests)
        assert all(r["outcome"] == "ok" for r in rx.requests)
        assert sum(len(r["body"]) for r in rx.requests) == 3

        # libhoney read our per-event status array: one 202 per event, then close()'s None.
        responses = []
        q = client.responses()
        while True:
            r = q.get(timeout=5)
            if r is None:
                break
            responses.append(r)
        assert [r["status_code"] for r in responses] == [202, 202, 202]


def test_answer_is_one_status_per_event_and_plain_json_is_accepted():
    with LoopbackReceiver() as rx:
        status, _, body = _post(rx, "/1/batch/plain", _events(4), gzipped=False)
        assert status == 200
        assert json.loads(body) == [{"status": 202}] * 4
        assert rx.requests[0]["gzip"] is False
        assert [e["data"]["i"] for e in rx.events] == [0, 1, 2, 3]


def test_dataset_is_unquoted_and_path_prefix_recorded():
    with LoopbackReceiver() as rx:
        path = "/prefix/x/1/batch/my%20ds%2Fsub%20%C3%A9"
        status, _, _ = _post(rx, path, _events(1))
        assert status == 200
        assert rx.requests[0]["path"] == path
        assert rx.events[0]["dataset"] == "my ds/sub é"


def test_unknown_path_and_bad_body_are_rejected_and_not_delivered():
    with LoopbackReceiver() as rx:
        assert _post(rx, "/1/events/d", _events(1))[0] == 404
        conn = http.client.HTTPConnection("127.0.0.1", rx.port, timeout=5)
        conn.request("POST", "/1/batch/d", body=b"not json", headers={"Content-Encoding": "gzip"})
        assert conn.getresponse().status == 400
        conn.close()
        assert _post(rx, "/1/batch/d", {"not": "a list"})[0] == 400
        assert rx.events == []


def test_fail_next_is_bounded_and_carries_retry_after():
    with LoopbackReceiver() as rx:
        rx.fail_next(1, status=429, retry_after=2)
        rx.fail_next(1, status=503)
        s1, h1, _ = _post(rx, "/1/batch/d", _events(2))
        s2, h2, _ = _post(rx, "/1/batch/d", _events(2))
        s3, _, _ = _post(rx, "/1/batch/d", _events(2))
        assert (s1, s2, s3) == (429, 503, 200)
        assert h1["Retry-After"] == "2"
        assert "Retry-After" not in h2
        assert rx.outcomes() == ["fail", "fail", "ok"]
        assert len(rx.events) == 2


def test_libhoney_sees_persistent_500s_as_failures():
    # libhoney retries a 500 once (urllib3), so two planned failures exhaust it.
    with LoopbackReceiver() as rx:
        rx.fail_next(2, status=500)
        client = libhoney.Client(writekey="k", dataset="d", api_host=rx.url)
        ev = client.new_event()
        ev.add_field("a", 1)
        ev.send()
        client.close()
        assert rx.outcomes() == ["fail", "fail"]
        assert rx.events == []
        # libhoney reports exhausted retries as status 0 with the exception object as error.
        first = client.responses().get(timeout=5)
        assert first["status_code"] == 0
        assert "too many 500 error responses" in str(first["error"])


def test_reset_next_closes_without_answer():
    with LoopbackReceiver() as rx:
        rx.reset_next(1)
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            _post(rx, "/1/batch/d", _events(3))
        assert rx.outcomes() == ["reset"]
        assert rx.events == []
        assert _post(rx, "/1/batch/d", _events(1))[0] == 200
        assert len(rx.events) == 1


def test_delay_longer_than_client_timeout_is_not_delivered():
    with LoopbackReceiver() as rx:
        rx.delay_next(1, 0.5)
        with pytest.raises((socket.timeout, TimeoutError)):
            _post(rx, "/1/batch/d", _events(2), timeout=0.1)
        reqs = rx.wait_for_requests(1, timeout=5)
        assert [r["outcome"] for r in reqs] == ["abandoned"]
        assert rx.events == []


def test_delay_shorter_than_client_timeout_is_delivered():
    with LoopbackReceiver() as rx:
        rx.delay_next(1, 0.1)
        assert _post(rx, "/1/batch/d", _events(2), timeout=5)[0] == 200
        assert rx.outcomes() == ["delay"]
        assert len(rx.events) == 2


def test_status_array_next_answers_malformed_and_partial_bodies():
    with LoopbackReceiver() as rx:
        rx.status_array_next(1, b"[{\"status\": 202}, {\"sta")
        rx.status_array_next(1, [{"status": 202}, {"status": 400, "error": "bad"}])
        s, _, body = _post(rx, "/1/batch/d", _events(3))
        assert (s, body) == (200, b"[{\"status\": 202}, {\"sta")
        s, _, body = _post(rx, "/1/batch/d", _events(3))
        assert json.loads(body) == [{"status": 202}, {"status": 400, "error": "bad"}]
        assert [e["status"] for e in rx.events] == [None, None, None, 202, 400, None]


def test_stop_refuses_connections_and_start_reuses_the_port():
    with LoopbackReceiver() as rx:
        port, url = rx.port, rx.url
        rx.stop()
        with pytest.raises(ConnectionError):
            _post(rx, "/1/batch/d", _events(1), timeout=1)
        rx.start()
        assert (rx.port, rx.url) == (port, url)
        assert _post(rx, "/1/batch/d", _events(1))[0] == 200
        assert len(rx.events) == 1


def test_stop_drops_kept_alive_connections():
    with LoopbackReceiver() as rx:
        conn = http.client.HTTPConnection("127.0.0.1", rx.port, timeout=2)
        body = json.dumps(_events(1)).encode()
        conn.request("POST", "/1/batch/d", body=body)
        assert conn.getresponse().read() == b'[{"status": 202}]'
        rx.stop()
        with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
            conn.request("POST", "/1/batch/d", body=body)
            conn.getresponse()
        conn.close()
        assert len(rx.events) == 1


def test_wait_for_is_bounded_and_returns_what_arrived():
    with LoopbackReceiver() as rx:
        _post(rx, "/1/batch/d", _events(1))
        assert len(rx.wait_for(5, timeout=0.2)) == 1


def test_requests_record_connection_arrival_and_concurrency():
    with LoopbackReceiver() as rx:
        conn = http.client.HTTPConnection("127.0.0.1", rx.port, timeout=5)
        for _ in range(2):
            conn.request("POST", "/1/batch/d", body=json.dumps(_events(1)).encode())
            conn.getresponse().read()
        conn.close()
        _post(rx, "/1/batch/d", _events(1))
        ports = [r["client_port"] for r in rx.requests]
        assert ports[0] == ports[1] != ports[2]
        assert rx.requests[0]["received_at"] <= rx.requests[1]["received_at"]
        assert rx.max_in_flight == 1
