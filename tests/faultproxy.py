"""A small fault-injecting HTTP proxy for tests, placed in front of a local S3 server.

Point a client's ``endpoint_url`` at :attr:`FaultProxy.endpoint`. Requests are forwarded byte for
byte (the Host header stays as the client sent it), so SigV4 signatures still verify. Faults are
scripted per request with :meth:`FaultProxy.script`, e.g. "the first 2 GETs of /bkt/key are
truncated, then pass through"; everything that happened is recorded in :attr:`FaultProxy.log`.

Responses that pass through are framed with ``Content-Length`` (a chunked upstream body is
re-framed); nothing else is rewritten. One upstream connection is opened per request.
"""

from __future__ import annotations

import enum
import http.client
import socket
import socketserver
import struct
import threading
from dataclasses import dataclass
from typing import BinaryIO, Self
from urllib.parse import unquote, urlsplit


class Fault(str, enum.Enum):
    """What the proxy does to a request instead of passing it through."""

    RESET = "reset"  # read the request, then reset the connection without an answer
    RESET_MID_BODY = "reset_mid_body"  # headers + part of the real body, then reset
    TRUNCATE = "truncate"  # headers (full Content-Length) + part of the real body, then close
    CORRUPT = "corrupt"  # the real answer with one body byte changed (same length)
    HTTP_500 = "500"  # an S3 XML error InternalError
    HTTP_503 = "503"  # an S3 XML error SlowDown
    STALL = "stall"  # say nothing for ``stall_s`` seconds, then close


_ERRORS = {
    Fault.HTTP_500: (500, "Internal Server Error", "InternalError", "We encountered an internal error. Please try again."),
    Fault.HTTP_503: (503, "Service Unavailable", "SlowDown", "Please reduce your request rate."),
}


@dataclass
class Rule:
    """Apply ``fault`` to the next ``times`` requests matching ``method`` and ``path`` (None: any)."""

    fault: Fault
    method: str
    path: str | None
    times: int


@dataclass(frozen=True)
class Event:
    """One request seen by the proxy: its method, decoded path and the fault applied (None: passed)."""

    method: str
    path: str
    fault: Fault | None


@dataclass
class _Request:
    method: str
    path: str
    raw: bytes


def _read_request(reader: BinaryIO) -> _Request | None:
    """Read one HTTP/1.1 request (head and Content-Length body); None at end of stream."""
    line = reader.readline()
    if not line:
        return None
    raw = [line]
    length = 0
    while True:
        header = reader.readline()
        if not header:
            return None
        raw.append(header)
        if header in (b"\r\n", b"\n"):
            break
        name, _, value = header.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
        elif name.strip().lower() == "transfer-encoding":
            raise ValueError("faultproxy: chunked request bodies are not supported")
    raw.append(reader.read(length) if length else b"")
    method, target, _ = line.decode("latin-1").split(" ", 2)
    return _Request(method=method, path=unquote(urlsplit(target).path), raw=b"".join(raw))


def _reset(sock: socket.socket) -> None:
    """Close ``sock`` with a TCP RST (SO_LINGER 0) instead of an orderly FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class FaultProxy:
    """A threaded proxy on 127.0.0.1 (free port) in front of ``upstream`` (``http://host:port``)."""

    def __init__(self, upstream: str, stall_s: float = 3.0) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.stall_s = stall_s
        self.log: list[Event] = []
        self._rules: list[Rule] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._serve_connection(self.request)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="faultproxy", daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        """The proxy's URL, for a client's ``endpoint_url``."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def script(self, fault: Fault, path: str | None = None, times: int = 1, method: str = "GET") -> None:
        """Inject ``fault`` into the next ``times`` ``method`` requests for ``path`` (e.g. ``/bkt/key``)."""
        with self._lock:
            self._rules.append(Rule(fault=fault, method=method, path=path, times=times))

    def injected(self) -> list[Event]:
        """The requests that got a fault, in order."""
        with self._lock:
            return [e for e in self.log if e.fault is not None]

    def requests(self, method: str | None = None, path: str | None = None) -> list[Event]:
        """The requests seen, optionally only those with ``method`` and/or ``path``."""
        with self._lock:
            return [e for e in self.log if method in (None, e.method) and path in (None, e.path)]

    def close(self) -> None:
        """Stop accepting, end stalls and wait for the server thread."""
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- per connection -------------------------------------------------------------------

    def _take_fault(self, request: _Request) -> Fault | None:
        """The fault for ``request`` (consuming one use of the first matching rule); log it."""
        with self._lock:
            fault = None
            for rule in self._rules:
                if rule.times > 0 and rule.method == request.method and rule.path in (None, request.path):
                    rule.times -= 1
                    fault = rule.fault
                    break
            self.log.append(Event(request.method, request.path, fault))
            return fault

    def _serve_connection(self, client: socket.socket) -> None:
        """Serve keep-alive requests on ``client`` until it closes or a fault ends the connection."""
        reader = client.makefile("rb")
        try:
            while not self._stopping.is_set():
                request = _read_request(reader)
                if request is None:
                    return
                fault = self._take_fault(request)
                if fault is None:
                    head, body = self._forward(request)
                    client.sendall(head + body)
                else:
                    self._inject(fault, client, request)
                    return
        except OSError:
            return  # the client went away; socketserver closes the socket
        finally:
            reader.close()

    def _forward(self, request: _Request) -> tuple[bytes, bytes]:
        """Send ``request`` upstream unchanged; return the response head and body."""
        with socket.create_connection(self.upstream, timeout=30) as upstream:
            upstream.sendall(request.raw)
            response = http.client.HTTPResponse(upstream, method=request.method)
            response.begin()
            body = response.read()
        lines = [f"HTTP/1.1 {response.status} {response.reason}"]
        for name, value in response.msg.items():
            if request.method == "HEAD" or name.lower() not in ("content-length", "transfer-encoding"):
                lines.append(f"{name}: {value}")
        if request.method != "HEAD":
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), body

    def _inject(self, fault: Fault, client: socket.socket, request: _Request) -> None:
        """Answer ``request`` on ``client`` with ``fault``; the connection ends afterwards."""
        if fault is Fault.RESET:
            _reset(client)
        elif fault is Fault.STALL:
            self._stopping.wait(self.stall_s)
        elif fault is Fault.CORRUPT:
            head, body = self._forward(request)
            client.sendall(head + bytes([body[0] ^ 0xFF]) + body[1:])
        elif fault in _ERRORS:
            status, reason, code, message = _ERRORS[fault]
            body = (
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                f"<Error><Code>{code}</Code><Message>{message}</Message>"
                f"<Resource>{request.path}</Resource><RequestId>faultproxy</RequestId></Error>"
            ).encode()
            head = (
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode()
            client.sendall(head if request.method == "HEAD" else head + body)
        else:  # a mid-body fault: the real head, then only part of the real body
            head, body = self._forward(request)
            client.sendall(head + body[: len(body) // 2])
            self._stopping.wait(0.2)  # let the client read the head and the part first
            if fault is Fault.RESET_MID_BODY:
                _reset(client)
            else:
                client.shutdown(socket.SHUT_RDWR)
