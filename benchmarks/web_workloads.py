"""Hello-world Flask, Django and Bottle apps driven in-process through WSGI.

`make_app(framework, instrumented)` returns a WSGI callable: the bare app, or the same app
behind the beeline middleware, wired the way the reference's README wires it (which is also
ours, since the import paths are the same). No sockets are involved: the figure is the time the
middleware adds to a request, not the network's.
"""

from __future__ import annotations

import importlib.util
import io
import sys
from typing import Any, Callable, Dict, Tuple

MIDDLEWARE_MODULES = {
    "flask": "beeline.middleware.flask",
    "django": "beeline.middleware.django",
    "bottle": "beeline.middleware.bottle",
}

BODY = b"Hello, World!"

_ENVIRON: Dict[str, Any] = {
    "REQUEST_METHOD": "GET",
    "SCRIPT_NAME": "",
    "PATH_INFO": "/",
    "QUERY_STRING": "",
    "SERVER_NAME": "127.0.0.1",
    "SERVER_PORT": "8000",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "REMOTE_ADDR": "127.0.0.1",
    "HTTP_HOST": "127.0.0.1:8000",
    "HTTP_USER_AGENT": "beeline-bench/1",
    "HTTP_ACCEPT": "*/*",
    "wsgi.version": (1, 0),
    "wsgi.url_scheme": "http",
    "wsgi.multithread": False,
    "wsgi.multiprocess": False,
    "wsgi.run_once": False,
}


def middleware_available(framework: str) -> bool:
    try:
        return importlib.util.find_spec(MIDDLEWARE_MODULES[framework]) is not None
    except ImportError:
        return False


def _flask_app(instrumented: bool) -> Callable:
    import flask

    app = flask.Flask("bench_flask")

    @app.route("/")
    def hello():
        return BODY.decode()

    if instrumented:
        from beeline.middleware.flask import HoneyMiddleware

        HoneyMiddleware(app, db_events=True)
    return app


def _django_app(instrumented: bool) -> Callable:
    import django
    from django.conf import settings
    from django.http import HttpResponse
    from django.urls import path

    def hello(request):
        return HttpResponse(BODY)

    module = type(sys)("bench_django_urls")
    module.urlpatterns = [path("", hello)]
    sys.modules["bench_django_urls"] = module
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-not-secret",
        ROOT_URLCONF="bench_django_urls",
        ALLOWED_HOSTS=["*"],
        MIDDLEWARE=["beeline.middleware.django.HoneyMiddleware"] if instrumented else [],
        INSTALLED_APPS=[],
        DATABASES={},
        USE_TZ=True,
        LOGGING_CONFIG=None,
    )
    django.setup()
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def _bottle_app(instrumented: bool) -> Callable:
    import bottle

    app = bottle.Bottle()

    @app.route("/")
    def hello():
        return BODY

    if instrumented:
        from beeline.middleware.bottle import HoneyWSGIMiddleware

        return HoneyWSGIMiddleware(app)
    return app


_BUILDERS = {"flask": _flask_app, "django": _django_app, "bottle": _bottle_app}


class BareTraceWrapper:
    """The least a tracing middleware can do, written against the API both packages share: the
    reference's request fields (`beeline.middleware.wsgi.WSGIRequest`, in both), the parser hook,
    a root span with the status code, finished when the app returns. It measures what the core
    costs per request inside each framework, apart from any middleware's own design."""

    def __init__(self, app: Callable, name: str) -> None:
        from beeline.middleware.wsgi import WSGIRequest

        import beeline

        self.app = app
        self.name = name
        self.request_class = WSGIRequest
        self.beeline = beeline

    def __call__(self, environ: dict, start_response: Callable):
        beeline = self.beeline
        request = self.request_class(self.name, environ)
        root = beeline.propagate_and_start_trace(request.request_context(), request)

        def traced_start_response(status, headers, exc_info=None):
            root.add_context_field("response.status_code", int(status[:3]))
            return start_response(status, headers)

        try:
            return self.app(environ, traced_start_response)
        finally:
            beeline.finish_trace(root)


def make_app(framework: str, instrumented: bool, floor: bool = False) -> Callable:
    """The hello-world app: bare, behind the beeline middleware, or (`floor`) behind
    BareTraceWrapper instead."""
    if not floor:
        return _BUILDERS[framework](instrumented)
    app = _BUILDERS[framework](False)
    if framework == "flask":
        app.wsgi_app = BareTraceWrapper(app.wsgi_app, framework)
        return app
    return BareTraceWrapper(app, framework)


def framework_version(framework: str) -> str:
    from importlib.metadata import version

    return version({"flask": "Flask", "django": "Django", "bottle": "bottle"}[framework])


def request_once(app: Callable) -> Tuple[str, bytes]:
    """One GET / through the WSGI app: the status line and the whole body."""
    environ = dict(_ENVIRON)
    environ["wsgi.input"] = io.BytesIO(b"")
    environ["wsgi.errors"] = sys.stderr
    status_holder = []

    def start_response(status, headers, exc_info=None):
        status_holder.append(status)
        return None

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return status_holder[0], body


def make_request_loop(app: Callable) -> Callable[[int], None]:
    status, body = request_once(app)
    if not status.startswith("200") or body != BODY:
        raise RuntimeError(f"hello world answered {status!r} {body[:80]!r}")
    template = _ENVIRON
    errors = sys.stderr
    new_input = io.BytesIO

    def start_response(status, headers, exc_info=None):
        return None

    def run(n: int) -> None:
        for _ in range(n):
            environ = dict(template)
            environ["wsgi.input"] = new_input(b"")
            environ["wsgi.errors"] = errors
            result = app(environ, start_response)
            for _chunk in result:
                pass
            close = getattr(result, "close", None)
            if close is not None:
                close()

    return run
