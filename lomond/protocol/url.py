"""Parse and check WebSocket URLs (RFC 6455 section 3)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

from ..errors import InvalidURL

__all__ = ["WebSocketURL", "parse_url"]

_DEFAULT_PORTS = {"ws": 80, "wss": 443, "ws+unix": 80, "wss+unix": 443}

# Printable ASCII other than space: what a request-target may contain as is.
# Everything else is percent-encoded as UTF-8, as browsers do, because the
# request line is sent in latin-1 and cannot hold spaces or line breaks.
_REQUEST_TARGET_SAFE = "".join(chr(code) for code in range(0x21, 0x7F))


@dataclass(frozen=True)
class WebSocketURL:
    """A checked WebSocket URL, split into what the connection needs.

    ``resource`` is the path plus query string sent on the request line.
    ``username`` and ``password`` come from the URL's user-info and are
    never part of ``safe_url``, which is what logs, reprs and events show.
    ``unix_socket`` is the socket path of a ``ws+unix://`` URL.
    """

    scheme: str
    host: str
    port: int
    resource: str
    secure: bool
    username: str | None = None
    # Kept out of the repr, which logs and tracebacks may show.
    password: str | None = field(default=None, repr=False)
    unix_socket: str | None = None

    @property
    def default_port(self) -> bool:
        """Whether the port is the scheme's default (then ``Host`` omits it)."""
        return self.port == _DEFAULT_PORTS[self.scheme]

    @property
    def host_header(self) -> str:
        """The value of the ``Host`` request header (RFC 7230 section 5.4)."""
        host = self.host
        if ":" in host:
            # An IPv6 literal needs brackets, or its colons read as a port.
            host = f"[{host}]"
        if self.default_port:
            return host
        return f"{host}:{self.port}"

    @property
    def safe_url(self) -> str:
        """The URL without user-info, safe to log and show."""
        if self.unix_socket is not None:
            return f"{self.scheme}://{self.unix_socket}{self.resource}"
        return f"{self.scheme}://{self.host_header}{self.resource}"


def parse_url(url: str, unix_socket: str | None = None) -> WebSocketURL:
    """Parse ``url`` and raise :class:`~lomond.errors.InvalidURL` when it cannot be used.

    ``ws+unix:///path/to/socket`` (or ``unix_socket=``) connects to a Unix
    domain socket; the request then asks for ``/`` on host ``localhost``
    unless the URL says otherwise after the socket path's ``:`` separator
    (``ws+unix:///tmp/app.sock:/feed``).
    """
    if not isinstance(url, str):
        raise InvalidURL(f"the URL must be a str, not {type(url).__name__}")

    # 1. Scheme.
    try:
        parts = urlsplit(url.strip())
    except ValueError as error:
        raise InvalidURL(f"invalid URL {_redact(url)!r}: {error}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise InvalidURL(
            f"unsupported URL scheme {parts.scheme!r} in {_redact(url)!r};"
            " use ws:// or wss://"
        )
    secure = scheme.startswith("wss")
    query = f"?{parts.query}" if parts.query else ""

    # 2. Unix domain sockets: the path names the socket.
    if scheme.endswith("+unix"):
        socket_path, _, resource = parts.path.partition(":")
        socket_path = unix_socket or unquote(socket_path)
        if not socket_path:
            raise InvalidURL(f"missing socket path in {_redact(url)!r}")
        return WebSocketURL(
            scheme=scheme,
            host="localhost",
            port=_DEFAULT_PORTS[scheme],
            resource=_encode_resource((resource or "/") + query),
            secure=secure,
            unix_socket=socket_path,
        )

    # 3. Host and port.
    host = parts.hostname
    if not host:
        raise InvalidURL(f"missing host in {_redact(url)!r}")
    try:
        port = parts.port
    except ValueError:
        raise InvalidURL(
            f"invalid port in {_redact(url)!r}; the port must be 1 to 65535"
        ) from None
    if port is None:
        port = _DEFAULT_PORTS[scheme]
    elif port == 0:
        raise InvalidURL(f"invalid port 0 in {_redact(url)!r}")
    if ":" in host:
        try:
            host = ipaddress.IPv6Address(host.split("%")[0]).compressed
        except ValueError:
            raise InvalidURL(f"invalid IPv6 address {host!r}") from None
    if any(char in "/\\@" or char <= " " or char == "\x7f" for char in host):
        raise InvalidURL(f"invalid host {host!r}")
    if not host.isascii():
        # An internationalized name goes on the wire in its ASCII form.
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidURL(f"invalid host {host!r}: it cannot be encoded with IDNA") from None

    # RFC 6455 section 3: fragments have no meaning in WebSocket URLs, so a
    # "#..." part is dropped rather than sent.
    return WebSocketURL(
        scheme=scheme,
        host=host,
        port=port,
        resource=_encode_resource((parts.path or "/") + query),
        secure=secure,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        unix_socket=unix_socket,
    )


def _encode_resource(resource: str) -> str:
    """Percent-encode what may not appear on the request line; keep existing escapes."""
    return quote(resource, safe=_REQUEST_TARGET_SAFE)


def _redact(url: str) -> str:
    """Return ``url`` with any user-info replaced, for error messages.

    Everything before the last ``@`` is treated as user-info, even past a
    ``/``, ``?`` or ``#``, because an unencoded password may contain them.
    A path or query that contains ``@`` is then hidden as well.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        # No authority to find ("user:pass@host" without a scheme), so
        # everything before the last "@" is hidden.
        scheme, rest = "", url
    if "@" not in rest:
        return url
    return f"{scheme}{sep}***@{rest.rpartition('@')[2]}"


def redact_url(url: str) -> str:
    """Return ``url`` with its user-info (credentials) replaced by ``***``."""
    return _redact(url)
