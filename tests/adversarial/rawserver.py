"""A raw TCP server for adversarial tests: it reads the upgrade request and
then runs a function that writes whatever bytes the test wants."""

from __future__ import annotations

import base64
import hashlib
import struct
import zlib
from collections.abc import Callable
from typing import Any

import gevent
from gevent.server import StreamServer

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def read_request(sock: Any, limit: int = 65536) -> bytes:
    """Read until the blank line that ends the request headers."""
    data = b""
    while b"\r\n\r\n" not in data and len(data) < limit:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def accept_response(request: bytes, extra: bytes = b"") -> bytes:
    """Build a valid 101 response for ``request``, with extra header lines."""
    key = b""
    for line in request.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            key = value.strip()
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
        + accept
        + b"\r\n"
        + extra
        + b"\r\n"
    )


def frame(
    opcode: int, payload: bytes = b"", fin: bool = True, rsv1: bool = False
) -> bytes:
    """Build one unmasked server frame."""
    first = opcode
    if fin:
        first |= 0x80
    if rsv1:
        first |= 0x40
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", first, length)
    elif length < 65536:
        header = struct.pack("!BBH", first, 126, length)
    else:
        header = struct.pack("!BBQ", first, 127, length)
    return header + payload


def deflate(data: bytes) -> bytes:
    """Compress ``data`` as one permessage-deflate message (trailer removed)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return body[:-4]


class RawServer:
    """Serve each connection with ``handler(sock)`` on an ephemeral loopback port."""

    def __init__(self, handler: Callable[[Any], None]) -> None:
        self.handler = handler
        self.connections: list[Any] = []
        self.server = StreamServer(("127.0.0.1", 0), self._handle)

    def _handle(self, sock: Any, address: Any) -> None:
        self.connections.append(sock)
        try:
            self.handler(sock)
        except OSError:
            pass

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.server_port}/"

    def __enter__(self) -> RawServer:  # noqa: PYI034
        self.server.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.stop(timeout=1)
        for sock in self.connections:
            sock.close()
        gevent.sleep(0)
