"""The Beeline: settings, the libhoney client, the tracer and the send pipeline.

A finished span of a kept trace goes: fields merged once -> sampler hook (or the decision taken
when the trace started) -> presend hook -> one event handed to the transmission. Nothing on that
path may raise into the application: a failing hook is logged once and the span is dropped or
sampled by the default rule, never sent unscrubbed.
"""

from __future__ import annotations

import logging
import os
import queue
import random
import socket
import threading
import time
from typing import Any, Callable, Optional

import libhoney
from libhoney.fields import FieldHolder
from libhoney.transmission import Transmission as LibhoneyTransmission

from beeline import config
from beeline.deprecated import DeprecatedBeelineMethods
from beeline.decorators import SpanContext, traced_impl, traced_thread
from beeline.events import SpanEvent
from beeline.internal import warn_once
from beeline.local import LocalSink
from beeline.sampling import should_sample
from beeline.trace import Span, Tracer
from beeline.version import VERSION

log = logging.getLogger("beeline")

USER_AGENT_ADDITION = f"beeline-tracer/{VERSION}"
_debug_handler: Optional[logging.Handler] = None


def build_transmission(settings: config.Settings) -> Any:
    """The transmission for these settings: the user's, the local sink without a write key, or
    our own batching, retrying transmission (libhoney's ignored batch size and frequency)."""
    if settings.transmission_impl is not None:
        return settings.transmission_impl
    if not settings.writekey:
        return LocalSink(show=settings.local_stderr, path=settings.trace_file, user_agent=USER_AGENT_ADDITION)
    # Imported here: http.client, gzip and the sender's modules are not needed by processes that
    # never send (tests, the local sink), and cost a few milliseconds of `import beeline`.
    from beeline.transmission import BeelineTransmission

    return BeelineTransmission(
        max_concurrent_batches=settings.max_concurrent_batches,
        block_on_send=settings.block_on_send,
        block_on_response=settings.block_on_response,
        max_batch_size=settings.max_batch_size,
        send_frequency=settings.send_frequency,
        close_timeout=settings.close_timeout,
    )


def enable_debug_logging() -> None:
    """debug=True: one handler on the `beeline` logger, however often init() runs."""
    global _debug_handler
    logger = logging.getLogger("beeline")
    logger.setLevel(logging.DEBUG)
    if _debug_handler is None:
        _debug_handler = logging.StreamHandler()
        _debug_handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    if _debug_handler not in logger.handlers:
        logger.addHandler(_debug_handler)


class Beeline(DeprecatedBeelineMethods):
    def __init__(
        self,
        writekey: str = "",
        dataset: str = "",
        service_name: str = "",
        tracer: Any = None,
        sample_rate: int = 1,
        api_host: str = config.DEFAULT_API_HOST,
        max_concurrent_batches: int = 10,
        max_batch_size: int = 500,
        send_frequency: float = 0.25,
        block_on_send: bool = False,
        block_on_response: bool = False,
        transmission_impl: Any = None,
        sampler_hook: Optional[Callable] = None,
        presend_hook: Optional[Callable] = None,
        http_trace_parser_hook: Optional[Callable] = None,
        http_trace_propagation_hook: Optional[Callable] = None,
        debug: bool = False,
        trace_file: Optional[str] = None,
        local_stderr: Optional[bool] = None,
        close_timeout: float = 10.0,
        propagate_hosts: Any = None,
    ) -> None:
        from beeline.propagation import default as default_propagation

        settings = config.resolve(
            writekey=writekey,
            dataset=dataset,
            service_name=service_name,
            sample_rate=sample_rate,
            api_host=api_host,
            max_concurrent_batches=max_concurrent_batches,
            max_batch_size=max_batch_size,
            send_frequency=send_frequency,
            block_on_send=block_on_send,
            block_on_response=block_on_response,
            transmission_impl=transmission_impl,
            sampler_hook=sampler_hook,
            presend_hook=presend_hook,
            http_trace_parser_hook=http_trace_parser_hook,
            http_trace_propagation_hook=http_trace_propagation_hook,
            debug=debug,
            trace_file=trace_file,
            local_stderr=local_stderr,
            close_timeout=close_timeout,
            propagate_hosts=propagate_hosts,
        )
        self.settings = settings
        self.debug = settings.debug
        if self.debug:
            enable_debug_logging()
        for message in settings.warnings:
            log.warning("beeline.init: %s", message)
        if not settings.writekey and settings.transmission_impl is None:
            places = (["printed to stderr"] if settings.local_stderr else []) + (
                [f"written to {settings.trace_file}"] if settings.trace_file else []
            )
            log.warning(
                "beeline.init: no write key (writekey=, HONEYCOMB_WRITEKEY or HONEYCOMB_API_KEY); "
                "traces stay on this machine%s",
                ": " + " and ".join(places) if places else " and are discarded (stderr off, no trace file)",
            )

        self.transmission = build_transmission(settings)
        self.client = libhoney.Client(
            writekey=settings.writekey,
            dataset=settings.dataset,
            sample_rate=settings.sample_rate,
            api_host=settings.api_host,
            max_concurrent_batches=settings.max_concurrent_batches,
            max_batch_size=settings.max_batch_size,
            send_frequency=settings.send_frequency,
            block_on_send=settings.block_on_send,
            block_on_response=settings.block_on_response,
            transmission_impl=self.transmission,
            user_agent_addition=USER_AGENT_ADDITION,
        )
        self.client.add_field("service_name", settings.service_name)
        self.client.add_field("service.name", settings.service_name)
        self.client.add_field("meta.beeline_version", VERSION)
        self.client.add_field("meta.local_hostname", socket.gethostname())
        # Users may add their own client fields with client.add_field() at any time: the
        # holder tells us, so spans pick them up without comparing them per span.
        self.client.fields = _WatchedFields(self.client.fields, self._client_fields_changed)
        self._client_fields: dict = self.client.fields._data
        self._client_dyn_fields = self.client.fields._dyn_fields

        self.sample_rate = settings.sample_rate
        self.sampler_hook = settings.sampler_hook
        self.presend_hook = settings.presend_hook
        self.http_trace_parser_hook = settings.http_trace_parser_hook or default_propagation.http_trace_parser_hook
        self.http_trace_propagation_hook = (
            settings.http_trace_propagation_hook or default_propagation.http_trace_propagation_hook
        )
        self.tracer_impl = Tracer(self._send_span, settings.sample_rate, decide_per_span=sampler_hook is not None)
        # Upstream datasets in X-Honeycomb-Trace are honoured only with classic keys.
        self.tracer_impl.propagate_dataset = settings.classic_key
        self.tracer_impl.register_hooks(
            presend=self.presend_hook,
            sampler=self.sampler_hook,
            http_trace_parser=self.http_trace_parser_hook,
            http_trace_propagation=self.http_trace_propagation_hook,
        )
        import beeline.propagation as propagation_module

        propagation_module.propagate_dataset = settings.classic_key
        self._closed = False
        self.pid = os.getpid()

    # ---- the send pipeline ------------------------------------------------------------------------

    # The libhoney event class of this Beeline (SpanEvent.bound), made on the first kept span.
    _span_event_class: Optional[type] = None

    def _send_span(self, span: Span) -> None:
        """Called by the tracer for every finished span of a kept trace. Without hooks, the
        span's fields (plus its ids, rollups and duration) become the event's own fields in one
        copy; the client's fields travel with the event class (see SpanEvent.base_fields)."""
        duration = time.perf_counter() - span._start
        try:
            own = span.fields
            trace = span.trace
            # In the span's own dict, as the reference kept them in the span's event.
            own["trace.trace_id"] = trace.id
            own["trace.parent_id"] = span.parent_id
            own["trace.span_id"] = span.id
            if span._is_root and trace.rollup_fields:
                own.update(trace.rollup_fields)
            if span.rollup_fields:
                own.update(span.rollup_fields)
            if trace.fields:
                # Trace fields added after this span started, unless the span set its own value.
                # A snapshot: a worker thread may add a trace field while this span finishes.
                for key, value in trace.fields.copy().items():
                    if key not in own:
                        own[key] = value
            own["duration_ms"] = duration * 1000.0
            start_wall = time.time() - duration
            if self.sampler_hook is not None or self.presend_hook is not None or self._client_dyn_fields:
                self._deliver(
                    self._with_client_fields(own),
                    trace.id,
                    span.sample_rate or self.sample_rate,
                    start_wall,
                    trace.dataset or self.settings.dataset,
                    decided=True,
                )
                return
            xmit = self.client.xmit
            if xmit is None or self._closed:
                return
            event_class = self._span_event_class or self._bind_span_event_class()
            event = object.__new__(event_class)
            # A copy: the application may still hold the span and change its fields while the
            # transmission reads these on its own thread.
            event._data = own.copy()
            event._start_wall = start_wall
            if span.sample_rate:
                event.sample_rate = span.sample_rate
            if trace.dataset:
                event.dataset = trace.dataset
        except Exception:
            warn_once("send_span", "beeline: could not send a span", exc_info=True)
            return
        try:
            xmit.send(event)
        except Exception:
            warn_once("transmission_send", "beeline: the transmission failed to accept an event", exc_info=True)

    def _bind_span_event_class(self) -> type:
        settings = self.settings
        cls = SpanEvent.bound(
            settings.writekey, settings.api_host, self.client, settings.dataset, self.sample_rate, self._client_fields
        )
        self._span_event_class = cls
        return cls

    def _client_fields_changed(self) -> None:
        # The next span binds a new event class with the client's fields as they are then.
        self._span_event_class = None

    def _deliver(
        self, fields: dict, trace_id: Optional[str], rate: int, start_wall: float, dataset: str, decided: bool
    ) -> None:
        """Hooks, sampling and hand-off. `decided` means deterministic sampling already kept this
        trace (spans); otherwise libhoney's random sampling applies (legacy send_now events)."""
        sampler = self.sampler_hook
        if sampler is not None:
            try:
                keep, rate = sampler(fields)
                # A falsy keep drops the span whatever the rate says: the documented way to drop
                # is `return False, 0`. The truth test runs here, inside the guard, so a keep
                # whose __bool__ raises counts as a failed hook.
                keep = bool(keep)
                if keep:
                    rate = config.validate_sample_rate(rate)
            except Exception:
                warn_once("sampler_hook", "beeline: sampler_hook failed; using deterministic sampling", exc_info=True)
                rate = self.sample_rate
                keep = should_sample(trace_id, rate) if trace_id else random.randint(1, rate) == 1
            if not keep:
                return
        elif not decided and rate > 1 and random.randint(1, rate) != 1:
            self._dropped_by_sampling()
            return
        presend = self.presend_hook
        if presend is not None:
            try:
                presend(fields)
            except Exception:
                # Never send what a scrubber failed to scrub.
                warn_once("presend_hook", "beeline: presend_hook failed; the event was dropped", exc_info=True)
                return
        if not fields or self._closed:
            return
        settings = self.settings
        event = SpanEvent(fields, start_wall, rate, dataset, settings.writekey, settings.api_host, self.client)
        xmit = self.client.xmit
        if xmit is None:
            return
        try:
            xmit.send(event)
        except Exception:
            warn_once("transmission_send", "beeline: the transmission failed to accept an event", exc_info=True)

    def _dropped_by_sampling(self) -> None:
        responses = self.client.responses()
        if responses is None:
            return
        try:
            responses.put_nowait(
                {
                    "status_code": 0,
                    "duration": 0,
                    "metadata": None,
                    "body": "",
                    "error": "event dropped due to sampling",
                }
            )
        except queue.Full:
            pass

    def _with_client_fields(self, fields: dict) -> dict:
        """A new dict: the client's fields, its dynamic fields evaluated now, then `fields`."""
        data = self._client_fields.copy()
        for fn in self._client_dyn_fields:
            data[fn.__name__] = fn()
        data.update(fields)
        return data

    def _run_hooks_and_send(self, fields: dict) -> None:
        """A non-trace event (send_now): hooks, then libhoney-style random sampling."""
        self._deliver(
            self._with_client_fields(fields), None, self.sample_rate, time.time(), self.settings.dataset, decided=False
        )

    # ---- the reference's Beeline methods --------------------------------------------------------

    def tracer(self, name: str, trace_id: Optional[str] = None, parent_id: Optional[str] = None) -> SpanContext:
        return SpanContext(self.tracer_impl, {"name": name}, trace_id, parent_id)

    def traced(self, name: str, trace_id: Optional[str] = None, parent_id: Optional[str] = None):
        def wrap(fn):
            return traced_impl(fn, name, trace_id, parent_id, lambda: self)

        return wrap

    def traced_thread(self, fn):
        return traced_thread(fn, lambda: self)

    def get_responses_queue(self):
        return self.client.responses()

    def log(self, msg: str, *args: Any) -> None:
        if self.debug:
            log.debug(msg, *args)

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Deliver what is queued now, if the transmission can (ours can; libhoney's cannot
        without restarting its sender)."""
        xmit = self.client.xmit
        flush = getattr(xmit, "flush", None)
        if flush is None or isinstance(xmit, LibhoneyTransmission):
            return False
        try:
            result = flush(timeout) if timeout is not None else flush()
        except TypeError:
            result = flush()
        return result is not False

    def close(self, timeout: Optional[float] = None) -> None:
        """Deliver queued events and stop the transmission, waiting at most `timeout` seconds
        (default: `close_timeout`, 10 s)."""
        if self._closed:
            return
        self._closed = True
        timeout = self.settings.close_timeout if timeout is None else timeout
        xmit = self.client.xmit
        self.client.xmit = None
        if xmit is None:
            return
        closer = threading.Thread(target=_close_quietly, args=(xmit, timeout), name="beeline-close", daemon=True)
        closer.start()
        closer.join(timeout)
        if closer.is_alive():
            log.warning("beeline.close: the transmission did not finish within %.1f s; events may be lost", timeout)

    def after_fork_in_child(self) -> None:
        """The child of a fork inherits a sender thread that does not exist. Give it a working
        transmission with an empty queue: the parent sends what it had queued, once."""
        xmit = self.client.xmit
        if isinstance(xmit, LibhoneyTransmission):
            xmit.pending = queue.Queue(maxsize=xmit.pending.maxsize)
            xmit.responses = queue.Queue(maxsize=xmit.responses.maxsize)
            self.client._responses = xmit.responses
            headers = dict(xmit.session.headers)
            xmit.session = xmit._get_requests_session()
            xmit.session.headers.update(headers)
            xmit.start()
        self.pid = os.getpid()


class _WatchedFields(FieldHolder):
    """The client's FieldHolder, calling `on_change` whenever a field or a dynamic field is
    added through it (libhoney's `add` goes through `add_field`)."""

    def __init__(self, holder: FieldHolder, on_change: Callable[[], None]) -> None:
        super().__init__()
        self._data = holder._data
        self._dyn_fields = holder._dyn_fields
        self._on_change = on_change

    def add_field(self, name: Any, val: Any) -> None:
        super().add_field(name, val)
        self._on_change()

    def add_dynamic_field(self, fn: Callable) -> None:
        super().add_dynamic_field(fn)
        self._on_change()

    def __add__(self, other: FieldHolder) -> "_WatchedFields":
        super().__add__(other)
        self._on_change()
        return self


def _close_quietly(xmit: Any, timeout: float) -> None:
    try:
        try:
            xmit.close(timeout=timeout)
        except TypeError:
            xmit.close()
    except Exception:
        log.warning("beeline.close: the transmission failed to close", exc_info=True)

