"""Null-safe helpers (the reference's `beeline.internal`) and the log-once guard."""

from __future__ import annotations

import logging
import threading
from typing import Any

from beeline.trace import stringify_exception  # noqa: F401  (reference name)

_logger = logging.getLogger("beeline")
_warned: set = set()
_warned_lock = threading.Lock()


def warn_once(key: str, message: str, *args: Any, exc_info: bool = False) -> None:
    """Log a failure of instrumentation once per kind, then at debug level only, so that a
    broken hook on every request cannot flood the application's logs."""
    with _warned_lock:
        first = key not in _warned
        _warned.add(key)
    if first:
        _logger.warning(message, *args, exc_info=exc_info)
    else:
        _logger.debug(message, *args, exc_info=exc_info)


def reset_warnings() -> None:
    with _warned_lock:
        _warned.clear()


def send_event() -> None:
    import beeline

    bl = beeline.get_beeline()
    if bl is not None:
        bl.send_event()


def send_all() -> None:
    import beeline

    bl = beeline.get_beeline()
    if bl is not None:
        bl.send_all()


def log(msg: str, *args: Any) -> None:
    """The reference's `beeline.internal.log`: a debug line, only when init(debug=True)."""
    import beeline

    bl = beeline.get_beeline()
    if bl is not None:
        bl.log(msg, *args)
