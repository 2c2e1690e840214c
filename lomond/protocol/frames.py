"""Frame layout (RFC 6455 section 5.2): opcodes, building client frames, close payloads."""

from __future__ import annotations

import struct
from enum import IntEnum

from ..errors import InvalidPayload, ProtocolError
from ..status import Status, is_valid_close_code
from .mask import mask, mask_into

__all__ = [
    "Opcode",
    "CONTROL_OPCODES",
    "DATA_OPCODES",
    "build_frame",
    "build_close_payload",
    "parse_close_payload",
    "MAX_CONTROL_PAYLOAD",
]


class Opcode(IntEnum):
    """Frame opcodes (section 5.2); 3-7 and 11-15 are reserved."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


DATA_OPCODES = frozenset({Opcode.CONTINUATION, Opcode.TEXT, Opcode.BINARY})
CONTROL_OPCODES = frozenset({Opcode.CLOSE, Opcode.PING, Opcode.PONG})
KNOWN_OPCODES = frozenset(int(opcode) for opcode in Opcode)

# Section 5.5: control frames carry at most 125 bytes of payload.
MAX_CONTROL_PAYLOAD = 125

_FIN = 0x80
_RSV1 = 0x40
_MASK = 0x80

# From this payload size on, build_frame masks into one preallocated buffer
# and returns a bytearray (accepted wherever bytes are written).
_MASK_INTO_THRESHOLD = 64 * 1024

_pack_short = struct.Struct("!BBH").pack
_pack_long = struct.Struct("!BBQ").pack


def build_frame(
    opcode: int, payload: bytes, mask_key: bytes, *, fin: bool = True, rsv1: bool = False
) -> bytes | bytearray:
    """Return one masked client frame (a bytearray for payloads of 64 KiB or more).

    ``mask_key`` is 4 fresh random bytes (section 5.3 requires a new,
    unpredictable key for every frame); the caller supplies it so that the
    core owns no source of randomness and tests get exact bytes.
    """
    first = opcode | (_FIN if fin else 0) | (_RSV1 if rsv1 else 0)
    length = len(payload)
    if length < 126:
        header = bytes((first, _MASK | length))
    elif length < 0x10000:
        header = _pack_short(first, _MASK | 126, length)
    else:
        header = _pack_long(first, _MASK | 127, length)
    if length < _MASK_INTO_THRESHOLD:
        return header + mask_key + mask(mask_key, payload)
    # Large payloads are masked straight into the frame's buffer.
    offset = len(header) + 4
    frame = bytearray(offset + length)
    frame[: len(header)] = header
    frame[len(header) : offset] = mask_key
    mask_into(frame, offset, mask_key, payload)
    return frame


def build_close_payload(code: int | None, reason: str | bytes = b"") -> bytes:
    """Return the payload of a close frame: a 2-byte code and a UTF-8 reason.

    A code of None gives an empty payload (no status). Raises ValueError for
    a code that may not be sent (section 7.4), a reason that is not UTF-8 or
    a payload over 125 bytes.
    """
    if code is None:
        if reason:
            raise ValueError("a close reason needs a close code")
        return b""
    if not is_valid_close_code(code):
        raise ValueError(
            f"close code {code} may not be sent; use 1000-1003, 1007-1014 or 3000-4999"
        )
    if isinstance(reason, str):
        reason = reason.encode("utf-8")
    else:
        # Section 5.5.1: the reason is UTF-8, and a server fails the
        # connection with 1007 when it is not.
        try:
            reason.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"close reason {reason[:40]!r} is not valid UTF-8") from None
    payload = struct.pack("!H", code) + reason
    if len(payload) > MAX_CONTROL_PAYLOAD:
        raise ValueError(
            f"close reason is {len(reason)} bytes; at most"
            f" {MAX_CONTROL_PAYLOAD - 2} bytes fit in a close frame"
        )
    return payload


def parse_close_payload(payload: bytes) -> tuple[int, str]:
    """Return (code, reason) from a received close frame's payload (section 5.5.1).

    An empty payload gives (1005, ""), the code that stands for "no status".
    Raises ProtocolError for a 1-byte payload or a code not allowed on the
    wire, and InvalidPayload for a reason that is not UTF-8.
    """
    if not payload:
        return Status.NO_STATUS, ""
    if len(payload) == 1:
        raise ProtocolError("close frame payload is 1 byte; a close code needs 2")
    code = (payload[0] << 8) | payload[1]
    if not is_valid_close_code(code):
        raise ProtocolError(f"invalid close code {code} in close frame")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidPayload("close reason is not valid UTF-8") from None
    return code, reason
