"""Every transmission test gets its own loopback receiver."""

import pytest

from tests.receiver import LoopbackReceiver


@pytest.fixture
def rx():
    with LoopbackReceiver() as receiver:
        yield receiver
