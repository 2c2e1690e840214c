"""The permessage-deflate extension (RFC 7692), client side.

Three steps use this module:

1. The handshake sends ``DeflateOptions.offer()`` as the value of the
   Sec-WebSocket-Extensions request header.
2. It parses the response header with
   :func:`lomond.protocol.extensions.parse_extensions` and passes the
   permessage-deflate entries to :meth:`PerMessageDeflate.from_response`,
   which checks them against the offer (RFC 7692 section 7.1) and returns
   the agreed extension, or None when the server declined it.
3. The connection calls :meth:`PerMessageDeflate.compress` for each
   outgoing message that it sends with RSV1 set, and
   :meth:`PerMessageDeflate.decompress` for each frame of an incoming
   message whose first frame had RSV1 set.

Checking RSV1 itself is the frame layer's job: RFC 7692 section 6.1 allows
RSV1 only on the first frame of a data message.

This module is pure: it uses only :mod:`zlib` and holds no socket, clock or
logger. One :class:`PerMessageDeflate` belongs to one connection and is not
thread-safe, so the caller serializes its ``compress`` calls.
"""

from __future__ import annotations

import sys
import zlib
from dataclasses import dataclass

from lomond.errors import HandshakeError, PayloadTooLarge, ProtocolError, UsageError
from lomond.protocol.extensions import Extension, ExtensionParams

__all__ = [
    "EXTENSION_NAME",
    "DEFAULT_COMPRESS_LEVEL",
    "DEFAULT_MEM_LEVEL",
    "DEFAULT_THRESHOLD",
    "DeflateOptions",
    "PerMessageDeflate",
]

EXTENSION_NAME = "permessage-deflate"

# Parameter names (RFC 7692 section 7.1).
SERVER_NO_CONTEXT_TAKEOVER = "server_no_context_takeover"
CLIENT_NO_CONTEXT_TAKEOVER = "client_no_context_takeover"
SERVER_MAX_WINDOW_BITS = "server_max_window_bits"
CLIENT_MAX_WINDOW_BITS = "client_max_window_bits"
_KNOWN_PARAMS = (
    SERVER_NO_CONTEXT_TAKEOVER,
    CLIENT_NO_CONTEXT_TAKEOVER,
    SERVER_MAX_WINDOW_BITS,
    CLIENT_MAX_WINDOW_BITS,
)

# LZ77 window sizes, as base-2 logarithms (RFC 7692 section 7.1.2).
MIN_WINDOW_BITS = 8
MAX_WINDOW_BITS = 15
# RFC 7692 section 7.1.2.1: "a decimal integer value without leading zeroes".
_WINDOW_BITS_VALUES = {str(bits): bits for bits in range(MIN_WINDOW_BITS, MAX_WINDOW_BITS + 1)}

# zlib 1.2.9 and later reject a raw deflate stream with an 8-bit window
# (zlib.compressobj raises "Invalid initialization option"), so the
# compressor uses 9 bits where 8 was agreed. Its output still fits a 256-byte
# window: zlib never emits a match distance above the window size minus 262
# bytes (MAX_DIST in deflate.h), which is 250 bytes for a 512-byte window.
# test_deflate.py checks this by inflating with an 8-bit window.
_MIN_COMPRESSOR_WINDOW_BITS = 9

# Defaults chosen with benchmarks/deflate_params.py: 5000 JSON messages
# (1.5 MB, median 138 bytes) through one connection with a 15-bit window and
# context takeover, on a 2-core Xeon VM with Python 3.11.7 and zlib 1.2.13.
#
# compress_level 3: compressing the feed and sending the result took 472 ms
# on a 10 Mbit/s link and 74 ms on a 100 Mbit/s link. The best level was
# within 4% of that on each link (level 5: 457 ms, level 2: 71 ms), and no
# other level came as close on both. Level 3 ran at 52 MB/s and saved 64.3%
# of the bytes. Level 6 (zlib's default) saved 67.4% at 26 MB/s, and level 1
# saved 61.2% at 64 MB/s.
#
# mem_level 8: the fastest and smallest output at every level. Its cost is
# memory, since the compressor uses 262 KiB at 15 bits. mem_level 6 uses
# 166 KiB for 8% less throughput at level 3 and saves 0.1 point less.
#
# threshold 0: thresholds of 16 to 64 bytes changed throughput by 2% or
# less, within the noise between runs, and sent up to 2.1% more bytes with
# context takeover (0.1% fewer without it). 128 bytes sent 7% more bytes.
DEFAULT_COMPRESS_LEVEL = 3
DEFAULT_MEM_LEVEL = 8
DEFAULT_THRESHOLD = 0

# The last four octets of an empty stored block, which ends every sync flush.
# The sender removes them from each message (RFC 7692 section 7.2.1), and the
# receiver appends them again before it inflates (section 7.2.2).
_EMPTY_BLOCK_TAIL = b"\x00\x00\xff\xff"

# Bytes that may follow a block with BFINAL set, up to the end of the message,
# once the receiver has appended _EMPTY_BLOCK_TAIL. b"" means the final block
# used up the tail. b"\x00" + tail is RFC 7692 section 7.2.3.4: the sender
# appended an empty stored block after the final one and removed four octets.
_FINAL_BLOCK_TRAILERS = (b"", _EMPTY_BLOCK_TAIL, b"\x00" + _EMPTY_BLOCK_TAIL)
_MAX_TRAILER_SIZE = max(len(trailer) for trailer in _FINAL_BLOCK_TRAILERS)

# Close code for compressed data that does not inflate. RFC 6455 section
# 7.4.1 reserves 1007 for "data within a message that was not consistent with
# the type of the message": the frames are well formed, but the payload is
# not the DEFLATE data that RSV1 announces. wsproto 1.3.2 sends 1007 here too;
# websockets 17.4 sends 1002.
CORRUPT_DATA_CLOSE_CODE = 1007


def _check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    """Return ``value`` when it is an int from ``low`` to ``high``, else raise UsageError."""
    allowed = f"from {low} to {high}" if high is not None else f"of {low} or more"
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        raise UsageError(f"{name} must be an integer {allowed}, got {value!r}")
    return value


def _check_window_bits(name: str, value: object) -> int | None:
    if value is None:
        return None
    return _check_int(name, value, MIN_WINDOW_BITS, MAX_WINDOW_BITS)


def _check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise UsageError(f"{name} must be True or False, got {value!r}")
    return value


@dataclass(frozen=True, kw_only=True)
class DeflateOptions:
    """What the client offers for permessage-deflate, and how it compresses.

    ``client_max_window_bits`` (8 to 15, default 15) is the LZ77 window of
    the client's compressor. 15 is offered as the bare parameter, which lets
    the server pick any smaller window. A smaller value is offered with its
    value, and the server may only lower it further (RFC 7692 section
    7.1.2.2). None leaves the parameter out of the offer, for servers that
    reject it: the client then compresses with a 15-bit window that the
    server cannot lower.

    ``server_max_window_bits`` (8 to 15, default None) requests that the
    server compress with at most that window, which shrinks the client's
    inflate window to ``2 ** bits`` bytes. A server that does not support the
    parameter declines permessage-deflate. None leaves it out of the offer.

    ``server_no_context_takeover`` requests that the server compress each
    message on its own, so the client keeps no inflate state between messages.
    ``client_no_context_takeover`` makes the client compress each message on
    its own and free its compressor between messages.

    ``compress_level`` (0 to 9) and ``mem_level`` (1 to 9) are passed to
    :func:`zlib.compressobj`. ``threshold`` (bytes, 0 or more) is the
    payload size below which messages are sent uncompressed.

    Memory per connection, from the zlib documentation: the compressor holds
    ``2 ** (window_bits + 2) + 2 ** (mem_level + 9)`` bytes (256 KiB with
    the defaults) and the decompressor about ``2 ** window_bits + 7168``
    bytes (39 KiB). Each no-context-takeover flag frees the matching state
    between messages. Many connections that send compressed messages
    therefore do well with ``client_no_context_takeover=True`` or a smaller
    ``mem_level`` and ``client_max_window_bits``.

    Invalid values raise :class:`~lomond.errors.UsageError`.
    """

    client_max_window_bits: int | None = MAX_WINDOW_BITS
    server_max_window_bits: int | None = None
    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    compress_level: int = DEFAULT_COMPRESS_LEVEL
    mem_level: int = DEFAULT_MEM_LEVEL
    threshold: int = DEFAULT_THRESHOLD

    def __post_init__(self) -> None:
        _check_window_bits("client_max_window_bits", self.client_max_window_bits)
        _check_window_bits("server_max_window_bits", self.server_max_window_bits)
        _check_bool("server_no_context_takeover", self.server_no_context_takeover)
        _check_bool("client_no_context_takeover", self.client_no_context_takeover)
        _check_int("compress_level", self.compress_level, 0, 9)
        _check_int("mem_level", self.mem_level, 1, 9)
        _check_int("threshold", self.threshold, 0)

    def offer(self) -> str:
        """Return the Sec-WebSocket-Extensions header value that offers these options."""
        parts = [EXTENSION_NAME]
        if self.server_no_context_takeover:
            parts.append(SERVER_NO_CONTEXT_TAKEOVER)
        if self.client_no_context_takeover:
            parts.append(CLIENT_NO_CONTEXT_TAKEOVER)
        if self.server_max_window_bits is not None:
            parts.append(f"{SERVER_MAX_WINDOW_BITS}={self.server_max_window_bits}")
        if self.client_max_window_bits == MAX_WINDOW_BITS:
            parts.append(CLIENT_MAX_WINDOW_BITS)
        elif self.client_max_window_bits is not None:
            parts.append(f"{CLIENT_MAX_WINDOW_BITS}={self.client_max_window_bits}")
        return "; ".join(parts)


@dataclass
class _ResponseParams:
    """The permessage-deflate parameters of a server response, checked one by one."""

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int | None = None
    client_max_window_bits: int | None = None


def _read_response_params(params: ExtensionParams) -> _ResponseParams:
    """Check each parameter of the response on its own (RFC 7692 section 7.1)."""
    response = _ResponseParams()
    seen: set[str] = set()
    for name, value in params:
        if name not in _KNOWN_PARAMS:
            raise _negotiation_error(f"unknown parameter {name!r}")
        if name in seen:
            raise _negotiation_error(f"parameter {name!r} appears more than once")
        seen.add(name)

        # RFC 7692 sections 7.1.1.1 and 7.1.1.2: the flags have no value.
        if name in (SERVER_NO_CONTEXT_TAKEOVER, CLIENT_NO_CONTEXT_TAKEOVER):
            if value is not None:
                raise _negotiation_error(f"{name} must have no value, got {value!r}")
            setattr(response, name, True)
            continue

        # RFC 7692 sections 7.1.2.1 and 7.1.2.2: a response always gives the
        # window size as a decimal from 8 to 15 without leading zeros.
        bits = _WINDOW_BITS_VALUES.get(value) if value is not None else None
        if bits is None:
            raise _negotiation_error(
                f"{name} must have a value from {MIN_WINDOW_BITS} to {MAX_WINDOW_BITS}"
                f" without leading zeros, got {value!r}"
            )
        setattr(response, name, bits)
    return response


def _negotiation_error(problem: str) -> HandshakeError:
    return HandshakeError(f"invalid permessage-deflate response: {problem}")


class PerMessageDeflate:
    """The permessage-deflate state of one connection, after the handshake agreed it.

    ``params`` is the agreed configuration as a JSON-friendly dict with all
    four RFC 7692 parameters. Window sizes that neither side limited are 15.
    ``threshold`` is the payload size, in bytes, below which the caller
    sends a message uncompressed (without RSV1).
    """

    def __init__(
        self,
        *,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: int = MAX_WINDOW_BITS,
        client_max_window_bits: int = MAX_WINDOW_BITS,
        compress_level: int = DEFAULT_COMPRESS_LEVEL,
        mem_level: int = DEFAULT_MEM_LEVEL,
        threshold: int = DEFAULT_THRESHOLD,
    ) -> None:
        # Agreed parameters (RFC 7692 section 7.1).
        self.server_no_context_takeover = _check_bool(
            "server_no_context_takeover", server_no_context_takeover
        )
        self.client_no_context_takeover = _check_bool(
            "client_no_context_takeover", client_no_context_takeover
        )
        self.server_max_window_bits = _check_int(
            "server_max_window_bits", server_max_window_bits, MIN_WINDOW_BITS, MAX_WINDOW_BITS
        )
        self.client_max_window_bits = _check_int(
            "client_max_window_bits", client_max_window_bits, MIN_WINDOW_BITS, MAX_WINDOW_BITS
        )

        # Local compression settings.
        self.compress_level = _check_int("compress_level", compress_level, 0, 9)
        self.mem_level = _check_int("mem_level", mem_level, 1, 9)
        self.threshold = _check_int("threshold", threshold, 0)
        self._compressor_window_bits = max(
            self.client_max_window_bits, _MIN_COMPRESSOR_WINDOW_BITS
        )

        # zlib objects are created on first use and dropped between messages
        # when their side has no context takeover, so that an idle
        # connection keeps no zlib memory for them.
        self._compressor: zlib._Compress | None = None
        self._decompressor: zlib._Decompress | None = None
        # State of the incoming message being decompressed.
        self._message_size = 0
        self._final_block_trailer: bytearray | None = None

    @property
    def params(self) -> dict[str, bool | int]:
        return {
            SERVER_NO_CONTEXT_TAKEOVER: self.server_no_context_takeover,
            CLIENT_NO_CONTEXT_TAKEOVER: self.client_no_context_takeover,
            SERVER_MAX_WINDOW_BITS: self.server_max_window_bits,
            CLIENT_MAX_WINDOW_BITS: self.client_max_window_bits,
        }

    def __repr__(self) -> str:
        agreed = ", ".join(f"{name}={value!r}" for name, value in self.params.items())
        return f"PerMessageDeflate({agreed})"

    @classmethod
    def from_response(
        cls, options: DeflateOptions, extensions: list[Extension]
    ) -> PerMessageDeflate | None:
        """Check the server's permessage-deflate response against ``options``.

        ``extensions`` contains the permessage-deflate entries of the parsed
        Sec-WebSocket-Extensions response header. Returns None when it is
        empty, because the server declined the offer. Otherwise returns the
        agreed extension, ready for :meth:`compress` and :meth:`decompress`.

        Raises HandshakeError when the answer breaks RFC 7692 section 7.1,
        so that the client fails the connection as that section requires.
        """
        if not extensions:
            return None

        # RFC 7692 section 5: two accepted extensions cannot both use RSV1,
        # and the client offered permessage-deflate once.
        if len(extensions) > 1:
            raise _negotiation_error(
                f"the server accepted {EXTENSION_NAME} {len(extensions)} times,"
                " but the client offered it once"
            )
        name, params = extensions[0]
        if name != EXTENSION_NAME:
            raise HandshakeError(f"the server accepted extension {name!r}, which was not offered")
        response = _read_response_params(params)

        # server_no_context_takeover (RFC 7692 section 7.1.1.1): the server
        # accepts the client's request by echoing it, and may add it unasked.
        if options.server_no_context_takeover and not response.server_no_context_takeover:
            raise _negotiation_error(
                f"{SERVER_NO_CONTEXT_TAKEOVER} is missing, but the client offered it"
            )

        # client_no_context_takeover (RFC 7692 section 7.1.1.2): the server
        # may add it unasked. When the client offered it, the client resets
        # its compressor whether or not the response contains it.
        client_no_context_takeover = (
            options.client_no_context_takeover or response.client_no_context_takeover
        )

        # server_max_window_bits (RFC 7692 section 7.1.2.1): a server accepts
        # an offered limit by responding with "the same or smaller value",
        # and may set a limit that the client did not offer.
        server_max_window_bits = response.server_max_window_bits
        offered_server_bits = options.server_max_window_bits
        if offered_server_bits is not None:
            if server_max_window_bits is None:
                raise _negotiation_error(
                    f"{SERVER_MAX_WINDOW_BITS} is missing, but the client offered"
                    f" {SERVER_MAX_WINDOW_BITS}={offered_server_bits}"
                )
            if server_max_window_bits > offered_server_bits:
                raise _negotiation_error(
                    f"{SERVER_MAX_WINDOW_BITS}={server_max_window_bits} is larger than"
                    f" the {offered_server_bits} that the client offered"
                )

        # client_max_window_bits (RFC 7692 section 7.1.2.2): the server may
        # send it only when offered, with a value no larger than the offered one.
        client_max_window_bits = response.client_max_window_bits
        offered_client_bits = options.client_max_window_bits
        if client_max_window_bits is not None:
            if offered_client_bits is None:
                raise _negotiation_error(
                    f"{CLIENT_MAX_WINDOW_BITS}={client_max_window_bits} is present,"
                    " but the client did not offer it"
                )
            if client_max_window_bits > offered_client_bits:
                raise _negotiation_error(
                    f"{CLIENT_MAX_WINDOW_BITS}={client_max_window_bits} is larger than"
                    f" the {offered_client_bits} that the client offered"
                )

        return cls(
            server_no_context_takeover=response.server_no_context_takeover,
            client_no_context_takeover=client_no_context_takeover,
            server_max_window_bits=server_max_window_bits or MAX_WINDOW_BITS,
            client_max_window_bits=(
                client_max_window_bits or offered_client_bits or MAX_WINDOW_BITS
            ),
            compress_level=options.compress_level,
            mem_level=options.mem_level,
            threshold=options.threshold,
        )

    # --- sending -----------------------------------------------------------

    def compress(self, payload: bytes | bytearray | memoryview) -> bytes:
        """Compress the whole payload of one outgoing message (RFC 7692 section 7.2.1).

        The caller sends the result as the message payload with RSV1 set on
        the first frame, whether in one frame or split into several. The
        trailing ``00 00 ff ff`` is already removed. Compressing is always
        done, so the caller compares the payload size with ``threshold``
        first.
        """
        compressor = self._compressor
        if compressor is None:
            compressor = zlib.compressobj(
                self.compress_level,
                zlib.DEFLATED,
                -self._compressor_window_bits,
                self.mem_level,
            )
        data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)

        # Without context takeover the next message starts from an empty
        # window, so the compressor is dropped rather than kept while idle.
        if self.client_no_context_takeover:
            self._compressor = None
        else:
            self._compressor = compressor

        # A sync flush always ends with an empty stored block, which ends
        # with _EMPTY_BLOCK_TAIL. An empty payload compresses to b"\x00".
        return data[: -len(_EMPTY_BLOCK_TAIL)]

    # --- receiving ---------------------------------------------------------

    def decompress(
        self, payload: bytes | bytearray | memoryview, fin: bool, max_size: int | None
    ) -> bytes:
        """Decompress one frame's payload of a compressed incoming message.

        Call this for each frame of the message in order, the first frame
        being the one with RSV1 set, and pass ``fin=True`` for the last one.
        Returns the decompressed bytes of this frame, which may be empty.

        ``max_size`` limits the decompressed size of the whole message, in
        bytes; 0 or None means no limit. Decompression stops as soon as the
        message passes it, so the memory that a highly compressed payload
        costs grows with ``max_size`` (about twice it at peak), not with its
        decompressed size.

        Raises PayloadTooLarge (close code 1009) past ``max_size``, and
        ProtocolError with close code 1007 when the payload is not valid
        compressed data. After either error this object must not be used
        again, because the connection is failed.
        """
        if max_size is not None and max_size < 0:
            raise UsageError(f"max_size must be 0 or more, got {max_size}")
        limit = max_size or 0

        try:
            # RFC 7692 section 7.2.2: append the removed tail to the message.
            output = self._inflate(payload, limit)
            if fin:
                rest = self._inflate(_EMPTY_BLOCK_TAIL, limit)
                if rest:
                    output += rest
                self._finish_message()
        except zlib.error as exc:
            self._drop_decompressor()
            raise ProtocolError(
                f"invalid compressed data in message: {exc}",
                close_code=CORRUPT_DATA_CLOSE_CODE,
            ) from exc
        except ProtocolError:
            self._drop_decompressor()
            raise
        return output

    def _inflate(self, data: bytes | bytearray | memoryview, limit: int) -> bytes:
        """Inflate ``data``, stopping once the message size passes ``limit`` (0: no limit)."""
        # After a block with BFINAL set, the DEFLATE stream has ended and
        # only the trailer may follow until the end of the message.
        if self._final_block_trailer is not None:
            self._add_to_trailer(data)
            return b""

        decompressor = self._decompressor
        if decompressor is None:
            decompressor = self._decompressor = zlib.decompressobj(
                -self.server_max_window_bits
            )

        # Ask zlib for one byte more than the limit allows: getting it proves
        # that the message is too large, without inflating the rest.
        max_length = min(limit - self._message_size + 1, sys.maxsize) if limit else 0
        output = decompressor.decompress(data, max_length)
        self._message_size += len(output)
        if limit and self._message_size > limit:
            raise PayloadTooLarge(
                f"decompressed message is larger than the limit of {limit} bytes"
                " (max_message_size)"
            )

        if decompressor.eof:
            self._final_block_trailer = bytearray()
            self._add_to_trailer(decompressor.unused_data)
        return output

    def _add_to_trailer(self, data: bytes | bytearray | memoryview) -> None:
        trailer = self._final_block_trailer
        assert trailer is not None
        trailer += data
        if len(trailer) > _MAX_TRAILER_SIZE:
            raise ProtocolError(
                f"{len(trailer)} bytes or more follow the final DEFLATE block of a message",
                close_code=CORRUPT_DATA_CLOSE_CODE,
            )

    def _finish_message(self) -> None:
        trailer = self._final_block_trailer
        if trailer is not None:
            if bytes(trailer) not in _FINAL_BLOCK_TRAILERS:
                raise ProtocolError(
                    f"unexpected bytes {bytes(trailer).hex(' ')} after the final"
                    " DEFLATE block of a message",
                    close_code=CORRUPT_DATA_CLOSE_CODE,
                )
            # A block with BFINAL set ends the DEFLATE stream, so the next
            # message needs a new decompressor.
            # NOTE: the new decompressor starts with an empty window. A peer
            # that ends messages with BFINAL and still refers back to earlier
            # messages fails with close code 1007, because Python's zlib
            # module cannot read the old decompressor's window.
            self._drop_decompressor()
        elif self.server_no_context_takeover:
            # RFC 7692 section 7.2.2: without context takeover the receiver
            # may start each message with an empty window.
            self._drop_decompressor()
        self._message_size = 0

    def _drop_decompressor(self) -> None:
        self._decompressor = None
        self._final_block_trailer = None
        self._message_size = 0
