"""Assert on your own spans in tests.

    def test_checkout(beeline_recorder):
        checkout()
        span = beeline_recorder.find(name="checkout")
        assert span["app.cart_size"] == 3

`beeline_recorder` initialises the beeline with an in-memory transmission for one test and
closes it afterwards. This module is a pytest plugin (registered through the `pytest11` entry
point), so the fixtures are available as soon as this package is installed.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterator, List, Optional

try:
    import pytest
except ImportError:  # the recorder works without pytest; only the fixtures need it
    pytest = None  # type: ignore[assignment]


class RecordingTransmission:
    """A transmission (libhoney's interface) that keeps every event it is given."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sent: List[Any] = []
        self.started = False
        self.closed = False

    def start(self) -> None:
        self.started = True

    def send(self, ev: Any) -> None:
        with self._lock:
            self.sent.append(ev)

    def flush(self, timeout: Optional[float] = None) -> bool:
        return True

    def close(self, timeout: Optional[float] = None) -> None:
        self.closed = True

    def get_response_queue(self) -> None:
        return None

    # ---- reading what was recorded ---------------------------------------------------------

    @property
    def events(self) -> List[dict]:
        """The fields of every event, in the order the spans finished."""
        with self._lock:
            return [ev.fields() for ev in self.sent]

    def clear(self) -> None:
        with self._lock:
            self.sent.clear()

    def spans(self, **match: Any) -> List[dict]:
        """Events whose fields equal every keyword given; dotted field names are written with
        double underscores: `spans(name="db", response__status_code=200)`."""
        wanted = {key.replace("__", "."): value for key, value in match.items()}
        return [ev for ev in self.events if all(ev.get(k, _MISSING) == v for k, v in wanted.items())]

    def find(self, **match: Any) -> dict:
        """The single event matching; AssertionError when there are none or several."""
        found = self.spans(**match)
        names = [e.get("name") for e in self.events]
        assert len(found) == 1, f"expected one span matching {match}, found {len(found)} among {names}"
        return found[0]

    def traces(self) -> dict:
        """trace id -> its events, in finishing order."""
        grouped: dict = {}
        for ev in self.events:
            grouped.setdefault(ev.get("trace.trace_id"), []).append(ev)
        return grouped

    def root(self, trace_id: Optional[str] = None) -> dict:
        roots = [
            ev
            for ev in self.events
            if ev.get("meta.span_type") in ("root", "subroot")
            and (trace_id is None or ev.get("trace.trace_id") == trace_id)
        ]
        assert len(roots) == 1, f"expected one root span, found {len(roots)}"
        return roots[0]

    def children(self, parent: dict) -> List[dict]:
        return [ev for ev in self.events if ev.get("trace.parent_id") == parent.get("trace.span_id")]


_MISSING = object()


def recording_beeline(**init_kwargs: Any) -> RecordingTransmission:
    """Initialise the beeline with a fresh recorder (closing any beeline already set up)."""
    import beeline

    beeline.close()
    recorder = RecordingTransmission()
    settings = {"writekey": "0" * 32, "dataset": "test-dataset", "service_name": "test-service"}
    settings.update(init_kwargs)
    beeline.init(transmission_impl=recorder, **settings)
    return recorder


if pytest is not None:

    @pytest.fixture
    def beeline_recorder() -> Iterator[RecordingTransmission]:
        """A beeline recording into memory for the duration of one test."""
        import beeline

        recorder = recording_beeline()
        yield recorder
        beeline.close()

    @pytest.fixture
    def beeline_recorder_factory() -> Iterator[Callable[..., RecordingTransmission]]:
        """Like beeline_recorder, with your own init() arguments: `beeline_recorder_factory(sample_rate=10)`."""
        import beeline

        yield recording_beeline
        beeline.close()
