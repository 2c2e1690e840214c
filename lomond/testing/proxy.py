"""An in-process HTTP CONNECT proxy, for testing proxy support offline.

::

    with ConnectProxy(auth=("user", "secret")) as proxy, Server() as server:
        ...  # connect through proxy.url to server.url
        assert proxy.requests[0].target == f"127.0.0.1:{server.port}"

It tunnels only to the hosts in ``allowed_hosts`` (loopback by default),
responds 407 or 403 on demand, can respond slowly or with broken bytes, and
records every CONNECT request it received.
"""

from __future__ import annotations

import base64
import logging
import socket
import time
from dataclasses import dataclass, field

import gevent
import gevent.server
import gevent.socket

from .connection import MAX_REQUEST_BYTES, READ_SIZE, parse_request
from .waits import Signal, default_timeout

__all__ = ["ConnectProxy", "ProxyRequest"]

log = logging.getLogger(__name__)

# Hosts the proxy tunnels to by default: loopback only, so that a test
# cannot reach the network through it by mistake.
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


@dataclass
class ProxyRequest:
    """One request the proxy received, and the status of its response."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    time: float = field(default_factory=time.monotonic)
    status: int | None = None
    authorized: bool = False

    def header(self, name: str, default: str | None = None) -> str | None:
        """Return the first value of header ``name`` (case-insensitive), or ``default``."""
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return default

    def __repr__(self) -> str:
        # Proxy-Authorization carries credentials, so it stays out of the repr.
        return f"ProxyRequest({self.method} {self.target}, status={self.status}, authorized={self.authorized})"


class ConnectProxy:
    """An HTTP CONNECT proxy on an ephemeral loopback port.

    ``auth`` is a (user, password) pair that Proxy-Authorization must carry
    (Basic scheme), else the proxy responds 407. ``status`` forces that
    status (for example 403 or 407) for every request. ``delay`` waits that
    many seconds before responding, and ``answer`` sends those bytes in place of
    the response, then closes.
    """

    def __init__(
        self,
        *,
        auth: tuple[str, str] | None = None,
        status: int | None = None,
        delay: float = 0.0,
        answer: bytes | None = None,
        host: str = "127.0.0.1",
        allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS,
        request_timeout: float | None = None,
    ) -> None:
        self.host = host
        self.auth = auth
        self.status = status
        self.delay = delay
        self.answer = answer
        self.allowed_hosts = allowed_hosts
        self.request_timeout = request_timeout
        self.requests: list[ProxyRequest] = []
        self._server: gevent.server.StreamServer | None = None
        self._greenlets: list[gevent.Greenlet] = []
        self._sockets: list[socket.socket] = []
        self._signal = Signal()
        self._cursor = 0

    def __repr__(self) -> str:
        return f"ConnectProxy(url={self.url if self._server else None!r}, auth={'set' if self.auth else None})"

    @property
    def port(self) -> int:
        """The port the proxy listens on (known once started)."""
        if self._server is None:
            raise RuntimeError("the proxy is not started: call start() first")
        return int(self._server.address[1])

    @property
    def url(self) -> str:
        """The proxy URL, without credentials: ``http://127.0.0.1:PORT``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def url_with_credentials(self, user: str, password: str) -> str:
        """Return the proxy URL with user-info, as clients accept it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{user}:{password}@{host}:{self.port}"

    def start(self) -> ConnectProxy:
        """Listen on the loopback port and start accepting connections."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = gevent.socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, 0))
        listener.listen(128)
        self._server = gevent.server.StreamServer(listener, self._handle)
        self._server.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Close the listener and every tunnel."""
        if self._server is None:
            return
        self._server.close()
        for sock in self._sockets:
            sock.close()
        gevent.killall([g for g in self._greenlets if not g.dead], timeout=default_timeout(timeout))

    def __enter__(self) -> ConnectProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def leaks(self) -> list[str]:
        """Return what stop() left behind: live greenlets and open sockets."""
        found = [f"greenlet still running: {g!r}" for g in self._greenlets if not g.dead]
        found += [f"socket still open: {s!r}" for s in self._sockets if s.fileno() != -1]
        if self._server is not None and not self._server.closed:
            found.append("listening socket still open")
        return found

    def next_request(self, timeout: float | None = None) -> ProxyRequest:
        """Return the next request not yet returned by this method."""
        self._signal.wait_for(
            lambda: self._cursor < len(self.requests), default_timeout(timeout), "a proxy request"
        )
        request = self.requests[self._cursor]
        self._cursor += 1
        return request

    # --- per connection -----------------------------------------------------

    def _handle(self, sock: socket.socket, address: tuple) -> None:
        self._greenlets.append(gevent.getcurrent())
        self._sockets.append(sock)
        try:
            self._serve(sock)
        except OSError as error:
            log.debug("proxy connection from %s failed: %s", address, error)
        finally:
            sock.close()
            self._signal.notify()

    def _read_head(self, sock: socket.socket) -> tuple[bytes, bytes]:
        buffer = bytearray()
        timer = gevent.Timeout(default_timeout(self.request_timeout))
        try:
            with timer:
                while b"\r\n\r\n" not in buffer and len(buffer) <= MAX_REQUEST_BYTES:
                    chunk = sock.recv(READ_SIZE)
                    if not chunk:
                        break
                    buffer += chunk
        except gevent.Timeout as error:
            if error is not timer:
                raise
            log.debug("proxy client sent no request before the timeout")
            return b"", b""
        head, separator, rest = bytes(buffer).partition(b"\r\n\r\n")
        if not separator:
            return b"", b""
        return head, rest

    def _respond(self, sock: socket.socket, request: ProxyRequest, status: int, reason: str, headers: str = "") -> None:
        request.status = status
        self._signal.notify()
        sock.sendall(f"HTTP/1.1 {status} {reason}\r\n{headers}Content-Length: 0\r\n\r\n".encode("latin-1"))

    def _authorized(self, request: ProxyRequest) -> bool:
        if self.auth is None:
            return True
        expected = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
        return request.header("Proxy-Authorization") == f"Basic {expected}"

    def _serve(self, sock: socket.socket) -> None:
        head, rest = self._read_head(sock)
        if not head:
            return
        parsed = parse_request(head)
        request = ProxyRequest(parsed.method, parsed.target, parsed.headers)
        request.authorized = self._authorized(request)
        self.requests.append(request)
        self._signal.notify()

        # Responses on demand: delay, broken bytes, forced status.
        if self.delay:
            gevent.sleep(self.delay)
        if self.answer is not None:
            sock.sendall(self.answer)
            return
        if self.status is not None:
            self._respond(sock, request, self.status, "Forced", self._challenge(self.status))
            return

        # The regular checks of a CONNECT proxy.
        if parsed.method != "CONNECT":
            self._respond(sock, request, 405, "Method Not Allowed")
            return
        if not request.authorized:
            self._respond(sock, request, 407, "Proxy Authentication Required", self._challenge(407))
            return
        host, _, port_text = parsed.target.rpartition(":")
        host = host.strip("[]")
        if host not in self.allowed_hosts or not port_text.isdigit():
            self._respond(sock, request, 403, "Forbidden")
            return
        try:
            upstream = gevent.socket.create_connection((host, int(port_text)), timeout=default_timeout(None))
        except OSError:
            self._respond(sock, request, 502, "Bad Gateway")
            return
        self._sockets.append(upstream)
        upstream.settimeout(None)
        self._respond_established(sock, request)
        if rest:
            upstream.sendall(rest)
        self._tunnel(sock, upstream)

    @staticmethod
    def _challenge(status: int) -> str:
        return 'Proxy-Authenticate: Basic realm="lomond-test"\r\n' if status == 407 else ""

    def _respond_established(self, sock: socket.socket, request: ProxyRequest) -> None:
        request.status = 200
        self._signal.notify()
        sock.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")

    def _tunnel(self, client: socket.socket, upstream: socket.socket) -> None:
        """Copy bytes both ways until each side has closed its half."""
        forward = gevent.spawn(self._pipe, client, upstream)
        backward = gevent.spawn(self._pipe, upstream, client)
        self._greenlets += [forward, backward]
        try:
            gevent.joinall([forward, backward])
        finally:
            upstream.close()

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        # Bounded by the sockets' life: stop() closes them, which ends recv().
        while True:
            try:
                data = source.recv(READ_SIZE)
            except OSError:
                data = b""
            if not data:
                try:
                    target.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            try:
                target.sendall(data)
            except OSError:
                return
