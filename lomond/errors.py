"""Exceptions raised by lomond.

There is one root, :class:`LomondError`, and three branches:

- caller misuse (:class:`UsageError` and its subclasses) is raised at once
  from the call that received the bad argument;
- a peer violation (:class:`PeerError`) carries the close code lomond sends
  before it drops the connection, and reaches the user as a
  :class:`~lomond.events.ProtocolError` or :class:`~lomond.events.Rejected`
  event, never as an exception out of the event iterator;
- a transport failure (:class:`TransportFail`) ends the connection with a
  :class:`~lomond.events.Disconnected` event, or is raised from a ``send_*``
  call whose frame could not reach the socket.

The names of lomond 0.3 (``WebSocketError``, ``HandshakeError``,
``ProtocolError``, ``CriticalProtocolError``, ``PayloadTooLarge``,
``TransportFail``, ``WebSocketUnavailable``, ``WebSocketClosed``,
``WebSocketClosing``) are kept.
"""

from __future__ import annotations

__all__ = [
    "LomondError",
    "WebSocketError",
    "UsageError",
    "InvalidURL",
    "InvalidHeader",
    "MissingExtra",
    "FrameBuildError",
    "PeerError",
    "HandshakeError",
    "CompressionParameterError",
    "ProtocolError",
    "CriticalProtocolError",
    "InvalidPayload",
    "PayloadTooLarge",
    "TransportFail",
    "ConnectFail",
    "WebSocketUnavailable",
    "WebSocketClosed",
    "WebSocketClosing",
]


class LomondError(Exception):
    """Root of every exception that lomond raises on purpose."""


# lomond 0.3 called the root WebSocketError.
WebSocketError = LomondError


# --- caller misuse ---------------------------------------------------------


class UsageError(LomondError, ValueError):
    """An argument passed to lomond is invalid; the message names it."""


class InvalidURL(UsageError):
    """The WebSocket URL cannot be used (scheme, host or port)."""


class InvalidHeader(UsageError):
    """A header name or value cannot be sent (for example it contains CR or LF)."""


class MissingExtra(UsageError, ImportError):
    """An optional feature needs a package that is not installed."""


# --- peer violations -------------------------------------------------------


class FrameBuildError(UsageError):
    """A frame cannot be built from the given arguments (a lomond 0.3 name)."""


class PeerError(LomondError):
    """The server broke RFC 6455 or RFC 7692.

    ``close_code`` is the status code lomond sends in its close frame before
    it drops the connection (RFC 6455 section 7.4.1).
    """

    close_code = 1002

    def __init__(self, message: str, close_code: int | None = None) -> None:
        super().__init__(message)
        if close_code is not None:
            self.close_code = close_code


class HandshakeError(PeerError):
    """The server's response to the opening handshake is not a valid upgrade."""


class CompressionParameterError(HandshakeError):
    """The server's permessage-deflate parameters are invalid (a lomond 0.3 name)."""


class ProtocolError(PeerError):
    """A frame or message broke the framing rules (close code 1002)."""

    close_code = 1002


class InvalidPayload(ProtocolError):
    """A text message or close reason is not valid UTF-8 (close code 1007)."""

    close_code = 1007


# lomond 0.3 raised CriticalProtocolError for invalid UTF-8.
CriticalProtocolError = InvalidPayload


class PayloadTooLarge(ProtocolError):
    """A frame or message is larger than the configured limit (close code 1009)."""

    close_code = 1009


# --- transport failures ----------------------------------------------------


class TransportFail(LomondError):
    """The socket failed: the connection is lost."""


class ConnectFail(TransportFail):
    """No connection could be made: DNS, TCP, proxy or TLS failed."""


class WebSocketUnavailable(LomondError):
    """A frame cannot be sent because the WebSocket is not open."""


class WebSocketClosing(WebSocketUnavailable):
    """A data frame cannot be sent because the closing handshake has started."""


class WebSocketClosed(WebSocketUnavailable):
    """A frame cannot be sent because the connection is closed."""
