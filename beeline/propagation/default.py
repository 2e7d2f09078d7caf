"""The hooks used when the application configures none.

Reading accepts both formats, Honeycomb first; writing sends the Honeycomb header only, as the
reference did, so upgrading changes nothing on the wire. Services that are moving to W3C
(OpenTelemetry, a service mesh) can send both with :func:`http_trace_propagation_hook_both`.
"""

from __future__ import annotations

from beeline.propagation import PropagationContext, Request, honeycomb, w3c

__all__ = [
    "http_trace_parser_hook",
    "http_trace_propagation_hook",
    "http_trace_propagation_hook_both",
]


def http_trace_parser_hook(request: Request) -> PropagationContext | None:
    """``X-Honeycomb-Trace`` when it is present and readable, else ``traceparent``, else None.

    A malformed or unsupported-version Honeycomb header falls through to W3C (the reference
    stopped there for an unsupported version and started an unrelated trace).
    """
    try:
        # Most requests carry neither header: two lookups settle that, before either parser
        # builds anything. Anything odd (a value present, an adapter that raises) takes the
        # full path, which reads, validates and logs.
        header = request.header
        if header(honeycomb.HEADER) is None and header(w3c.TRACEPARENT_HEADER) is None:
            return None
    except Exception:  # noqa: BLE001 - the parsers below report it
        pass
    context = honeycomb.http_trace_parser_hook(request)
    if context is None:
        context = w3c.http_trace_parser_hook(request)
    return context


def http_trace_propagation_hook(
    propagation_context: PropagationContext | None,
    propagate_dataset: bool | None = None,
) -> dict[str, str] | None:
    """``X-Honeycomb-Trace`` only; see :func:`honeycomb.http_trace_propagation_hook`."""
    return honeycomb.http_trace_propagation_hook(propagation_context, propagate_dataset)


def http_trace_propagation_hook_both(
    propagation_context: PropagationContext | None,
    propagate_dataset: bool | None = None,
) -> dict[str, str] | None:
    """``X-Honeycomb-Trace`` and ``traceparent`` (plus ``tracestate``) together.

    For a migration in steps: Honeycomb beelines downstream keep reading their header (which
    the default parser prefers, so the exact trace id survives), while W3C-only services join
    the same trace through ``traceparent``.
    """
    headers = honeycomb.http_trace_propagation_hook(
        propagation_context, propagate_dataset
    )
    w3c_headers = w3c.http_trace_propagation_hook(propagation_context)
    if w3c_headers:
        if headers is None:
            headers = w3c_headers
        else:
            headers.update(w3c_headers)
    return headers
