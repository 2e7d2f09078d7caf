"""What goes over the wire: URL, headers, body, and the responses libhoney users read."""

import platform
from datetime import datetime, timedelta, timezone

import libhoney
import pytest

from beeline.events import SpanEvent
from beeline.transmission import BeelineTransmission
from beeline.version import VERSION
from tests.receiver import LoopbackReceiver
from tests.transmission.helpers import Ev, delivered_ids, drain, make, responses_by_metadata, send_n


def test_libhoney_client_drives_it_headers_gzip_and_user_agent(rx):
    xmit = BeelineTransmission(send_frequency=0.02, user_agent_addition="myapp/2.0")
    client = libhoney.Client(writekey="team-key", dataset="web", api_host=rx.url, transmission_impl=xmit)
    assert client.responses() is xmit.get_response_queue()
    for i in range(3):
        ev = client.new_event()
        ev.add({"i": i, "name": "span"})
        ev.add_metadata({"n": i})
        ev.send()
    client.close()

    assert delivered_ids(rx) == [0, 1, 2]
    request = rx.requests[0]
    assert request["path"] == "/1/batch/web"
    assert request["gzip"] is True
    headers = request["headers"]
    assert headers["X-Honeycomb-Team"] == "team-key"
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == (
        f"beeline-tracer/{VERSION} libhoney-py/{libhoney.version.VERSION} "
        f"python/{platform.python_version()} myapp/2.0")
    for item in request["body"]:
        assert set(item) == {"time", "samplerate", "data"}
        assert item["samplerate"] == 1
        assert item["time"].endswith("Z")

    responses = drain(client.responses(), until_none=True)
    assert responses[-1] is None
    assert sorted(r["metadata"]["n"] for r in responses[:-1]) == [0, 1, 2]
    for r in responses[:-1]:
        assert set(r) == {"status_code", "body", "error", "duration", "metadata"}
        assert (r["status_code"], r["body"], r["error"]) == (202, "", None)
        assert r["duration"] >= 0


def test_product_token_passed_as_addition_is_not_repeated(rx):
    xmit = make(user_agent_addition=f"beeline-tracer/{VERSION}")
    send_n(xmit, rx.url, 1)
    xmit.close()
    assert rx.events[0]["headers"]["User-Agent"].count("beeline-tracer/") == 1


@pytest.mark.parametrize("dataset", ["my dataset", "a/b/c", "naïve ☃ données", "x:y?z#w&%"])
def test_dataset_is_one_escaped_path_segment(rx, dataset):
    xmit = make()
    send_n(xmit, rx.url, 2, dataset=dataset)
    xmit.close()
    assert [e["dataset"] for e in rx.events] == [dataset, dataset]
    path = rx.requests[0]["path"]
    assert path.startswith("/1/batch/") and path.count("/") == 3
    assert len(rx.requests) == 1


@pytest.mark.parametrize("suffix", ["/proxy/honeycomb", "/proxy/honeycomb/"])
def test_api_host_path_prefix_is_kept(rx, suffix):
    xmit = make()
    send_n(xmit, rx.url + suffix, 2, dataset="my ds")
    xmit.close()
    assert [r["path"] for r in rx.requests] == ["/proxy/honeycomb/1/batch/my%20ds"]
    assert delivered_ids(rx) == [0, 1]


def test_event_times_naive_is_utc_with_z_and_aware_keeps_offset(rx):
    xmit = make()
    naive = datetime(2024, 5, 6, 7, 8, 9, 123456)
    aware = datetime(2024, 5, 6, 9, 8, 9, tzinfo=timezone(timedelta(hours=2)))
    xmit.send(Ev({"i": 0}, rx.url, created_at=naive))
    xmit.send(Ev({"i": 1}, rx.url, created_at=aware))
    xmit.close()
    times = {e["data"]["i"]: e["time"] for e in rx.events}
    assert times == {0: "2024-05-06T07:08:09.123456Z", 1: "2024-05-06T09:08:09+02:00"}


def test_core_span_events_are_accepted(rx):
    xmit = make()
    ev = SpanEvent({"name": "root", "duration_ms": 1.5}, 1700000000.25, 4, "svc", "key", rx.url)
    xmit.send(ev)
    xmit.close()
    (event,) = rx.events
    assert event["samplerate"] == 4
    assert event["dataset"] == "svc"
    assert event["data"] == {"name": "root", "duration_ms": 1.5}
    assert event["time"] == "2023-11-14T22:13:20.250000+00:00"


def test_gzip_can_be_turned_off(rx):
    xmit = make(gzip_enabled=False)
    send_n(xmit, rx.url, 3)
    xmit.close()
    assert [r["gzip"] for r in rx.requests] == [False]
    assert "Content-Encoding" not in rx.requests[0]["headers"]
    assert delivered_ids(rx) == [0, 1, 2]


class Unprintable:
    def __str__(self):
        raise RuntimeError("no")


def test_values_json_cannot_encode_fall_back_per_value(rx):
    xmit = make()
    when = datetime(2024, 1, 2, 3, 4, 5)
    xmit.send(Ev({"i": 0, "when": when, "obj": frozenset([1]), "bad": Unprintable()}, rx.url))
    xmit.close()
    data = rx.events[0]["data"]
    assert data["when"] == "2024-01-02 03:04:05"
    assert data["obj"] == "frozenset({1})"
    assert data["bad"] == "libhoney was unable to encode value"


def test_an_unencodable_event_fails_alone(rx):
    xmit = make()
    xmit.send(Ev({"i": 0}, rx.url, metadata="ok-0"))
    xmit.send(Ev({"i": 1, (1, 2): "tuple key"}, rx.url, metadata="bad"))
    xmit.send(Ev({"i": 2}, rx.url, metadata="ok-2"))
    xmit.close()
    assert delivered_ids(rx) == [0, 2]
    responses = responses_by_metadata(xmit, until_none=True)
    assert responses["bad"]["status_code"] == 0
    assert "could not be encoded" in responses["bad"]["error"]
    assert responses["ok-0"]["status_code"] == 202
    assert xmit.stats["sent"] == 2 and xmit.stats["failed"] == 1


def test_events_with_different_keys_datasets_hosts_go_in_separate_batches():
    with LoopbackReceiver() as rx1, LoopbackReceiver() as rx2:
        xmit = make(send_frequency=30)  # only flush() sends, so all six are in one drain
        for i, (host, ds, key) in enumerate([(rx1.url, "a", "k1"), (rx1.url, "a", "k2"),
                                             (rx1.url, "b", "k1"), (rx2.url, "a", "k1"),
                                             (rx1.url, "a", "k1"), (rx2.url, "a", "k1")]):
            xmit.send(Ev({"i": i}, host, dataset=ds, writekey=key))
        assert xmit.flush(5)
        xmit.close()
        seen1 = sorted((r["path"], r["headers"]["X-Honeycomb-Team"], sorted(x["data"]["i"] for x in r["body"]))
                       for r in rx1.requests)
        assert seen1 == [("/1/batch/a", "k1", [0, 4]), ("/1/batch/a", "k2", [1]), ("/1/batch/b", "k1", [2])]
        assert [sorted(x["data"]["i"] for x in r["body"]) for r in rx2.requests] == [[3, 5]]


def test_plain_http_goes_through_a_forward_proxy_with_credentials(rx):
    # The receiver plays the proxy: the request line carries the absolute URL of the API host,
    # which is never connected to (nor resolved).
    xmit = make(proxies={"http": f"http://user:s%40cret@127.0.0.1:{rx.port}"})
    send_n(xmit, "http://api.honeycomb.invalid/prefix", 2, dataset="a b")
    xmit.close()
    (request,) = rx.requests
    assert request["path"] == "http://api.honeycomb.invalid:80/prefix/1/batch/a%20b"
    assert request["headers"]["Proxy-Authorization"] == "Basic dXNlcjpzQGNyZXQ="
    assert request["headers"]["Host"] == "api.honeycomb.invalid:80"
    assert delivered_ids(rx) == [0, 1]
