"""Loopback servers and helpers for the network tests.

The bundled test kit (``lomond.testing``) serves the usual cases. The
servers here cover what it does not script: an HTTPS CONNECT proxy, a
proxy that sends bytes after its response, a SOCKS4/SOCKS5 proxy, a
WebSocket server on a Unix socket or with a certificate of the test's
choosing (expired, for another host), and a TCP "black hole" whose
connection attempts hang.
"""

from __future__ import annotations

import datetime
import os
import socket
import struct
import tempfile

import gevent
import gevent.server
import gevent.socket
import pytest
import trustme
from gevent import ssl
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Ping, Request, TextMessage

from lomond.testing import TIME_UNIT, ConnectProxy

# Environment variables that choose a proxy; every test starts without them.
PROXY_VARIABLES = [
    name
    for base in ("http_proxy", "https_proxy", "ws_proxy", "wss_proxy", "all_proxy", "no_proxy")
    for name in (base, base.upper())
] + ["REQUEST_METHOD"]


@pytest.fixture(autouse=True)
def clean_proxy_environment(monkeypatch):
    """Remove the real environment's proxy variables, so no test reads them."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def run(websocket, close_on_ready=True, limit=10.0, **options):
    """Iterate ``websocket`` under a time limit, closing after Ready; return the events."""
    options.setdefault("ping_rate", 0)
    options.setdefault("poll", 0)
    seen = []
    with gevent.Timeout(limit * TIME_UNIT):
        for event in websocket.connect(**options):
            seen.append(event)
            if event.name == "ready" and close_on_ready:
                websocket.close()
    return seen


def names(seen):
    return [event.name for event in seen]


def first(seen, name):
    """Return the first event called ``name``; fail the test when there is none."""
    for event in seen:
        if event.name == name:
            return event
    raise AssertionError(f"no {name} event in {names(seen)}")


def ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not ipv6_available(), reason="::1 is not available")


# --- certificates ----------------------------------------------------------------


class Certificates:
    """A throwaway CA, with files written to a temporary folder."""

    def __init__(self):
        self.ca = trustme.CA()
        self._folder = tempfile.TemporaryDirectory(prefix="lomond-net-")
        self.ca_file = self.path("ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)

    def path(self, name):
        return os.path.join(self._folder.name, name)

    def server_context(self, *names, not_before=None, not_after=None, require_client_cert=False):
        """Build a server context with a certificate for ``names`` (default: the loopback names)."""
        cert = self.ca.issue_cert(
            *(names or ("127.0.0.1", "::1", "localhost")),
            not_before=not_before,
            not_after=not_after,
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(context)
        if require_client_cert:
            context.verify_mode = ssl.CERT_REQUIRED
            self.ca.configure_trust(context)
        return context

    def expired_server_context(self):
        now = datetime.datetime.now(datetime.timezone.utc)
        return self.server_context(
            not_before=now - datetime.timedelta(days=30), not_after=now - datetime.timedelta(days=1)
        )

    def cleanup(self):
        self._folder.cleanup()


@pytest.fixture
def certificates():
    found = Certificates()
    yield found
    found.cleanup()


# --- a WebSocket server on wsproto ------------------------------------------------


class MiniServer:
    """An echo WebSocket server on TCP or a Unix socket, optionally over TLS.

    ``requests`` records each handshake request as (target, headers), and
    ``server_names`` the SNI name each TLS client sent.
    """

    def __init__(self, host="127.0.0.1", unix_path=None, ssl_context=None):
        self.host = host
        self.unix_path = unix_path
        self.ssl_context = ssl_context
        self.requests = []
        self.server_names = []
        self.tls_errors = []
        if ssl_context is not None:
            ssl_context.sni_callback = self._record_sni
        if unix_path is not None:
            listener = gevent.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(unix_path)
        else:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            listener = gevent.socket.socket(family, socket.SOCK_STREAM)
            listener.bind((host, 0))
        listener.listen(16)
        self._server = gevent.server.StreamServer(listener, self._handle)
        self._server.start()

    @property
    def port(self):
        return self._server.address[1]

    def url(self, path="/", scheme=None):
        scheme = scheme or ("wss" if self.ssl_context else "ws")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}{path}"

    def _record_sni(self, sock, server_name, context):
        self.server_names.append(server_name)

    def _handle(self, sock, address):
        with gevent.Timeout(5 * TIME_UNIT, False):
            if self.ssl_context is not None:
                try:
                    sock = self.ssl_context.wrap_socket(sock, server_side=True)
                except OSError as error:
                    self.tls_errors.append(error)
                    return
            self._serve(sock)
        sock.close()

    def _serve(self, sock):
        conn = WSConnection(ConnectionType.SERVER)
        for _ in range(1000):
            try:
                data = sock.recv(65536)
            except OSError:
                return
            conn.receive_data(data or None)
            for event in conn.events():
                if isinstance(event, Request):
                    self.requests.append((event.target, list(event.extra_headers)))
                    sock.sendall(conn.send(AcceptConnection()))
                elif isinstance(event, TextMessage):
                    sock.sendall(conn.send(TextMessage(data=event.data)))
                elif isinstance(event, Ping):
                    sock.sendall(conn.send(event.response()))
                elif isinstance(event, CloseConnection):
                    sock.sendall(conn.send(event.response()))
                    return
            if not data:
                return

    def stop(self):
        self._server.stop(timeout=1)


@pytest.fixture
def mini_server_factory():
    servers = []

    def build(**options):
        server = MiniServer(**options)
        servers.append(server)
        return server

    yield build
    for server in servers:
        server.stop()


# --- proxies ------------------------------------------------------------------------


def _tunnel(client, upstream):
    # The kit's proxy copies bytes the same way; its pipe serves both.
    greenlets = [
        gevent.spawn(ConnectProxy._pipe, client, upstream),
        gevent.spawn(ConnectProxy._pipe, upstream, client),
    ]
    gevent.joinall(greenlets, timeout=10 * TIME_UNIT)
    gevent.killall(greenlets)
    upstream.close()


def _connect_loopback(host, port):
    if host not in ("127.0.0.1", "::1", "localhost"):
        raise OSError(f"the test proxy tunnels only to loopback, not {host}")
    return gevent.socket.create_connection((host, port), timeout=5 * TIME_UNIT)


class TunnelProxy:
    """An HTTP CONNECT proxy, over TLS when given ``ssl_context``.

    ``after_response`` is sent in the same write as the 200 header block,
    so the client reads it together with the response.
    """

    def __init__(self, ssl_context=None, after_response=b""):
        self.ssl_context = ssl_context
        self.after_response = after_response
        self.targets = []
        self._server = gevent.server.StreamServer(("127.0.0.1", 0), self._handle)
        self._server.start()

    @property
    def port(self):
        return self._server.address[1]

    @property
    def url(self):
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def _handle(self, sock, address):
        with gevent.Timeout(10 * TIME_UNIT, False):
            if self.ssl_context is not None:
                try:
                    sock = self.ssl_context.wrap_socket(sock, server_side=True)
                except OSError:
                    return
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                chunk = sock.recv(4096)
                if not chunk:
                    return
                head += chunk
            target = head.split(b"\r\n")[0].split(b" ")[1].decode()
            self.targets.append(target)
            host, _, port = target.rpartition(":")
            upstream = _connect_loopback(host.strip("[]"), int(port))
            sock.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n" + self.after_response)
            _tunnel(sock, upstream)
        sock.close()

    def stop(self):
        self._server.stop(timeout=1)


class SocksProxy:
    """A SOCKS4/4a and SOCKS5 proxy (RFC 1928, with RFC 1929 user name and password).

    ``auth`` is the (user, password) a SOCKS5 client must send; None
    accepts clients without authentication. ``requests`` records
    (version, host, port) per request: the host is the name a SOCKS4a or
    SOCKS5h client sent, or the address otherwise. ``reply_delay`` delays
    the final reply by that many seconds, and ``never_reply`` never sends it.
    """

    def __init__(self, auth=None, reply_delay=0.0, never_reply=False):
        self.auth = auth
        self.reply_delay = reply_delay
        self.never_reply = never_reply
        self.requests = []
        self.usernames = []
        self._server = gevent.server.StreamServer(("127.0.0.1", 0), self._handle)
        self._server.start()

    @property
    def port(self):
        return self._server.address[1]

    def url(self, scheme="socks5", credentials=None):
        userinfo = f"{credentials[0]}:{credentials[1]}@" if credentials else ""
        return f"{scheme}://{userinfo}127.0.0.1:{self.port}"

    def _read(self, sock, size):
        data = b""
        while len(data) < size:
            chunk = sock.recv(size - len(data))
            if not chunk:
                raise OSError("client closed")
            data += chunk
        return data

    def _read_until_nul(self, sock):
        data = b""
        while not data.endswith(b"\0") and len(data) < 1024:
            data += self._read(sock, 1)
        return data[:-1]

    def _handle(self, sock, address):
        with gevent.Timeout(10 * TIME_UNIT, False):
            try:
                version = self._read(sock, 1)[0]
                if version == 4:
                    self._socks4(sock)
                elif version == 5:
                    self._socks5(sock)
            except OSError:
                pass
        sock.close()

    def _hold_reply(self):
        if self.never_reply:
            gevent.sleep(30 * TIME_UNIT)
        gevent.sleep(self.reply_delay)

    def _socks4(self, sock):
        command, port = struct.unpack("!BH", self._read(sock, 3))
        address = self._read(sock, 4)
        self.usernames.append(self._read_until_nul(sock).decode())
        if address[:3] == b"\0\0\0" and address[3] != 0:
            host = self._read_until_nul(sock).decode()
        else:
            host = socket.inet_ntoa(address)
        self.requests.append((4, host, port))
        self._hold_reply()
        upstream = _connect_loopback(host, port)
        sock.sendall(b"\x00\x5a" + b"\0" * 6)
        _tunnel(sock, upstream)

    def _socks5(self, sock):
        # Method selection.
        count = self._read(sock, 1)[0]
        methods = self._read(sock, count)
        method = 2 if self.auth else 0
        if method not in methods:
            sock.sendall(b"\x05\xff")
            return
        sock.sendall(bytes([5, method]))
        if self.auth:
            self._read(sock, 1)
            user = self._read(sock, self._read(sock, 1)[0]).decode()
            password = self._read(sock, self._read(sock, 1)[0]).decode()
            self.usernames.append(user)
            if (user, password) != self.auth:
                sock.sendall(b"\x01\x01")
                return
            sock.sendall(b"\x01\x00")

        # The CONNECT request.
        _, command, _, address_type = self._read(sock, 4)
        if address_type == 1:
            host = socket.inet_ntop(socket.AF_INET, self._read(sock, 4))
        elif address_type == 4:
            host = socket.inet_ntop(socket.AF_INET6, self._read(sock, 16))
        else:
            host = self._read(sock, self._read(sock, 1)[0]).decode()
        port = struct.unpack("!H", self._read(sock, 2))[0]
        self.requests.append((5, host, port))
        self._hold_reply()
        try:
            upstream = _connect_loopback(host, port)
        except OSError:
            # Reply 0x02: connection not allowed by ruleset.
            sock.sendall(b"\x05\x02\x00\x01" + b"\0" * 6)
            return
        sock.sendall(b"\x05\x00\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", 0))
        _tunnel(sock, upstream)

    def stop(self):
        self._server.stop(timeout=1)


@pytest.fixture
def tunnel_proxy_factory():
    proxies = []

    def build(**options):
        proxy = TunnelProxy(**options)
        proxies.append(proxy)
        return proxy

    yield build
    for proxy in proxies:
        proxy.stop()


@pytest.fixture
def socks_proxy_factory():
    proxies = []

    def build(**options):
        proxy = SocksProxy(**options)
        proxies.append(proxy)
        return proxy

    yield build
    for proxy in proxies:
        proxy.stop()


# --- a black hole -----------------------------------------------------------------------


class BlackHole:
    """A listening socket whose accept queue is full, so new connection attempts hang.

    With a backlog of 0, Linux queues one connection; the filler takes
    that place and later SYNs are dropped without a reply.
    """

    def __init__(self, host="127.0.0.1", port=0):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        self.listener.bind((host, port))
        self.listener.listen(0)
        self.port = self.listener.getsockname()[1]
        self.filler = socket.socket(family, socket.SOCK_STREAM)
        self.filler.settimeout(2)
        self.filler.connect((host, self.port))

    def close(self):
        self.filler.close()
        self.listener.close()


@pytest.fixture
def black_hole_factory():
    holes = []

    def build(**options):
        hole = BlackHole(**options)
        holes.append(hole)
        return hole

    yield build
    for hole in holes:
        hole.close()
