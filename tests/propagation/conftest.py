"""Shared helpers for the propagation tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


class _BeelineWarnings:
    """The WARNING-and-above records from the ``beeline`` logger seen during one test."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self._caplog = caplog

    @property
    def records(self) -> list[logging.LogRecord]:
        return [r for r in self._caplog.records if r.name.split(".")[0] == "beeline" and r.levelno >= logging.WARNING]

    @property
    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]

    def clear(self) -> None:
        self._caplog.clear()


@pytest.fixture
def beeline_warnings(caplog: pytest.LogCaptureFixture) -> Iterator[_BeelineWarnings]:
    logger = logging.getLogger("beeline")
    caplog.set_level(logging.WARNING, logger="beeline")
    # caplog listens on the root logger; if the package ever stops ``beeline`` from
    # propagating there, listen on it directly so the count stays exact either way.
    attached = not logger.propagate
    if attached:
        logger.addHandler(caplog.handler)
    try:
        yield _BeelineWarnings(caplog)
    finally:
        if attached:
            logger.removeHandler(caplog.handler)
