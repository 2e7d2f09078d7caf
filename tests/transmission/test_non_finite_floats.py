"""NaN and infinite floats. JSON has no such numbers, and the Events API answers 400 for a
whole batch that contains one, so libhoney's encoding (which writes a bare ``NaN``) loses every
event of that batch. Here such a value is sent as a string ("NaN", "Infinity", "-Infinity")
and the batch is accepted. The loopback receiver parses as strictly as the API does."""

import gzip
import urllib.error
import urllib.request

import libhoney
import pytest

from tests.receiver import strict_loads
from tests.transmission.helpers import Ev, drain, encode_batch, make
from tests.transmission.test_span_encoding import BASE, span_event

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("value, sent", [(NAN, "NaN"), (INF, "Infinity"), (-INF, "-Infinity")])
def test_a_span_field_that_is_not_a_json_number_is_sent_as_its_name(value, sent):
    ev = span_event({"ratio": value, "n": 1})
    body, encoded, rejected = encode_batch([ev])
    assert (encoded, rejected) == ([ev], [])
    assert strict_loads(body)[0]["data"] == dict(BASE, ratio=sent, n=1)


def test_nested_values_and_keys_and_the_rest_of_the_batch():
    good = span_event({"i": 0, "x": 1.5})
    odd = span_event({"i": 1, "list": [1.0, NAN, {"deep": -INF}], "tuple": (INF,), "by": {INF: "key"}})
    plain = Ev({"i": 2, "m": NAN}, "http://x")
    body, encoded, rejected = encode_batch([good, odd, plain])
    assert rejected == []
    items = strict_loads(body)
    # Items in the order of `encoded` (the status array is mapped back by that order).
    assert [item["data"]["i"] for item in items] == [ev._data["i"] for ev in encoded]
    by_i = {item["data"]["i"]: item["data"] for item in items}
    assert by_i[0] == dict(BASE, i=0, x=1.5)
    assert by_i[1] == dict(BASE, i=1, list=[1.0, "NaN", {"deep": "-Infinity"}], tuple=["Infinity"],
                           by={"Infinity": "key"})
    assert by_i[2] == {"i": 2, "m": "NaN"}


def test_a_client_field_that_is_not_a_json_number():
    ev = span_event({"i": 0}, base=dict(BASE, load=INF))
    assert ev.base_json == ""  # not pre-encoded: the event goes the ordinary way
    body, encoded, _ = encode_batch([ev])
    assert encoded == [ev]
    assert strict_loads(body)[0]["data"] == dict(BASE, load="Infinity", i=0)


def test_finite_floats_keep_their_exact_text():
    body, _, _ = encode_batch([span_event({"a": 0.1 + 0.2, "b": -0.0, "c": 1e308, "d": 5e-324})])
    assert body.count(b'"a":0.30000000000000004,"b":-0.0,"c":1e+308,"d":5e-324') == 1


def test_the_receiver_refuses_nan_as_the_api_does(rx):
    body = gzip.compress(b'[{"time":"2024-01-01T00:00:00Z","samplerate":1,"data":{"x":NaN}}]')
    request = urllib.request.Request(rx.url + "/1/batch/d", data=body, method="POST",
                                     headers={"Content-Encoding": "gzip", "X-Honeycomb-Team": "k"})
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=5)
    assert answer.value.code == 400
    assert rx.events == [] and [r["outcome"] for r in rx.requests] == ["bad_request"]


def test_one_nan_no_longer_loses_its_batch(rx):
    xmit = make()
    for i in range(5):
        xmit.send(Ev({"i": i, "score": NAN if i == 2 else i / 2}, rx.url, metadata=i))
    assert xmit.flush(5)
    responses = drain(xmit.get_response_queue(), count=5)
    xmit.close()
    assert sorted(r["metadata"] for r in responses) == [0, 1, 2, 3, 4]
    assert {(r["status_code"], r["error"]) for r in responses} == {(202, None)}
    assert len(rx.requests) == 1  # one batch, accepted at once
    scores = {e["data"]["i"]: e["data"]["score"] for e in rx.events}
    assert scores == {0: 0.0, 1: 0.5, 2: "NaN", 3: 1.5, 4: 2.0}
    assert xmit.stats["sent"] == 5 and xmit.stats["failed"] == 0


def test_libhoneys_transmission_loses_the_whole_batch(rx):
    # The difference, shown on the same receiver: libhoney writes NaN and all five fail.
    client = libhoney.Client(writekey="k", dataset="d", api_host=rx.url, block_on_response=True)
    try:
        for i in range(5):
            client.send_now({"i": i, "score": NAN if i == 2 else i / 2})
        client.flush()
        responses = [client.responses().get(timeout=10) for _ in range(5)]
    finally:
        client.close()
    assert {r["status_code"] for r in responses} == {400}
    assert rx.events == []
