"""Fixtures for the viewer tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from .helpers import Viewer


@pytest.fixture
def follow_viewer() -> Iterator[Callable[..., Viewer]]:
    """Start `beeline view --follow ...` subprocesses; any still running at the end are killed."""
    started: list[Viewer] = []

    def start(*args: str, **kwargs: object) -> Viewer:
        viewer = Viewer(*args, **kwargs)  # type: ignore[arg-type]
        started.append(viewer)
        return viewer

    yield start
    for viewer in started:
        viewer.stop()
