"""The event handed to a transmission for a finished span.

It carries exactly what libhoney's transmissions read (`fields()`, `created_at`, `sample_rate`,
`dataset`, `writekey`, `api_host`, `metadata`) and is a `libhoney.Event`, so transmissions that
check the type accept it. It skips `Event.__init__`, whose field holders and dynamic-field
machinery cost several microseconds per span for a dict the span already has.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Optional

import libhoney


_NO_FIELDS: dict = {}


class SpanEvent(libhoney.Event):
    # Defaults read by transmissions; an event sets its own only when it differs.
    metadata: Optional[Any] = None
    _created_at: Optional[datetime] = None
    #: The client's fields (service_name, hostname, ...), the same for every span of one
    #: Beeline, and the same fields pre-encoded as JSON object members (`"k":v,...`, no braces).
    #: They stay apart from the span's own fields (`_data`) until `fields()` is called, so a
    #: transmission that knows this (beeline's own) splices the pre-encoded text instead of
    #: copying and encoding them again for every event. The span's own fields win on a clash.
    base_fields: dict = _NO_FIELDS
    base_json: str = ""

    @classmethod
    def bound(cls, writekey: str, api_host: str, client: Any, dataset: str, sample_rate: int,
              base_fields: Optional[dict] = None) -> type:
        """A subclass carrying, as class attributes, what every event of one Beeline shares, so
        building an event for a span sets two attributes instead of nine. Such events are made
        with `object.__new__` (no __init__) and given `_data` and `_start_wall`: see
        Beeline._send_span. `created_at` stays a property: the datetime is built when a
        transmission asks for it, on the transmission's thread, not the request's.

        `base_fields` is copied: the class describes the client's fields as they are now."""
        base = dict(base_fields) if base_fields else _NO_FIELDS
        shared = {
            "writekey": writekey,
            "api_host": api_host,
            "client": client,
            "dataset": dataset,
            "sample_rate": sample_rate,
            "base_fields": base,
            "base_json": members_json(base),
            "__module__": cls.__module__,
            "__doc__": "A SpanEvent bound to one Beeline's settings.",
        }
        return type(cls.__name__, (cls,), shared)

    def __init__(
        self,
        fields: dict,
        start_wall: float,
        sample_rate: int,
        dataset: str,
        writekey: str,
        api_host: str,
        client: Any = None,
    ) -> None:
        self._data = fields
        self._start_wall = start_wall
        self.sample_rate = sample_rate
        self.dataset = dataset
        self.writekey = writekey
        self.api_host = api_host
        self.client = client
        self.metadata: Optional[Any] = None
        self._created_at: Optional[datetime] = None

    @property
    def created_at(self) -> datetime:
        # Built on demand: most transmissions read it once, on their own thread.
        created = self._created_at
        if created is None:
            created = self._created_at = datetime.fromtimestamp(self._start_wall, timezone.utc)
        return created

    @created_at.setter
    def created_at(self, value: datetime) -> None:
        self._created_at = value

    def fields(self) -> dict:
        """Every field of the event: the client's, then the span's own. Merged once, on first
        use, into the dict this returns from then on (so a transmission may change it)."""
        base = self.base_fields
        if base:
            self._data = {**base, **self._data}
            self.base_fields = _NO_FIELDS
            self.base_json = ""
        return self._data

    def add_field(self, name: str, val: Any) -> None:
        self._data[name] = val

    def add(self, data: dict) -> None:
        self._data.update(data)

    def add_metadata(self, md: Any) -> None:
        self.metadata = md

    def send(self) -> None:  # pragma: no cover - spans are sent by the beeline, not by hand
        raise RuntimeError("span events are sent by the beeline")

    send_presampled = send

    def __str__(self) -> str:
        return str(self.fields())


def members_json(fields: dict) -> str:
    """`fields` as the members of a JSON object, without the braces ("" for none), encoded as
    beeline's transmission encodes event data; "" as well when some value cannot be encoded,
    which leaves those events to the ordinary path."""
    if not fields:
        return ""
    try:
        text = json.dumps(fields, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        return ""
    return text[1:-1]
