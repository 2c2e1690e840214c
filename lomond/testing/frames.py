"""Build and parse WebSocket frames byte by byte (RFC 6455 section 5.2).

The kit sends well-formed frames through wsproto. This module exists for
what wsproto will not produce: reserved bits, reserved opcodes, masked
server frames, oversized or fragmented control frames, lengths in a longer
form than needed, and close payloads with invalid codes or reasons. It also
parses what the client sends, so that the transcript can record each
frame's mask bit and reserved bits as they were on the wire.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass, field

__all__ = [
    "OP_CONTINUATION",
    "OP_TEXT",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_PING",
    "OP_PONG",
    "CONTROL_OPCODES",
    "OPCODE_NAMES",
    "Frame",
    "FrameParser",
    "build_frame",
    "build_close_payload",
    "mask_payload",
    "is_valid_close_code",
]

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

CONTROL_OPCODES = frozenset([OP_CLOSE, OP_PING, OP_PONG])

OPCODE_NAMES = {
    OP_CONTINUATION: "continuation",
    OP_TEXT: "text",
    OP_BINARY: "binary",
    OP_CLOSE: "close",
    OP_PING: "ping",
    OP_PONG: "pong",
}

# Length forms of RFC 6455 section 5.2: "7" fits 0-125 in the first length
# byte, "16" uses the 126 marker and two bytes, "64" the 127 marker and eight.
LENGTH_FORMS = ("7", "16", "64")

# The tail that permessage-deflate strips from each compressed message
# (RFC 7692 section 7.2.1), appended again before inflating.
_DEFLATE_TAIL = b"\x00\x00\xff\xff"


# Close codes that an endpoint may send (RFC 6455 section 7.4 and the IANA
# registry): 1000-1003, 1007-1014, and 3000-4999. Everything else, including
# 1005, 1006 and 1015, which only stand for local conditions, is invalid.
VALID_CLOSE_RANGES = ((1000, 1003), (1007, 1014), (3000, 4999))


def is_valid_close_code(code: int) -> bool:
    """Return whether ``code`` may appear in a close frame."""
    return any(low <= code <= high for low, high in VALID_CLOSE_RANGES)


def mask_payload(payload: bytes, mask: bytes) -> bytes:
    """Return ``payload`` XORed with the 4-byte ``mask`` (RFC 6455 section 5.3)."""
    if not payload:
        return b""
    repeated = (mask * (len(payload) // 4 + 1))[: len(payload)]
    value = int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")
    return value.to_bytes(len(payload), "big")


def build_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv1: bool = False,
    rsv2: bool = False,
    rsv3: bool = False,
    mask: bytes | bool = False,
    length: int | None = None,
    length_form: str | None = None,
) -> bytes:
    """Build one frame, valid or not.

    ``mask`` is False (server frames are unmasked), True for a random key, or
    a 4-byte key. ``length`` writes a length other than the payload's, and
    ``length_form`` ("7", "16" or "64") forces a length encoding even where
    RFC 6455 section 5.2 requires the shortest one. Nothing is validated, so
    ``opcode`` may be reserved and a control frame may be long or unfinished.
    """
    if not 0 <= opcode <= 0xF:
        raise ValueError(f"opcode must fit in 4 bits, not {opcode}")

    # First byte: FIN, RSV1-3 and the opcode.
    first = opcode
    for flag, bit in ((fin, 0x80), (rsv1, 0x40), (rsv2, 0x20), (rsv3, 0x10)):
        if flag:
            first |= bit

    # Second byte and extended length, in the requested or shortest form.
    declared = len(payload) if length is None else length
    if length_form is None:
        if declared < 126:
            length_form = "7"
        elif declared < 0x10000:
            length_form = "16"
        else:
            length_form = "64"
    if length_form not in LENGTH_FORMS:
        raise ValueError(f"length_form must be one of {LENGTH_FORMS}, not {length_form!r}")
    mask_bit = 0x80 if mask is not False else 0
    if length_form == "7":
        if declared > 125:
            raise ValueError(f"length {declared} does not fit the 7-bit form")
        header = struct.pack("!BB", first, mask_bit | declared)
    elif length_form == "16":
        header = struct.pack("!BBH", first, mask_bit | 126, declared)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, declared)

    # Masking key and payload.
    if mask is False:
        return header + payload
    key = os.urandom(4) if mask is True else bytes(mask)
    if len(key) != 4:
        raise ValueError(f"a masking key has 4 bytes, not {len(key)}")
    return header + key + mask_payload(payload, key)


def build_close_payload(code: int | None = 1000, reason: str | bytes = b"") -> bytes:
    """Build a close frame's payload from any code, valid or not.

    ``reason`` may be bytes that are not UTF-8. With ``code`` None the
    payload is empty, or only the reason bytes when a reason is given (which
    no valid peer sends).
    """
    reason_bytes = reason.encode("utf-8") if isinstance(reason, str) else bytes(reason)
    if code is None:
        return reason_bytes
    return struct.pack("!H", code) + reason_bytes


@dataclass
class Frame:
    """One frame as received: header bits, unmasked payload and arrival time."""

    opcode: int
    fin: bool
    rsv1: bool
    rsv2: bool
    rsv3: bool
    masked: bool
    payload: bytes
    time: float = 0.0

    @property
    def kind(self) -> str:
        """The opcode's name, such as "text" or "ping", or "reserved-0x3"."""
        return OPCODE_NAMES.get(self.opcode, f"reserved-{self.opcode:#x}")

    @property
    def is_control(self) -> bool:
        return self.opcode >= 0x8


@dataclass
class FrameParser:
    """Split a byte stream into :class:`Frame` objects, without judging them.

    The parser only records: it accepts unmasked frames, reserved bits and
    reserved opcodes, so that the transcript shows exactly what a client
    sent. Validation is wsproto's job. ``max_frame`` bounds the memory one
    frame may take; a longer frame raises ValueError.
    """

    max_frame: int = 64 * 1024 * 1024
    _buffer: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes, now: float = 0.0) -> list[Frame]:
        """Add received bytes and return the frames now complete."""
        self._buffer += data
        frames: list[Frame] = []
        while True:
            frame = self._parse_one(now)
            if frame is None:
                return frames
            frames.append(frame)

    def _parse_one(self, now: float) -> Frame | None:
        """Return the first complete frame in the buffer, or None until more bytes arrive."""
        # Header: two bytes, then a 16- or 64-bit length when marked 126 or 127.
        buffer = self._buffer
        if len(buffer) < 2:
            return None
        first, second = buffer[0], buffer[1]
        length = second & 0x7F
        offset = 2
        if length == 126:
            if len(buffer) < 4:
                return None
            (length,) = struct.unpack_from("!H", buffer, 2)
            offset = 4
        elif length == 127:
            if len(buffer) < 10:
                return None
            (length,) = struct.unpack_from("!Q", buffer, 2)
            offset = 10
        if length > self.max_frame:
            raise ValueError(f"frame of {length} bytes is over the {self.max_frame} byte limit")

        # Masking key, then the payload once all of it has arrived.
        masked = bool(second & 0x80)
        key = b""
        if masked:
            if len(buffer) < offset + 4:
                return None
            key = bytes(buffer[offset : offset + 4])
            offset += 4
        if len(buffer) < offset + length:
            return None
        payload = bytes(buffer[offset : offset + length])
        del buffer[: offset + length]
        if masked:
            payload = mask_payload(payload, key)

        return Frame(
            opcode=first & 0x0F,
            fin=bool(first & 0x80),
            rsv1=bool(first & 0x40),
            rsv2=bool(first & 0x20),
            rsv3=bool(first & 0x10),
            masked=masked,
            payload=payload,
            time=now,
        )


class Inflater:
    """Decompress permessage-deflate messages (RFC 7692 section 7.2.2).

    With ``no_context_takeover`` each message starts a fresh window, as the
    client promised; otherwise the window carries over between messages.
    """

    def __init__(self, no_context_takeover: bool = False, max_size: int = 64 * 1024 * 1024):
        self.no_context_takeover = no_context_takeover
        self.max_size = max_size
        self._decompressor = zlib.decompressobj(-zlib.MAX_WBITS)

    def inflate(self, data: bytes) -> bytes:
        """Return the uncompressed message for a compressed payload."""
        if self.no_context_takeover:
            self._decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
        result = self._decompressor.decompress(data + _DEFLATE_TAIL, self.max_size)
        if self._decompressor.unconsumed_tail:
            raise ValueError(f"message inflates to more than {self.max_size} bytes")
        return result
