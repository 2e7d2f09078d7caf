"""A batch the API takes whole is counted in one step; every other answer is read event by
event. Both must come to the same counts and responses."""

import pytest

from beeline.transmission.delivery import _all_accepted
from tests.transmission.helpers import drain, make, responses_by_metadata, send_n


def outcome(xmit, responses_expected: int) -> tuple:
    responses = drain(xmit.get_response_queue(), count=responses_expected, timeout=2)
    stats = xmit.stats
    return ((stats["sent"], stats["failed"], stats["retried"], stats["batches"]),
            [(r["status_code"], r["body"], r["error"], r["metadata"]) for r in responses])


COMPACT = b"[" + b",".join([b'{"status":202}'] * 5) + b"]"  # the API's own spelling


def run_two_batches(rx, answer: str, max_responses: int) -> tuple:
    """Two batches of five, every event accepted with 202, the answer spelt as ``answer``:
    "spaced" (the receiver's json.dumps), "compact" (the API's, recognised as bytes) or "slow"
    (items with an extra member, which only the event-by-event reading takes)."""
    if answer == "compact":
        rx.status_array_next(2, COMPACT)
    elif answer == "slow":
        rx.status_array_next(2, [{"status": 202, "note": "same meaning"}] * 5)
    xmit = make(send_frequency=30, max_responses=max_responses)
    send_n(xmit, rx.url, 5)
    assert xmit.flush(5)
    send_n(xmit, rx.url, 5, start=5)
    assert xmit.flush(5)
    result = outcome(xmit, min(10, max_responses))
    xmit.close()
    return result


@pytest.mark.parametrize("answer", ["spaced", "compact"])
@pytest.mark.parametrize("max_responses", [100, 3], ids=["responses-read", "responses-queue-full"])
def test_all_accepted_gives_the_same_counts_and_responses_as_event_by_event(rx, max_responses, answer):
    fast = run_two_batches(rx, answer, max_responses=max_responses)
    assert len(rx.requests) == 2
    slow = run_two_batches(rx, "slow", max_responses=max_responses)
    assert rx.outcomes()[2:] == ["status_array", "status_array"]
    assert fast == slow
    stats, responses = fast
    assert stats == (10, 0, 0, 2)
    if max_responses == 100:
        assert responses == [(202, "", None, i) for i in range(10)]
    else:
        # The first batch fills the queue (the rest of it is dropped); the second finds it full.
        assert responses == [(202, "", None, i) for i in range(3)]


def test_an_all_202_array_one_item_short_still_fails_the_last_event(rx):
    rx.status_array_next(1, [{"status": 202}] * 3)
    xmit = make(send_frequency=30)
    send_n(xmit, rx.url, 4)
    assert xmit.flush(5)
    by_meta = responses_by_metadata(xmit, count=4)
    assert [by_meta[i]["status_code"] for i in range(3)] == [202, 202, 202]
    assert (by_meta[3]["status_code"], by_meta[3]["error"]) == (200, "no status for this event in the response")
    assert (xmit.stats["sent"], xmit.stats["failed"]) == (3, 1)
    xmit.close()


def test_a_float_status_is_not_taken_for_an_accepted_event(rx):
    rx.status_array_next(1, b'[{"status": 202}, {"status": 202.0}]')
    xmit = make(send_frequency=30)
    send_n(xmit, rx.url, 2)
    assert xmit.flush(5)
    by_meta = responses_by_metadata(xmit, count=2)
    assert (by_meta[0]["status_code"], by_meta[0]["error"]) == (202, None)
    assert (by_meta[1]["status_code"], by_meta[1]["error"]) == (200, "no status for this event in the response")
    assert (xmit.stats["sent"], xmit.stats["failed"]) == (1, 1)
    xmit.close()


@pytest.mark.parametrize("body, count, expected", [
    (b'[{"status":202},{"status":202}]', 2, 202),
    (b'[ {"status": 200} ,\n {"status": 200} ]', 2, 200),
    (b'[{"status":202}]', 2, 0),                         # one short
    (b'[{"status":202},{"status":202}]', 1, 0),          # one too many
    (b'[{"status":202},{"status":200}]', 2, 0),          # not all the same
    (b'[{"status":202},{"status":202.0}]', 2, 0),        # a float is no status
    (b'[{"status":202.0},{"status":202.0}]', 2, 0),
    (b'[{"status":true}]', 1, 0),
    (b'[{"status":400},{"status":400}]', 2, 0),          # rejected events: read one by one
    (b'[{"status":202,"error":""}]', 1, 0),              # more than a status
    (b'[{"status":"202"}]', 1, 0),
    (b'[202]', 1, 0),
    (b'{"status":202}', 1, 0),
    (b'[]', 0, 0),
    (b'[{"status":202}', 1, 0),                          # malformed
    (b'\xff\xfe', 1, 0),
])
def test_all_accepted_recognises_only_a_whole_batch_taken(body, count, expected):
    assert _all_accepted(body, count) == expected
