"""Bottle: every request one trace.

    import bottle
    from beeline.middleware.bottle import HoneyWSGIMiddleware
    app = HoneyWSGIMiddleware(bottle.default_app())   # give `app` to the server

The shared WSGI middleware with root spans named `bottle_http_<method>`, plus `request.route`,
the matched route's rule (`/users/<name>`), as the other frameworks have it.

Bottle turns an exception in a view into a 500 page itself, so it never reaches the WSGI layer.
Bottle 0.13 reports it through `start_response`'s `exc_info`, which the WSGI middleware records;
Bottle 0.12 does not, so under 0.12, when the wrapped application is a `Bottle`, the middleware
also installs a small plugin (named "beeline") that records a view's exception on the request's
root span and re-raises it untouched. `unpatch(app)` removes the plugin. (Under 0.13 the plugin
would only repeat what `exc_info` gives, at the price of one more call around every view.)
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import bottle

from beeline.internal import warn_once
from beeline.middleware import wsgi
from beeline.middleware.wsgi import ROOT_SPAN_KEY, error_fields
from beeline.trace import Span

__all__ = ["HoneyWSGIMiddleware", "unpatch"]

PLUGIN_NAME = "beeline"

# What a view raises on purpose: a response it chose (HTTPError is one) or a routing signal.
_NOT_ERRORS = tuple(
    cls for cls in (getattr(bottle, "HTTPResponse", None), getattr(bottle, "RouteReset", None)) if cls is not None
)


def _reports_errors_in_exc_info(version: str) -> bool:
    """True from Bottle 0.13 on, which passes a view's exception to `start_response`."""
    try:
        return tuple(int(part) for part in version.split(".")[:2]) >= (0, 13)
    except ValueError:
        return True  # a development version: newer than 0.12


_NEEDS_PLUGIN = not _reports_errors_in_exc_info(getattr(bottle, "__version__", "0.13"))


class HoneyWSGIMiddleware(wsgi.HoneyWSGIMiddleware):
    middleware_name = "bottle"

    def __init__(self, app: Callable) -> None:
        super().__init__(app)
        if _NEEDS_PLUGIN and isinstance(app, bottle.Bottle):
            _install_plugin(app)

    def finish_context(self, environ: dict, span: Span) -> None:
        route: Any = environ.get("bottle.route")
        if route is not None:
            span.fields["request.route"] = getattr(route, "rule", None)


def unpatch(app: "bottle.Bottle") -> bool:
    """Remove the error-recording plugin from `app`. True when it was there."""
    return bool(app.uninstall(PLUGIN_NAME))


class _ErrorPlugin:
    """Bottle plugin (API 2): a view's exception goes on the request's root span."""

    name = PLUGIN_NAME
    api = 2

    def apply(self, callback: Callable, route: Any) -> Callable:
        @functools.wraps(callback)
        def recording_errors(*args: Any, **kwargs: Any) -> Any:
            try:
                return callback(*args, **kwargs)
            except _NOT_ERRORS:
                raise
            except Exception as exc:
                _record(exc)
                raise

        return recording_errors


def _record(exc: Exception) -> None:
    try:
        root = bottle.request.environ.get(ROOT_SPAN_KEY)
        if root is not None:
            root.fields.update(error_fields(exc))
    except Exception:
        warn_once("bottle_error", "beeline: could not record the Bottle view's error", exc_info=True)


def _install_plugin(app: "bottle.Bottle") -> None:
    try:
        if not any(getattr(plugin, "name", None) == PLUGIN_NAME for plugin in app.plugins):
            app.install(_ErrorPlugin())
    except Exception:
        warn_once("bottle_plugin", "beeline: could not install the Bottle plugin; view errors may lack fields",
                  exc_info=True)
