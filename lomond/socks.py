"""Connect through a SOCKS4, SOCKS4a, SOCKS5 or SOCKS5h proxy with python-socks.

python-socks is an optional extra: ``pip install lomond[socks]``.

Which side resolves the WebSocket host name depends on the scheme:
``socks4://`` and ``socks5://`` resolve it here (through gevent's
resolver) and send the address, while ``socks4a://`` and ``socks5h://``
send the name for the proxy to resolve.

python-socks's synchronous client uses the standard library's blocking
socket module. Unless gevent has patched that module, the SOCKS handshake
runs in gevent's thread pool, so the other greenlets keep running.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from typing import Any

import gevent
from gevent import monkey
from gevent import socket as gsocket

from .errors import ConnectFail
from .proxy import ProxyURL, _authority

__all__ = ["SOCKS_SCHEMES", "socks_connect"]

log = logging.getLogger(__name__)

#: Proxy URL schemes handled here.
SOCKS_SCHEMES = ("socks4", "socks4a", "socks5", "socks5h")

MISSING_EXTRA_MESSAGE = (
    "SOCKS proxies need the python-socks package; install it with"
    " pip install lomond[socks]"
)


def socks_connect(proxy: ProxyURL, host: str, port: int, deadline: float, timeout: float) -> Any:
    """Open a connection to ``host``:``port`` through the SOCKS ``proxy``; return a gevent socket.

    ``deadline`` is the ``time.monotonic()`` value by which the whole
    connection must be open, and ``timeout`` the connect timeout it came
    from (for messages). Raises :class:`~lomond.errors.ConnectFail` with
    the reason, and names the ``socks`` extra when python-socks is missing.
    """
    try:
        import python_socks
        from python_socks.sync import Proxy
    except ImportError:
        raise ConnectFail(MISSING_EXTRA_MESSAGE) from None

    # 1. Resolve the host here for socks4:// and socks5://.
    remote_dns = proxy.scheme in ("socks4a", "socks5h")
    destination = host
    if not remote_dns:
        destination = _resolve(host, port, ipv4_only=proxy.scheme == "socks4", deadline=deadline)

    # 2. The SOCKS handshake.
    proxy_type = python_socks.ProxyType.SOCKS4 if proxy.scheme.startswith("socks4") else python_socks.ProxyType.SOCKS5
    client = Proxy(
        proxy_type,
        proxy.host,
        proxy.port,
        username=proxy.username,
        password=proxy.password,
        rdns=remote_dns,
    )

    def handshake() -> Any:
        return client.connect(destination, port, timeout=max(deadline - time.monotonic(), 0.001))

    try:
        raw = _run_blocking(handshake, deadline)
    except _DeadlinePassed:
        raise ConnectFail(
            f"SOCKS proxy {proxy.safe_url} did not open a connection to"
            f" {_authority(host, port)} within {timeout:g}s"
        ) from None
    except python_socks.ProxyTimeoutError:
        raise ConnectFail(
            f"SOCKS proxy {proxy.safe_url} did not respond within {timeout:g}s"
        ) from None
    except python_socks.ProxyConnectionError as error:
        raise ConnectFail(f"connection to SOCKS proxy {proxy.safe_url} failed ({error.strerror or error})") from None
    except python_socks.ProxyError as error:
        raise ConnectFail(_describe_rejection(proxy, host, port, error)) from None
    except OSError as error:
        raise ConnectFail(f"connection through SOCKS proxy {proxy.safe_url} failed ({error})") from None

    # 3. Hand the socket to gevent, so reads and writes are cooperative.
    sock = gsocket.socket(raw.family, raw.type, raw.proto, fileno=raw.detach())
    sock.setsockopt(gsocket.IPPROTO_TCP, gsocket.TCP_NODELAY, 1)
    log.debug("SOCKS proxy %s opened a connection to %s", proxy.safe_url, _authority(host, port))
    return sock


def _describe_rejection(proxy: ProxyURL, host: str, port: int, error: Exception) -> str:
    detail = str(error)
    if "authentication" in detail.lower():
        if proxy.username is None:
            return (
                f"SOCKS proxy {proxy.safe_url} requires authentication ({detail}); put the"
                f" user name and password in the proxy URL:"
                f" {proxy.scheme}://USER:PASSWORD@{proxy.authority}"
            )
        return (
            f"SOCKS proxy {proxy.safe_url} rejected the user name and password in the"
            f" proxy URL ({detail})"
        )
    return f"SOCKS proxy {proxy.safe_url} refused the connection to {_authority(host, port)} ({detail})"


def _resolve(host: str, port: int, ipv4_only: bool, deadline: float) -> str:
    """Return an address of ``host`` (IPv4 only for SOCKS4, which carries no other kind)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        if ipv4_only and address.version != 4:
            raise ConnectFail(f"SOCKS4 carries only IPv4 addresses, not {host}; use socks5://")
        return host
    family = gsocket.AF_INET if ipv4_only else gsocket.AF_UNSPEC
    try:
        with gevent.Timeout(max(deadline - time.monotonic(), 0.001), _DeadlinePassed):
            infos = gsocket.getaddrinfo(host, port, family, gsocket.SOCK_STREAM)
    except _DeadlinePassed:
        raise ConnectFail(f"resolving host {host!r} timed out") from None
    except gsocket.gaierror as error:
        raise ConnectFail(f"could not resolve host {host!r} ({error})") from None
    return str(infos[0][4][0])


class _DeadlinePassed(Exception):
    """Raised by this module's own timers, so that no other gevent.Timeout is caught."""


def _run_blocking(function: Any, deadline: float) -> Any:
    """Run ``function`` without blocking the hub; raise _DeadlinePassed at ``deadline``.

    An exception that ``function`` raises is re-raised here. In the thread
    pool, the call keeps running when the deadline passes or the waiting
    greenlet is killed, until its own socket timeout ends it. A socket it
    returns after that is closed.
    """
    if monkey.is_module_patched("socket"):
        # The standard library's socket is gevent's: the call is cooperative.
        with gevent.Timeout(max(deadline - time.monotonic(), 0.001), _DeadlinePassed):
            return function()
    result = gevent.get_hub().threadpool.spawn(_capture_outcome, function)
    try:
        result.wait(timeout=max(deadline - time.monotonic(), 0.001))
    except BaseException:
        # Killed, or stopped by a caller's timer, while the thread runs on.
        result.rawlink(_close_late_socket)
        raise
    if not result.ready():
        result.rawlink(_close_late_socket)
        raise _DeadlinePassed
    value, error = result.get()
    if error is not None:
        raise error
    return value


def _capture_outcome(function: Any) -> tuple[Any, Exception | None]:
    """Call ``function`` and return (value, None) or (None, exception).

    gevent's thread pool prints the traceback of an exception that escapes
    the thread, so the exception is returned instead of raised.
    """
    try:
        return function(), None
    except Exception as error:
        return None, error


def _close_late_socket(result: Any) -> None:
    if result.successful():
        sock, _ = result.value
        if sock is not None:
            sock.close()
