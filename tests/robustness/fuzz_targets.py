"""Fuzz entry points: one function per parser, taking one input of arbitrary bytes.

The same functions serve the atheris harness in ``fuzz/`` (coverage-guided,
run by hand) and ``test_fuzz_regressions.py``, which replays every input
that ever made one of them fail. Each function returns normally when the
parser produced only what it documents (events, or a PeerError from the
lower-level parsers) and raises otherwise: an AssertionError for a broken
invariant, or whatever unexpected exception escaped.

The first bytes of an input choose options (compression, chunk sizes,
limits); the rest is what the server sends.
"""

from __future__ import annotations

from lomond import events
from lomond.errors import HandshakeError, PeerError
from lomond.protocol.connection import State
from lomond.protocol.deflate import DeflateOptions, PerMessageDeflate
from lomond.protocol.extensions import parse_extensions

from .wire import feed_all, new_connection, open_connection, upgrade_response

__all__ = ["TARGETS", "feed_deflate", "feed_extensions", "feed_frames", "feed_handshake"]


def _chunks(data: bytes, size_byte: int) -> list[bytes]:
    """Cut ``data`` into pieces of 1 to 32 bytes, or whole when ``size_byte`` is 0."""
    size = size_byte % 33
    if size == 0:
        return [data]
    return [data[start : start + size] for start in range(0, len(data), size)]


def _check_events(connection: object, received: list[events.Event]) -> None:
    names = []
    for event in received:
        assert isinstance(event, events.Event), f"receive() returned {event!r}"
        names.append(event.name)
    assert names.count("protocol_error") <= 1, names
    if "protocol_error" in names:
        assert names[-1] == "protocol_error", names
        assert connection.should_drop  # type: ignore[attr-defined]
        assert connection.state is State.CLOSED  # type: ignore[attr-defined]


def feed_frames(data: bytes) -> None:
    """Feed frames to an open connection: byte 0 picks compression and the limit, byte 1 the chunk size."""
    if len(data) < 2:
        return
    options, size_byte, stream = data[0], data[1], data[2:]
    limit = 0 if options & 2 else 64 + (options >> 2) * 8
    connection = open_connection(deflate=bool(options & 1), max_message_size=limit)
    received = feed_all(connection, _chunks(stream, size_byte))
    _check_events(connection, received)
    if limit:
        for event in received:
            if isinstance(event, events.Text):
                assert len(event.text.encode("utf-8")) <= limit
            elif isinstance(event, events.Binary):
                assert len(event.data) <= limit


def feed_handshake(data: bytes) -> None:
    """Feed a handshake response: byte 0 picks the deflate offer, byte 1 the chunk size."""
    if len(data) < 2:
        return
    offer = DeflateOptions() if data[0] & 1 else None
    connection = new_connection(deflate=offer)
    received = feed_all(connection, _chunks(data[2:], data[1]))
    names = [event.name for event in received]
    assert names.count("ready") + names.count("rejected") <= 1, names
    if "rejected" in names:
        assert connection.should_drop
    else:
        _check_events(connection, [event for event in received if event.name != "ready"])


_OFFERS = [
    DeflateOptions(),
    DeflateOptions(client_max_window_bits=None),
    DeflateOptions(client_max_window_bits=9, server_max_window_bits=10),
    DeflateOptions(server_no_context_takeover=True, client_no_context_takeover=True),
]


def feed_extensions(data: bytes) -> None:
    """Parse a Sec-WebSocket-Extensions header (one value per line) and negotiate with it.

    Byte 0 picks the client's offer. When the negotiation succeeds, the
    value is also sent in a full 101 response followed by the bytes after
    the first NUL, as frames.
    """
    if not data:
        return
    offer = _OFFERS[data[0] % len(_OFFERS)]
    text, _, frames = data[1:].partition(b"\x00")
    values = text.decode("latin-1").replace("\r", "").split("\n")
    try:
        entries = parse_extensions(values)
        for name, params in entries:
            assert name == name.lower()
            assert all(param == param.lower() for param, _ in params)
        agreed = PerMessageDeflate.from_response(
            offer, [entry for entry in entries if entry[0] == "permessage-deflate"]
        )
    except HandshakeError:
        return
    if agreed is None:
        return
    assert 8 <= agreed.server_max_window_bits <= 15
    assert 8 <= agreed.client_max_window_bits <= 15
    message = b"fuzz " * 40
    assert agreed.decompress(agreed.compress(message), True, 0) == message

    # The same header in a real response, then frames under what was agreed.
    connection = new_connection(deflate=offer)
    header = ", ".join(value for value in values if value.strip())
    received = feed_all(connection, [upgrade_response(header, frames)])
    names = [event.name for event in received]
    assert names.count("ready") + names.count("rejected") <= 1, names
    _check_events(connection, [event for event in received if event.name not in ("ready", "rejected")])


def feed_deflate(data: bytes) -> None:
    """Decompress one message: byte 0 picks window bits and takeover, byte 1 the frame size, byte 2 the limit."""
    if len(data) < 3:
        return
    bits = 8 + data[0] % 8
    deflate = PerMessageDeflate(
        server_max_window_bits=bits, server_no_context_takeover=bool(data[0] & 0x80)
    )
    limit = data[2] * 16
    frames = _chunks(data[3:], data[1]) or [b""]
    output = b""
    for index, frame in enumerate(frames):
        try:
            output += deflate.decompress(frame, index == len(frames) - 1, limit)
        except PeerError as error:
            assert error.close_code in (1007, 1009), error.close_code
            return
    if limit:
        assert len(output) <= limit, (len(output), limit)


TARGETS = {
    "frames": feed_frames,
    "handshake": feed_handshake,
    "extensions": feed_extensions,
    "deflate": feed_deflate,
}
