"""The deterministic sampler is an interop contract with the other beelines: bit-exact."""

import hashlib

import pytest

from beeline.sampling import should_sample

# (trace id, first 4 bytes of SHA1, kept at rate 2): reference section 3.1.
VECTORS = [
    ("4YeYygWjTZ41zOBKUoYUaSVxPGm78rdU", 0xD19865D2, False),
    ("iow4KAFBl9u6lF4EYIcsFz60rXGvu7ph", 0x2B7344C3, True),
    ("EgQMHtruEfqaqQqRs5nwaDXsegFGmB5n", 0x49AE4466, True),
    ("8PV5LN1IGm5T0ZVIaakb218NvTEABNZz", 0xA6AA84E7, False),
]


@pytest.mark.parametrize("trace_id,prefix,kept", VECTORS)
def test_reference_vectors_at_rate_2(trace_id, prefix, kept):
    assert int.from_bytes(hashlib.sha1(trace_id.encode()).digest()[:4], "big") == prefix
    assert should_sample(trace_id, 2) is kept


@pytest.mark.parametrize("rate,kept", [(2, True), (10, True), (100, False), (1000, False)])
def test_w3c_style_id_at_several_rates(rate, kept):
    assert should_sample("0af7651916cd43dd8448eb211c80319c", rate) is kept


def test_rate_one_keeps_everything():
    assert all(should_sample(str(i), 1) for i in range(1000))


def test_bound_is_max_uint32_divided_by_rate():
    # An id whose hash prefix sits just under and just over the bound at rate 3.
    bound = (2**32 - 1) / 3
    below = above = None
    for i in range(200000):
        value = int.from_bytes(hashlib.sha1(str(i).encode()).digest()[:4], "big")
        if below is None and bound - 2**24 < value < bound:
            below = str(i)
        if above is None and bound <= value < bound + 2**24:
            above = str(i)
        if below and above:
            break
    assert should_sample(below, 3) is True
    assert should_sample(above, 3) is False


def test_keeps_about_one_in_rate():
    kept = sum(should_sample("%032x" % i, 4) for i in range(20000))
    assert 4500 < kept < 5500
