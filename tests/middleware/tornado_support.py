"""Shared by the Tornado tests: serve an application on 127.0.0.1 inside a bounded event
loop, a private AsyncHTTPClient, and a downstream handler that reports the headers it got."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import tornado.httpserver
import tornado.netutil
import tornado.web
from tornado.httpclient import AsyncHTTPClient

# Every test is bounded: a scenario that hangs fails here instead of at the global timeout.
SCENARIO_TIMEOUT = 30.0


def run(scenario) -> object:
    """Run one test scenario (a coroutine) on a fresh event loop, bounded in time."""
    return asyncio.run(asyncio.wait_for(scenario, SCENARIO_TIMEOUT))


@contextlib.asynccontextmanager
async def serving(app: tornado.web.Application):
    """Serve `app` on a free port of 127.0.0.1 for the duration of the block."""
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    try:
        yield "http://127.0.0.1:%d" % sockets[0].getsockname()[1]
    finally:
        server.stop()
        await server.close_all_connections()


@contextlib.asynccontextmanager
async def http_client():
    """An AsyncHTTPClient of the test's own, closed afterwards."""
    client = AsyncHTTPClient(force_instance=True)
    try:
        yield client
    finally:
        client.close()


class HeaderRecordingHandler(tornado.web.RequestHandler):
    """The downstream service: answers with the trace headers it received."""

    def get(self):
        headers = self.request.headers
        self.write({name: headers.get(name) for name in ("X-Honeycomb-Trace", "traceparent", "X-Caller")})

    def delete(self):
        self.get()
