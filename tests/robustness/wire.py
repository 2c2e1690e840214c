"""Byte-level helpers shared by the robustness tests and the fuzz harnesses.

They build a :class:`~lomond.protocol.connection.ClientConnection` that has
completed its opening handshake, and the bytes a server would send: frames
(valid or not), upgrade responses and raw-deflate payloads.
"""

from __future__ import annotations

import base64
import struct
import zlib

from lomond import events
from lomond.protocol.connection import ClientConnection, State
from lomond.protocol.deflate import DeflateOptions
from lomond.protocol.handshake import Handshake, accept_key
from lomond.protocol.url import parse_url

__all__ = [
    "KEY",
    "deflate_message",
    "feed_all",
    "new_connection",
    "open_connection",
    "server_frame",
    "upgrade_response",
]

# The Sec-WebSocket-Key bytes of every test handshake, so responses are exact.
KEY = bytes(range(16))
KEY_B64 = base64.b64encode(KEY)


def new_connection(
    *, deflate: DeflateOptions | None = None, max_message_size: int = 1 << 20, **options: object
) -> ClientConnection:
    """Return a connection in the CONNECTING state, with zero masks."""
    handshake = Handshake(parse_url("ws://example.com/chat"), KEY, agent="robustness", deflate=deflate)
    return ClientConnection(
        handshake,
        max_message_size=max_message_size,
        random_bytes=lambda size: bytes(size),
        **options,  # type: ignore[arg-type]
    )


def upgrade_response(extensions: str | None = None, extra: bytes = b"") -> bytes:
    """Return a valid 101 answer to the handshake of :func:`new_connection`."""
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Accept: " + accept_key(KEY_B64),
    ]
    if extensions is not None:
        lines.append("Sec-WebSocket-Extensions: " + extensions)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + extra


def open_connection(*, deflate: bool = False, **options: object) -> ClientConnection:
    """Return a connection in the OPEN state (with permessage-deflate agreed when ``deflate``)."""
    connection = new_connection(deflate=DeflateOptions() if deflate else None, **options)
    connection.receive(upgrade_response("permessage-deflate" if deflate else None))
    assert connection.state is State.OPEN
    assert (connection.deflate is not None) == deflate
    return connection


def server_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = None,
    length_form: int | None = None,
) -> bytes:
    """Return one frame as a server would send it; nothing is validated.

    ``rsv`` holds the three reserved bits (4 = RSV1), ``mask`` a key to mask
    with (servers must not), and ``length_form`` 7, 16 or 64 forces a
    length encoding (the default is the shortest).
    """
    first = (0x80 if fin else 0) | (rsv & 7) << 4 | (opcode & 0x0F)
    length = len(payload)
    if length_form is None:
        length_form = 7 if length < 126 else 16 if length < 0x10000 else 64
    mask_bit = 0x80 if mask is not None else 0
    if length_form == 7:
        header = bytes((first, mask_bit | min(length, 125)))
    elif length_form == 16:
        header = struct.pack("!BBH", first, mask_bit | 126, length & 0xFFFF)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, length)
    if mask is not None:
        payload = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
        header += mask
    return header + payload


def deflate_message(data: bytes, window_bits: int = 15) -> bytes:
    """Return ``data`` compressed as one permessage-deflate message (tail removed)."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -window_bits)
    compressed = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert compressed.endswith(b"\x00\x00\xff\xff")
    return compressed[:-4]


def feed_all(connection: ClientConnection, chunks: list[bytes]) -> list[events.Event]:
    """Feed every chunk, and report a pending failure as the session does; return the events."""
    received: list[events.Event] = []
    for chunk in chunks:
        received += connection.receive(chunk, 0.0)
        while connection.failure_pending:
            received += connection.receive(b"", 0.0)
        connection.data_to_send()
    return received

