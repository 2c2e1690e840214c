"""Records of one server connection: the request, frames, messages and close frames.

A :class:`Transcript` is filled in by the connection's reader greenlet and
read by tests. Its ``next_*`` and ``wait_*`` methods block (cooperatively,
with a timeout) until the awaited thing has arrived, so tests never sleep.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field
from typing import Callable, TypeVar

from .frames import Frame
from .waits import Signal, default_timeout

__all__ = ["Request", "Message", "Transcript", "matches"]

T = TypeVar("T")


@dataclass
class Request:
    """The client's opening handshake request, as received."""

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    raw: bytes

    @property
    def path(self) -> str:
        """The request target without its query string."""
        return self.target.split("?", 1)[0]

    def header(self, name: str, default: str | None = None) -> str | None:
        """Return the first value of header ``name`` (case-insensitive), or ``default``."""
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return default

    def header_values(self, name: str) -> list[str]:
        """Return every comma-separated value of header ``name``, across repeated lines."""
        lowered = name.lower()
        values: list[str] = []
        for key, value in self.headers:
            if key.lower() == lowered:
                values.extend(part.strip() for part in value.split(",") if part.strip())
        return values

    @property
    def subprotocols(self) -> list[str]:
        """The subprotocols the client offered, in order."""
        return self.header_values("Sec-WebSocket-Protocol")

    @property
    def extensions(self) -> list[str]:
        """The extension offers (with their parameters), in order."""
        return self.header_values("Sec-WebSocket-Extensions")


@dataclass
class Message:
    """A message or control frame received from the client.

    ``kind`` is "text", "binary", "ping", "pong" or "close". ``payload`` is
    the reassembled, unmasked (and, with permessage-deflate, inflated)
    bytes, and ``frames`` the frames it arrived in. ``time`` and
    ``end_time`` are the ``time.monotonic()`` times of the first and last
    frame.
    """

    kind: str
    payload: bytes
    frames: list[Frame]
    time: float
    end_time: float
    compressed: bool = False

    @property
    def masked(self) -> bool:
        """True when every frame of the message was masked, as RFC 6455 section 5.3 requires."""
        return all(frame.masked for frame in self.frames)

    @property
    def text(self) -> str:
        """The payload decoded as UTF-8 (raises UnicodeDecodeError when it is not)."""
        return self.payload.decode("utf-8")

    @property
    def data(self) -> str | bytes:
        """The text for a text message, the payload bytes for anything else."""
        return self.text if self.kind == "text" else self.payload

    @property
    def code(self) -> int | None:
        """A close frame's code, or None when it has no payload or is not a close."""
        if self.kind != "close" or len(self.payload) < 2:
            return None
        return int(struct.unpack_from("!H", self.payload)[0])

    @property
    def reason(self) -> str:
        """A close frame's reason (invalid UTF-8 is replaced)."""
        if self.kind != "close":
            return ""
        return self.payload[2:].decode("utf-8", "replace")

    def __repr__(self) -> str:
        preview = self.payload if len(self.payload) <= 40 else self.payload[:40] + b"..."
        return f"Message({self.kind!r}, {preview!r}, frames={len(self.frames)})"


def matches(expected: object, value: object) -> bool:
    """Return whether ``value`` matches ``expected``: None, an equal value, a compiled pattern or a predicate."""
    if expected is None:
        return True
    if callable(expected):
        return bool(expected(value))
    search = getattr(expected, "search", None)
    if search is not None and isinstance(value, str):
        return search(value) is not None
    return expected == value


@dataclass
class Transcript:
    """Everything one connection exchanged, in arrival order.

    Times are ``time.monotonic()`` values. ``bytes_in`` and ``bytes_out``
    count every byte read and written, handshake included.
    """

    number: int
    peer: tuple
    opened_at: float = field(default_factory=time.monotonic)
    closed_at: float | None = None
    request: Request | None = None
    response_status: int | None = None
    frames: list[Frame] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    bytes_in: int = 0
    bytes_out: int = 0
    close_sent: bytes | None = None
    protocol_errors: list[str] = field(default_factory=list)
    script_error: str | None = None
    end_reason: str | None = None
    _cursor: int = 0
    _signal: Signal = field(default_factory=Signal, repr=False)

    # --- derived facts ------------------------------------------------------

    @property
    def close_received(self) -> Message | None:
        """The client's close frame, or None when it sent none."""
        for message in self.messages:
            if message.kind == "close":
                return message
        return None

    @property
    def close_code(self) -> int | None:
        """The code of the client's close frame (None when absent or empty)."""
        close = self.close_received
        return None if close is None else close.code

    @property
    def close_reason(self) -> str | None:
        """The reason of the client's close frame (None when it sent none)."""
        close = self.close_received
        return None if close is None else close.reason

    @property
    def closing_handshake_completed(self) -> bool:
        """True when both sides sent a close frame."""
        return self.close_sent is not None and self.close_received is not None

    @property
    def closed(self) -> bool:
        """True once the server closed the socket."""
        return self.closed_at is not None

    @property
    def data_messages(self) -> list[Message]:
        """The text and binary messages, without control frames."""
        return [m for m in self.messages if m.kind in ("text", "binary")]

    # --- waits --------------------------------------------------------------

    def notify(self) -> None:
        """Wake the greenlets waiting on this transcript (called by the server)."""
        self._signal.notify()

    def wait_until(
        self, predicate: Callable[[], T], timeout: float | None = None, description: str = "a condition"
    ) -> T:
        """Return ``predicate()`` once it is true; raise WaitTimeout after ``timeout`` seconds."""
        return self._signal.wait_for(predicate, default_timeout(timeout), description)

    def next_message(
        self,
        kind: str | None = None,
        match: object = None,
        timeout: float | None = None,
    ) -> Message:
        """Return the next message not yet returned by this method.

        With ``kind``, messages of other kinds are passed over. ``match`` is
        a value compared with ``message.data``, a compiled regular expression
        searched in text, or a predicate on ``message.data``.
        """

        def find() -> Message | None:
            while self._cursor < len(self.messages):
                message = self.messages[self._cursor]
                self._cursor += 1
                if kind is not None and message.kind != kind:
                    continue
                if matches(match, message.data):
                    return message
            return None

        description = f"a {kind or 'message'} from client #{self.number}"
        found = self.wait_until(find, timeout, description)
        assert found is not None
        return found

    def wait_closed(self, timeout: float | None = None) -> Transcript:
        """Return this transcript once the server has closed the socket."""
        self.wait_until(lambda: self.closed, timeout, f"connection #{self.number} to close")
        return self

    def summary(self) -> str:
        """Return a few lines that describe the connection, for assertion messages."""
        lines = [f"connection #{self.number} from {self.peer}"]
        if self.request is not None:
            lines.append(f"  request: {self.request.method} {self.request.target}")
        lines.append(f"  response status: {self.response_status}")
        for message in self.messages[-10:]:
            lines.append(f"  received: {message!r}")
        lines.append(f"  close sent: {self.close_sent!r}, received: {self.close_received!r}")
        if self.protocol_errors:
            lines.append(f"  client protocol errors: {self.protocol_errors}")
        if self.script_error:
            lines.append(f"  script error: {self.script_error}")
        lines.append(f"  ended: {self.end_reason}")
        return "\n".join(lines)
