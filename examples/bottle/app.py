"""A small Bottle app traced by beeline, served by the standard library's wsgiref.

    .venv/bin/python examples/bottle/app.py              # serve on http://127.0.0.1:8080
    .venv/bin/python examples/bottle/app.py --self-test  # serve, make a few requests, exit

No write key is needed: without one, every finished trace is printed on stderr. Set
HONEYCOMB_API_KEY (and optionally HONEYCOMB_DATASET) to send them to Honeycomb instead.

The beeline part is two lines: `beeline.init(...)` before serving, and wrapping the Bottle app
in `HoneyWSGIMiddleware` before giving it to the server.
"""

from __future__ import annotations

import argparse
import http.client
import os
import sqlite3
import sys
import threading
from wsgiref.simple_server import WSGIRequestHandler, make_server

import bottle

import beeline
from beeline.middleware.bottle import HoneyWSGIMiddleware

app = bottle.Bottle()
DB = sqlite3.connect(":memory:", check_same_thread=False)
DB_LOCK = threading.Lock()


@beeline.traced("query_notes")
def query_notes(sql: str, *args) -> list:
    beeline.add_context_field("sql", sql)
    with DB_LOCK:
        rows = DB.execute(sql, args).fetchall()
        DB.commit()
    return rows


@app.post("/notes")
def add_note():
    text = (bottle.request.forms.get("text") or "").strip() or "(empty)"
    query_notes("INSERT INTO notes (text) VALUES (?)", text)
    beeline.add_trace_field("note_text_length", len(text))
    return {"notes": [{"id": i, "text": t} for i, t in query_notes("SELECT id, text FROM notes")]}


@app.get("/notes/<note_id:int>")
def note(note_id: int):
    rows = query_notes("SELECT id, text FROM notes WHERE id = ?", note_id)
    if not rows:
        bottle.abort(404, "no such note")
    return {"id": rows[0][0], "text": rows[0][1]}


@app.get("/report")
def report():
    """A streamed body: its trace ends after the last line, and its query is part of it."""
    bottle.response.content_type = "text/plain"

    def lines():
        yield "notes report\n"
        with beeline.tracer("render_report"):
            for note_id, text in query_notes("SELECT id, text FROM notes"):
                yield "%d: %s\n" % (note_id, text)

    return lines()


@app.get("/")
def index():
    return "try: POST /notes text=..., GET /notes/1, GET /report\n"


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def call(port: int, method: str, url: str, body: str = "") -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
        conn.request(method, url, body=body or None, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def self_test(application) -> int:
    """Serve on a free port, send a few requests, print their traces, stop."""
    # wsgiref serves one request at a time: when shutdown() returns, the last response has been
    # closed, so its trace has ended.
    server = make_server("127.0.0.1", 0, application, handler_class=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_port
    try:
        statuses = [
            call(port, "POST", "/notes", "text=buy+milk"),
            call(port, "GET", "/notes/1"),
            call(port, "GET", "/report"),
            call(port, "GET", "/notes/99"),
        ]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    beeline.close()  # prints (or sends) what is still queued
    print("statuses:", statuses, file=sys.stderr)
    return 0 if statuses == [200, 200, 200, 404] else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--self-test", action="store_true", help="make a few requests and exit")
    args = parser.parse_args()

    beeline.init(service_name="bottle-example", dataset=os.environ.get("HONEYCOMB_DATASET", "bottle-example"))
    DB.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)")
    application = HoneyWSGIMiddleware(app)  # bottle_http_<method> root spans
    if args.self_test:
        return self_test(application)
    print("serving on http://127.0.0.1:%d/ (Ctrl-C to stop); traces go to stderr" % args.port, file=sys.stderr)
    server = make_server("127.0.0.1", args.port, application, handler_class=QuietHandler)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        beeline.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
