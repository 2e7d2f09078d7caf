"""Instrumentation of third-party libraries by patching, done once and undoable.

Each patch module (`beeline.patch.requests`, ...) applies itself when imported, as the reference
did, and offers `patch()` / `unpatch()`. Patching twice never wraps twice.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import wrapt

_MARKER = "_self_beeline_patched"
_lock = threading.Lock()


def wrap(module: Any, name: str, wrapper: Callable) -> bool:
    """Wrap `module.name` (a dotted path such as "Session.request") with a wrapt-style
    `wrapper(wrapped, instance, args, kwargs)`. Returns False when it was already wrapped."""
    with _lock:
        parent, attribute, original = wrapt.resolve_path(module, name)
        if getattr(original, _MARKER, False):
            return False
        replacement = wrapt.FunctionWrapper(original, wrapper)
        setattr(replacement, _MARKER, True)
        wrapt.apply_patch(parent, attribute, replacement)
        return True


def unwrap(module: Any, name: str) -> bool:
    """Undo `wrap`. Returns False when `module.name` was not wrapped by us."""
    with _lock:
        parent, attribute, current = wrapt.resolve_path(module, name)
        if not getattr(current, _MARKER, False):
            return False
        wrapt.apply_patch(parent, attribute, current.__wrapped__)
        return True


def mark_patched(replacement: Callable, original: Callable) -> Callable:
    """Mark a hand-written replacement (a plain function, cheaper than a wrapt wrapper on a very
    hot path) so that `is_wrapped` and `unwrap` treat it like one made by `wrap`."""
    replacement.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(replacement, _MARKER, True)
    return replacement


def is_wrapped(module: Any, name: str) -> bool:
    _, _, current = wrapt.resolve_path(module, name)
    return bool(getattr(current, _MARKER, False))
