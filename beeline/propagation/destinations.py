"""Which destination hosts may receive trace headers.

Trace headers carry the trace id and every trace field (``app.*``), which can hold user ids,
tenant names or anything else the application added. Sent to a third-party API, they leak.
An allow-list limits the outgoing-call patches (``requests``, ``urllib``) to the hosts named:

* ``init(propagate_hosts=[...])`` once the core accepts it (``settings.propagate_hosts``), else
* the environment variable ``BEELINE_PROPAGATE_HOSTS`` (comma-separated), else
* everywhere, as honeycomb-beeline did.

An entry is a host name or IP address, compared without regard to case (``api.internal``),
``*.example.com`` for every host below ``example.com`` (not ``example.com`` itself), or ``*``
for every host. Ports are not part of an entry: a host is trusted on all of its ports.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Iterable, Optional, Tuple, Union
from urllib.parse import urlsplit

__all__ = [
    "ENV_VAR",
    "HostRules",
    "allowed_host",
    "allowed_url",
    "current_rules",
    "parse_hosts",
    "propagation_headers_for",
    "validate_propagate_hosts",
    "without_userinfo",
]

ENV_VAR = "BEELINE_PROPAGATE_HOSTS"

_log = logging.getLogger("beeline")
_SETTING_MISSING = object()


class HostRules:
    """A compiled allow-list: exact names, ``*.`` suffixes, or everything."""

    __slots__ = ("everywhere", "exact", "suffixes", "entries")

    def __init__(self, entries: Iterable[str]) -> None:
        exact = set()
        suffixes = []
        everywhere = False
        kept = []
        for entry in entries:
            kept.append(entry)
            if entry == "*":
                everywhere = True
            elif entry.startswith("*."):
                suffixes.append(entry[1:])  # keep the dot: "*.a.com" matches "x.a.com", not "xa.com"
            else:
                exact.add(entry)
        self.everywhere = everywhere
        self.exact = frozenset(exact)
        self.suffixes = tuple(suffixes)
        self.entries = tuple(kept)

    def allows(self, host: Optional[str]) -> bool:
        if self.everywhere:
            return True
        if not host:
            return False
        host = _normalise_host(host)
        if host is None:
            return False
        if host in self.exact:
            return True
        return any(host.endswith(suffix) for suffix in self.suffixes)

    def __repr__(self) -> str:
        return f"HostRules({list(self.entries)!r})"


def _normalise_host(host: str) -> Optional[str]:
    """Lowercase, without IPv6 brackets or a trailing dot, in ASCII (IDNA) form; None when the
    name cannot be put in that form."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host.endswith(".") and host != ".":
        host = host[:-1]
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    return host


def _check_entry(raw: Any) -> str:
    """One entry, normalised; ValueError or TypeError says what is wrong with it."""
    if not isinstance(raw, str):
        raise TypeError(f"propagate_hosts entries must be strings, got {type(raw).__name__}")
    entry = raw.strip()
    if not entry:
        raise ValueError("propagate_hosts has an empty entry")
    if entry == "*":
        return entry
    if any(ch.isspace() for ch in entry) or any(ch in entry for ch in "/?#@"):
        raise ValueError(f"propagate_hosts entry {raw!r} is not a host name (no URLs, paths or spaces)")
    wildcard = entry.startswith("*.")
    name = entry[2:] if wildcard else entry
    if "*" in name:
        raise ValueError(f"propagate_hosts entry {raw!r}: '*' is allowed only as a leading '*.'")
    bracketed = name.startswith("[") and name.endswith("]")
    if not bracketed and name.count(":") == 1:
        raise ValueError(f"propagate_hosts entry {raw!r}: give the host without a port")
    normalised = _normalise_host(name)
    if not normalised or normalised.startswith("."):
        raise ValueError(f"propagate_hosts entry {raw!r} is not a host name")
    return "*." + normalised if wildcard else normalised


def _split(value: Union[str, Iterable[Any]]) -> list:
    if isinstance(value, str):
        return [part for part in value.split(",") if part.strip()]
    return list(value)


def validate_propagate_hosts(value: Any) -> Optional[Tuple[str, ...]]:
    """For ``init(propagate_hosts=...)``: None (not set), or a list/tuple of host strings, or a
    comma-separated string; returns the normalised entries. Raises on anything else, so a typo
    fails at ``init()`` instead of silently sending trace data to the wrong place."""
    if value is None:
        return None
    if not isinstance(value, (str, list, tuple)):
        raise TypeError(
            "beeline.init: propagate_hosts must be a list or tuple of host names or a comma-separated "
            f"string, got {type(value).__name__}"
        )
    try:
        return tuple(_check_entry(entry) for entry in _split(value))
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"beeline.init: {exc}") from None


def parse_hosts(value: Any) -> Optional[HostRules]:
    """Strict: compile a setting value (as ``validate_propagate_hosts`` accepts) into rules;
    None means "not set"."""
    entries = validate_propagate_hosts(value)
    return None if entries is None else HostRules(entries)


def _parse_env(raw: str) -> Optional[HostRules]:
    """Lenient: an unreadable entry in the environment is dropped with a warning (dropping can
    only narrow where headers go). An empty variable counts as unset."""
    if not raw.strip():
        return None
    entries = []
    for part in _split(raw):
        try:
            entries.append(_check_entry(part))
        except (TypeError, ValueError) as exc:
            _log.warning("beeline: %s=%r: %s; that entry is ignored", ENV_VAR, raw[:200], exc)
    return HostRules(entries)


# Compiled rules per raw value. A process sees one or two distinct values, so this stays tiny;
# it is bounded anyway in case something keeps changing the setting.
_cache: dict = {}
_cache_lock = threading.Lock()
_CACHE_LIMIT = 32


def _compiled(kind: str, raw: Any) -> Optional[HostRules]:
    key = (kind, tuple(raw) if isinstance(raw, list) else raw)
    try:
        return _cache[key]
    except KeyError:
        pass
    except TypeError:  # an unhashable entry: compile without caching
        return parse_hosts(raw)
    rules = _parse_env(raw) if kind == "env" else parse_hosts(raw)
    with _cache_lock:
        if len(_cache) >= _CACHE_LIMIT:
            _cache.clear()
        _cache[key] = rules
    return rules


def current_rules() -> Optional[HostRules]:
    """The allow-list in force now, or None for "every host" (the default)."""
    import beeline

    bl = beeline.get_beeline()
    setting = getattr(getattr(bl, "settings", None), "propagate_hosts", _SETTING_MISSING)
    if setting is not _SETTING_MISSING and setting is not None:
        return _compiled("setting", setting)
    raw = os.environ.get(ENV_VAR)
    if raw is None:
        return None
    return _compiled("env", raw)


def allowed_host(host: Optional[str]) -> bool:
    """True when trace headers may go to ``host``."""
    rules = current_rules()
    return rules is None or rules.allows(host)


def allowed_url(url: Any) -> bool:
    """True when trace headers may go with a request to ``url`` (str or bytes)."""
    rules = current_rules()
    if rules is None or rules.everywhere:
        return True
    return rules.allows(_host_of(url))


def _host_of(url: Any) -> Optional[str]:
    try:
        if isinstance(url, bytes):
            url = url.decode("ascii", "replace")
        return urlsplit(str(url)).hostname
    except ValueError:
        return None


def propagation_headers_for(url: Any) -> Optional[dict]:
    """The active span's trace headers for a request to ``url``, or None when there is no
    active span, the hook gives none, or the destination is outside the allow-list."""
    if not allowed_url(url):
        return None
    import beeline

    return beeline.http_trace_propagation_hook()


def without_userinfo(url: Any) -> Any:
    """``url`` without ``user:password@``, for span fields: credentials in a URL must not end
    up in trace data. Anything that is not such a URL is returned unchanged."""
    if isinstance(url, bytes):
        url = url.decode("utf-8", "replace")
    if not isinstance(url, str) or "@" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
