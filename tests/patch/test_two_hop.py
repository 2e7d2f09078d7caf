"""Two traced Flask apps on 127.0.0.1: the first calls the second through `requests`, and both
apps' spans form one trace."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import flask
import pytest
import requests
from werkzeug.serving import make_server

import beeline
import beeline.patch.requests  # noqa: F401  (applies the patch)
from beeline.middleware.flask import HoneyMiddleware
from beeline.middleware.flask import unpatch as unpatch_flask


class _Served:
    def __init__(self, app: flask.Flask) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def wait_for_events(recorder, count: int, timeout: float = 5.0) -> list:
    """The server ends a trace when it has finished the response, which may be just after the
    client got it: wait (bounded) for the spans to arrive."""
    deadline = time.monotonic() + timeout
    while len(recorder.events) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return recorder.events


@pytest.fixture
def apps(beeline_recorder) -> Iterator[tuple]:
    inventory = flask.Flask("inventory")

    @inventory.route("/stock/<item>")
    def stock(item):
        with beeline.tracer("count_stock"):
            beeline.add_context_field("item", item)
        return {"item": item, "count": 3}

    HoneyMiddleware(inventory, db_events=False)
    downstream = _Served(inventory)

    shop = flask.Flask("shop")

    @shop.route("/checkout")
    def checkout():
        beeline.add_trace_field("tenant", "acme")
        reply = requests.get(downstream.url + "/stock/widget", timeout=5)
        return {"stock": reply.json()["count"]}

    HoneyMiddleware(shop, db_events=False)
    upstream = _Served(shop)
    try:
        yield upstream, downstream
    finally:
        upstream.close()
        downstream.close()
        unpatch_flask(shop)
        unpatch_flask(inventory)


def test_both_apps_share_one_trace(beeline_recorder, apps):
    upstream, _ = apps
    response = requests.get(upstream.url + "/checkout", timeout=10)  # the test itself is untraced
    assert response.json() == {"stock": 3}
    wait_for_events(beeline_recorder, 4)

    traces = beeline_recorder.traces()
    assert len(traces) == 1, [e.get("name") for e in beeline_recorder.events]
    (events,) = traces.values()
    by_name = {e["name"]: e for e in events}
    assert set(by_name) == {"flask_http_get", "requests_GET", "count_stock"}, sorted(by_name)

    roots = [e for e in events if e["name"] == "flask_http_get"]
    shop_root = next(e for e in roots if e["meta.span_type"] == "root")
    inventory_root = next(e for e in roots if e["meta.span_type"] == "subroot")
    client = by_name["requests_GET"]

    # shop root -> requests_GET -> inventory root (subroot) -> count_stock
    assert shop_root["trace.parent_id"] is None
    assert client["trace.parent_id"] == shop_root["trace.span_id"]
    assert inventory_root["trace.parent_id"] == client["trace.span_id"]
    assert by_name["count_stock"]["trace.parent_id"] == inventory_root["trace.span_id"]

    # The trace field added in the first app arrived in the second through the header.
    assert inventory_root["app.tenant"] == "acme"
    assert by_name["count_stock"]["app.tenant"] == "acme"
    assert client["response.status_code"] == 200
    assert client["request.url"].endswith("/stock/widget")


def test_an_untraced_call_between_the_apps_starts_a_separate_trace(beeline_recorder, apps):
    _, downstream = apps
    requests.get(downstream.url + "/stock/bolt", timeout=10)
    wait_for_events(beeline_recorder, 2)
    (events,) = beeline_recorder.traces().values()
    root = next(e for e in events if e["name"] == "flask_http_get")
    assert root["meta.span_type"] == "root"
    assert "app.tenant" not in root
