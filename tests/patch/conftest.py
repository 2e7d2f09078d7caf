"""Fixtures for the outgoing-call patch tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.patch.server import HeaderRecordingServer

_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests talk to 127.0.0.1 only: a proxy from the environment must not take the requests
    # elsewhere, and an allow-list from the environment must not change what is sent.
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.delenv("BEELINE_PROPAGATE_HOSTS", raising=False)


@pytest.fixture(scope="module")
def _shared_server() -> Iterator[HeaderRecordingServer]:
    with HeaderRecordingServer() as server:
        yield server


@pytest.fixture
def server(_shared_server: HeaderRecordingServer) -> HeaderRecordingServer:
    """The header-recording server, with no requests recorded yet."""
    _shared_server.clear()
    return _shared_server


@pytest.fixture
def refused_url() -> str:
    """A 127.0.0.1 URL nobody listens on (the port was just free), so connecting is refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/ok"
