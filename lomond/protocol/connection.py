"""The client side of one WebSocket connection, without I/O.

Calling contract (the same for every caller):

1. send :meth:`ClientConnection.request` to the server;
2. for each chunk read from the socket, call :meth:`~ClientConnection.receive`
   and handle the events it returns, then write
   :meth:`~ClientConnection.data_to_send` (automatic pongs and close frames).
   When :attr:`~ClientConnection.failure_pending` is True, a protocol error
   follows those events: call ``receive(b"")`` to get it, and write
   :meth:`~ClientConnection.data_to_send` again (the close frame);
3. at end of stream, call :meth:`~ClientConnection.receive_eof`;
4. ``send_*`` and :meth:`~ClientConnection.close` return the bytes of the
   frame to write; the caller writes them in the order it got them;
5. when :attr:`~ClientConnection.should_drop` becomes True, the caller
   writes what is pending and closes the TCP connection.

The core reads no clock: ``now`` arguments are the caller's wall-clock time
(``time.time()``), stamped on events and used for ping round-trip times.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Callable
from enum import IntEnum
from typing import TYPE_CHECKING

from .. import events
from ..errors import (
    HandshakeError,
    InvalidPayload,
    PayloadTooLarge,
    PeerError,
    ProtocolError,
    WebSocketClosed,
    WebSocketClosing,
    WebSocketUnavailable,
)
from ..status import Status
from .frames import (
    KNOWN_OPCODES,
    MAX_CONTROL_PAYLOAD,
    Opcode,
    build_close_payload,
    build_frame,
    parse_close_payload,
)
from .handshake import Handshake
from .response import MAX_HEADER_SIZE, Response, ResponseReader

if TYPE_CHECKING:
    from .deflate import PerMessageDeflate

__all__ = [
    "ClientConnection",
    "State",
    "MAX_MESSAGE_SIZE",
    "MAX_FRAME_SIZE",
]

#: Default limit on a reassembled (and decompressed) message: 16 MiB. Big
#: enough for bulk transfers over WebSocket, small enough that a hostile
#: server cannot make one connection hold gigabytes.
MAX_MESSAGE_SIZE = 16 * 1024 * 1024

#: Default limit on one frame's payload; a message may span many frames.
MAX_FRAME_SIZE = MAX_MESSAGE_SIZE

#: A rejected handshake keeps at most this much of the response body.
MAX_REJECTED_BODY = 16 * 1024

#: A data frame with a payload of at least this many bytes is read by exact
#: sizes (see :meth:`ClientConnection.read_size`).
LARGE_PAYLOAD = 256 * 1024

#: An exact read requests at most this many bytes, so that an announced
#: frame does not make one read allocate more than this.
MAX_EXACT_READ = 4 * 1024 * 1024

# Pieces of a message shorter than this are merged as they arrive, in
# groups of _MERGE_COUNT, so that a server trickling bytes one read at a
# time costs little more memory than the bytes themselves.
_SMALL_PIECE = 4096
_MERGE_COUNT = 256

_utf8_decoder = codecs.getincrementaldecoder("utf-8")


class _Pieces:
    """The pieces of one message or frame, joined once when it is complete.

    A message that arrives as one piece is returned as that object, without
    a copy.
    """

    __slots__ = ("parts", "small")

    def __init__(self) -> None:
        self.parts: list[bytes | str] = []
        self.small: list[bytes | str] = []

    def add(self, piece: bytes | str) -> None:
        if len(piece) >= _SMALL_PIECE:
            if self.small:
                self._merge()
            self.parts.append(piece)
        elif piece:
            self.small.append(piece)
            if len(self.small) >= _MERGE_COUNT:
                self._merge()

    def _merge(self) -> None:
        small, self.small = self.small, []
        self.parts.append(small[0][:0].join(small))  # type: ignore[arg-type]

    def join_bytes(self) -> bytes:
        if self.small:
            self._merge()
        return b"".join(self.parts)  # type: ignore[arg-type]

    def join_text(self) -> str:
        if self.small:
            self._merge()
        return "".join(self.parts)  # type: ignore[arg-type]


class State(IntEnum):
    """Connection states, named as in RFC 6455 section 4 and 7."""

    CONNECTING = 0  # request sent, waiting for the 101 response
    OPEN = 1  # handshake done: messages flow both ways
    CLOSING = 2  # this side sent a close frame and waits for the server's
    CLOSED = 3  # both close frames exchanged, or the connection failed


class ClientConnection:
    """The client's protocol state for one connection (RFC 6455 and RFC 7692).

    ``random_bytes`` supplies frame masks (4 bytes each); tests pass a fixed
    source to get exact bytes. ``max_message_size`` and ``max_frame_size``
    limit what the server may send (0 means no limit); a message or frame
    over its limit fails the connection with close code 1009.
    """

    def __init__(
        self,
        handshake: Handshake,
        *,
        max_message_size: int = MAX_MESSAGE_SIZE,
        max_frame_size: int = MAX_FRAME_SIZE,
        max_header_size: int = MAX_HEADER_SIZE,
        auto_pong: bool = True,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.handshake = handshake
        self.max_message_size = max_message_size or 0
        self.max_frame_size = max_frame_size or 0
        self.auto_pong = auto_pong
        self.random_bytes = random_bytes
        self.state = State.CONNECTING
        #: The server's response while it is being checked, and after a
        #: rejected handshake; None once the connection is open.
        self.response: Response | None = None
        self.protocol: str | None = None
        self.extensions: set[str] = set()
        self.deflate: PerMessageDeflate | None = None

        #: True once the caller must close the TCP connection (after a
        #: protocol error or a rejected handshake).
        self.should_drop = False
        #: The close code and reason this side sent, and those received.
        self.close_sent: tuple[int, str] | None = None
        self.close_received: tuple[int, str] | None = None
        #: Why the connection failed, when it did.
        self.failure: str | None = None

        self._reader: ResponseReader | None = ResponseReader(max_header_size)
        self._outgoing: list[bytes | bytearray] = []
        self._ping_payload: bytes | None = None
        # A protocol error found after other events in the same receive().
        self._deferred_failure: PeerError | None = None
        self._ping_time = 0.0

        # A frame header (or a whole control frame) split across reads.
        self._buffer = b""
        # The data frame whose payload is still arriving.
        self._frame_remaining = 0
        self._frame_fin = False
        self._frame_chunks: _Pieces | None = None
        # True while the frames are large: reads then take exact sizes.
        self._large = False
        # The message being reassembled (None when between messages).
        self._message_opcode: int | None = None
        self._message_compressed = False
        self._message_size = 0
        self._message_parts: _Pieces | None = None
        self._decoder: codecs.IncrementalDecoder | None = None

    # --- handshake ---------------------------------------------------------

    def request(self) -> bytes:
        """Return the opening handshake request; write it, then feed the response to :meth:`receive`."""
        return self.handshake.request()

    def _receive_handshake(self, data: bytes, now: float, out: list[events.Event]) -> bytes:
        """Feed handshake bytes; return the bytes that follow the header block."""
        assert self._reader is not None
        try:
            result = self._reader.feed(data)
        except HandshakeError as error:
            self._fail_handshake(None, str(error), now, out)
            return b""
        if result is None:
            return b""
        response, extra = result
        self._reader = None
        self.response = response
        try:
            agreed = self.handshake.check(response)
        except HandshakeError as error:
            response.body = extra[:MAX_REJECTED_BODY]
            self._fail_handshake(response, str(error), now, out)
            return b""
        self.protocol = agreed.protocol
        self.extensions = agreed.extensions
        self.deflate = agreed.deflate
        self.state = State.OPEN
        compression = self.deflate.params if self.deflate is not None else None
        out.append(events.Ready(response, self.protocol, self.extensions, compression, now))
        # The Ready event carries the response; the connection lets it go,
        # so that an idle connection does not keep the headers.
        self.response = None
        return extra

    def _fail_handshake(
        self, response: Response | None, reason: str, now: float, out: list[events.Event]
    ) -> None:
        self.state = State.CLOSED
        self.should_drop = True
        self.failure = reason
        out.append(events.Rejected(response, reason, now))

    # --- receiving ---------------------------------------------------------

    def receive(self, data: bytes, now: float = 0.0) -> list[events.Event]:
        """Feed bytes read from the socket and return the events they complete.

        Afterwards write :meth:`data_to_send`, and close the socket when
        :attr:`should_drop` is True. When :attr:`failure_pending` is True,
        call ``receive(b"")`` after handling the events. Bytes received
        after the connection closed or failed are ignored.
        """
        out: list[events.Event] = []
        if self.state is State.CONNECTING:
            # Only a valid response returns bytes: the frames that followed it.
            data = self._receive_handshake(data, now, out)
            if not data:
                return out
        if self._deferred_failure is not None:
            error, self._deferred_failure = self._deferred_failure, None
            self.fail(error, now, out)
            return out
        if self.close_received is not None or self.should_drop:
            return out
        try:
            self._receive_frames(data, now, out)
        except PeerError as error:
            if out:
                # The frames before the bad one were valid: the caller
                # handles their events (and may answer them) while the
                # connection is still open, and the next receive() call
                # fails it.
                self._deferred_failure = error
            else:
                self.fail(error, now, out)
        return out

    @property
    def failure_pending(self) -> bool:
        """True when a protocol error follows the events just returned.

        The caller handles those events, then calls ``receive(b"")``,
        which returns the ProtocolError event and queues the close frame.
        """
        return self._deferred_failure is not None

    def receive_eof(self) -> None:
        """Record that the server closed the TCP connection; the session then reports Disconnected."""
        self.state = State.CLOSED
        self.should_drop = True

    def _receive_frames(self, data: bytes, now: float, out: list[events.Event]) -> None:
        """Parse every complete frame in the buffered bytes plus ``data``."""
        if self._buffer:
            data = self._buffer + data
            self._buffer = b""
        size = len(data)
        pos = 0

        # 1. Finish the data frame whose payload was still arriving.
        if self._frame_remaining:
            take = min(self._frame_remaining, size)
            self._frame_remaining -= take
            self._data_piece(data[:take] if take < size else data, now, out)
            pos = take

        # 2. Whole frames, and the start of the last one.
        max_frame = self.max_frame_size
        append = out.append
        Text = events.Text
        Binary = events.Binary
        # Frames of up to 125 bytes may skip the size checks when no limit
        # is that small.
        small_ok = (not max_frame or max_frame >= 125) and (
            not self.max_message_size or self.max_message_size >= 125
        )
        while pos < size:
            if size - pos < 2:
                self._buffer = data[pos:]
                return
            first = data[pos]
            second = data[pos + 1]

            # Fastest path: a whole, final, unmasked text or binary frame of
            # up to 125 bytes that starts a message. Measured as the hot
            # spot of small-message feeds; keep it first and free of calls.
            if second < 126 and (first == 0x81 or first == 0x82) and small_ok:
                end = pos + 2 + second
                if end <= size and self._message_opcode is None:
                    if first == 0x81:
                        try:
                            append(Text(data[pos + 2 : end].decode("utf-8"), now))
                        except UnicodeDecodeError:
                            raise InvalidPayload("text message is not valid UTF-8") from None
                    else:
                        append(Binary(data[pos + 2 : end], now))
                    pos = end
                    continue

            length = second & 0x7F
            header = 2
            if length == 126:
                header = 4
                if size - pos < 4:
                    self._buffer = data[pos:]
                    return
                length = (data[pos + 2] << 8) | data[pos + 3]
            elif length == 127:
                header = 10
                if size - pos < 10:
                    self._buffer = data[pos:]
                    return
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                if length >> 63:
                    # Section 5.2: the most significant bit must be 0.
                    raise ProtocolError("frame length has its most significant bit set")
            if second & 0x80:
                # Section 5.1: a client must fail on a masked server frame.
                raise ProtocolError("the server sent a masked frame")
            opcode = first & 0x0F
            if first & 0x70 or not 0 < opcode < 3 or self._message_opcode is not None:
                self._check_header(first, opcode, length)
            elif max_frame and length > max_frame:
                self._check_header(first, opcode, length)
            start = pos + header
            end = start + length

            # Fast path: a whole, final, uncompressed text or binary frame
            # that starts a message (the common case for small messages).
            if (
                end <= size
                and first & 0xF0 == 0x80
                and 0 < opcode < 3
                and self._message_opcode is None
            ):
                if self.max_message_size and length > self.max_message_size:
                    self._check_message_size(length)
                payload = data[start:end]
                if opcode == 1:
                    try:
                        append(Text(payload.decode("utf-8"), now))
                    except UnicodeDecodeError:
                        raise InvalidPayload("text message is not valid UTF-8") from None
                else:
                    append(Binary(payload, now))
                pos = end
                continue

            if opcode >= 8:
                # Control frames are at most 125 bytes: wait for the whole frame.
                if end > size:
                    self._buffer = data[pos:]
                    return
                self._control_frame(opcode, data[start:end], now, out)
                pos = end
                if self.close_received is not None:
                    # Section 5.5.1: nothing follows a close frame.
                    return
                continue

            # A data frame that is fragmented, compressed or incomplete.
            self._start_data_frame(first, opcode, length)
            if end <= size:
                self._data_piece(data[start:end], now, out)
                pos = end
            else:
                self._frame_remaining = end - size
                self._data_piece(data[start:], now, out)
                return

    def _check_header(self, first: int, opcode: int, length: int) -> None:
        """Apply the framing rules of section 5.2 to a frame header (slow path)."""
        if opcode not in KNOWN_OPCODES:
            raise ProtocolError(f"reserved opcode {opcode:#x}")
        if first & 0x30:
            raise ProtocolError("reserved bit RSV2 or RSV3 is set")
        if opcode >= 8:
            if not first & 0x80:
                raise ProtocolError(f"fragmented control frame (opcode {opcode:#x})")
            if length > MAX_CONTROL_PAYLOAD:
                raise ProtocolError(
                    f"control frame of {length} bytes; the limit is {MAX_CONTROL_PAYLOAD}"
                )
            if first & 0x40:
                raise ProtocolError("reserved bit RSV1 is set on a control frame")
            return
        if first & 0x40:
            # RFC 7692 section 6: RSV1 marks a compressed message, and only
            # on its first frame.
            if self.deflate is None:
                raise ProtocolError("reserved bit RSV1 is set but no extension was agreed")
            if opcode == Opcode.CONTINUATION:
                raise ProtocolError("reserved bit RSV1 is set on a continuation frame")
        if opcode == Opcode.CONTINUATION:
            if self._message_opcode is None:
                raise ProtocolError("continuation frame without a message to continue")
        elif self._message_opcode is not None:
            raise ProtocolError("new data frame before the fragmented message ended")
        if self.max_frame_size and length > self.max_frame_size:
            raise PayloadTooLarge(
                f"frame of {length} bytes is larger than max_frame_size"
                f" ({self.max_frame_size} bytes)"
            )

    def _check_message_size(self, size: int) -> None:
        if self.max_message_size and size > self.max_message_size:
            raise PayloadTooLarge(
                f"message of {size} bytes or more is larger than max_message_size"
                f" ({self.max_message_size} bytes)"
            )

    def _start_data_frame(self, first: int, opcode: int, length: int) -> None:
        """Set up the state for a data frame whose payload follows."""
        self._frame_fin = bool(first & 0x80)
        self._large = length >= LARGE_PAYLOAD
        if opcode != Opcode.CONTINUATION:
            self._message_opcode = opcode
            self._message_compressed = bool(first & 0x40)
            self._message_size = 0
            self._message_parts = _Pieces()
            self._decoder = _utf8_decoder() if opcode == Opcode.TEXT else None
        if self._message_compressed:
            self._frame_chunks = _Pieces()
        else:
            self._check_message_size(self._message_size + length)

    def _data_piece(self, piece: bytes, now: float, out: list[events.Event]) -> None:
        """Take part of a data frame's payload; finish the frame and message when complete."""
        frame_done = self._frame_remaining == 0
        if self._message_compressed:
            # Compressed frames are inflated whole: collect the frame first.
            assert self._frame_chunks is not None
            self._frame_chunks.add(piece)
            if not frame_done:
                return
            assert self.deflate is not None
            compressed = self._frame_chunks.join_bytes()
            self._frame_chunks = None
            # The limit applies to the whole decompressed message; the
            # decompressor stops as soon as the message passes it.
            piece = self.deflate.decompress(compressed, self._frame_fin, self.max_message_size)
            self._check_message_size(self._message_size + len(piece))
        self._message_size += len(piece)
        final = frame_done and self._frame_fin
        parts = self._message_parts
        assert parts is not None
        decoder = self._decoder
        if decoder is not None:
            # Decoding each piece as it arrives finds invalid UTF-8 in the
            # read where it appears, not at the end of the message.
            try:
                text = decoder.decode(piece, final)
            except UnicodeDecodeError:
                raise InvalidPayload("text message is not valid UTF-8") from None
            if not final and _starts_surrogate(decoder):
                raise InvalidPayload("text message is not valid UTF-8") from None
            parts.add(text)
            if final:
                out.append(events.Text(parts.join_text(), now))
        else:
            parts.add(piece)
            if final:
                out.append(events.Binary(parts.join_bytes(), now))
        if final:
            self._message_opcode = None
            self._message_parts = None
            self._decoder = None

    def read_size(self, default: int) -> int:
        """Return how many bytes the next read should request.

        Normally ``default``. While frames are large (payloads of at least
        :data:`LARGE_PAYLOAD` bytes), reads stop where a payload starts and
        ends: the header of the next frame is read on its own, and then its
        payload in one read of exactly its size, which becomes the
        message's ``bytes`` without another copy.
        """
        if not self._large or self._message_compressed or self.state is State.CONNECTING:
            return default
        if self._frame_remaining:
            return min(self._frame_remaining, MAX_EXACT_READ)
        buffered = self._buffer
        if len(buffered) < 2:
            return 2 - len(buffered)
        length = buffered[1] & 0x7F
        header = 2
        if length == 126:
            header = 4
        elif length == 127:
            header = 10
        if len(buffered) < header:
            return header - len(buffered)
        if length < 126:
            # A control frame (or a small frame) waits for its payload.
            return header + length - len(buffered)
        return default

    def _control_frame(self, opcode: int, payload: bytes, now: float, out: list[events.Event]) -> None:
        if opcode == Opcode.PING:
            out.append(events.Ping(payload, now))
            if self.auto_pong and self.state is State.OPEN:
                self._outgoing.append(self._frame(Opcode.PONG, payload))
        elif opcode == Opcode.PONG:
            latency = None
            if self._ping_payload is not None and payload == self._ping_payload:
                latency = max(0.0, now - self._ping_time)
                self._ping_payload = None
            out.append(events.Pong(payload, now, latency))
        else:
            self._receive_close(payload, now, out)

    def _receive_close(self, payload: bytes, now: float, out: list[events.Event]) -> None:
        """Handle the server's close frame (section 5.5.1 and 7.1)."""
        code, reason = parse_close_payload(payload)
        self.close_received = (code, reason)
        if self.state is State.CLOSING:
            # We started the closing handshake; this completes it.
            self.state = State.CLOSED
            out.append(events.Closed(code, reason, now))
            return
        # The server started it: echo the code (section 5.5.1), or send an
        # empty close frame when the server's had no code.
        out.append(events.Closing(code, reason, now))
        echo = None if code == Status.NO_STATUS else code
        self._outgoing.append(self._frame(Opcode.CLOSE, build_close_payload(echo)))
        self.close_sent = (code, "")
        self.state = State.CLOSED

    def fail(self, error: PeerError, now: float, out: list[events.Event]) -> None:
        """Fail the connection (section 7.1.7): send a close frame with the error's code, then drop."""
        self.failure = str(error)
        # The event is "critical" only when no close frame can go out first.
        can_close = self.close_sent is None and self.state in (State.OPEN, State.CLOSING)
        out.append(events.ProtocolError(str(error), not can_close, now))
        if can_close:
            payload = build_close_payload(error.close_code, _short_reason(str(error)))
            self._outgoing.append(self._frame(Opcode.CLOSE, payload))
            self.close_sent = (error.close_code, str(error))
        self.state = State.CLOSED
        self.should_drop = True
        self._buffer = b""
        self._frame_remaining = 0
        self._message_parts = self._frame_chunks = None
        self._large = False

    # --- sending -----------------------------------------------------------

    def data_to_send(self) -> bytes:
        """Return (and forget) the bytes that receiving produced: pongs and close frames."""
        if not self._outgoing:
            return b""
        data = b"".join(self._outgoing)
        self._outgoing = []
        return data

    def _frame(self, opcode: int, payload: bytes, rsv1: bool = False) -> bytes | bytearray:
        return build_frame(opcode, payload, self.random_bytes(4), rsv1=rsv1)

    def _check_can_send(self) -> None:
        if self.state is State.OPEN:
            return
        if self.state is State.CONNECTING:
            raise WebSocketUnavailable("the WebSocket is not open yet; wait for the Ready event")
        if self.state is State.CLOSING:
            raise WebSocketClosing("the WebSocket is closing; no more frames can be sent")
        raise WebSocketClosed("the WebSocket is closed")

    def send_text(self, text: str, compress: bool = True) -> bytes | bytearray:
        """Return the frame for a text message; write it at once (compressed frames depend on order)."""
        return self.send_data(Opcode.TEXT, text.encode("utf-8"), compress)

    def send_binary(self, data: bytes, compress: bool = True) -> bytes | bytearray:
        """Return the frame for a binary message; write it at once (compressed frames depend on order)."""
        return self.send_data(Opcode.BINARY, data, compress)

    def send_data(self, opcode: int, payload: bytes, compress: bool = True) -> bytes | bytearray:
        """Return one frame carrying a whole text or binary message."""
        self._check_can_send()
        deflate = self.deflate
        if compress and deflate is not None and len(payload) >= deflate.threshold:
            return self._frame(opcode, deflate.compress(payload), rsv1=True)
        return self._frame(opcode, payload)

    def send_ping(self, data: bytes = b"", now: float = 0.0) -> bytes | bytearray:
        """Return a ping frame; a pong with the same payload reports its round-trip time."""
        self._check_can_send()
        _check_control_payload(data)
        self._ping_payload = bytes(data)
        self._ping_time = now
        return self._frame(Opcode.PING, data)

    def send_pong(self, data: bytes = b"") -> bytes | bytearray:
        """Return a pong frame (an answer to a ping, or an unsolicited heartbeat)."""
        self._check_can_send()
        _check_control_payload(data)
        return self._frame(Opcode.PONG, data)

    def close(self, code: int | None = Status.NORMAL, reason: str | bytes = "") -> bytes | bytearray:
        """Start the closing handshake and return the close frame.

        Returns b"" when a close frame was already sent or the connection is
        not open. Raises ValueError for a code that may not be sent, a
        reason over 123 bytes or a bytes reason that is not UTF-8, before
        changing any state.
        """
        payload = build_close_payload(code, reason)
        if self.state is not State.OPEN:
            return b""
        self.state = State.CLOSING
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        self.close_sent = (code if code is not None else Status.NO_STATUS, reason)
        return self._frame(Opcode.CLOSE, payload)


def _check_control_payload(data: bytes) -> None:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"control frame payload must be bytes, not {type(data).__name__}")
    if len(data) > MAX_CONTROL_PAYLOAD:
        raise ValueError(
            f"control frame payload is {len(data)} bytes; the limit is {MAX_CONTROL_PAYLOAD}"
        )


def _starts_surrogate(decoder: codecs.IncrementalDecoder) -> bool:
    """Return whether the decoder has buffered ED A0-BF, the start of a UTF-16 surrogate.

    CPython's decoder buffers these two bytes until a third arrives
    (checked on 3.11), although no valid UTF-8 starts with them (RFC 3629
    section 4). Checking the buffer finds the error in the read that brings
    the second byte, as for every other invalid sequence.
    """
    pending = decoder.getstate()[0]
    return len(pending) >= 2 and pending[0] == 0xED and pending[1] >= 0xA0


def _short_reason(message: str) -> str:
    """Cut ``message`` so that it fits a close frame (123 bytes of UTF-8)."""
    encoded = message.encode("utf-8")[:123]
    return encoded.decode("utf-8", "ignore")
