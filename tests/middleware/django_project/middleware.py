"""Subclasses that use the reference's override points, as applications do."""

import beeline
from beeline.middleware.django import HoneyMiddleware


class CustomContext(HoneyMiddleware):
    def get_context_from_request(self, request):
        context = super().get_context_from_request(request)
        context["app.tenant"] = request.headers.get("X-Tenant")
        return context

    def get_context_from_response(self, request, response):
        context = super().get_context_from_response(request, response)
        context["app.response_bytes"] = len(response.content)
        return context


class ViewNotes(HoneyMiddleware):
    """Extends process_view the way reference users did, with super()."""

    def process_view(self, request, view_func, view_args, view_kwargs):
        super().process_view(request, view_func, view_args, view_kwargs)
        beeline.add_context_field("app.view_module", view_func.__module__)


class BrokenOverrides(HoneyMiddleware):
    def get_context_from_request(self, request):
        raise RuntimeError("broken request override")

    def get_context_from_response(self, request, response):
        raise RuntimeError("broken response override")


class WrappedEvent(HoneyMiddleware):
    """Overrides create_http_event, the reference's per-request method, around super()."""

    calls = 0

    def create_http_event(self, request):
        WrappedEvent.calls += 1
        response = super().create_http_event(request)
        response["X-Wrapped"] = "yes"
        return response
