"""Deterministic sampling shared by every Honeycomb beeline.

This is an interop contract: a trace that crosses services written in Go, Ruby, Node and
Python is kept or dropped as a whole only if every service takes the same decision from the
trace id alone. Keep it bit-exact.
"""

from __future__ import annotations

from hashlib import sha1

MAX_UINT32 = 2**32 - 1


def should_sample(trace_id: str, sample_rate: int) -> bool:
    """Keep the trace when the first 4 bytes of SHA1(trace_id), big-endian, fall below
    MAX_UINT32 / sample_rate. A rate of 1 keeps everything."""
    if sample_rate == 1:
        return True
    upper_bound = MAX_UINT32 / sample_rate
    value = int.from_bytes(sha1(trace_id.encode("utf-8")).digest()[:4], "big")
    return value < upper_bound
