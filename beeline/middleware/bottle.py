"""Bottle: every request one trace.

    import bottle
    from beeline.middleware.bottle import HoneyWSGIMiddleware
    app = HoneyWSGIMiddleware(bottle.default_app())   # give `app` to the server

The shared WSGI middleware with root spans named `bottle_http_<method>`, plus `request.route`,
the matched route's rule (`/users/<name>`), as the other frameworks have it. Bottle turns an
exception in a view into a 500 page and reports it through `start_response`'s `exc_info`, which
the WSGI middleware records as `request.error` / `request.error_detail`.
"""

from __future__ import annotations

from typing import Any, Callable

from beeline.middleware import wsgi
from beeline.trace import Span

__all__ = ["HoneyWSGIMiddleware"]


class HoneyWSGIMiddleware(wsgi.HoneyWSGIMiddleware):
    middleware_name = "bottle"

    def __init__(self, app: Callable) -> None:
        super().__init__(app)

    def finish_context(self, environ: dict, span: Span) -> None:
        route: Any = environ.get("bottle.route")
        if route is not None:
            span.fields["request.route"] = getattr(route, "rule", None)
