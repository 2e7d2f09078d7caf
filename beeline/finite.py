"""JSON has no NaN or infinite numbers: Python's ``json`` writes them as bare ``NaN`` and
``Infinity``, which strict parsers (the Events API, beelines in other languages) refuse, along
with everything else in the same document. Where the beeline writes JSON for others to read,
such a float is written as its name, a string."""

from __future__ import annotations

import json
import math
from typing import Any


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float (value or dict key, at any depth) replaced
    by "NaN", "Infinity" or "-Infinity". Other values are returned as they are; dicts, lists
    and tuples holding such a float are copied (a tuple becomes a list, as in JSON)."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {finite(k) if isinstance(k, float) else k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def dumps(value: Any, **options: Any) -> str:
    """``json.dumps(value, **options)``, with NaN and infinities written as strings. The
    common case costs one encoding; ``finite`` copies only a value that holds such a float.
    (The transmission's encoder does the same with its own prebuilt encoder.)"""
    try:
        return json.dumps(value, allow_nan=False, **options)
    except ValueError:
        return json.dumps(finite(value), allow_nan=False, **options)
