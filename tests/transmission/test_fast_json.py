"""With orjson installed (the `fast` extra, part of the test install), a span's own fields go
through orjson when that gives the same JSON; everything else takes the stdlib road. Both roads
must send the same values, and the same text except for the spelling of tiny floats."""

import enum
import json
import random
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from beeline.transmission import encoding
from tests.receiver import strict_loads
from tests.transmission.helpers import encode_batch, make
from tests.transmission.test_span_encoding import BASE, span_event

orjson = pytest.importorskip("orjson")


@pytest.fixture
def stdlib_only(monkeypatch):
    monkeypatch.setattr(encoding, "fast_dumps", None)


def both_roads(own: dict, monkeypatch) -> tuple:
    """The batch body of one span event with ``own`` fields: through orjson where it may be
    used, then with the stdlib encoder only."""
    fast, encoded, rejected = encode_batch([span_event(own)])
    assert len(encoded) == 1 and rejected == []
    with monkeypatch.context() as m:
        m.setattr(encoding, "fast_dumps", None)
        slow, _, _ = encode_batch([span_event(own)])
    return fast, slow


class Colour(enum.Enum):
    RED = 1


class Size(enum.IntEnum):
    BIG = 2


class Name(str):
    pass


NAN, INF = float("nan"), float("inf")
SAME_TEXT = {
    "plain fields of a request span": {"name": "flask_http_get", "request.content_length": 0,
                                       "response.status_code": 200, "trace.parent_id": None,
                                       "duration_ms": 0.33099099891842343, "ok": True, "no": False},
    "floats in range": {"a": 0.1 + 0.2, "b": -0.0, "c": 1e308, "d": 5e-324, "e": 1e16, "f": 123.5},
    "NaN next to a None": {"ratio": NAN, "parent": None},
    "infinities": {"up": INF, "down": -INF},
    "a string that says null": {"text": "null", "x": 1.5},
    "non-ASCII text": {"msg": "caf\u00e9 \u2603", "x": 1.5},
    "escapes": {"msg": 'quote " back \\ nl \n tab \t', "ctl": "\x01"},
    "int beyond 64 bits": {"big": 2**70, "neg": -(2**64)},
    "enum members": {"colour": Colour.RED, "size": Size.BIG},
    "datetime": {"at": datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)},
    "str subclass": {"who": Name("me")},
    "nested values": {"list": [1, NAN, None], "map": {"k": INF}},
    "int keys": {1: "one", "two": 2},
}


@pytest.mark.parametrize("case", sorted(SAME_TEXT))
def test_both_roads_send_the_same_text(case, monkeypatch):
    fast, slow = both_roads(SAME_TEXT[case], monkeypatch)
    assert fast == slow
    assert fast.isascii()
    strict_loads(fast)  # and it is JSON the Events API accepts: no bare NaN


def test_a_float_below_1e_4_is_spelled_differently_but_means_the_same(monkeypatch):
    fast, slow = both_roads({"tiny": 1e-05, "small": 2.5e-07}, monkeypatch)
    # The orjson spelling shows this event really took the fast road.
    assert b'"tiny":0.00001' in fast and b'"small":2.5e-7' in fast
    assert b'"tiny":1e-05' in slow and b'"small":2.5e-07' in slow
    assert strict_loads(fast) == strict_loads(slow)


def test_non_finite_floats_are_sent_as_their_names_on_either_road(monkeypatch):
    fast, slow = both_roads({"ratio": NAN, "tiny": 1e-05}, monkeypatch)
    assert strict_loads(fast)[0]["data"] == dict(BASE, ratio="NaN", tiny=1e-05)
    assert strict_loads(slow)[0]["data"] == dict(BASE, ratio="NaN", tiny=1e-05)


def test_random_plain_fields_send_the_same_values(monkeypatch):
    rng = random.Random(7)
    alphabet = "ab \"\\\n\u00e9\u2603nul"

    def value():
        kind = rng.randrange(6)
        if kind == 0:
            return "".join(rng.choice(alphabet) for _ in range(rng.randrange(8)))
        if kind == 1:
            return rng.choice([0, -1, 2**63 - 1, -(2**63), 2**64, 2**80, rng.randrange(-10**6, 10**6)])
        if kind == 2:
            return rng.choice([NAN, INF, -INF, 0.0, -0.0, 1e-7, 1e22, rng.uniform(-1e6, 1e6),
                               rng.random() * 10 ** rng.randrange(-8, 20)])
        if kind == 3:
            return rng.random() < 0.5
        if kind == 4:
            return None
        return rng.choice(["GET", "/", "null", "nullable"])

    for _ in range(500):
        own = {f"f{i}": value() for i in range(rng.randrange(1, 12))}
        fast, slow = both_roads(own, monkeypatch)
        assert fast.isascii()
        assert strict_loads(fast) == strict_loads(slow), own


def test_the_stdlib_road_alone_spells_tiny_floats_its_way(stdlib_only):
    body, _, _ = encode_batch([span_event({"tiny": 1e-05})])
    assert b'"tiny":1e-05' in body


def test_both_roads_arrive_at_the_receiver_alike(rx, monkeypatch):
    own = SAME_TEXT["plain fields of a request span"]
    xmit = make()
    xmit.send(span_event(dict(own, road="fast"), api_host=rx.url))
    assert xmit.flush(5)
    monkeypatch.setattr(encoding, "fast_dumps", None)
    xmit.send(span_event(dict(own, road="stdlib"), api_host=rx.url))
    assert xmit.flush(5)
    xmit.close()
    arrived = {e["data"].pop("road"): (e["time"], e["samplerate"], e["data"]) for e in rx.events}
    assert set(arrived) == {"fast", "stdlib"}
    assert arrived["fast"] == arrived["stdlib"]
    assert arrived["fast"][2] == dict(BASE, **own)


def test_without_orjson_the_stdlib_encoder_does_it_all():
    # A fresh interpreter in which `import orjson` fails, as when the extra is not installed.
    code = (
        "import sys; sys.modules['orjson'] = None\n"
        "from beeline.transmission import encoding\n"
        "from tests.transmission.helpers import encode_batch\n"
        "from tests.transmission.test_span_encoding import span_event\n"
        "assert encoding.fast_dumps is None\n"
        "body, encoded, rejected = encode_batch([span_event({'tiny': 1e-05, 'n': None})])\n"
        "print(body.decode())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout)[0]["data"] == dict(BASE, tiny=1e-05, n=None)
    assert '"tiny":1e-05' in out.stdout
