"""Open the transport under a WebSocket: DNS, TCP, proxies and TLS, on gevent.

Everything here uses gevent's cooperative socket, resolver and ssl modules
directly, so it works without monkey-patching and never blocks other
greenlets.
"""

from __future__ import annotations

import logging
import socket as _stdlib_socket
import ssl as _stdlib_ssl
from dataclasses import dataclass, field
from typing import Any

import certifi
import gevent
from gevent import socket as gsocket
from gevent import ssl as gssl

from .errors import ConnectFail
from .protocol.url import WebSocketURL

__all__ = ["TLSOptions", "Transport", "open_transport", "build_ssl_context", "describe_ssl_error"]

log = logging.getLogger(__name__)


@dataclass
class TLSOptions:
    """How to verify the server and identify the client over TLS.

    ``context`` is used exactly as given when set; the other fields then
    have no effect. Otherwise lomond builds a context that verifies the
    server against ``cafile`` (default: certifi's CA bundle), checks the
    host name, and requires TLS 1.2 or newer. ``verify=False`` turns
    verification off, explicitly.
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


def build_ssl_context(options: TLSOptions) -> _stdlib_ssl.SSLContext:
    """Return the SSL context for ``options`` (the given one, or a verifying default)."""
    if options.context is not None:
        return options.context
    context = gssl.SSLContext(gssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = gssl.TLSVersion.TLSv1_2
    if options.verify:
        context.load_verify_locations(cafile=options.cafile or certifi.where())
        context.check_hostname = True
        context.verify_mode = gssl.CERT_REQUIRED
    else:
        context.check_hostname = False
        context.verify_mode = gssl.CERT_NONE
    if options.certfile:
        context.load_cert_chain(options.certfile, options.keyfile)
    return context


def describe_ssl_error(error: BaseException, host: str) -> str:
    """Return a TLS failure in words a user can act on."""
    if isinstance(error, _stdlib_ssl.SSLCertVerificationError):
        detail = error.verify_message or str(error)
        code = error.verify_code
        if code == 10:
            return f"TLS certificate of {host} has expired ({detail})"
        if code in (2, 19, 20, 21):
            return (
                f"TLS certificate of {host} is signed by an unknown CA ({detail});"
                " pass ssl_cafile= with the CA bundle that signed it"
            )
        if code == 62 or "hostname" in detail.lower() or "ip address" in detail.lower():
            return f"TLS certificate does not match host {host} ({detail})"
        return f"TLS certificate of {host} failed verification ({detail})"
    return f"TLS handshake with {host} failed ({error})"


def _tcp_connect(host: str, port: int, timeout: float) -> Any:
    """Connect to ``host``:``port``, trying each resolved address in turn."""
    try:
        infos = gsocket.getaddrinfo(host, port, 0, gsocket.SOCK_STREAM)
    except gsocket.gaierror as error:
        raise ConnectFail(f"could not resolve host {host!r} ({error})") from None
    last_error: Exception | None = None
    for family, socktype, proto, _, address in infos:
        sock = gsocket.socket(family, socktype, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
        except OSError as error:
            sock.close()
            last_error = error
            log.debug("connect to %s failed: %s", address, error)
            continue
        sock.setsockopt(gsocket.IPPROTO_TCP, gsocket.TCP_NODELAY, 1)
        return sock
    if isinstance(last_error, (_stdlib_socket.timeout, TimeoutError)):
        raise ConnectFail(f"connection to {host}:{port} timed out after {timeout:g}s")
    raise ConnectFail(f"connection to {host}:{port} failed ({last_error})")


def _unix_connect(path: str, timeout: float) -> Any:
    sock = gsocket.socket(gsocket.AF_UNIX, gsocket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
    except OSError as error:
        sock.close()
        raise ConnectFail(f"connection to Unix socket {path!r} failed ({error})") from None
    return sock


def wrap_tls(sock: Any, url: WebSocketURL, tls: TLSOptions, timeout: float) -> Any:
    """Run the TLS handshake on ``sock`` and return the TLS socket."""
    context = build_ssl_context(tls)
    server_hostname = tls.server_hostname or url.host
    try:
        tls_sock = gssl.SSLSocket(
            sock=sock,
            server_side=False,
            server_hostname=server_hostname,
            do_handshake_on_connect=False,
            _context=context,
        )
        tls_sock.settimeout(timeout)
        tls_sock.do_handshake()
    except _stdlib_ssl.SSLError as error:
        sock.close()
        raise ConnectFail(describe_ssl_error(error, server_hostname)) from None
    except (OSError, gevent.Timeout) as error:
        sock.close()
        raise ConnectFail(f"TLS handshake with {server_hostname} failed ({error})") from None
    return tls_sock


def open_transport(url: WebSocketURL, tls: TLSOptions, connect_timeout: float) -> Transport:
    """Connect to the server of ``url`` (and run TLS for wss://).

    Raises :class:`~lomond.errors.ConnectFail` with the reason on any failure.
    """
    if url.unix_socket is not None:
        sock = _unix_connect(url.unix_socket, connect_timeout)
    else:
        sock = _tcp_connect(url.host, url.port, connect_timeout)
    if url.secure:
        sock = wrap_tls(sock, url, tls, connect_timeout)
    return Transport(sock=sock)
