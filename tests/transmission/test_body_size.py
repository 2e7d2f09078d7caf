"""A batch never goes out as a request body larger than ``max_batch_bytes`` (by default the
Events API's 5,000,000-byte limit, past which the API refuses the whole body): it is split into
several requests, in order, each event sent once."""

import json

from beeline.transmission.delivery import MAX_BODY_BYTES
from beeline.transmission.encoding import split_bodies
from tests.transmission.helpers import Ev, delivered_ids, make


def body_size(request):
    # The receiver keeps the parsed array; the transmission's encoding is compact ASCII JSON,
    # so encoding it again the same way gives the size of the body that was sent.
    return len(json.dumps(request["body"], separators=(",", ":")))


def send_padded(xmit, rx_url, sizes):
    for i, size in enumerate(sizes):
        xmit.send(Ev({"i": i, "pad": "x" * size}, rx_url, metadata=i))


def test_a_batch_over_the_byte_limit_goes_out_in_several_requests(rx):
    xmit = make(send_frequency=30, max_batch_size=10, max_batch_bytes=5000)
    send_padded(xmit, rx.url, [950] * 10)
    assert xmit.flush(5)
    sizes = [body_size(r) for r in rx.requests]
    assert len(rx.requests) >= 3 and max(sizes) <= 5000
    assert sum(len(r["body"]) for r in rx.requests) == 10
    # In order across the requests, and nothing twice.
    assert [e["data"]["i"] for r in rx.requests for e in r["body"]] == list(range(10))
    assert xmit.stats["sent"] == 10 and xmit.stats["failed"] == 0
    assert xmit.stats["batches"] == len(rx.requests)
    xmit.close()


def test_an_event_over_the_limit_on_its_own_is_sent_alone(rx):
    xmit = make(send_frequency=30, max_batch_size=4, max_batch_bytes=2000)
    send_padded(xmit, rx.url, [10, 3000, 10, 10])
    assert xmit.flush(5)
    assert [[e["data"]["i"] for e in r["body"]] for r in rx.requests] == [[0], [1], [2, 3]]
    assert xmit.stats["sent"] == 4
    xmit.close()


def test_the_default_limit_is_the_events_api_body_limit(rx):
    assert MAX_BODY_BYTES == 5_000_000
    xmit = make(send_frequency=30, max_batch_size=6)
    send_padded(xmit, rx.url, [1_000_000] * 6)  # 6 MB of JSON in one batch
    assert xmit.flush(30)
    sizes = [body_size(r) for r in rx.requests]
    assert len(sizes) == 2 and max(sizes) <= 5_000_000
    assert delivered_ids(rx) == list(range(6))
    xmit.close()


def test_split_bodies_keeps_every_item_once_in_order():
    texts = [json.dumps({"i": i, "p": "y" * (i * 7 % 50)}) for i in range(40)]
    events = list(range(40))
    bodies = split_bodies(texts, events, 300)
    assert [ev for _, part in bodies for ev in part] == events
    assert all(len(body) <= 300 for body, _ in bodies)
    assert [item for body, _ in bodies for item in json.loads(body)] == [json.loads(t) for t in texts]
    # Under the limit: one body, the plain JSON array.
    (body, part), = split_bodies(texts, events, 10**6)
    assert body == ("[" + ",".join(texts) + "]").encode() and part == events
