"""The beeline's span events take a shorter road through the encoder: the client's fields are
spliced in pre-encoded, and the time is formatted from the span's float start time. What
arrives must be exactly what the ordinary road (``created_at`` and ``fields()``) gives."""

import json
import random
from datetime import datetime, timezone

import pytest

from beeline.events import SpanEvent
from beeline.transmission.encoding import wall_time
from tests.transmission.helpers import Ev, encode_batch, make

BASE = {"service_name": "shop", "service.name": "shop", "meta.beeline_version": "9.9.9",
        "meta.local_hostname": "host-1"}
START = 1700000000.25  # 2023-11-14T22:13:20.250000+00:00


class NotJSON:
    def __str__(self) -> str:
        return "not-json"


def span_event(own: dict, base=BASE, start: float = START, rate: int = 1, api_host: str = "http://x") -> SpanEvent:
    """A span event made as the core makes one: a bound class, no __init__, own fields only."""
    cls = SpanEvent.bound("key", api_host, None, "ds", rate, base)
    ev = object.__new__(cls)
    ev._data = dict(own)
    ev._start_wall = start
    return ev


def ordinary_text(ev: SpanEvent) -> str:
    """What encoding the event the ordinary way gives: its merged fields and its datetime."""
    item = {"time": ev.created_at.isoformat(), "samplerate": ev.sample_rate, "data": ev.fields()}
    return json.dumps([item], separators=(",", ":"), default=str)


CASES = {
    "base and own": {"name": "GET /", "duration_ms": 1.5, "trace.parent_id": None, "n": 3},
    "empty own": {},
    "own overrides a base key": {"name": "x", "service_name": "mine", "z": [1, {"a": "é"}]},
    "unicode and escapes": {"msg": 'quote " back \\ nl \n ☃', "k\u00e9y": "v"},
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_span_event_text_is_what_its_fields_give(case):
    own = CASES[case]
    body, encoded, rejected = encode_batch([span_event(own)])
    assert rejected == [] and len(encoded) == 1
    assert body.decode("utf-8") == ordinary_text(span_event(own))


def test_own_value_overriding_a_base_key_arrives_once():
    body, _, _ = encode_batch([span_event({"service_name": "mine", "i": 1})])
    pairs = json.loads(body, object_pairs_hook=list)[0][2][1]
    assert [k for k, _ in pairs].count("service_name") == 1
    assert dict(pairs)["service_name"] == "mine"
    assert [k for k, _ in pairs] == list(BASE) + ["i"]


def test_base_that_could_not_be_pre_encoded_goes_the_ordinary_way():
    base = dict(BASE, odd=NotJSON())
    ev = span_event({"i": 1}, base=base)
    assert ev.base_json == ""  # nothing to splice: the client's fields are merged as before
    body, encoded, _ = encode_batch([ev])
    assert encoded == [ev]
    data = json.loads(body)[0]["data"]
    assert data == dict(BASE, odd="not-json", i=1)


def test_spliced_and_ordinary_events_mix_in_one_batch():
    events = [span_event({"i": 0}), span_event({"i": 1}, base=dict(BASE, odd=NotJSON())),
              span_event({"i": 2}, base={}), span_event({"i": 3, "service_name": "own"})]
    body, encoded, rejected = encode_batch(events)
    assert rejected == []
    items = json.loads(body)
    # Each item sits at the index of its event in `encoded` (the status array maps back by it).
    assert [item["data"]["i"] for item in items] == [ev._data["i"] for ev in encoded]
    assert sorted(item["data"]["i"] for item in items) == [0, 1, 2, 3]
    by_i = {item["data"]["i"]: item["data"] for item in items}
    assert by_i[0] == dict(BASE, i=0)
    assert by_i[1] == dict(BASE, odd="not-json", i=1)
    assert by_i[2] == {"i": 2}
    assert by_i[3] == dict(BASE, i=3, service_name="own")


def test_an_unencodable_span_event_fails_alone():
    good, bad = span_event({"i": 0}), span_event({"i": 1, (1, 2): "tuple key"})
    body, encoded, rejected = encode_batch([good, bad])
    assert encoded == [good]
    assert [(ev, "could not be encoded" in why) for ev, why in rejected] == [(bad, True)]
    assert json.loads(body)[0]["data"] == dict(BASE, i=0)


def test_spliced_events_arrive_at_the_receiver_with_their_fields(rx):
    xmit = make()
    sent = {name: span_event(dict(own, case=name), api_host=rx.url) for name, own in CASES.items()}
    sent["base not pre-encodable"] = span_event({"case": "base not pre-encodable"}, api_host=rx.url,
                                                base=dict(BASE, odd=NotJSON()))
    sent["no base"] = span_event({"case": "no base"}, api_host=rx.url, base={})
    twins = {name: span_event(ev._data, base=ev.base_fields or {}, api_host=rx.url) for name, ev in sent.items()}
    twins["base not pre-encodable"] = span_event({"case": "base not pre-encodable"}, api_host=rx.url,
                                                 base=dict(BASE, odd="not-json"))
    for ev in sent.values():
        xmit.send(ev)
    assert xmit.flush(5)
    xmit.close()
    arrived = {e["data"]["case"]: e for e in rx.events}
    assert set(arrived) == set(sent)
    for name, twin in twins.items():
        assert list(arrived[name]["data"].items()) == list(twin.fields().items()), name
        assert arrived[name]["time"] == "2023-11-14T22:13:20.250000+00:00"
        assert arrived[name]["samplerate"] == 1


# ------------------------------------------------------------------------------------ time
@pytest.mark.parametrize("start", [
    1700000000.0,            # a whole second: isoformat leaves the microseconds out
    1700000000.25,
    1700000000.9999996,      # rounds up into the next second
    1700000000.9999994,
    1700000001.0000004,      # rounds down onto the whole second
    1699999999.999999,
    0.0, 0.5, 1.0000005, 951782400.0000015,  # 2000-02-29
    253402300798.999999,     # the last second the short road formats
])
def test_wall_time_is_datetimes_isoformat(start):
    assert wall_time(start) == datetime.fromtimestamp(start, timezone.utc).isoformat()


def test_wall_time_matches_datetime_on_many_times():
    rng = random.Random(4)
    starts = [rng.uniform(0, 4e9) for _ in range(20000)]
    starts += [round(s) + rng.choice([-1, 1]) * rng.uniform(0, 2e-6) for s in starts[:5000]]
    starts += [float(int(s)) + k / 1e6 + 5e-7 for s in starts[:200] for k in range(5)]  # near halves
    for start in starts:
        assert wall_time(start) == datetime.fromtimestamp(start, timezone.utc).isoformat(), repr(start)


def test_times_on_the_wire_and_an_explicit_created_at_is_kept(rx):
    xmit = make()
    whole = span_event({"i": 0}, start=1700000000.0, api_host=rx.url)
    next_second = span_event({"i": 1}, start=1700000000.9999996, api_host=rx.url)
    earlier = span_event({"i": 2}, start=1600000000.5, api_host=rx.url)
    explicit = span_event({"i": 3}, api_host=rx.url)
    explicit.created_at = datetime(2021, 2, 3, 4, 5, 6, 7)  # naive: UTC, sent with a Z
    explicit_aware = span_event({"i": 4}, api_host=rx.url)
    explicit_aware.created_at = datetime(2021, 2, 3, 4, 5, 6, tzinfo=timezone.utc)
    for ev in (whole, next_second, earlier, explicit, explicit_aware):
        xmit.send(ev)
    assert xmit.flush(5)
    xmit.close()
    times = {e["data"]["i"]: e["time"] for e in rx.events}
    assert times == {
        0: "2023-11-14T22:13:20+00:00",
        1: "2023-11-14T22:13:21+00:00",
        2: "2020-09-13T12:26:40.500000+00:00",
        3: "2021-02-03T04:05:06.000007Z",
        4: "2021-02-03T04:05:06+00:00",
    }
    assert all(e["data"] == dict(BASE, i=e["data"]["i"]) for e in rx.events)


def test_other_event_kinds_are_untouched(rx):
    # Plain objects with the attributes libhoney's transmissions read go the ordinary way.
    xmit = make()
    xmit.send(Ev({"i": 0, "service_name": "theirs"}, rx.url, created_at=datetime(2024, 1, 2, 3, 4, 5)))
    assert xmit.flush(5)
    xmit.close()
    (event,) = rx.events
    assert event["data"] == {"i": 0, "service_name": "theirs"}
    assert event["time"] == "2024-01-02T03:04:05Z"


def test_without_the_c_encoder_the_text_is_the_same(monkeypatch):
    import json.encoder

    from beeline.transmission import encoding

    value = {"a": 1.5, "b": [None, True, "é\n"], "c": NotJSON(), 3: 2.5}
    with_c_encoder = encoding._chunk_encoder()
    with_c = "".join(with_c_encoder(value, 0))
    monkeypatch.setattr(json.encoder, "c_make_encoder", None)
    without_c_encoder = encoding._chunk_encoder()
    without_c = "".join(without_c_encoder(value, 0))
    assert with_c == without_c == '{"a":1.5,"b":[null,true,"\\u00e9\\n"],"c":"not-json","3":2.5}'
    # Neither writes NaN (not JSON): both refuse it, and the caller sends it as a string.
    for encoder in (with_c_encoder, without_c_encoder):
        with pytest.raises(ValueError):
            "".join(encoder({"x": float("nan")}, 0))
