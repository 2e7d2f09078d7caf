"""HTTP for the transmission: batch URLs and kept-alive connections.

``http.client`` opens the connections (TCP, TLS, proxy tunnels); the requests and answers on
them go through ``exchange``, which does the little a batch POST needs at a fraction of
``http.client``'s CPU per request (``requests`` costs more still, and is not a dependency).

Connections are reused per API host. Under light load one connection per host does all the
work; with concurrent batches each worker borrows its own, so there are never more than
``max_concurrent_batches`` per host.
"""

from __future__ import annotations

import base64
import http.client
import re
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import BinaryIO, Optional, Union
from urllib.parse import quote, unquote, urlsplit

from beeline.transmission.exchange import read_reply, request_bytes


class _NoDelay:
    """TCP_NODELAY, as urllib3 sets by default: http.client writes the headers and the body
    separately, and with Nagle's algorithm the body could wait for the server's delayed ACK."""

    sock: Optional[socket.socket]

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        if self.sock is not None:
            try:
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass


class _HTTPConnection(_NoDelay, http.client.HTTPConnection):
    pass


class _HTTPSConnection(_NoDelay, http.client.HTTPSConnection):
    pass


Opener = Union[http.client.HTTPConnection, http.client.HTTPSConnection]


@dataclass(frozen=True)
class Endpoint:
    scheme: str
    host: str
    port: int
    prefix: str  # path prefix of api_host, without a trailing slash ("" for none)

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{_bracket(self.host)}:{self.port}"

    @property
    def host_header(self) -> str:
        """The Host header for requests to this endpoint: the port only when not the default,
        a non-ASCII name in its IDNA form."""
        try:
            host = self.host.encode("ascii").decode("ascii")
        except UnicodeEncodeError:
            host = self.host.encode("idna").decode("ascii")
        host = _bracket(host)
        return host if self.port == (443 if self.scheme == "https" else 80) else f"{host}:{self.port}"


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


_UNSENDABLE_HOST = re.compile("[\x00-\x20\x7f]")


def parse_api_host(api_host: str) -> Endpoint:
    """Scheme, host, port and path prefix of an ``api_host`` such as ``https://proxy/x/``.
    Raises ValueError for one no request could be sent to."""
    parts = urlsplit(api_host.strip())
    scheme = (parts.scheme or "https").lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"api_host must be an http or https URL, got {api_host!r}")
    if not parts.hostname:
        raise ValueError(f"api_host has no host: {api_host!r}")
    port = parts.port or (443 if scheme == "https" else 80)  # ValueError when out of range
    host = parts.hostname
    if _UNSENDABLE_HOST.search(host):
        # http.client refuses such a host when it connects: every batch would fail there.
        raise ValueError(f"api_host has a space or control character in its host: {api_host!r}")
    try:
        host.encode("idna")  # as DNS and the Host header need it: labels of 1 to 63 characters
    except UnicodeError as exc:
        raise ValueError(f"api_host has a host name that cannot be encoded: {api_host!r} ({exc})") from None
    return Endpoint(scheme, host, port, parts.path.rstrip("/"))


def batch_path(endpoint: Endpoint, dataset: str) -> str:
    """``<prefix>/1/batch/<dataset>`` with the dataset escaped as one path segment."""
    return f"{endpoint.prefix}/1/batch/{quote(dataset, safe='')}"


@dataclass
class Reply:
    status: int
    headers: dict  # lower-cased names
    body: bytes


class TransportError(Exception):
    """No HTTP answer (refused, reset, timed out...). ``reused``: the connection was kept alive
    from an earlier batch, so the server may simply have closed it while idle."""

    def __init__(self, cause: BaseException, reused: bool) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__)
        self.cause = cause
        self.reused = reused


@dataclass(frozen=True)
class _Proxy:
    host: str
    port: int
    auth: Optional[str]


def _parse_proxy(url: Optional[str]) -> Optional[_Proxy]:
    if not url:
        return None
    parts = urlsplit(url if "://" in url else "http://" + url)
    if not parts.hostname:
        return None
    auth = None
    if parts.username is not None:
        raw = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        auth = "Basic " + base64.b64encode(raw).decode("ascii")
    return _Proxy(parts.hostname, parts.port or 8080, auth)


class Connection:
    """One kept-alive connection: opened by ``http.client``, then used through its socket,
    with one buffered reader for all the answers that arrive on it."""

    __slots__ = ("opener", "reader", "target_prefix", "host", "proxy_auth")

    def __init__(self, opener: Opener, target_prefix: str, host: str, proxy_auth: Optional[str]) -> None:
        self.opener = opener
        self.reader: Optional[BinaryIO] = None
        self.target_prefix = target_prefix  # the origin, for a plain HTTP proxy's request line
        self.host = host
        self.proxy_auth = proxy_auth        # only for plain HTTP through a proxy

    @property
    def sock(self) -> Optional[socket.socket]:
        return self.opener.sock

    def exchange(self, path: str, headers: bytes, body: bytes) -> tuple[int, dict, bytes, bool]:
        if self.reader is None:
            self.opener.connect()
            assert self.opener.sock is not None
            self.reader = self.opener.sock.makefile("rb")
        if self.proxy_auth:
            headers = b"Proxy-Authorization: " + self.proxy_auth.encode("latin-1") + b"\r\n" + headers
        self.opener.sock.sendall(request_bytes(self.target_prefix + path, self.host, headers, body))
        return read_reply(self.reader)

    def close(self) -> None:
        reader, self.reader = self.reader, None
        try:
            if reader is not None:
                reader.close()
        finally:
            self.opener.close()


class Connections:
    """Kept-alive connections, per endpoint, shared by the worker threads."""

    def __init__(self, timeout: float, proxies: Optional[dict] = None, max_idle: int = 10) -> None:
        self._timeout = timeout
        self._proxies = {k: _parse_proxy(v) for k, v in (proxies or {}).items()}
        self._max_idle = max(1, max_idle)
        self._lock = threading.Lock()
        self._idle: dict[Endpoint, list[Connection]] = {}
        self._busy: set = set()
        self._ssl: Optional[ssl.SSLContext] = None

    def post(self, endpoint: Endpoint, path: str, body: bytes, headers: bytes) -> Reply:
        """POST ``body`` to ``path`` with ``headers`` (see ``exchange.header_block``)."""
        conn, reused = self._borrow(endpoint)
        try:
            status, reply_headers, data, keep_alive = conn.exchange(path, headers, body)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            self._drop(conn)
            raise TransportError(exc, reused) from exc
        except BaseException:
            self._drop(conn)  # in the middle of an exchange: never to be used again
            raise
        if keep_alive:
            self._return(endpoint, conn)
        else:
            self._drop(conn)
        return Reply(status, reply_headers, data)

    def abort(self) -> None:
        """Cut every request in progress short (used when close() runs out of time)."""
        with self._lock:
            busy = list(self._busy)
        for conn in busy:
            sock = conn.sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                _close_quietly(conn)

    def forget(self) -> None:
        """After a fork: the inherited sockets belong to the parent's requests; never use them."""
        self._lock = threading.Lock()
        self._idle = {}
        self._busy = set()

    # -------------------------------------------------------------------------------------
    def _borrow(self, endpoint: Endpoint) -> tuple[Connection, bool]:
        with self._lock:
            idle = self._idle.get(endpoint)
            if idle:
                conn = idle.pop()
                self._busy.add(conn)
                return conn, True
        conn = self._new(endpoint, self._proxies.get(endpoint.scheme))
        with self._lock:
            self._busy.add(conn)
        return conn, False

    def _new(self, endpoint: Endpoint, proxy: Optional[_Proxy]) -> Connection:
        host = endpoint.host_header
        if endpoint.scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            if proxy is not None:
                opener = _HTTPSConnection(proxy.host, proxy.port, timeout=self._timeout, context=self._ssl)
                tunnel_headers = {"Proxy-Authorization": proxy.auth} if proxy.auth else None
                opener.set_tunnel(endpoint.host, endpoint.port, headers=tunnel_headers)
                return Connection(opener, "", host, None)
            opener = _HTTPSConnection(endpoint.host, endpoint.port, timeout=self._timeout, context=self._ssl)
            return Connection(opener, "", host, None)
        if proxy is not None:
            # Through a plain HTTP proxy the request line carries the absolute URL, and Host
            # names the API host as that URL does.
            opener = _HTTPConnection(proxy.host, proxy.port, timeout=self._timeout)
            origin = endpoint.origin
            return Connection(opener, origin, origin.split("://", 1)[1], proxy.auth)
        opener = _HTTPConnection(endpoint.host, endpoint.port, timeout=self._timeout)
        return Connection(opener, "", host, None)

    def _return(self, endpoint: Endpoint, conn: Connection) -> None:
        with self._lock:
            self._busy.discard(conn)
            idle = self._idle.setdefault(endpoint, [])
            if len(idle) < self._max_idle:
                idle.append(conn)
                return
        _close_quietly(conn)

    def _drop(self, conn: Connection) -> None:
        with self._lock:
            self._busy.discard(conn)
        _close_quietly(conn)


def _close_quietly(conn: Connection) -> None:
    try:
        conn.close()
    except OSError:
        pass
