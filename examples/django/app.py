"""A small Django app traced by beeline, in one file.

    .venv/bin/python examples/django/app.py              # serve on http://127.0.0.1:8000
    .venv/bin/python examples/django/app.py --asgi       # the same app under uvicorn (ASGI)
    .venv/bin/python examples/django/app.py --self-test  # serve, make a few requests, exit

No write key is needed: without one, every finished trace is printed on stderr. Set
HONEYCOMB_API_KEY (and optionally HONEYCOMB_DATASET) to send them to Honeycomb instead.

In a regular project the same two steps go in settings.py and wsgi.py/asgi.py:
`"beeline.middleware.django.HoneyMiddleware"` first in MIDDLEWARE, and `beeline.init(...)`
before the application object is created.
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
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import django
from django.conf import settings

import beeline

DB_DIR = tempfile.mkdtemp(prefix="beeline-django-example-")
atexit.register(shutil.rmtree, DB_DIR, ignore_errors=True)

settings.configure(
    DEBUG=False,
    SECRET_KEY="example-only",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    MIDDLEWARE=[
        "beeline.middleware.django.HoneyMiddleware",  # first: its span covers everything else
        "django.middleware.common.CommonMiddleware",
    ],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.path.join(DB_DIR, "notes.sqlite3")}},
    USE_TZ=True,
)
django.setup()

from django.db import connection  # noqa: E402
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse  # noqa: E402
from django.urls import path  # noqa: E402


def create_schema() -> None:
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)")
    connection.close()


@beeline.traced("load_notes")
def load_notes() -> list:
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, text FROM notes ORDER BY id")
        rows = cursor.fetchall()
    beeline.add_context_field("app.note_count", len(rows))
    return [{"id": row[0], "text": row[1]} for row in rows]


def notes(request):
    if request.method == "POST":
        text = request.POST.get("text", "").strip() or "(empty)"
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO notes (text) VALUES (%s)", [text])
        beeline.add_trace_field("note_text_length", len(text))
    return JsonResponse({"notes": load_notes()})


def report(request):
    """A streamed body: its trace ends after the last line, and its query is part of it."""

    def lines():
        yield "notes report\n"
        with beeline.tracer("render_report"):
            for note in load_notes():
                yield "%(id)d: %(text)s\n" % note

    return StreamingHttpResponse(lines(), content_type="text/plain")


def index(request):
    return HttpResponse("try: POST /notes/ text=..., GET /notes/, GET /report/\n", content_type="text/plain")


urlpatterns = [path("", index), path("notes/", notes), path("report/", report)]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def serve_wsgi(port: int) -> WSGIServer:
    from django.core.handlers.wsgi import WSGIHandler

    return make_server("127.0.0.1", port, WSGIHandler(), server_class=_ThreadingWSGIServer,
                       handler_class=_QuietHandler)


def request(port: int, method: str, url: str, body: str = "") -> int:
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
    server = serve_wsgi(0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_port
    try:
        statuses = [
            request(port, "POST", "/notes/", "text=buy+milk"),
            request(port, "GET", "/notes/"),
            request(port, "GET", "/report/"),
            request(port, "GET", "/missing/"),
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
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--asgi", action="store_true", help="serve with uvicorn through Django's ASGI handler")
    parser.add_argument("--self-test", action="store_true", help="make a few requests and exit")
    args = parser.parse_args()

    beeline.init(service_name="django-example", dataset=os.environ.get("HONEYCOMB_DATASET", "django-example"))
    create_schema()
    if args.self_test:
        return self_test()
    print("serving on http://127.0.0.1:%d/ (Ctrl-C to stop); traces go to stderr" % args.port, file=sys.stderr)
    try:
        if args.asgi:
            import uvicorn
            from django.core.handlers.asgi import ASGIHandler

            uvicorn.run(ASGIHandler(), host="127.0.0.1", port=args.port, lifespan="off", log_level="warning")
        else:
            serve_wsgi(args.port).serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        beeline.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
