"""HTTP for the transmission: batch URLs and kept-alive connections, on ``http.client``.

``http.client`` rather than ``requests``: a batch POST is a few header lines and a body, and
``requests`` costs far more CPU per request than that (and is not a dependency of ours).

Connections are reused per API host. Under light load one connection per host does all the
work; with concurrent batches each worker borrows its own, so there are never more than
``max_concurrent_batches`` per host.
"""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Optional, Union
from urllib.parse import quote, unquote, urlsplit


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


Connection = Union[http.client.HTTPConnection, http.client.HTTPSConnection]


@dataclass(frozen=True)
class Endpoint:
    scheme: str
    host: str
    port: int
    prefix: str  # path prefix of api_host, without a trailing slash ("" for none)

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{_bracket(self.host)}:{self.port}"


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def parse_api_host(api_host: str) -> Endpoint:
    """Scheme, host, port and path prefix of an ``api_host`` such as ``https://proxy/x/``."""
    parts = urlsplit(api_host.strip())
    scheme = (parts.scheme or "https").lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"api_host must be an http or https URL, got {api_host!r}")
    if not parts.hostname:
        raise ValueError(f"api_host has no host: {api_host!r}")
    port = parts.port or (443 if scheme == "https" else 80)
    return Endpoint(scheme, parts.hostname, port, parts.path.rstrip("/"))


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

    def post(self, endpoint: Endpoint, path: str, body: bytes, headers: dict) -> Reply:
        conn, reused, target = self._borrow(endpoint, path)
        try:
            conn.request("POST", target, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            self._drop(conn)
            raise TransportError(exc, reused) from exc
        reply = Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
        if resp.will_close:
            self._drop(conn)
        else:
            self._return(endpoint, conn)
        return reply

    def abort(self) -> None:
        """Cut every request in progress short (used when close() runs out of time)."""
        with self._lock:
            busy = list(self._busy)
        for conn in busy:
            sock = getattr(conn, "sock", None)
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
                conn.close()

    def forget(self) -> None:
        """After a fork: the inherited sockets belong to the parent's requests; never use them."""
        self._lock = threading.Lock()
        self._idle = {}
        self._busy = set()

    # -------------------------------------------------------------------------------------
    def _borrow(self, endpoint: Endpoint, path: str) -> tuple[Connection, bool, str]:
        proxy = self._proxies.get(endpoint.scheme)
        # Through a plain HTTP proxy the request line carries the absolute URL.
        target = endpoint.origin + path if (proxy and endpoint.scheme == "http") else path
        with self._lock:
            idle = self._idle.get(endpoint)
            if idle:
                conn = idle.pop()
                self._busy.add(conn)
                return conn, True, target
        conn = self._new(endpoint, proxy)
        with self._lock:
            self._busy.add(conn)
        return conn, False, target

    def _new(self, endpoint: Endpoint, proxy: Optional[_Proxy]) -> Connection:
        if endpoint.scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            if proxy is not None:
                conn = _HTTPSConnection(proxy.host, proxy.port, timeout=self._timeout, context=self._ssl)
                tunnel_headers = {"Proxy-Authorization": proxy.auth} if proxy.auth else None
                conn.set_tunnel(endpoint.host, endpoint.port, headers=tunnel_headers)
                return conn
            return _HTTPSConnection(endpoint.host, endpoint.port, timeout=self._timeout, context=self._ssl)
        if proxy is not None:
            return _ProxiedHTTPConnection(proxy, timeout=self._timeout)
        return _HTTPConnection(endpoint.host, endpoint.port, timeout=self._timeout)

    def _return(self, endpoint: Endpoint, conn: Connection) -> None:
        with self._lock:
            self._busy.discard(conn)
            idle = self._idle.setdefault(endpoint, [])
            if len(idle) < self._max_idle:
                idle.append(conn)
                return
        conn.close()

    def _drop(self, conn: Connection) -> None:
        with self._lock:
            self._busy.discard(conn)
        conn.close()


class _ProxiedHTTPConnection(_HTTPConnection):
    """Plain HTTP through a forward proxy: connect to the proxy, add its credentials."""

    def __init__(self, proxy: _Proxy, timeout: float) -> None:
        super().__init__(proxy.host, proxy.port, timeout=timeout)
        self._proxy_auth = proxy.auth

    def request(self, method: str, url: str, body=None, headers=None, **kw) -> None:  # type: ignore[override]
        headers = dict(headers or {})
        if self._proxy_auth:
            headers["Proxy-Authorization"] = self._proxy_auth
        super().request(method, url, body=body, headers=headers, **kw)
