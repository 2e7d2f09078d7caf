"""Werkzeug: every request one trace.

    from beeline.middleware.werkzeug import HoneyWSGIMiddleware
    application = HoneyWSGIMiddleware(application)

The shared WSGI middleware with root spans named `werkzeug_http_<method>`. Werkzeug itself is
not imported: routing is the application's own business, so no route field is added.
"""

from __future__ import annotations

from typing import Callable

from beeline.middleware import wsgi

__all__ = ["HoneyWSGIMiddleware"]


class HoneyWSGIMiddleware(wsgi.HoneyWSGIMiddleware):
    middleware_name = "werkzeug"

    def __init__(self, app: Callable) -> None:
        super().__init__(app)
