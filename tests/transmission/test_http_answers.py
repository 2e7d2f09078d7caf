"""The transmission writes its requests and reads the answers itself: answers in every shape a
server may give (chunked, HTTP/1.0 to the end of the connection, interim 100, Connection:
close, garbage, cut short), each from a real server on 127.0.0.1 that plays a script, and HTTPS
through a real TLS server."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from typing import Optional

import pytest

from beeline.transmission.exchange import header_block
from tests.transmission.helpers import Ev, drain, make, responses_by_metadata, send_n

_IO_TIMEOUT = 5.0


def accepted(n: int) -> bytes:
    return b"[" + b",".join([b'{"status":202}'] * n) + b"]"


def ok_answer(n: int, extra: bytes = b"") -> bytes:
    body = accepted(n)
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s" % (
        len(body), extra, body)


class _LoopbackListener:
    """A listening socket on 127.0.0.1 and the thread that accepts on it until close(); each
    connection goes to ``_connected`` with its client port. Subclasses set their own state
    before calling this __init__, which starts accepting."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def close(self) -> None:
        self._stop.set()
        for t in list(self._threads):
            t.join(_IO_TIMEOUT)
        self._listener.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, addr = self._listener.accept()
            except OSError:
                continue
            conn.settimeout(_IO_TIMEOUT)
            self._connected(conn, addr[1])

    def _connected(self, conn: socket.socket, port: int) -> None:
        raise NotImplementedError


class ScriptedServer(_LoopbackListener):
    """Reads each request (headers and Content-Length body) and answers with the next scripted
    bytes, closing the connection after it when the script says so. Once the script runs out,
    answers are ordinary 200s for the number of events in the request."""

    def __init__(self, script: list[tuple[bytes, bool]]) -> None:
        self.script = list(script)
        self.requests: list[dict] = []
        super().__init__()
        self.url = f"http://127.0.0.1:{self.port}"

    def _connected(self, conn: socket.socket, port: int) -> None:
        t = threading.Thread(target=self._serve, args=(conn, port), daemon=True)
        self._threads.append(t)
        t.start()

    def _serve(self, conn: socket.socket, port: int) -> None:
        with conn:
            buffered = b""
            while not self._stop.is_set():
                try:
                    while b"\r\n\r\n" not in buffered:
                        chunk = conn.recv(65536)
                        if not chunk:
                            return
                        buffered += chunk
                    head, _, buffered = buffered.partition(b"\r\n\r\n")
                    lines = head.decode("latin-1").split("\r\n")
                    headers = {k.strip().lower(): v.strip() for k, v in
                               (line.split(":", 1) for line in lines[1:])}
                    length = int(headers.get("content-length", "0"))
                    while len(buffered) < length:
                        chunk = conn.recv(65536)
                        if not chunk:
                            return
                        buffered += chunk
                    body, buffered = buffered[:length], buffered[length:]
                except OSError:
                    return
                self.requests.append({"line": lines[0], "headers": headers, "body": body, "port": port})
                if self.script:
                    answer, close = self.script.pop(0)
                else:
                    answer, close = ok_answer(_event_count(body, headers)), False
                try:
                    conn.sendall(answer)
                except OSError:
                    return
                if close:
                    return


def _event_count(body: bytes, headers: dict) -> int:
    import gzip
    import json

    raw = gzip.decompress(body) if headers.get("content-encoding") == "gzip" else body
    return len(json.loads(raw))


def deliver(url: str, n: int, rounds: int = 1, dataset: str = "d", **settings) -> tuple:
    """``rounds`` flushed batches of ``n`` events; (stats, responses)."""
    xmit = make(send_frequency=30, **settings)
    for r in range(rounds):
        send_n(xmit, url, n, start=r * n, dataset=dataset)
        assert xmit.flush(10)
    stats = xmit.stats
    responses = drain(xmit.get_response_queue(), count=n * rounds, timeout=2)
    xmit.close()
    return stats, responses


def test_chunked_answer_with_trailers_keeps_the_connection():
    body = accepted(3)
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"%x;ext=1\r\n%s\r\n" % (5, body[:5]) + b"%x\r\n%s\r\n" % (len(body) - 5, body[5:])
               + b"0\r\nX-Trailer: yes\r\n\r\n")
    with ScriptedServer([(chunked, False)]) as server:
        stats, responses = deliver(server.url, 3, rounds=2)
    assert (stats["sent"], stats["failed"], stats["retried"]) == (6, 0, 0)
    assert [r["status_code"] for r in responses] == [202] * 6
    assert len({r["port"] for r in server.requests}) == 1  # the next request used the same connection


def test_http_1_0_answer_read_to_the_end_then_a_new_connection():
    answer = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + accepted(2)
    with ScriptedServer([(answer, True)]) as server:
        stats, _ = deliver(server.url, 2, rounds=2)
    assert (stats["sent"], stats["failed"], stats["retried"]) == (4, 0, 0)
    assert len({r["port"] for r in server.requests}) == 2


@pytest.mark.parametrize("answer", [
    ok_answer(2, b"Connection: close\r\n"),
    ok_answer(2).replace(b"HTTP/1.1", b"HTTP/1.0"),  # 1.0 without keep-alive closes after it
], ids=["connection-close", "http-1.0-with-length"])
def test_an_answer_that_ends_the_connection_is_not_followed_on_it(answer):
    with ScriptedServer([(answer, True)]) as server:
        stats, _ = deliver(server.url, 2, rounds=2)
    assert (stats["sent"], stats["retried"]) == (4, 0)
    assert len({r["port"] for r in server.requests}) == 2


def test_interim_100_continue_is_skipped():
    with ScriptedServer([(b"HTTP/1.1 100 Continue\r\n\r\n" + ok_answer(2), False)]) as server:
        stats, responses = deliver(server.url, 2)
    assert (stats["sent"], stats["retried"]) == (2, 0)
    assert [r["status_code"] for r in responses] == [202, 202]


@pytest.mark.parametrize("bad", [
    b"HELLO\r\n\r\n",                                                         # not a status line
    b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n[{\"status\":202}",       # body cut short
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",          # bad chunk size
    b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n",                       # bad length
    b"",                                                                      # closed, no answer
    b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000000\r\n\r\n",           # no memory holds it
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffff\r\n",  # nor this chunk
])
def test_a_broken_answer_is_a_transport_error_and_retried(bad):
    with ScriptedServer([(bad, True)]) as server:
        stats, responses = deliver(server.url, 3)
        assert len(server.requests) == 2
    assert (stats["sent"], stats["failed"], stats["retried"], stats["batches"]) == (3, 0, 3, 2)
    assert [r["status_code"] for r in responses] == [202] * 3


def test_an_answer_longer_than_any_batch_answer_is_not_read_to_its_end(monkeypatch):
    # The limit is far above any real answer (64 MiB); lowered here so the test sends little.
    from beeline.transmission import exchange

    monkeypatch.setattr(exchange, "_MAX_BODY", 1000)
    endless = b"HTTP/1.0 200 OK\r\n\r\n" + b" " * 2000 + accepted(3)
    with ScriptedServer([(endless, True)]) as server:
        stats, responses = deliver(server.url, 3)
        assert len(server.requests) == 2
    assert (stats["sent"], stats["failed"], stats["retried"]) == (3, 0, 3)
    assert [r["status_code"] for r in responses] == [202] * 3


def test_an_api_host_no_request_can_go_to_fails_its_events_visibly():
    # Set on the events themselves (init() refuses such a host): each is counted and reported
    # failed, none is lost in a log line.
    xmit = make(send_frequency=30)
    hosts = ["http://exa mple.com", "http://a\x7fb", "http://example.com:99999"]
    for i, host in enumerate(hosts):
        xmit.send(Ev({"i": i}, host, metadata=i))
    assert xmit.flush(5)
    responses = drain(xmit.get_response_queue(), count=3)
    stats = xmit.stats
    xmit.close()
    assert (stats["failed"], stats["sent"], stats["batches"]) == (3, 0, 0)
    assert sorted(r["metadata"] for r in responses) == [0, 1, 2]
    assert all(r["status_code"] == 0 and "could not be prepared" in r["error"] for r in responses)


def test_a_request_that_cannot_be_made_fails_its_events_once(monkeypatch):
    # A TLS setup that fails (say, an unreadable certificate store) fails the same way every
    # time: reported at once, not retried, and the worker goes on with the next batch.
    import ssl as ssl_module

    def broken():
        raise ssl_module.SSLError("no certificate store")

    monkeypatch.setattr("beeline.transmission.http.ssl.create_default_context", broken)
    with ScriptedServer([]) as server:
        xmit = make(send_frequency=30)
        xmit.send(Ev({"i": 0}, "https://127.0.0.1:9", metadata="tls"))
        send_n(xmit, server.url, 2)
        assert xmit.flush(5)
        responses = responses_by_metadata(xmit, count=3)
        stats = xmit.stats
        xmit.close()
    assert (stats["failed"], stats["sent"], stats["retried"]) == (1, 2, 0)
    failed = responses["tls"]
    assert failed["status_code"] == 0 and "request could not be made" in failed["error"]
    assert "no certificate store" in failed["error"]


def test_request_is_one_well_formed_post():
    with ScriptedServer([]) as server:
        deliver(server.url + "/prefix", 2, dataset="a b")
    (request,) = server.requests
    assert request["line"] == "POST /prefix/1/batch/a%20b HTTP/1.1"
    headers = request["headers"]
    assert headers["host"] == f"127.0.0.1:{server.port}"
    assert headers["content-length"] == str(len(request["body"]))
    assert (headers["x-honeycomb-team"], headers["content-encoding"]) == ("key", "gzip")


def test_a_write_key_that_would_split_the_request_fails_the_batch_unsent():
    with ScriptedServer([]) as server:
        xmit = make(send_frequency=30)
        for i in range(2):
            xmit.send(Ev({"i": i}, server.url, writekey="key\r\nX-Injected: 1", metadata=i))
        assert xmit.flush(5)
        responses = drain(xmit.get_response_queue(), count=2)
        assert xmit.stats["failed"] == 2 and xmit.stats["batches"] == 0
        xmit.close()
        assert server.requests == []
    assert all(r["status_code"] == 0 and "could not be prepared" in r["error"] for r in responses)


def test_header_block_refuses_line_breaks_and_non_latin1():
    assert header_block({"A": "b", "C": 1}) == b"A: b\r\nC: 1\r\n"
    for bad in ({"A": "x\ny"}, {"A": "x\r"}, {"A": "\0"}, {"A b": "x"}, {"A:": "x"}, {"A": "☃"}):
        with pytest.raises(ValueError):
            header_block(bad)


# ------------------------------------------------------------------------------------ HTTPS
class TLSFront(_LoopbackListener):
    """A TLS server on 127.0.0.1 that hands each connection's bytes to a plain server and back."""

    def __init__(self, backend_port: int, cert: str, key: str) -> None:
        self._ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ctx.load_cert_chain(cert, key)
        self._backend = backend_port
        self.handshakes = 0
        super().__init__()

    def _connected(self, raw: socket.socket, port: int) -> None:
        try:
            tls = self._ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()
            return
        self.handshakes += 1
        backend = socket.create_connection(("127.0.0.1", self._backend), timeout=_IO_TIMEOUT)
        for src, dst in ((tls, backend), (backend, tls)):
            threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while not self._stop.is_set():
                try:
                    data = src.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass


@pytest.fixture
def self_signed(tmp_path):
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


def test_https_batches_are_verified_and_delivered_on_one_connection(rx, self_signed, monkeypatch):
    cert, key = self_signed
    # The transmission verifies certificates against the default trust store; trust the test's.
    monkeypatch.setenv("SSL_CERT_FILE", cert)
    front = TLSFront(rx.port, cert, key)
    try:
        stats, responses = deliver(f"https://127.0.0.1:{front.port}", 3, rounds=2)
        assert front.handshakes == 1
    finally:
        front.close()
    assert (stats["sent"], stats["failed"]) == (6, 0)
    assert sorted(e["data"]["i"] for e in rx.events) == list(range(6))
    assert [r["status_code"] for r in responses] == [202] * 6
    assert rx.requests[0]["headers"]["Host"] == f"127.0.0.1:{front.port}"


def test_https_with_an_untrusted_certificate_is_refused(rx, self_signed, monkeypatch, tmp_path):
    cert, key = self_signed
    empty: Optional[str] = str(tmp_path / "none.pem")
    open(empty, "w").close()
    monkeypatch.setenv("SSL_CERT_FILE", empty)
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    front = TLSFront(rx.port, cert, key)
    try:
        stats, responses = deliver(f"https://127.0.0.1:{front.port}", 2, retry_max_attempts=2)
    finally:
        front.close()
    assert (stats["sent"], stats["failed"]) == (0, 2)
    assert rx.events == []
    assert all(r["status_code"] == 0 and "CERTIFICATE_VERIFY_FAILED" in r["error"] for r in responses)
