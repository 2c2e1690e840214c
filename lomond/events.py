"""The events that iterating a :class:`~lomond.websocket.WebSocket` yields.

A successful session yields, in order: :class:`Connecting`,
:class:`Connected`, :class:`Ready`, then any number of :class:`Text`,
:class:`Binary`, :class:`Ping`, :class:`Pong` and :class:`Poll`, then
:class:`Closing` and/or :class:`Closed`, and always ends with exactly one
:class:`Disconnected`. A failure at any point becomes an event
(:class:`ConnectFail`, :class:`Rejected`, :class:`ProtocolError`,
:class:`Unresponsive`) followed by :class:`Disconnected`.

Every event has a ``name`` string (the same as in lomond 0.3, so
``if event.name == "text"`` keeps working) and ``received_time``, the wall
clock time (``time.time()``) at which lomond created it.

This module is pure data: it does no I/O and reads no clock, so that
:mod:`lomond.protocol` can create events.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "Event",
    "Poll",
    "Connecting",
    "ConnectFail",
    "Connected",
    "Rejected",
    "Ready",
    "ProtocolError",
    "Unresponsive",
    "Disconnected",
    "Closed",
    "Closing",
    "UnknownMessage",
    "Ping",
    "Pong",
    "Text",
    "Binary",
    "BackOff",
]

# Payloads in a repr are cut to this many bytes or characters, so that
# logging an event never floods a log.
_REPR_LIMIT = 24


def _summarize(value: Any) -> str:
    if len(value) > _REPR_LIMIT:
        unit = "chars" if isinstance(value, str) else "bytes"
        return f"{value[:_REPR_LIMIT]!r} + {len(value) - _REPR_LIMIT} {unit}"
    return repr(value)


class Event:
    """Base class of every event."""

    __slots__ = ("received_time",)
    name = "event"

    def __init__(self, received_time: float = 0.0) -> None:
        self.received_time = received_time

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def to_dict(self) -> dict[str, Any]:
        """Return the event as a JSON-friendly dict (used by ``--json``)."""
        return {"name": self.name, "received_time": self.received_time}


class Poll(Event):
    """Emitted every ``poll`` seconds while connected; a place for periodic work."""

    __slots__ = ()
    name = "poll"


class Connecting(Event):
    """Emitted first, before lomond resolves the host and connects.

    ``url`` is the WebSocket URL with any user-info removed.
    """

    __slots__ = ("url",)
    name = "connecting"

    def __init__(self, url: str, received_time: float = 0.0) -> None:
        self.url = url
        self.received_time = received_time

    def __repr__(self) -> str:
        return f"Connecting(url={self.url!r})"

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "url": self.url}


class ConnectFail(Event):
    """Emitted when no connection could be made; :class:`Disconnected` follows.

    ``reason`` describes what failed (DNS, TCP connect, proxy, TLS, timeout) in
    words a user can act on.
    """

    __slots__ = ("reason",)
    name = "connect_fail"

    def __init__(self, reason: str, received_time: float = 0.0) -> None:
        self.reason = reason
        self.received_time = received_time

    def __repr__(self) -> str:
        return f"ConnectFail({self.reason!r})"

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "reason": self.reason}


class Connected(Event):
    """Emitted when the TCP (and TLS) connection is open, before the handshake.

    ``url`` is the WebSocket URL (without user-info) and ``proxy`` the proxy
    URL (without credentials), or None.
    """

    __slots__ = ("url", "proxy")
    name = "connected"

    def __init__(
        self, url: str, proxy: str | None = None, received_time: float = 0.0
    ) -> None:
        self.url = url
        self.proxy = proxy
        self.received_time = received_time

    def __repr__(self) -> str:
        if self.proxy is None:
            return f"Connected(url={self.url!r})"
        return f"Connected(url={self.url!r}, proxy={self.proxy!r})"

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "url": self.url, "proxy": self.proxy}


class Rejected(Event):
    """Emitted when the server responded to the handshake but did not upgrade.

    ``response`` is the :class:`~lomond.protocol.response.Response` (status,
    headers and any body received) and ``reason`` explains why the response was
    not accepted. :class:`Disconnected` follows.
    """

    __slots__ = ("response", "reason")
    name = "rejected"

    def __init__(self, response: Any, reason: str, received_time: float = 0.0) -> None:
        self.response = response
        self.reason = reason
        self.received_time = received_time

    def __repr__(self) -> str:
        return f"Rejected({self.response!r}, {self.reason!r})"

    def to_dict(self) -> dict[str, Any]:
        status = getattr(self.response, "status_code", None)
        return {**super().to_dict(), "status": status, "reason": self.reason}


class Ready(Event):
    """Emitted when the server accepted the upgrade: messages may be sent now.

    ``response`` is the server's handshake response, ``protocol`` the
    subprotocol the server chose (or None), ``extensions`` the set of
    negotiated extension names, and ``compression`` the agreed
    permessage-deflate parameters as a dict (or None).
    """

    __slots__ = ("response", "protocol", "extensions", "compression")
    name = "ready"

    def __init__(
        self,
        response: Any,
        protocol: str | None,
        extensions: set[str],
        compression: dict[str, Any] | None = None,
        received_time: float = 0.0,
    ) -> None:
        self.response = response
        self.protocol = protocol
        self.extensions = extensions
        self.compression = compression
        self.received_time = received_time

    def __repr__(self) -> str:
        return (
            f"Ready({self.response!r}, protocol={self.protocol!r}, "
            f"extensions={self.extensions!r})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            **super().to_dict(),
            "protocol": self.protocol,
            "extensions": sorted(self.extensions),
            "compression": self.compression,
        }


class ProtocolError(Event):
    """Emitted when the server broke the protocol; :class:`Disconnected` follows.

    ``error`` describes the violation. ``critical`` is True when lomond
    dropped the connection at once, and False when it first sent a close
    frame with the matching code (1002, 1007 or 1009).
    """

    __slots__ = ("error", "critical")
    name = "protocol_error"

    def __init__(self, error: str, critical: bool, received_time: float = 0.0) -> None:
        self.error = error
        self.critical = critical
        self.received_time = received_time

    def __repr__(self) -> str:
        return f"ProtocolError(error={self.error!r}, critical={self.critical!r})"

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "error": self.error, "critical": self.critical}


class Unresponsive(Event):
    """Emitted when no pong arrived within ``ping_timeout``; :class:`Disconnected` follows."""

    __slots__ = ()
    name = "unresponsive"


class Disconnected(Event):
    """The last event of every session: the socket is closed.

    ``reason`` explains why, and ``graceful`` is True only when the closing
    handshake completed.
    """

    __slots__ = ("reason", "graceful")
    name = "disconnected"

    def __init__(
        self, reason: str = "closed", graceful: bool = False, received_time: float = 0.0
    ) -> None:
        self.reason = reason
        self.graceful = graceful
        self.received_time = received_time

    def __repr__(self) -> str:
        return f"Disconnected({self.reason!r}, graceful={self.graceful!r})"

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "reason": self.reason, "graceful": self.graceful}


class Closed(Event):
    """Emitted when the closing handshake completed: no frame may be sent.

    ``code`` and ``reason`` are those of the server's close frame (``code``
    is 1005 and ``reason`` empty when the frame had no payload).
    :class:`Disconnected` follows.
    """

    __slots__ = ("code", "reason")
    name = "closed"

    def __init__(self, code: int, reason: str, received_time: float = 0.0) -> None:
        self.code = code
        self.reason = reason
        self.received_time = received_time

    def __repr__(self) -> str:
        return f"Closed({self.code!r}, {self.reason!r})"

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "code": self.code, "reason": self.reason}


class Closing(Event):
    """Emitted when the server started the closing handshake.

    lomond has already replied with its own close frame (echoing the code),
    so no message may be sent any more. ``code`` and ``reason`` are those of
    the server's close frame. :class:`Disconnected` follows.
    """

    __slots__ = ("code", "reason")
    name = "closing"

    def __init__(self, code: int, reason: str, received_time: float = 0.0) -> None:
        self.code = code
        self.reason = reason
        self.received_time = received_time

    def __repr__(self) -> str:
        return f"Closing({self.code!r}, {self.reason!r})"

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "code": self.code, "reason": self.reason}


class UnknownMessage(Event):
    """Reserved for messages with an opcode lomond does not know.

    RFC 6455 section 5.2 requires failing the connection on a reserved
    opcode, so lomond reports a :class:`ProtocolError` instead; the class is
    kept for code written against lomond 0.3.
    """

    __slots__ = ("message",)
    name = "unknown"

    def __init__(self, message: Any, received_time: float = 0.0) -> None:
        self.message = message
        self.received_time = received_time


class Ping(Event):
    """Emitted when the server sent a ping; ``data`` is its payload.

    With ``auto_pong`` on (the default), lomond has already sent the pong.
    """

    __slots__ = ("data",)
    name = "ping"

    def __init__(self, data: bytes, received_time: float = 0.0) -> None:
        self.data = data
        self.received_time = received_time

    def __repr__(self) -> str:
        return f"Ping({self.data!r})"

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "data": self.data.hex()}


class Pong(Event):
    """Emitted when the server sent a pong; ``data`` is its payload.

    ``latency`` is the round-trip time in seconds when the pong matches
    lomond's latest ping, else None.
    """

    __slots__ = ("data", "latency")
    name = "pong"

    def __init__(
        self, data: bytes, received_time: float = 0.0, latency: float | None = None
    ) -> None:
        self.data = data
        self.received_time = received_time
        self.latency = latency

    def __repr__(self) -> str:
        return f"Pong({self.data!r})"

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "data": self.data.hex(), "latency": self.latency}


class Text(Event):
    """Emitted for each complete text message; ``text`` is a str.

    The ``json`` property decodes it as JSON (and raises what
    :func:`json.loads` raises when it is not valid JSON).
    """

    __slots__ = ("text", "_json")
    name = "text"
    # Set on first use of the json property.
    _json: Any

    def __init__(self, text: str, received_time: float = 0.0) -> None:
        self.text = text
        self.received_time = received_time

    @property
    def json(self) -> Any:
        """The text decoded as JSON (decoded once, then cached)."""
        try:
            return self._json
        except AttributeError:
            self._json = json.loads(self.text)
            return self._json

    def __repr__(self) -> str:
        return f"Text({_summarize(self.text)})"

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "text": self.text}


class Binary(Event):
    """Emitted for each complete binary message; ``data`` is bytes."""

    __slots__ = ("data",)
    name = "binary"

    def __init__(self, data: bytes, received_time: float = 0.0) -> None:
        self.data = data
        self.received_time = received_time

    def __repr__(self) -> str:
        return f"Binary({_summarize(self.data)})"

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "data": self.data.hex()}


class BackOff(Event):
    """Emitted by :func:`~lomond.persist.persist` before it waits to reconnect.

    ``delay`` is the wait in seconds.
    """

    __slots__ = ("delay",)
    name = "back_off"

    def __init__(self, delay: float, received_time: float = 0.0) -> None:
        self.delay = delay
        self.received_time = received_time

    def __repr__(self) -> str:
        return f"BackOff(delay={self.delay:0.1f})"

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "delay": self.delay}
