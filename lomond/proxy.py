"""Choose a proxy for a WebSocket URL, and tunnel through an HTTP proxy with CONNECT.

A proxy comes from the ``proxies`` argument when it is not None: lomond
0.3's ``{"http": url, "https": url}``, with optional ``ws``, ``wss`` and
``no_proxy`` keys. Otherwise it comes from the environment. ``wss://`` URLs
read ``wss_proxy`` then ``https_proxy``, and ``ws://`` URLs read
``ws_proxy`` then ``http_proxy``, each in lower case first and then in
upper case. ``no_proxy`` lists the hosts that bypass the proxy.

HTTP and HTTPS proxies are driven here (RFC 9110 section 9.3.6, CONNECT);
SOCKS proxies are in :mod:`lomond.socks`.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import re
import socket as _stdlib_socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from .errors import ConnectFail, InvalidURL
from .protocol.url import WebSocketURL, redact_url

__all__ = [
    "PROXY_SCHEMES",
    "ProxyURL",
    "parse_proxy_url",
    "select_proxy",
    "bypass_proxy",
    "connect_tunnel",
]

log = logging.getLogger(__name__)

#: Proxy URL schemes and their default ports. An ``http://`` proxy without a
#: port is on port 80 and an ``https://`` one on 443, as in urllib3; SOCKS
#: proxies default to 1080, the port IANA assigned to SOCKS.
PROXY_SCHEMES = {
    "http": 80,
    "https": 443,
    "socks4": 1080,
    "socks4a": 1080,
    "socks5": 1080,
    "socks5h": 1080,
}

#: Maximum size in bytes of the header block of a proxy's response to
#: CONNECT. Real responses are well under 1 KiB, and the limit bounds what a
#: broken proxy can make lomond buffer.
MAX_PROXY_HEADER_SIZE = 64 * 1024

# Bytes requested per read of the proxy's response. Bytes past the header
# block are handed on to TLS or the WebSocket, never dropped.
_READ_SIZE = 4096

_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([0-9]{3})(?: ([^\r\n]*))?")

# Environment variables, in the order they are read, for each kind of URL.
_ENVIRONMENT_KEYS = {
    True: ("wss_proxy", "https_proxy"),
    False: ("ws_proxy", "http_proxy"),
}

# Keys of the ``proxies`` mapping, in the order they are read.
_MAPPING_KEYS = {
    True: ("wss", "https"),
    False: ("ws", "http"),
}


@dataclass(frozen=True)
class ProxyURL:
    """A checked proxy URL; ``safe_url`` leaves out the credentials."""

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @property
    def authority(self) -> str:
        """``host:port``, with an IPv6 address in brackets."""
        return _authority(self.host, self.port)

    @property
    def safe_url(self) -> str:
        """The proxy URL without user-info, safe to log and show."""
        return f"{self.scheme}://{self.authority}"

    def __repr__(self) -> str:
        # The dataclass repr would show the password.
        return f"ProxyURL({self.safe_url!r})"


def parse_proxy_url(url: str) -> ProxyURL:
    """Parse a proxy URL; a URL without a scheme (``host:3128``) is an HTTP proxy.

    Raises :class:`~lomond.errors.InvalidURL` for an unsupported scheme, a
    missing host, an invalid port, or user-info with an unencoded ``/``,
    ``?`` or ``#``. Messages never contain the user-info.
    """
    text = url.strip()
    if "://" not in text:
        text = "http://" + text

    # urlsplit ends the authority at the first "/", "?" or "#", so an
    # unencoded one in the password would make part of the password the
    # host or the port. Such a URL is rejected, not guessed at.
    rest = text.partition("://")[2]
    user_info, at, _ = rest.rpartition("@")
    if at and any(char in user_info for char in "/?#"):
        raise InvalidURL(
            f"invalid proxy URL {redact_url(text)!r}: '/', '?' or '#' comes before the"
            " last '@'; percent-encode them in the user name and password"
            " (%2F, %3F, %23)"
        )
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as error:
        # Some urlsplit errors quote the whole authority, user-info included.
        detail = str(error).replace(user_info, "***") if user_info else str(error)
        raise InvalidURL(f"invalid proxy URL {redact_url(text)!r} ({detail})") from None
    scheme = parts.scheme.lower()
    if scheme not in PROXY_SCHEMES:
        raise InvalidURL(
            f"unsupported proxy scheme {parts.scheme!r} in {redact_url(text)!r};"
            f" use one of {', '.join(PROXY_SCHEMES)}"
        )
    host = parts.hostname
    if not host:
        raise InvalidURL(f"missing host in proxy URL {redact_url(text)!r}")
    if port == 0:
        raise InvalidURL(f"invalid port 0 in proxy URL {redact_url(text)!r}")
    return ProxyURL(
        scheme=scheme,
        host=host,
        port=port or PROXY_SCHEMES[scheme],
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


# --- choosing a proxy --------------------------------------------------------


def select_proxy(
    url: WebSocketURL,
    proxies: Mapping[str, str | None] | None,
    environ: Mapping[str, str] | None = None,
) -> str | None:
    """Return the proxy URL to reach ``url`` through, or None to connect directly.

    ``proxies`` is the WebSocket's argument: None reads the environment
    (``environ``, by default ``os.environ``), and ``{}`` means no proxy.
    A Unix domain socket never goes through a proxy.
    """
    if url.unix_socket is not None:
        return None
    if proxies is None:
        if environ is None:
            import os

            environ = os.environ
        proxy = _proxy_from_environment(environ, url.secure)
        no_proxy = _environment_value(environ, "no_proxy")
    else:
        proxy = None
        for key in _MAPPING_KEYS[url.secure]:
            proxy = proxies.get(key)
            if proxy:
                break
        no_proxy = proxies.get("no_proxy")
    if not proxy or not proxy.strip():
        return None
    if no_proxy and bypass_proxy(url.host, url.port, no_proxy):
        log.debug("%s bypasses the proxy (no_proxy)", url.safe_url)
        return None
    return proxy.strip()


def _proxy_from_environment(environ: Mapping[str, str], secure: bool) -> str | None:
    for key in _ENVIRONMENT_KEYS[secure]:
        value = _environment_value(environ, key)
        if value:
            return value
    return None


def _environment_value(environ: Mapping[str, str], key: str) -> str | None:
    """Read ``key`` in lower case, then in upper case.

    Under CGI (``REQUEST_METHOD`` set), ``HTTP_PROXY`` can be set by a
    client's ``Proxy:`` request header (the "httpoxy" flaw), so it is
    ignored there, as Python's urllib does.
    """
    value = environ.get(key)
    if value:
        return value
    upper = key.upper()
    if upper == "HTTP_PROXY" and "REQUEST_METHOD" in environ:
        return None
    return environ.get(upper) or None


def bypass_proxy(host: str, port: int, no_proxy: str) -> bool:
    """Return whether ``no_proxy`` lists ``host``:``port``, so the proxy is skipped.

    ``no_proxy`` is a list separated by commas or spaces. Each entry is one of:

    - ``*``, which matches every host;
    - a host name, which matches that host and its subdomains
      (``example.com``, ``.example.com`` and ``*.example.com`` all match
      ``example.com`` and ``ws.example.com``);
    - an IP address or a CIDR range (``10.0.0.0/8``, ``fd00::/8``), which
      matches a URL whose host is an IP address inside it (host names
      are not resolved for this);
    - any of the above with ``:port`` (``[::1]:8080`` for IPv6), which
      then matches that port only.
    """
    host = host.lower().rstrip(".")
    try:
        host_address: Any = ipaddress.ip_address(host)
    except ValueError:
        host_address = None

    for entry in re.split(r"[\s,]+", no_proxy.strip().lower()):
        if not entry:
            continue
        if entry == "*":
            return True
        split = _split_entry(entry)
        if split is None:
            log.debug("ignoring invalid no_proxy entry %r", entry)
            continue
        entry_host, entry_port = split
        if entry_port is not None and entry_port != port:
            continue

        # 1. IP addresses and CIDR ranges.
        if host_address is not None:
            try:
                network = ipaddress.ip_network(entry_host, strict=False)
            except ValueError:
                pass
            else:
                if host_address in network:
                    return True
                continue

        # 2. Host names and domain suffixes.
        name = entry_host.lstrip("*").lstrip(".").rstrip(".")
        if name and (host == name or host.endswith("." + name)):
            return True
    return False


def _split_entry(entry: str) -> tuple[str, int | None] | None:
    """Split a no_proxy entry into host and port; return None when the port is invalid."""
    if entry.startswith("["):
        host, bracket, rest = entry[1:].partition("]")
        if not bracket:
            return None
        if not rest:
            return host, None
        if not rest.startswith(":"):
            return None
        port_text = rest[1:]
    elif entry.count(":") == 1:
        host, _, port_text = entry.partition(":")
    else:
        # No colon, or an IPv6 address or range without brackets.
        return entry, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return None
    return host, int(port_text)


# --- HTTP CONNECT ------------------------------------------------------------


def connect_tunnel(
    sock: Any, proxy: ProxyURL, host: str, port: int, deadline: float, timeout: float
) -> bytes:
    """Ask the HTTP proxy on ``sock`` for a tunnel to ``host``:``port``.

    Returns the bytes that followed the proxy's header block, because they
    are the start of the tunnelled stream. Raises
    :class:`~lomond.errors.ConnectFail` when the proxy rejects the request
    (407, 403 or any status other than 2xx), sends an invalid response,
    closes the connection, or does not respond before ``deadline``, a
    ``time.monotonic()`` value. ``timeout`` is the whole connect timeout,
    for messages. The caller closes ``sock`` on failure.
    """
    # 1. The request. RFC 9110 section 9.3.6: the target is host:port, and
    # the Host header repeats it.
    target = _authority(host, port)
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
    if proxy.username is not None:
        credentials = f"{proxy.username}:{proxy.password or ''}".encode()
        lines.append("Proxy-Authorization: Basic " + base64.b64encode(credentials).decode())
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    try:
        sock.settimeout(max(deadline - time.monotonic(), 0.0))
        sock.sendall(request)
    except (_stdlib_socket.timeout, TimeoutError):
        raise ConnectFail(
            f"sending CONNECT to proxy {proxy.safe_url} timed out after {timeout:g}s"
        ) from None
    except OSError as error:
        raise ConnectFail(f"sending CONNECT to proxy {proxy.safe_url} failed ({error})") from None

    # 2. The response's header block, and any bytes after it.
    header, leftover = _read_response(sock, proxy, deadline, timeout)

    # 3. The status: any 2xx opens the tunnel (RFC 9110 section 9.3.6).
    status_line, _, header_lines = header.partition(b"\r\n")
    match = _STATUS_LINE.fullmatch(status_line)
    if match is None:
        raise ConnectFail(
            f"proxy {proxy.safe_url} sent an invalid response to CONNECT:"
            f" {status_line[:60]!r}"
        )
    status = int(match.group(1))
    reason = (match.group(2) or b"").decode("latin-1").strip()
    if 200 <= status < 300:
        log.debug("proxy %s opened a tunnel to %s", proxy.safe_url, target)
        return leftover
    raise ConnectFail(_describe_rejection(proxy, target, port, status, reason, header_lines))


def _read_response(sock: Any, proxy: ProxyURL, deadline: float, timeout: float) -> tuple[bytes, bytes]:
    """Read until the end of the header block; return (header block, bytes after it)."""
    buffer = bytearray()
    while len(buffer) <= MAX_PROXY_HEADER_SIZE:
        remaining = deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise TimeoutError
            sock.settimeout(remaining)
            data = sock.recv(_READ_SIZE)
        except (_stdlib_socket.timeout, TimeoutError):
            raise ConnectFail(
                f"proxy {proxy.safe_url} did not respond to CONNECT within {timeout:g}s"
            ) from None
        except OSError as error:
            raise ConnectFail(
                f"reading the response of proxy {proxy.safe_url} failed ({error})"
            ) from None
        if not data:
            where = "in the middle of its response" if buffer else "without responding"
            raise ConnectFail(f"proxy {proxy.safe_url} closed the connection {where} to CONNECT")

        # CRLF CRLF may straddle two reads, so search a little before the new data.
        start = max(0, len(buffer) - 3)
        buffer += data
        end = buffer.find(b"\r\n\r\n", start)
        if end != -1:
            return bytes(buffer[:end]), bytes(buffer[end + 4 :])
        if len(buffer) >= 5 and not buffer.startswith(b"HTTP/"):
            raise ConnectFail(
                f"proxy {proxy.safe_url} sent an invalid response to CONNECT: {bytes(buffer[:60])!r}"
            )
    raise ConnectFail(
        f"proxy {proxy.safe_url} sent a response to CONNECT with a header block"
        f" larger than {MAX_PROXY_HEADER_SIZE} bytes"
    )


def _describe_rejection(
    proxy: ProxyURL, target: str, port: int, status: int, reason: str, header_lines: bytes
) -> str:
    """Return the message for a proxy that responded to CONNECT with ``status``."""
    status_text = f"{status} {reason}".strip()
    if status == 407:
        challenge = _header_value(header_lines, b"proxy-authenticate")
        scheme = challenge.split(" ", 1)[0] if challenge else "Basic"
        if scheme.lower() != "basic":
            return (
                f"proxy {proxy.safe_url} requires {scheme} authentication ({status_text});"
                " lomond sends only Basic authentication"
            )
        if proxy.username is None:
            return (
                f"proxy {proxy.safe_url} requires authentication ({status_text}); put the"
                f" user name and password in the proxy URL:"
                f" {proxy.scheme}://USER:PASSWORD@{proxy.authority}"
            )
        return (
            f"proxy {proxy.safe_url} rejected the user name and password in the"
            f" proxy URL ({status_text})"
        )
    if status == 403:
        return (
            f"proxy {proxy.safe_url} refused to open a tunnel to {target} ({status_text});"
            f" check that its access rules allow CONNECT to port {port}"
        )
    return f"proxy {proxy.safe_url} responded to CONNECT {target} with {status_text}"


def _header_value(header_lines: bytes, name: bytes) -> str | None:
    for line in header_lines.split(b"\r\n"):
        key, colon, value = line.partition(b":")
        if colon and key.strip().lower() == name:
            return value.strip().decode("latin-1")
    return None


def _authority(host: str, port: int) -> str:
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"
