"""The opening handshake (RFC 6455 section 4): build the request, check the response."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import HandshakeError, InvalidHeader
from .extensions import parse_extensions
from .response import Response
from .url import WebSocketURL

if TYPE_CHECKING:
    from .deflate import DeflateOptions, PerMessageDeflate

__all__ = ["Handshake", "accept_key", "check_header", "HandshakeResult"]

# RFC 6455 section 1.3: the GUID appended to the key before hashing.
_ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
WS_VERSION = "13"

# Headers that the handshake itself sets; a user header with one of these
# names would make the request ambiguous.
_RESERVED_HEADERS = frozenset(
    {
        "host",
        "upgrade",
        "connection",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
    }
)

# Characters allowed in an HTTP header name (RFC 7230 section 3.2.6 "tchar").
_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


def accept_key(key: bytes) -> str:
    """Return the ``Sec-WebSocket-Accept`` value that matches ``key`` (section 4.2.2)."""
    digest = hashlib.sha1(key + _ACCEPT_GUID).digest()
    return base64.b64encode(digest).decode("ascii")


def check_header(name: str | bytes, value: str | bytes) -> tuple[str, str]:
    """Check one request header and return it as (str, str).

    Raises :class:`~lomond.errors.InvalidHeader` for a name that is not an
    HTTP token or a value containing CR, LF or NUL, which could otherwise
    inject headers into the request.
    """
    if isinstance(name, bytes):
        name = name.decode("latin-1")
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(name, str) or not isinstance(value, str):
        raise InvalidHeader("header names and values must be str or bytes")
    if not name or not set(name) <= _TOKEN_CHARS:
        raise InvalidHeader(f"invalid header name {name!r}: use letters, digits and -")
    if "\r" in value or "\n" in value or "\0" in value:
        raise InvalidHeader(
            f"invalid value for header {name!r}: it contains CR, LF or NUL"
        )
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise InvalidHeader(
            f"invalid value for header {name!r}: the request is latin-1;"
            " pass other text encoded as bytes"
        ) from None
    return name, value


@dataclass
class HandshakeResult:
    """The subprotocol and extensions agreed in a valid 101 response."""

    protocol: str | None
    extensions: set[str]
    deflate: PerMessageDeflate | None


class Handshake:
    """The client side of one opening handshake.

    ``key`` is the 16 random bytes of ``Sec-WebSocket-Key`` before base64;
    the caller passes it in so that the core owns no source of randomness.
    """

    def __init__(
        self,
        url: WebSocketURL,
        key: bytes,
        *,
        agent: str,
        origin: str | None = None,
        protocols: Sequence[str] = (),
        deflate: DeflateOptions | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        if len(key) != 16:
            raise ValueError(f"the handshake key must be 16 bytes, not {len(key)}")
        self.url = url
        self.key = base64.b64encode(key)
        # User-Agent and Origin go through the same checks as extra headers,
        # so that CR or LF cannot inject a header through them either.
        self.agent = check_header("User-Agent", agent)[1]
        self.origin = check_header("Origin", origin)[1] if origin is not None else None
        self.protocols = list(protocols)
        for protocol in self.protocols:
            if not protocol or not set(protocol) <= _TOKEN_CHARS:
                raise InvalidHeader(f"invalid subprotocol name {protocol!r}")
        self.deflate = deflate
        self.headers = [check_header(name, value) for name, value in headers]
        for name, _ in self.headers:
            if name.lower() in _RESERVED_HEADERS:
                raise InvalidHeader(
                    f"header {name!r} is set by the handshake and cannot be added"
                )

    def request(self) -> bytes:
        """Return the bytes of the GET request; send them, then feed the response."""
        lines = [
            f"GET {self.url.resource} HTTP/1.1",
            f"Host: {self.url.host_header}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {self.key.decode('ascii')}",
            f"Sec-WebSocket-Version: {WS_VERSION}",
            f"User-Agent: {self.agent}",
        ]
        if self.origin:
            lines.append(f"Origin: {self.origin}")
        if self.protocols:
            lines.append(f"Sec-WebSocket-Protocol: {', '.join(self.protocols)}")
        if self.deflate is not None:
            lines.append(f"Sec-WebSocket-Extensions: {self.deflate.offer()}")
        for name, value in self.headers:
            if name.lower() == "user-agent":
                lines[6] = f"User-Agent: {value}"
            else:
                lines.append(f"{name}: {value}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def check(self, response: Response) -> HandshakeResult:
        """Check the server's response (section 4.2.2) and return what was agreed.

        Raises :class:`~lomond.errors.HandshakeError` with the reason when
        the response is not a valid upgrade. The caller reports it as a
        Rejected event and closes the socket.
        """
        # 1. Status 101.
        if response.status_code != 101:
            raise HandshakeError(
                f"the server responded {f'{response.status_code} {response.status}'.strip()}"
                " instead of 101 Switching Protocols"
            )

        # 2. Upgrade and Connection tokens, matched case-insensitively.
        upgrade = [token.lower() for token in response.get_list("upgrade")]
        if "websocket" not in upgrade:
            raise HandshakeError(
                f"invalid Upgrade header {response.get('upgrade')!r}; expected 'websocket'"
            )
        connection = [token.lower() for token in response.get_list("connection")]
        if "upgrade" not in connection:
            raise HandshakeError(
                f"invalid Connection header {response.get('connection')!r};"
                " expected 'Upgrade'"
            )

        # 3. Sec-WebSocket-Accept proves the server read our key.
        accept = response.get("sec-websocket-accept")
        if accept is None:
            raise HandshakeError("missing Sec-WebSocket-Accept header")
        if accept.strip() != accept_key(self.key):
            raise HandshakeError(f"wrong Sec-WebSocket-Accept value {accept!r}")

        # 4. A subprotocol must be one that we offered.
        protocol = response.get("sec-websocket-protocol")
        if protocol is not None:
            protocol = protocol.strip()
            if protocol not in self.protocols:
                raise HandshakeError(
                    f"the server chose subprotocol {protocol!r}, which the client"
                    f" did not offer (offered: {self.protocols or 'none'})"
                )

        # 5. Extensions must be ones that we offered.
        entries = parse_extensions(
            [value for name, value in response.header_list if name == "sec-websocket-extensions"]
        )
        for name, _ in entries:
            if name != "permessage-deflate" or self.deflate is None:
                raise HandshakeError(
                    f"the server accepted extension {name!r}, which the client did not offer"
                )
        deflate = None
        if self.deflate is not None:
            from .deflate import PerMessageDeflate

            deflate = PerMessageDeflate.from_response(self.deflate, entries)
        extensions = {"permessage-deflate"} if deflate is not None else set()
        return HandshakeResult(protocol=protocol, extensions=extensions, deflate=deflate)
