"""Open the transport under a WebSocket: DNS, TCP, proxies and TLS, on gevent.

Everything here uses gevent's cooperative socket, resolver and ssl modules
directly, so it works without monkey-patching and never blocks other
greenlets. One connect timeout covers the whole attempt: DNS, every TCP
connection attempt, the proxy's response and the TLS handshake.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import socket as _stdlib_socket
import ssl as _stdlib_ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import certifi
import gevent
from gevent import socket as gsocket
from gevent import ssl as gssl
from gevent.lock import Semaphore
from gevent.queue import Empty, Queue

from .errors import ConnectFail, HandshakeError, InvalidURL
from .protocol.url import WebSocketURL, parse_url, redact_url
from .proxy import ProxyURL, connect_tunnel, parse_proxy_url

__all__ = [
    "TLSOptions",
    "Transport",
    "open_transport",
    "build_ssl_context",
    "describe_ssl_error",
    "CONNECTION_ATTEMPT_DELAY",
    "interleave_addresses",
    "tcp_connect",
    "race_connections",
    "REDIRECT_STATUSES",
    "resolve_redirect",
    "same_host",
]

log = logging.getLogger(__name__)

#: Seconds between the starts of two TCP connection attempts to the
#: addresses of one host, when the first has not finished: the "Connection
#: Attempt Delay" that RFC 8305 section 5 recommends (250 ms).
CONNECTION_ATTEMPT_DELAY = 0.25

# Bytes requested per read of the socket under a TLS layer that runs in
# memory (see LayeredTLSSocket). One TLS record is at most 16 KiB plus
# its overhead, so one read usually completes a record.
_TLS_READ_SIZE = 17 * 1024


@dataclass
class TLSOptions:
    """How to verify the server and identify the client over TLS.

    ``context`` is used exactly as given when set: lomond neither reads nor
    changes its settings, and the other fields except ``server_hostname``
    then have no effect. Otherwise lomond builds a context that verifies
    the server against ``cafile`` (default: certifi's CA bundle), checks
    the host name, and requires TLS 1.2 or newer. ``verify=False`` turns
    verification off, explicitly. ``server_hostname`` replaces the URL's
    host for SNI and the certificate's host name check.
    """

    verify: bool = True
    cafile: str | None = None
    context: _stdlib_ssl.SSLContext | None = None
    certfile: str | None = None
    keyfile: str | None = None
    server_hostname: str | None = None


@dataclass
class Transport:
    """An open connection ready for the WebSocket handshake.

    ``leftover`` holds bytes that arrived after a proxy's answer; they
    belong to the WebSocket stream and must be fed to the protocol first.
    ``proxy`` is the proxy URL without credentials, or None.
    """

    sock: Any
    proxy: str | None = None
    leftover: bytes = b""
    hops: list[str] = field(default_factory=list)


# --- TLS ---------------------------------------------------------------------


def build_ssl_context(options: TLSOptions) -> _stdlib_ssl.SSLContext:
    """Return the SSL context for ``options``: the given one, or a verifying default.

    Built contexts are cached per set of options and file modification
    times, because each contains its own copy of the CA bundle. Thousands
    of connections then share one. Raises ``OSError`` or ``ssl.SSLError`` when
    a certificate or key file cannot be loaded.
    """
    if options.context is not None:
        return options.context
    files = (options.cafile or certifi.where(), options.certfile, options.keyfile)
    stamps = tuple(os.stat(path).st_mtime_ns if path else None for path in files)
    return _cached_context(options.verify, *files, stamps)


@functools.lru_cache(maxsize=32)
def _cached_context(
    verify: bool,
    cafile: str,
    certfile: str | None,
    keyfile: str | None,
    stamps: tuple[int | None, ...],
) -> _stdlib_ssl.SSLContext:
    context = gssl.SSLContext(gssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = gssl.TLSVersion.TLSv1_2
    if verify:
        context.load_verify_locations(cafile=cafile)
        context.check_hostname = True
        context.verify_mode = gssl.CERT_REQUIRED
    else:
        context.check_hostname = False
        context.verify_mode = gssl.CERT_NONE
    if certfile:
        context.load_cert_chain(certfile, keyfile)
    return context


# OpenSSL's X509_V_ERR_* codes (include/openssl/x509_vfy.h), by what the
# user can do about them.
_NOT_YET_VALID = {9}
_EXPIRED = {10}
_UNKNOWN_CA = {2, 18, 19, 20, 21, 27}
_WRONG_HOST = {62, 64}


def describe_ssl_error(error: BaseException, host: str) -> str:
    """Return a TLS failure in words a user can act on."""
    if isinstance(error, _stdlib_ssl.SSLCertVerificationError):
        detail = error.verify_message or str(error)
        code = error.verify_code
        if code in _EXPIRED:
            return (
                f"TLS certificate of {host} has expired ({detail}); the server must"
                " renew it, unless this machine's clock is wrong"
            )
        if code in _NOT_YET_VALID:
            return (
                f"TLS certificate of {host} is not valid yet ({detail});"
                " check this machine's clock"
            )
        if code in _UNKNOWN_CA:
            return (
                f"TLS certificate of {host} is signed by an unknown CA ({detail});"
                " pass that CA's certificate (ssl_cafile=, or --cafile on the command line)"
            )
        if code in _WRONG_HOST:
            return (
                f"TLS certificate is not valid for host {host} ({detail}); connect"
                " with a host name that the certificate lists, or pass server_hostname="
            )
        return f"TLS certificate of {host} failed verification ({detail})"

    reason = getattr(error, "reason", None) or ""
    if reason == "WRONG_VERSION_NUMBER":
        return (
            f"TLS handshake with {host} failed: the server did not respond with TLS"
            " (is it a ws:// server?)"
        )
    if reason in ("UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION"):
        return (
            f"TLS handshake with {host} failed: no TLS version in common"
            f" (lomond requires TLS 1.2 or newer) ({error})"
        )
    if reason in ("TLSV13_ALERT_CERTIFICATE_REQUIRED", "SSLV3_ALERT_HANDSHAKE_FAILURE"):
        return (
            f"TLS handshake with {host} failed ({reason.lower()}); if the server"
            " requires a client certificate, pass ssl_certfile="
        )
    if isinstance(error, _stdlib_ssl.SSLEOFError):
        return f"TLS handshake with {host} failed: the server closed the connection"
    return f"TLS handshake with {host} failed ({error})"


def start_tls(
    sock: Any,
    context: _stdlib_ssl.SSLContext,
    server_hostname: str,
    deadline: float,
    timeout: float,
    initial: bytes = b"",
) -> Any:
    """Run the TLS client handshake over ``sock`` and return the TLS socket.

    ``initial`` contains bytes already read from ``sock`` (after a proxy's
    response) that start the server's side of the TLS stream. A socket that
    is itself TLS (an ``https://`` proxy), or ``initial`` bytes, need the
    TLS layer to run in memory (:class:`LayeredTLSSocket`); otherwise
    gevent's SSLSocket runs it on the file descriptor. Closes ``sock`` and
    raises :class:`~lomond.errors.ConnectFail` on failure.
    """
    # gevent's SSLSocket is not a subclass of the standard library's.
    tls_classes = (_stdlib_ssl.SSLSocket, gssl.SSLSocket, LayeredTLSSocket)
    layered = bool(initial) or isinstance(sock, tls_classes)
    tls_sock: Any = None
    try:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        if layered:
            tls_sock = LayeredTLSSocket(sock, context, server_hostname, initial)
        else:
            tls_sock = gssl.SSLSocket(
                sock=sock,
                server_side=False,
                server_hostname=server_hostname,
                do_handshake_on_connect=False,
                _context=context,
            )
        tls_sock.settimeout(remaining)
        # The socket timeout bounds each read of the handshake, and this
        # timer bounds the whole handshake.
        with gevent.Timeout(remaining, _DeadlinePassed):
            tls_sock.do_handshake()
    except BaseException as error:
        # gevent's SSLSocket takes over the file descriptor of ``sock``, so
        # both are closed.
        if tls_sock is not None:
            tls_sock.close()
        sock.close()
        if isinstance(error, _stdlib_ssl.SSLError):
            raise ConnectFail(describe_ssl_error(error, server_hostname)) from None
        if isinstance(error, (_stdlib_socket.timeout, TimeoutError, _DeadlinePassed)):
            raise ConnectFail(
                f"TLS handshake with {server_hostname} timed out after {timeout:g}s"
            ) from None
        if isinstance(error, OSError):
            raise ConnectFail(f"TLS handshake with {server_hostname} failed ({error})") from None
        raise
    return tls_sock


class LayeredTLSSocket:
    """A TLS client connection that runs in memory over another socket-like object.

    The standard SSLSocket needs a file descriptor of its own, so it cannot
    run over a TLS connection to an ``https://`` proxy, nor take bytes that
    were already read. This class feeds an ``ssl.SSLObject`` through memory
    BIOs instead, and offers the socket methods the session uses. A lock
    keeps whole TLS records in order when two greenlets write, and bytes
    not yet sent stay queued when a ``gevent.Timeout`` interrupts a write,
    so the next write sends them first and the record stream stays whole.

    NOTE: TLS 1.2 renegotiation, which a server may start at any time, is
    not supported here: a write that needs it fails with ``ssl.SSLError``.
    """

    def __init__(
        self, carrier: Any, context: _stdlib_ssl.SSLContext, server_hostname: str, initial: bytes = b""
    ) -> None:
        self._carrier = carrier
        self._incoming = _stdlib_ssl.MemoryBIO()
        self._outgoing = _stdlib_ssl.MemoryBIO()
        if initial:
            self._incoming.write(initial)
        self._tls = context.wrap_bio(
            self._incoming, self._outgoing, server_side=False, server_hostname=server_hostname
        )
        self._send_lock = Semaphore()
        self._unsent = b""

    def __repr__(self) -> str:
        return f"<LayeredTLSSocket over {self._carrier!r}>"

    def do_handshake(self) -> None:
        """Exchange handshake records until the handshake completes.

        The timeout set with :meth:`settimeout` bounds the whole handshake,
        not each read. Raises ``ssl.SSLError``, ``OSError`` or ``TimeoutError``.
        """
        timeout = self._carrier.gettimeout()
        deadline = time.monotonic() + timeout if timeout is not None else None
        while True:
            try:
                self._tls.do_handshake()
                break
            except _stdlib_ssl.SSLWantReadError:
                self._flush()
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError("the TLS handshake timed out") from None
                    self._carrier.settimeout(remaining)
                self._fill()
        self._carrier.settimeout(timeout)
        self._flush()

    def recv(self, size: int) -> bytes:
        """Return up to ``size`` bytes of plaintext; ``b""`` once the server closed TLS."""
        while True:
            try:
                data = self._tls.read(size)
            except _stdlib_ssl.SSLWantReadError:
                self._flush_if_idle()
                self._fill()
                continue
            except _stdlib_ssl.SSLZeroReturnError:
                return b""
            # A read can produce records to send (a TLS 1.3 key update).
            self._flush_if_idle()
            return data

    def sendall(self, data: bytes) -> None:
        """Encrypt ``data`` and send all of it."""
        with self._send_lock:
            view = memoryview(data)
            while view:
                written = self._tls.write(view)
                view = view[written:]
            self._send_unsent()

    def _flush(self) -> None:
        with self._send_lock:
            self._send_unsent()

    def _flush_if_idle(self) -> None:
        """Send queued records unless a write is under way.

        A reader must not wait for a writer that is itself blocked until the
        peer reads, or neither side would move. A record skipped here stays
        queued, and the running write or the next read or write sends it.
        """
        if (self._outgoing.pending or self._unsent) and not self._send_lock.locked():
            self._flush()

    def _send_unsent(self) -> None:
        """Send the queued TLS records; the caller holds the send lock."""
        view = memoryview(self._unsent + self._outgoing.read())
        try:
            while view:
                sent = self._carrier.send(view)
                view = view[sent:]
                if not view and self._outgoing.pending:
                    # Records a reader queued while this loop was sending.
                    view = memoryview(self._outgoing.read())
        finally:
            # Empty unless a timeout or an error interrupted the loop.
            self._unsent = bytes(view)

    def _fill(self) -> None:
        data = self._carrier.recv(_TLS_READ_SIZE)
        if data:
            self._incoming.write(data)
        else:
            self._incoming.write_eof()

    def settimeout(self, timeout: float | None) -> None:
        self._carrier.settimeout(timeout)

    def gettimeout(self) -> float | None:
        return self._carrier.gettimeout()

    def fileno(self) -> int:
        return self._carrier.fileno()

    def getpeercert(self, binary_form: bool = False) -> Any:
        return self._tls.getpeercert(binary_form)

    def version(self) -> str | None:
        return self._tls.version()

    def cipher(self) -> Any:
        return self._tls.cipher()

    def selected_alpn_protocol(self) -> str | None:
        return self._tls.selected_alpn_protocol()

    def close(self) -> None:
        self._carrier.close()


# --- TCP ---------------------------------------------------------------------


def interleave_addresses(infos: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Order ``getaddrinfo`` results by alternating address families.

    RFC 8305 section 4: keep the resolver's preferred first address, then
    alternate between families, so that a broken IPv6 (or IPv4) path costs
    one connection attempt delay rather than one timeout per address.
    """
    by_family: dict[Any, list[tuple[Any, ...]]] = {}
    for info in infos:
        by_family.setdefault(info[0], []).append(info)
    queues = list(by_family.values())
    ordered: list[tuple[Any, ...]] = []
    while any(queues):
        for queue in queues:
            if queue:
                ordered.append(queue.pop(0))
    return ordered


def tcp_connect(host: str, port: int, deadline: float, timeout: float, label: str = "") -> Any:
    """Resolve ``host`` and connect to ``port`` on one of its addresses, Happy Eyeballs style.

    Attempts start :data:`CONNECTION_ATTEMPT_DELAY` apart, or at once when
    the previous one failed, and run side by side. The first to connect
    wins and the others are closed (RFC 8305). Everything must finish by
    ``deadline`` (a ``time.monotonic()`` value). ``label`` names the peer
    in messages ("proxy ..."). Raises :class:`~lomond.errors.ConnectFail`.
    """
    peer = label or _format_address((host, port))

    # 1. DNS, under the same deadline.
    try:
        with gevent.Timeout(max(deadline - time.monotonic(), 0.001), _DeadlinePassed):
            infos = gsocket.getaddrinfo(host, port, 0, gsocket.SOCK_STREAM)
    except _DeadlinePassed:
        raise ConnectFail(f"resolving host {host!r} timed out after {timeout:g}s") from None
    except gsocket.gaierror as error:
        raise ConnectFail(f"could not resolve host {host!r} ({error})") from None
    candidates = interleave_addresses(infos)
    if not candidates:
        raise ConnectFail(f"host {host!r} has no address")

    # 2. One attempt inline, or a race between several.
    if len(candidates) == 1:
        sock, errors = connect_address(candidates[0], deadline)
    else:
        sock, errors = race_connections(candidates, deadline)
    if sock is not None:
        sock.setsockopt(gsocket.IPPROTO_TCP, gsocket.TCP_NODELAY, 1)
        return sock

    # 3. Every attempt failed, or the deadline passed first.
    timed_out = len(errors) < len(candidates) or all(
        isinstance(error, (_stdlib_socket.timeout, TimeoutError)) for _, error in errors
    )
    if timed_out:
        raise ConnectFail(f"connection to {peer} timed out after {timeout:g}s")
    if len(errors) == 1:
        raise ConnectFail(f"connection to {peer} failed ({errors[0][1]})")
    detail = "; ".join(f"{_format_address(address)}: {error}" for address, error in errors)
    raise ConnectFail(f"connection to {peer} failed on every address ({detail})")


def connect_address(candidate: tuple[Any, ...], deadline: float) -> tuple[Any, list[tuple[Any, BaseException]]]:
    """Connect to one ``getaddrinfo`` result by ``deadline``; return (socket or None, [(address, error)])."""
    family, socktype, proto, _, address = candidate
    sock = gsocket.socket(family, socktype, proto)
    try:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out")
        sock.settimeout(remaining)
        sock.connect(address)
    except OSError as error:
        sock.close()
        log.debug("connect to %s failed: %s", _format_address(address), error)
        return None, [(address, error)]
    except BaseException:
        # Killed by the race that this attempt lost.
        sock.close()
        raise
    return sock, []


def race_connections(candidates: list[tuple[Any, ...]], deadline: float) -> tuple[Any, list[tuple[Any, BaseException]]]:
    """Race connection attempts to ``candidates`` (``getaddrinfo`` results, in order).

    Returns the first socket to connect, or None when every attempt failed
    or ``deadline`` passed, with the (address, error) of each failed
    attempt. The attempts that lost are stopped and their sockets closed.
    """
    results: Queue = Queue()
    waiting = list(candidates)
    attempts: list[gevent.Greenlet] = []
    errors: list[tuple[Any, BaseException]] = []

    def attempt(candidate: tuple[Any, ...]) -> None:
        results.put(connect_address(candidate, deadline))

    try:
        running = 0
        next_start = time.monotonic()
        # Each turn starts an attempt, takes a result, or waits until the
        # next start or the deadline: at most three turns per candidate.
        for _ in range(3 * len(candidates) + 2):
            now = time.monotonic()
            if now >= deadline or not (waiting or running):
                break
            if waiting and (running == 0 or now >= next_start):
                attempts.append(gevent.spawn(attempt, waiting.pop(0)))
                running += 1
                next_start = now + CONNECTION_ATTEMPT_DELAY
                continue
            wait = deadline - now
            if waiting:
                wait = min(wait, next_start - now)
            try:
                sock, failures = results.get(timeout=max(wait, 0.0))
            except Empty:
                # The delay is over: start the next attempt on the next turn.
                next_start = now
                continue
            running -= 1
            if sock is not None:
                return sock, errors
            errors.extend(failures)
            # RFC 8305 section 5: a failed attempt lets the next one start now.
            next_start = time.monotonic()
        return None, errors
    finally:
        # Stop the attempts still running, and close any socket that
        # connected after the winner.
        gevent.killall(attempts, block=True)
        while not results.empty():
            late_sock, _ = results.get_nowait()
            if late_sock is not None:
                late_sock.close()


class _DeadlinePassed(Exception):
    """Raised by this module's own timers, so that no other gevent.Timeout is caught."""


def _format_address(address: Any) -> str:
    host, port = address[0], address[1]
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def _unix_connect(path: str, deadline: float, timeout: float) -> Any:
    sock = gsocket.socket(gsocket.AF_UNIX, gsocket.SOCK_STREAM)
    try:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        sock.connect(path)
    except (_stdlib_socket.timeout, TimeoutError):
        sock.close()
        raise ConnectFail(f"connection to Unix socket {path!r} timed out after {timeout:g}s") from None
    except OSError as error:
        sock.close()
        raise ConnectFail(f"connection to Unix socket {path!r} failed ({error})") from None
    return sock


# --- the whole path ------------------------------------------------------------


def open_transport(
    url: WebSocketURL, tls: TLSOptions, connect_timeout: float, *, proxy: str | None = None
) -> Transport:
    """Connect to the server of ``url``, through ``proxy`` when given, and run TLS for wss://.

    ``proxy`` is a proxy URL (``http://``, ``https://``, ``socks4://``,
    ``socks4a://``, ``socks5://`` or ``socks5h://``, with optional
    ``user:password@``), usually chosen by
    :func:`~lomond.proxy.select_proxy`; it is ignored for Unix domain
    sockets. ``connect_timeout`` (seconds) covers every step.

    Raises :class:`~lomond.errors.ConnectFail` with the reason on any failure.
    """
    deadline = time.monotonic() + connect_timeout
    try:
        context = build_ssl_context(tls) if url.secure else None
    except (OSError, _stdlib_ssl.SSLError) as error:
        raise ConnectFail(f"could not load the TLS certificates or keys ({error})") from None

    # 1. A Unix domain socket: no DNS and no proxy.
    if url.unix_socket is not None:
        sock = _unix_connect(url.unix_socket, deadline, connect_timeout)
        if context is not None:
            sock = start_tls(sock, context, tls.server_hostname or url.host, deadline, connect_timeout)
        return Transport(sock=sock)

    # 2. TCP to the server, or to the proxy and through it.
    proxy_url: ProxyURL | None = None
    leftover = b""
    if proxy is None:
        sock = tcp_connect(url.host, url.port, deadline, connect_timeout)
    else:
        try:
            proxy_url = parse_proxy_url(proxy)
        except InvalidURL as error:
            raise ConnectFail(str(error)) from None
        sock, leftover = _through_proxy(proxy_url, url, tls, deadline, connect_timeout)

    # 3. TLS to the server, fed first with any bytes the proxy sent after its response.
    if context is not None:
        server_hostname = tls.server_hostname or url.host
        sock = start_tls(sock, context, server_hostname, deadline, connect_timeout, initial=leftover)
        leftover = b""
    return Transport(
        sock=sock, proxy=proxy_url.safe_url if proxy_url else None, leftover=leftover
    )


def _through_proxy(
    proxy: ProxyURL, url: WebSocketURL, tls: TLSOptions, deadline: float, timeout: float
) -> tuple[Any, bytes]:
    """Open a connection to ``url``'s host through ``proxy``; return (socket, bytes after the response)."""
    if proxy.scheme.startswith("socks"):
        from .socks import socks_connect

        return socks_connect(proxy, url.host, url.port, deadline, timeout), b""

    sock = tcp_connect(proxy.host, proxy.port, deadline, timeout, label=f"proxy {proxy.safe_url}")
    try:
        if proxy.scheme == "https":
            # The proxy is verified like the server, but with the proxy's
            # host name, and without the server's client certificate.
            proxy_tls = TLSOptions(verify=tls.verify, cafile=tls.cafile, context=tls.context)
            try:
                context = build_ssl_context(proxy_tls)
            except (OSError, _stdlib_ssl.SSLError) as error:
                raise ConnectFail(f"could not load the TLS certificates ({error})") from None
            sock = start_tls(sock, context, proxy.host, deadline, timeout)
        leftover = connect_tunnel(sock, proxy, url.host, url.port, deadline, timeout)
    except BaseException:
        sock.close()
        raise
    return sock, leftover


# --- redirects -----------------------------------------------------------------

#: Status codes of a handshake response that lomond follows to its Location.
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

# Location schemes a redirect may use: the HTTP ones name the same server.
_REDIRECT_SCHEMES = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}


def resolve_redirect(current: WebSocketURL, location: str) -> WebSocketURL:
    """Return the URL that a handshake response's ``Location`` points to.

    A relative ``Location`` is resolved against ``current`` (RFC 3986
    section 5), ``http://`` and ``https://`` stand for ``ws://`` and
    ``wss://``. The user-info of ``current`` is kept only when the new URL
    is on the same host (:func:`same_host`); a ``Location`` with its own
    user-info uses that. Raises :class:`~lomond.errors.HandshakeError` for
    a ``Location`` that cannot be used, or that would leave ``wss://`` for
    ``ws://``, because a downgrade would expose the connection.
    """
    location = location.strip()
    redacted_location = redact_url(location)[:200]

    # 1. Resolve against the current URL, written with its plain scheme.
    plain_scheme = current.scheme.replace("+unix", "")
    base = f"{plain_scheme}://{current.host_header}{current.resource}"
    try:
        parts = urlsplit(urljoin(base, location))
    except ValueError as error:
        raise HandshakeError(f"invalid redirect Location {redacted_location!r} ({error})") from None
    scheme = _REDIRECT_SCHEMES.get(parts.scheme.lower())
    if scheme is None:
        raise HandshakeError(
            f"invalid redirect Location {redacted_location!r}: the scheme must be ws, wss, http or https"
        )
    relative = not urlsplit(location).netloc

    # 2. A relative Location stays on the same connection target (the same
    # Unix socket, for one); an absolute one goes through parse_url's checks.
    if relative:
        resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        target = dataclasses.replace(current, resource=resource)
    else:
        rebuilt = parts._replace(scheme=scheme, fragment="").geturl()
        try:
            target = parse_url(rebuilt)
        except InvalidURL as error:
            raise HandshakeError(f"invalid redirect Location {redacted_location!r} ({error})") from None
        if target.username is None and same_host(current, target):
            target = dataclasses.replace(
                target, username=current.username, password=current.password
            )
        if current.unix_socket is not None and same_host(current, target):
            target = dataclasses.replace(target, unix_socket=current.unix_socket)

    # 3. Never downgrade from TLS.
    if current.secure and not target.secure:
        raise HandshakeError(
            f"refused the redirect from {current.safe_url} to {target.safe_url}:"
            " it would leave wss:// for ws://, without TLS"
        )
    return target


def same_host(first: WebSocketURL, second: WebSocketURL) -> bool:
    """Return whether credentials meant for ``first`` may be sent to ``second``.

    True for the same host and port, or for the same host moving from
    ``ws://`` on its default port to ``wss://`` on its default port.
    """
    if first.host.lower() != second.host.lower():
        return False
    if first.port == second.port:
        return True
    return first.default_port and second.default_port and second.secure and not first.secure
