"""One HTTP/1.1 request and its answer, written and read directly on a connected socket.

``http.client`` spends more CPU on one batch POST than encoding ten events does: a header at a
time through validating calls, headers and body in two writes (two system calls, each of which
lets the application's thread take the GIL and wait to give it back), and every answer's
headers parsed by the ``email`` package. The transmission talks to one kind of server, about
one kind of request, so this module does only that: the request is one ``bytes`` object
written at once, and the answer is read line by line from a buffered reader kept with the
connection. ``http.client`` still opens connections (TCP, TLS, proxy tunnels); its exception
types report what goes wrong here, so callers handle both alike.
"""

from __future__ import annotations

import http.client
from typing import BinaryIO, Mapping

# Same limits as http.client: a line longer than this, or more headers, is not an answer.
_MAX_LINE = 65536
_MAX_HEADERS = 100
_END = (b"\r\n", b"\n", b"")
# Far more than any answer to a batch (about 15 bytes per event). A longer body is not one, and
# reading it whole could take the process's memory.
_MAX_BODY = 64 * 1024 * 1024


def header_block(headers: Mapping[str, str]) -> bytes:
    """``Name: value`` lines (each ending in CRLF) for a request's fixed headers.

    Raises ValueError for a name or value that would split the request (CR, LF, NUL) or
    that is not Latin-1, as ``http.client`` refuses them: a write key is user input."""
    lines = []
    for name, value in headers.items():
        value = str(value)
        if not name.isascii() or not name.isprintable() or ":" in name or " " in name:
            raise ValueError(f"invalid header name {name!r}")
        if "\r" in value or "\n" in value or "\0" in value:
            raise ValueError(f"invalid value for header {name}")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("latin-1")


def request_bytes(target: str, host: str, headers: bytes, body: bytes) -> bytes:
    """A whole POST: request line, Host, Content-Length, the given header lines, the body."""
    head = (f"POST {target} HTTP/1.1\r\nHost: {host}\r\nAccept-Encoding: identity\r\n"
            f"Content-Length: {len(body)}\r\n").encode("latin-1")
    return b"".join((head, headers, b"\r\n", body))


def read_reply(reader: BinaryIO) -> tuple[int, dict, bytes, bool]:
    """Read one answer: ``(status, headers, body, keep_alive)``, header names lower-cased.

    Interim 1xx answers are skipped. The body is read by Content-Length, by chunks, or to
    the end of the connection (then ``keep_alive`` is False). Raises ``http.client``'s
    exceptions (or OSError from the socket) when the answer is not one."""
    while True:
        version, status = _status_line(reader)
        headers = _headers(reader)
        if status >= 200 or status == 101:
            break
    if status == 101:
        raise http.client.HTTPException("unexpected protocol switch (101)")
    tokens = headers.get("connection", "").lower()
    keep_alive = "close" not in tokens and (version != "HTTP/1.0" or "keep-alive" in tokens)
    if status in (204, 304):
        return status, headers, b"", keep_alive
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return status, headers, _chunked(reader), keep_alive
    length = headers.get("content-length")
    if length is None:
        return status, headers, _to_end(reader), False
    try:
        size = int(length)
    except ValueError:
        raise http.client.HTTPException(f"invalid Content-Length {length!r}") from None
    if size < 0:
        raise http.client.HTTPException(f"invalid Content-Length {length!r}")
    if size > _MAX_BODY:
        raise http.client.HTTPException(f"answer too large (Content-Length {size})")
    body = reader.read(size)
    if len(body) < size:
        raise http.client.IncompleteRead(body, size - len(body))
    return status, headers, body, keep_alive


def _line(reader: BinaryIO, what: str) -> bytes:
    line = reader.readline(_MAX_LINE + 1)
    if len(line) > _MAX_LINE:
        raise http.client.LineTooLong(what)
    return line


def _status_line(reader: BinaryIO) -> tuple[str, int]:
    line = _line(reader, "status line")
    if not line:
        # Nothing at all: on a kept-alive connection, the server closed it while it was idle.
        raise http.client.RemoteDisconnected("Remote end closed connection without response")
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        raise http.client.BadStatusLine(repr(line))
    try:
        status = int(parts[1])
    except ValueError:
        raise http.client.BadStatusLine(repr(line)) from None
    if not 100 <= status <= 999:
        raise http.client.BadStatusLine(repr(line))
    return parts[0].decode("ascii", "replace"), status


def _headers(reader: BinaryIO) -> dict:
    headers: dict = {}
    for _ in range(_MAX_HEADERS + 1):
        line = _line(reader, "header line")
        if line in _END:
            return headers
        name, sep, value = line.partition(b":")
        if sep:
            headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    raise http.client.HTTPException(f"got more than {_MAX_HEADERS} headers")


def _to_end(reader: BinaryIO) -> bytes:
    """The body of an answer without a length: everything until the server closes."""
    parts = []
    total = 0
    while True:
        part = reader.read(65536)
        if not part:
            return b"".join(parts)
        total += len(part)
        if total > _MAX_BODY:
            raise http.client.HTTPException(f"answer too large (more than {_MAX_BODY} bytes)")
        parts.append(part)


def _chunked(reader: BinaryIO) -> bytes:
    chunks = []
    total = 0
    while True:
        line = _line(reader, "chunk size")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise http.client.IncompleteRead(b"".join(chunks)) from None
        if size < 0:
            raise http.client.IncompleteRead(b"".join(chunks))
        if size == 0:
            break
        total += size
        if total > _MAX_BODY:
            raise http.client.HTTPException(f"answer too large (more than {_MAX_BODY} bytes in chunks)")
        data = reader.read(size)
        if len(data) < size:
            raise http.client.IncompleteRead(b"".join(chunks) + data, size - len(data))
        chunks.append(data)
        if _line(reader, "chunk end") not in _END[:2]:
            raise http.client.IncompleteRead(b"".join(chunks))
    while _line(reader, "trailer") not in _END:
        pass  # trailers carry nothing the transmission reads
    return b"".join(chunks)
