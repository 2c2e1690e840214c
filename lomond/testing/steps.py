"""Script steps: the vocabulary that scripts are written in.

A script is a list of steps, run in order for each connection::

    from lomond.testing import steps

    script = [
        steps.accept(subprotocol="chat"),
        steps.send_text("hello"),
        steps.expect_text("hi"),
        steps.close(1000),
    ]

Each function here returns a :class:`Step`, a callable that takes the
:class:`~lomond.testing.connection.Connection`, so a script written as a
plain function can run steps too: ``steps.reserved_opcode()(conn)``.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from .connection import Connection
from .frames import OP_BINARY, OP_CONTINUATION, OP_PING, OP_TEXT, build_frame

__all__ = [
    "Step",
    # handshake
    "accept", "accept_raw", "accept_missing_key", "accept_wrong_key",
    "accept_wrong_upgrade", "accept_unoffered_subprotocol", "reject",
    "redirect", "delay", "never_answer", "send_garbage",
    # messages
    "send_text", "send_binary", "send_fragmented", "ping", "pong", "send_large",
    # protocol faults
    "send_frame", "send_raw", "invalid_utf8", "reserved_bits",
    "reserved_opcode", "masked_frame", "long_control_frame",
    "fragmented_control_frame", "orphan_continuation", "long_length_form",
    "huge_length",
    # closing
    "close", "close_one_byte_payload", "close_invalid_reason", "ignore_close",
    "close_and_drop",
    # TCP faults
    "drop", "drop_mid_frame", "reset", "stall", "slicer", "latency",
    "bandwidth", "limit_data", "slow_close", "no_pong",
    # expectations
    "expect_text", "expect_binary", "expect_ping", "expect_pong",
    "expect_close", "echo", "hold",
]


class Step:
    """One step of a script: a named action on a connection."""

    def __init__(self, name: str, action: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.name = name
        self._action = action
        self._args = args
        self._kwargs = kwargs

    def __call__(self, conn: Connection) -> Any:
        return self._action(conn, *self._args, **self._kwargs)

    def __repr__(self) -> str:
        arguments = [repr(a) for a in self._args] + [f"{k}={v!r}" for k, v in self._kwargs.items()]
        return f"{self.name}({', '.join(arguments)})"


def _method(name: str) -> Callable[..., Any]:
    return lambda conn, *args, **kwargs: getattr(conn, name)(*args, **kwargs)


def _set(attribute: str) -> Callable[[Connection, Any], None]:
    return lambda conn, value: setattr(conn, attribute, value)


# --- handshake --------------------------------------------------------------


def accept(
    subprotocol: str | None = None,
    extensions: Iterable[str] = (),
    headers: Iterable[tuple[str, str]] = (),
    messages: Iterable[str | bytes] = (),
) -> Step:
    """Accept the upgrade; ``messages`` go out in the same TCP segment as the 101."""
    return Step("accept", _method("accept"), subprotocol, tuple(extensions), tuple(headers), tuple(messages))


def accept_raw(**options: Any) -> Step:
    """Send a hand-made 101 response; see :meth:`Connection.accept_raw` for the options."""
    return Step("accept_raw", _method("accept_raw"), **options)


def accept_missing_key() -> Step:
    """Send a 101 response without a Sec-WebSocket-Accept header."""
    return Step("accept_missing_key", _method("accept_raw"), accept_key=None)


def accept_wrong_key(value: str = "dGhlIHdyb25nIGtleQ==") -> Step:
    """Send a 101 response whose Sec-WebSocket-Accept does not match the client's key."""
    return Step("accept_wrong_key", _method("accept_raw"), accept_key=value)


def accept_wrong_upgrade(value: str = "h2c") -> Step:
    """Send a 101 response with an Upgrade header other than "websocket"."""
    return Step("accept_wrong_upgrade", _method("accept_raw"), upgrade=value)


def accept_unoffered_subprotocol(name: str = "not-offered") -> Step:
    """Send a 101 response that selects a subprotocol the client did not offer."""
    return Step("accept_unoffered_subprotocol", _method("accept_raw"), subprotocol=name)


def reject(
    status: int = 403,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes | str = b"",
    reason: str | None = None,
) -> Step:
    """Reject the handshake with ``status`` (for example 503 with Retry-After, 401, 404).

    The response has an empty reason phrase unless ``reason`` is given.
    """
    return Step("reject", _method("reject"), status, tuple(headers), body, reason)


def redirect(location: str, status: int = 302) -> Step:
    """Reject the handshake with a redirect (301, 302, 303, 307 or 308) to ``location``."""
    if status not in (301, 302, 303, 307, 308):
        raise ValueError(f"a redirect status is 301, 302, 303, 307 or 308, not {status}")
    return Step("redirect", _method("reject"), status, (("Location", location),))


def delay(seconds: float) -> Step:
    """Wait ``seconds`` before the next step (ends early if the client leaves)."""
    return Step("delay", _method("sleep"), seconds)


def never_answer() -> Step:
    """Send no response: wait until the client leaves or the server stops."""
    return Step("never_answer", _method("hold"))


def send_garbage(data: bytes = b"SSH-2.0-OpenSSH_9.6\r\n\x00\xff") -> Step:
    """Send bytes that are not HTTP in place of the handshake response."""
    return Step("send_garbage", _method("send_raw"), data)


# --- messages ---------------------------------------------------------------


def send_text(text: str) -> Step:
    """Send a text message."""
    return Step("send_text", _method("send_text"), text)


def send_binary(data: bytes) -> Step:
    """Send a binary message."""
    return Step("send_binary", _method("send_binary"), data)


def _split(data: bytes, sizes: int | Iterable[int]) -> list[bytes]:
    if isinstance(sizes, int):
        if sizes < 1:
            raise ValueError(f"a frame size must be at least 1, not {sizes}")
        return [data[i : i + sizes] for i in range(0, len(data), sizes)] or [b""]
    pieces, offset = [], 0
    for size in sizes:
        pieces.append(data[offset : offset + size])
        offset += size
    if offset < len(data) or not pieces:
        pieces.append(data[offset:])
    return pieces


def _send_fragmented(conn: Connection, data: str | bytes, sizes: Any, ping: bytes | None) -> None:
    if isinstance(data, bytes):
        conn.send_fragments(_split(data, sizes), ping=ping)
        return
    pieces = _split(data.encode("utf-8"), sizes)
    try:
        conn.send_fragments([piece.decode("utf-8") for piece in pieces], ping=ping)
        return
    except UnicodeDecodeError:
        pass
    # A boundary splits a code point, which wsproto cannot express, so the
    # (still valid) frames are built by hand.
    for index, piece in enumerate(pieces):
        opcode = OP_TEXT if index == 0 else OP_CONTINUATION
        conn.send_frame(opcode, piece, fin=index == len(pieces) - 1)
        if index == 0 and ping is not None:
            conn.send_frame(OP_PING, ping)


def send_fragmented(data: str | bytes, sizes: int | Iterable[int], ping: bytes | None = None) -> Step:
    """Send one message as frames of ``sizes`` bytes (an int: every frame that size).

    Bytes beyond the listed sizes go in a last frame. With ``ping``, a ping
    with that payload is sent after the first frame, inside the message.
    Text split inside a code point is still valid and is sent as is.
    """
    return Step("send_fragmented", _send_fragmented, data, sizes if isinstance(sizes, int) else tuple(sizes), ping)


def ping(payload: bytes = b"") -> Step:
    """Send a ping with ``payload`` (at most 125 bytes)."""
    return Step("ping", _method("ping"), payload)


def pong(payload: bytes = b"") -> Step:
    """Send an unsolicited pong."""
    return Step("pong", _method("pong"), payload)


def send_large(size: int, kind: str = "binary") -> Step:
    """Send a ``size``-byte message, to test the client's message size limit."""
    if kind == "text":
        return Step("send_large", _method("send_text"), "x" * size)
    return Step("send_large", _method("send_binary"), b"\x00" * size)


# --- protocol faults --------------------------------------------------------


def send_frame(opcode: int, payload: bytes = b"", **options: Any) -> Step:
    """Send one hand-built frame (options of :func:`~lomond.testing.frames.build_frame`)."""
    return Step("send_frame", _method("send_frame"), opcode, payload, **options)


def send_raw(data: bytes) -> Step:
    """Write ``data`` as it is."""
    return Step("send_raw", _method("send_raw"), data)


# "bad " then an invalid sequence: 0xC3 starts a 2-byte code point but 0x28
# is not a continuation byte (an example from RFC 3629's rules).
INVALID_UTF8 = b"bad \xc3\x28 text"


def _invalid_utf8(conn: Connection, split: bool) -> None:
    if not split:
        conn.send_frame(OP_TEXT, INVALID_UTF8)
        return
    # The first frame ends inside a code point (still possibly valid) and the
    # second frame's first byte makes it invalid.
    conn.send_frame(OP_TEXT, b"caf\xc3", fin=False)
    conn.send_frame(OP_CONTINUATION, b"\x28 au lait")


def invalid_utf8(split: bool = False) -> Step:
    """Send a text message that is not valid UTF-8 (``split``: across two frames)."""
    return Step("invalid_utf8", _invalid_utf8, split)


def reserved_bits(rsv1: bool = False, rsv2: bool = True, rsv3: bool = False) -> Step:
    """Send a text frame with reserved bits set (RSV1 is valid only with permessage-deflate)."""
    return Step("reserved_bits", _method("send_frame"), OP_TEXT, b"reserved", rsv1=rsv1, rsv2=rsv2, rsv3=rsv3)


def reserved_opcode(opcode: int = 0x3) -> Step:
    """Send a frame with a reserved opcode (0x3-0x7 for data, 0xB-0xF for control)."""
    return Step("reserved_opcode", _method("send_frame"), opcode, b"?")


def masked_frame(text: str = "masked") -> Step:
    """Send a masked text frame, which a server must never do."""
    return Step("masked_frame", _method("send_frame"), OP_TEXT, text.encode("utf-8"), mask=True)


def long_control_frame(size: int = 126, opcode: int = OP_PING) -> Step:
    """Send a control frame whose payload is over the 125-byte maximum."""
    return Step("long_control_frame", _method("send_frame"), opcode, b"p" * size)


def fragmented_control_frame(opcode: int = OP_PING) -> Step:
    """Send a control frame without FIN, followed by a continuation."""

    def action(conn: Connection) -> None:
        conn.send_frame(opcode, b"part", fin=False)
        conn.send_frame(OP_CONTINUATION, b"rest")

    return Step("fragmented_control_frame", action)


def orphan_continuation(payload: bytes = b"orphan") -> Step:
    """Send a continuation frame when no message is in progress."""
    return Step("orphan_continuation", _method("send_frame"), OP_CONTINUATION, payload)


def long_length_form(text: str = "short") -> Step:
    """Send a short text frame with its length in the 64-bit form (not the shortest)."""
    return Step("long_length_form", _method("send_frame"), OP_TEXT, text.encode("utf-8"), length_form="64")


def huge_length(length: int = 2**63, opcode: int = OP_BINARY) -> Step:
    """Send a frame header that declares ``length`` bytes (the default sets the forbidden top bit)."""
    return Step("huge_length", _method("send_raw"), build_frame(opcode, b"", length=length, length_form="64"))


# --- closing ----------------------------------------------------------------


def close(
    code: int | None = 1000,
    reason: str | bytes = "",
    wait: bool = True,
    timeout: float | None = None,
) -> Step:
    """Send a close frame with any ``code`` (invalid ones too), wait for the reply, close TCP."""
    return Step("close", _method("close"), code, reason, wait=wait, timeout=timeout)


def close_one_byte_payload() -> Step:
    """Send a close frame whose payload is a single byte (too short for a code)."""
    return Step("close_one_byte_payload", _method("close"), payload=b"\x03")


def close_invalid_reason(code: int = 1000) -> Step:
    """Send a close frame whose reason is not valid UTF-8."""
    return Step("close_invalid_reason", _method("close"), code, b"\xff\xfe bad")


def ignore_close() -> Step:
    """Never reply to the client's close frame from now on."""
    return Step("ignore_close", _set("answer_close"), False)


def close_and_drop(code: int = 1000, reason: str = "") -> Step:
    """Send a close frame and close TCP at once, without waiting for the reply."""
    return Step("close_and_drop", _method("close"), code, reason, wait=False)


# --- TCP faults -------------------------------------------------------------


def drop() -> Step:
    """Close the TCP connection (FIN) now."""
    return Step("drop", _method("drop"))


def _drop_mid_frame(conn: Connection, text: str, after: int) -> None:
    conn.send_raw(build_frame(OP_TEXT, text.encode("utf-8"))[:after])
    conn.drop()


def drop_mid_frame(text: str = "hello, world", after: int = 4) -> Step:
    """Send the first ``after`` bytes of a text frame, then FIN."""
    return Step("drop_mid_frame", _drop_mid_frame, text, after)


def reset() -> Step:
    """Abort the TCP connection with an RST."""
    return Step("reset", _method("reset"))


def stall(seconds: float | None = None) -> Step:
    """Stop reading and writing for ``seconds`` (None: until the server stops)."""
    return Step("stall", _method("stall"), seconds)


def _slicer(conn: Connection, size: int, delay: float) -> None:
    conn.slice_size, conn.slice_delay = size, delay


def slicer(size: int, delay: float = 0.0) -> Step:
    """Chop every later write into ``size``-byte segments, ``delay`` seconds apart."""
    if size < 1:
        raise ValueError(f"slicer size must be at least 1 byte, not {size}")
    return Step("slicer", _slicer, size, delay)


def latency(seconds: float) -> Step:
    """Wait ``seconds`` before each later write."""
    return Step("latency", _set("latency"), seconds)


def bandwidth(bytes_per_second: float) -> Step:
    """Limit later writes to ``bytes_per_second``."""
    if bytes_per_second <= 0:
        raise ValueError(f"bandwidth must be positive, not {bytes_per_second}")
    return Step("bandwidth", _set("bandwidth"), float(bytes_per_second))


def limit_data(size: int) -> Step:
    """Close the connection (FIN) once ``size`` more bytes have been written."""
    return Step("limit_data", _set("data_limit"), size)


def slow_close(seconds: float) -> Step:
    """Wait ``seconds`` before every later close of the TCP connection."""
    return Step("slow_close", _set("slow_close_delay"), seconds)


def no_pong() -> Step:
    """Stop replying to the client's pings with pongs, so its ping timeout fires."""
    return Step("no_pong", _set("auto_pong"), False)


# --- expectations -----------------------------------------------------------


def expect_text(match: Any = None, timeout: float | None = None) -> Step:
    """Wait for a text message, optionally equal to or matching ``match``."""
    return Step("expect_text", _method("expect"), "text", match, timeout)


def expect_binary(match: Any = None, timeout: float | None = None) -> Step:
    """Wait for a binary message, optionally equal to or matching ``match``."""
    return Step("expect_binary", _method("expect"), "binary", match, timeout)


def expect_ping(match: Any = None, timeout: float | None = None) -> Step:
    """Wait for a ping, optionally with a payload equal to or matching ``match``."""
    return Step("expect_ping", _method("expect"), "ping", match, timeout)


def expect_pong(match: Any = None, timeout: float | None = None) -> Step:
    """Wait for a pong, optionally with a payload equal to or matching ``match``."""
    return Step("expect_pong", _method("expect"), "pong", match, timeout)


def expect_close(code: Any = None, timeout: float | None = None) -> Step:
    """Wait for the client's close frame, optionally with close code ``code``."""
    return Step("expect_close", _method("expect"), "close", code, timeout)


def echo() -> Step:
    """Send back every message until the client closes or leaves."""
    return Step("echo", _method("echo"))


def hold() -> Step:
    """Keep the connection open (replying to pings) until the client closes or leaves."""
    return Step("hold", _method("hold"))


# The default script: accept, then echo.
ECHO = [accept(), echo()]
