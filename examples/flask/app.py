"""A small Flask app with Flask-SQLAlchemy, traced by beeline.

    .venv/bin/python examples/flask/app.py              # serve on http://127.0.0.1:5000
    .venv/bin/python examples/flask/app.py --self-test  # serve, make a few requests, exit

No write key is needed: without one, every finished trace is printed on stderr. Set
HONEYCOMB_API_KEY (and optionally HONEYCOMB_DATASET) to send them to Honeycomb instead.

The beeline part is two lines: `beeline.init(...)` before serving, and
`HoneyMiddleware(app, db_events=True)` (any time, before or after Flask-SQLAlchemy).
"""

from __future__ import annotations

import argparse
import atexit
import http.client
import os
import shutil
import sys
import tempfile
import threading

import sqlalchemy as sa
from flask import Flask, Response, abort, jsonify, request, stream_with_context
from flask_sqlalchemy import SQLAlchemy
from werkzeug.serving import make_server

import beeline
from beeline.middleware.flask import HoneyMiddleware

DB_DIR = tempfile.mkdtemp(prefix="beeline-flask-example-")
atexit.register(shutil.rmtree, DB_DIR, ignore_errors=True)

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + os.path.join(DB_DIR, "notes.sqlite3")
HoneyMiddleware(app, db_events=True)  # root span per request, one span per SQL statement
db = SQLAlchemy(app)


class Note(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    text = db.Column(db.String(200), nullable=False)


@beeline.traced("load_notes")
def load_notes() -> list:
    notes = db.session.execute(sa.select(Note).order_by(Note.id)).scalars().all()
    beeline.add_context_field("app.note_count", len(notes))
    return [{"id": n.id, "text": n.text} for n in notes]


@app.route("/notes", methods=["GET", "POST"])
def notes():
    if request.method == "POST":
        text = (request.form.get("text") or "").strip() or "(empty)"
        db.session.add(Note(text=text))
        db.session.commit()
        beeline.add_trace_field("note_text_length", len(text))
    return jsonify({"notes": load_notes()})


@app.route("/notes/<int:note_id>")
def note(note_id: int):
    found = db.session.get(Note, note_id)
    if found is None:
        abort(404)
    return jsonify({"id": found.id, "text": found.text})


@app.route("/report")
def report():
    """A streamed body: its trace ends after the last line, and its query is part of it."""

    @stream_with_context
    def lines():
        yield "notes report\n"
        with beeline.tracer("render_report"):
            for n in load_notes():
                yield "%(id)d: %(text)s\n" % n

    return Response(lines(), mimetype="text/plain")


@app.route("/")
def index():
    return "try: POST /notes text=..., GET /notes, GET /notes/1, GET /report\n"


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


def self_test() -> int:
    """Serve on a free port, send a few requests, print their traces, stop."""
    # One request at a time: when shutdown() returns, the last response has been closed, so its
    # trace has ended (a trace ends when the server closes the response, after the last byte).
    server = make_server("127.0.0.1", 0, app, threaded=False)
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
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--self-test", action="store_true", help="make a few requests and exit")
    args = parser.parse_args()

    beeline.init(service_name="flask-example", dataset=os.environ.get("HONEYCOMB_DATASET", "flask-example"))
    with app.app_context():
        db.create_all()
    if args.self_test:
        return self_test()
    print("serving on http://127.0.0.1:%d/ (Ctrl-C to stop); traces go to stderr" % args.port, file=sys.stderr)
    server = make_server("127.0.0.1", args.port, app, threaded=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        beeline.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
