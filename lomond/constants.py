"""Constants that lomond 0.3 exported, kept for code that imports them."""

from __future__ import annotations

from .protocol.handshake import WS_VERSION as _WS_VERSION
from .websocket import USER_AGENT

__all__ = ["USER_AGENT", "WS_KEY", "WS_VERSION"]

#: The GUID that RFC 6455 section 1.3 appends to the handshake key.
WS_KEY = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

#: The protocol version sent in Sec-WebSocket-Version.
WS_VERSION = int(_WS_VERSION)
