"""Settings for `beeline.init()`: arguments first, then the environment, then defaults.

Everything a user can get wrong is checked here, once, so that a bad setting fails at `init()`
with a clear message instead of at the first finished span (the reference divided by a zero
sample rate there).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import libhoney

from beeline.propagation.destinations import validate_propagate_hosts

log = logging.getLogger("beeline")

DEFAULT_API_HOST = "https://api.honeycomb.io"
TRUE_WORDS = {"1", "true", "yes", "on"}


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in TRUE_WORDS


def tracing_disabled() -> bool:
    """The kill switch: BEELINE_DISABLED=true turns every call into a no-op."""
    return env_flag("BEELINE_DISABLED")


@dataclass
class Settings:
    writekey: str = ""
    dataset: str = ""
    service_name: str = ""
    sample_rate: int = 1
    api_host: str = DEFAULT_API_HOST
    max_concurrent_batches: int = 10
    max_batch_size: int = 500
    send_frequency: float = 0.25
    block_on_send: bool = False
    block_on_response: bool = False
    transmission_impl: Any = None
    sampler_hook: Optional[Callable] = None
    presend_hook: Optional[Callable] = None
    http_trace_parser_hook: Optional[Callable] = None
    http_trace_propagation_hook: Optional[Callable] = None
    debug: bool = False
    trace_file: Optional[str] = None
    local_stderr: bool = True
    close_timeout: float = 10.0
    propagate_hosts: Optional[tuple] = None
    classic_key: bool = True
    warnings: list = field(default_factory=list)

    def __repr__(self) -> str:
        # The write key must never reach a log line or a traceback.
        return (
            f"Settings(dataset={self.dataset!r}, service_name={self.service_name!r}, "
            f"sample_rate={self.sample_rate}, api_host={self.api_host!r}, "
            f"writekey={'set' if self.writekey else 'unset'})"
        )


def resolve(
    writekey: str = "",
    dataset: str = "",
    service_name: str = "",
    sample_rate: Any = 1,
    api_host: str = DEFAULT_API_HOST,
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
) -> Settings:
    """Validate the arguments of `init()` and fill the gaps from the environment."""
    s = Settings()
    s.warnings = []
    s.writekey = _text("writekey", writekey) or os.environ.get("HONEYCOMB_WRITEKEY", "") or os.environ.get(
        "HONEYCOMB_API_KEY", ""
    )
    s.classic_key = libhoney.IsClassicKey(s.writekey)
    s.service_name = _resolve_service_name(_text("service_name", service_name), s)
    s.dataset = _resolve_dataset(_text("dataset", dataset), s)
    s.sample_rate = validate_sample_rate(sample_rate)
    s.api_host = _validate_api_host(api_host)
    s.max_concurrent_batches = _positive_int("max_concurrent_batches", max_concurrent_batches)
    s.max_batch_size = _positive_int("max_batch_size", max_batch_size)
    s.send_frequency = _positive_number("send_frequency", send_frequency)
    s.close_timeout = _positive_number("close_timeout", close_timeout)
    s.block_on_send = bool(block_on_send)
    s.block_on_response = bool(block_on_response)
    for name, hook in (
        ("sampler_hook", sampler_hook),
        ("presend_hook", presend_hook),
        ("http_trace_parser_hook", http_trace_parser_hook),
        ("http_trace_propagation_hook", http_trace_propagation_hook),
    ):
        if hook is not None and not callable(hook):
            raise TypeError(f"beeline.init: {name} must be callable or None, got {type(hook).__name__}")
    s.sampler_hook = sampler_hook
    s.presend_hook = presend_hook
    s.http_trace_parser_hook = http_trace_parser_hook
    s.http_trace_propagation_hook = http_trace_propagation_hook
    if transmission_impl is not None:
        missing = [m for m in ("start", "send", "close", "get_response_queue") if not hasattr(transmission_impl, m)]
        if missing:
            raise TypeError(f"beeline.init: transmission_impl lacks {', '.join(missing)}()")
    s.transmission_impl = transmission_impl
    s.debug = bool(debug)
    s.trace_file = trace_file or os.environ.get("BEELINE_TRACE_FILE") or None
    if local_stderr is None:
        raw = os.environ.get("BEELINE_LOCAL_STDERR")
        local_stderr = True if raw is None else raw.strip().lower() in TRUE_WORDS
    s.local_stderr = bool(local_stderr)
    # None: the BEELINE_PROPAGATE_HOSTS variable is read when headers are written.
    s.propagate_hosts = validate_propagate_hosts(propagate_hosts)
    return s


def validate_sample_rate(rate: Any) -> int:
    """A sample rate is a whole number >= 1 (2.0 is accepted as 2)."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)):
        raise ValueError(f"beeline.init: sample_rate must be a whole number >= 1, got {rate!r}")
    if rate != rate or rate < 1 or int(rate) != rate:
        raise ValueError(f"beeline.init: sample_rate must be a whole number >= 1, got {rate!r}")
    return int(rate)


def _text(name: str, value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"beeline.init: {name} must be a string, got {type(value).__name__}")
    return value


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"beeline.init: {name} must be an integer >= 1, got {value!r}")
    return value


def _positive_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"beeline.init: {name} must be a number > 0, got {value!r}")
    return float(value)


def _validate_api_host(api_host: Any) -> str:
    api_host = _text("api_host", api_host) or DEFAULT_API_HOST
    if not api_host.startswith(("http://", "https://")):
        raise ValueError(f"beeline.init: api_host must start with http:// or https://, got {api_host!r}")
    # Read as the transmission will read it, so that a host no request can go to (a bad port,
    # a space) is refused here rather than failing every batch later.
    from beeline.transmission.http import parse_api_host

    try:
        parse_api_host(api_host)
    except ValueError as exc:
        raise ValueError(f"beeline.init: {exc}") from None
    return api_host


def _resolve_service_name(service_name: str, s: Settings) -> str:
    service_name = service_name or os.environ.get("HONEYCOMB_SERVICE", "") or os.environ.get("SERVICE_NAME", "")
    if service_name:
        return service_name
    executable = os.environ.get("PROCESS_EXECUTABLE_NAME", "") or "python"
    s.warnings.append(
        "service_name is not set (argument, HONEYCOMB_SERVICE or SERVICE_NAME); "
        f"using unknown_service:{executable}"
    )
    if not s.classic_key:
        s.warnings.append("data will be sent to the unknown_service dataset")
    return f"unknown_service:{executable}"


def _resolve_dataset(dataset: str, s: Settings) -> str:
    if s.classic_key:
        dataset = dataset or os.environ.get("HONEYCOMB_DATASET", "")
        if not dataset and s.writekey:
            # The reference silently dropped every event here. Nothing is lost instead: the
            # events go to a dataset named after the service, and the user is told.
            s.warnings.append(
                "dataset is not set for a classic write key; sending to the dataset "
                f"{s.service_name!r} (set dataset= or HONEYCOMB_DATASET)"
            )
            dataset = s.service_name
        return dataset
    if dataset:
        s.warnings.append("dataset is ignored with an Environments & Services key; the service name is the dataset")
    stripped = s.service_name.strip()
    if stripped != s.service_name:
        s.warnings.append("service_name has leading or trailing spaces; they are removed from the dataset name")
    if not stripped or stripped.startswith("unknown_service"):
        return "unknown_service"
    return stripped
