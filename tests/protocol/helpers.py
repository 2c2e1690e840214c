"""Shared tools for the byte-level tests of ``lomond.protocol``.

Server frames are built here by hand, independently of
``lomond.protocol.frames``, so that a bug in the builder cannot hide the
same bug in the parser. Masks and handshake keys come from deterministic
sources, so every expected byte string is exact.
"""

from __future__ import annotations

import base64
import hashlib
import random
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from lomond import events
from lomond.protocol.connection import ClientConnection, State
from lomond.protocol.handshake import Handshake
from lomond.protocol.url import parse_url

# The 16 handshake key bytes of every test connection, and the two header
# values they lead to (RFC 6455 section 4.1 and 4.2.2).
KEY = bytes(range(16))
KEY_HEADER = base64.b64encode(KEY).decode("ascii")
ACCEPT_HEADER = base64.b64encode(
    hashlib.sha1(KEY_HEADER.encode("ascii") + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
).decode("ascii")

AGENT = "lomond-test/1.0"

# Chunk sizes for the random chunkings; each seed gives one chunking.
RANDOM_CHUNKING_SEEDS = (1, 2, 3)


class CountingSource:
    """A deterministic ``random_bytes`` source: 01 02 03 04, then 05 06 07 08, and so on."""

    def __init__(self) -> None:
        self.counter = 0

    def __call__(self, size: int) -> bytes:
        data = bytes((self.counter + index + 1) % 256 for index in range(size))
        self.counter += size
        return data


def xor_mask(key: bytes, payload: bytes) -> bytes:
    """Mask ``payload`` one byte at a time: the reference for every masking test."""
    return bytes(byte ^ key[index % 4] for index, byte in enumerate(payload))


# --- building what the server sends ---------------------------------------


def server_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask_key: bytes | None = None,
    length_size: int | None = None,
    length: int | None = None,
) -> bytes:
    """Build one frame as a server would send it (section 5.2).

    ``rsv`` contains the RSV1-RSV3 bits as 0-7 (RSV1 is 4). ``length_size``
    forces the length encoding (0 for 7-bit, 2 for 16-bit, 8 for 64-bit),
    and ``length`` writes a length that differs from the payload's.
    """
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    size = len(payload) if length is None else length
    if length_size is None and size < 126:
        length_size = 0
    elif length_size is None and size < 0x10000:
        length_size = 2
    elif length_size is None:
        length_size = 8
    mask_bit = 0x80 if mask_key is not None else 0
    if length_size == 0:
        header = bytes((first, mask_bit | size))
    elif length_size == 2:
        header = struct.pack("!BBH", first, mask_bit | 126, size)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, size)
    if mask_key is not None:
        return header + mask_key + xor_mask(mask_key, payload)
    return header + payload


def close_frame(code: int | None = None, reason: bytes = b"") -> bytes:
    """Build a server close frame with a 2-byte code and a raw reason."""
    payload = b"" if code is None else struct.pack("!H", code) + reason
    return server_frame(0x8, payload)


def response_bytes(
    headers: Sequence[tuple[str, str]] | None = None,
    *,
    status: str = "101 Switching Protocols",
    extra: Sequence[tuple[str, str]] = (),
) -> bytes:
    """Build the server's handshake response; ``headers`` replaces the valid defaults."""
    if headers is None:
        headers = [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", ACCEPT_HEADER),
        ]
    lines = [f"HTTP/1.1 {status}"] + [f"{name}: {value}" for name, value in [*headers, *extra]]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


VALID_RESPONSE = response_bytes()


# --- the client side -------------------------------------------------------


def make_handshake(url: str = "ws://example.com/feed", **options: Any) -> Handshake:
    """Return a Handshake with the fixed test key."""
    options.setdefault("agent", AGENT)
    return Handshake(parse_url(url), KEY, **options)


def make_connection(
    handshake: Handshake | None = None, **options: Any
) -> ClientConnection:
    """Return a connection that has not seen the server's response yet."""
    options.setdefault("random_bytes", CountingSource())
    return ClientConnection(handshake or make_handshake(), **options)


def open_connection(**options: Any) -> ClientConnection:
    """Return a connection after a valid handshake, with its Ready event taken."""
    connection = make_connection(**options)
    connection.request()
    received = connection.receive(VALID_RESPONSE)
    assert [event.name for event in received] == ["ready"]
    assert connection.state is State.OPEN
    return connection


def parse_client_frames(data: bytes) -> list[tuple[int, bytes, bytes, bytes]]:
    """Split client bytes into (first byte, mask key, unmasked payload, raw payload) tuples.

    Fails the calling test when a frame is not masked (section 5.3) or the
    bytes end inside a frame.
    """
    frames = []
    pos = 0
    while pos < len(data):
        first, second = data[pos], data[pos + 1]
        assert second & 0x80, "client frame is not masked"
        length = second & 0x7F
        pos += 2
        if length == 126:
            (length,) = struct.unpack("!H", data[pos : pos + 2])
            pos += 2
        elif length == 127:
            (length,) = struct.unpack("!Q", data[pos : pos + 8])
            pos += 8
        key = data[pos : pos + 4]
        raw = data[pos + 4 : pos + 4 + length]
        assert len(raw) == length, "client bytes end inside a frame"
        frames.append((first, key, xor_mask(key, raw), raw))
        pos += 4 + length
    return frames


def sent_close(data: bytes) -> tuple[int, bytes] | None:
    """Return (code, reason) of the close frame that ends ``data`` (None for an empty payload).

    Fails the calling test unless ``data`` ends with the only close frame in it.
    """
    frames = parse_client_frames(data)
    assert frames, "no frame was sent"
    closes = [frame for frame in frames if frame[0] & 0x0F == 0x8]
    assert len(closes) == 1, f"expected one close frame, got {len(closes)}"
    first, _, payload, _ = frames[-1]
    assert first == 0x88, f"expected a final close frame last, got first byte {first:#x}"
    if not payload:
        return None
    return struct.unpack("!H", payload[:2])[0], payload[2:]


def assert_failed(result: FeedResult, code: int) -> events.ProtocolError:
    """Check that the connection failed (section 7.1.7): a close frame with ``code``, then drop."""
    assert result.names, "no event"
    assert result.names[-1] == "protocol_error", result.summary
    error = result.events[-1]
    assert isinstance(error, events.ProtocolError)
    connection = result.connection
    assert connection.should_drop is True
    assert connection.state is State.CLOSED
    close = sent_close(result.sent)
    assert close is not None
    sent_code, reason = close
    assert sent_code == code, f"sent close code {sent_code}, expected {code}: {error.error}"
    assert error.error.startswith(reason.decode("utf-8"))
    # A close frame went out first, so the error is not "critical".
    assert error.critical is False
    assert connection.close_sent is not None
    assert connection.close_sent[0] == code
    # After the failure, more bytes change nothing.
    assert connection.receive(b"\x81\x01a", 0.0) == []
    assert connection.data_to_send() == b""
    return error


# --- feeding in chunks -----------------------------------------------------


def split(data: bytes, sizes: Iterable[int]) -> list[bytes]:
    """Cut ``data`` into pieces of the given sizes; the last piece takes the rest."""
    pieces = []
    pos = 0
    for size in sizes:
        if pos >= len(data):
            break
        pieces.append(data[pos : pos + size])
        pos += size
    if pos < len(data):
        pieces.append(data[pos:])
    return pieces


def chunkings(data: bytes) -> Iterator[tuple[str, list[bytes]]]:
    """Yield (label, pieces): whole, byte by byte, and a few seeded random cuts."""
    yield "whole", [data]
    yield "byte by byte", [data[index : index + 1] for index in range(len(data))]
    for seed in RANDOM_CHUNKING_SEEDS:
        rng = random.Random(seed)
        sizes = [rng.randint(1, 9) for _ in range(len(data))]
        yield f"random seed {seed}", split(data, sizes)


def summarize(event: events.Event) -> tuple[Any, ...]:
    """Reduce an event to the attributes that must not depend on chunking."""
    if isinstance(event, events.Text):
        return ("text", event.text)
    if isinstance(event, (events.Binary, events.Ping)):
        return (event.name, event.data)
    if isinstance(event, events.Pong):
        return ("pong", event.data, event.latency)
    if isinstance(event, (events.Closing, events.Closed)):
        return (event.name, event.code, event.reason)
    if isinstance(event, events.ProtocolError):
        return ("protocol_error", event.error, event.critical)
    if isinstance(event, events.Ready):
        return ("ready", event.protocol, sorted(event.extensions))
    if isinstance(event, events.Rejected):
        # The reason may quote however much of the answer had arrived, so
        # only the status is compared.
        status = event.response.status_code if event.response is not None else None
        return ("rejected", status)
    return (event.name,)


class FeedResult:
    """What one connection did with a byte string: events, bytes written, final state."""

    def __init__(self, connection: ClientConnection, events_list: list[events.Event], sent: bytes):
        self.connection = connection
        self.events = events_list
        self.sent = sent
        self.summary = [summarize(event) for event in events_list]
        self.names = [event.name for event in events_list]

    def outcome(self) -> tuple[Any, ...]:
        connection = self.connection
        return (
            self.summary,
            self.sent,
            connection.state,
            connection.should_drop,
            connection.close_sent,
            connection.close_received,
        )


def receive(connection: ClientConnection, data: bytes, now: float = 0.0) -> list[events.Event]:
    """Feed one read as a caller must: also take a protocol error that follows its events."""
    received = connection.receive(data, now)
    if connection.failure_pending:
        received += connection.receive(b"", now)
        assert not connection.failure_pending
    return received


def feed(connection: ClientConnection, pieces: Iterable[bytes]) -> FeedResult:
    """Feed ``pieces`` one read each; collect the events and what data_to_send() returns."""
    collected: list[events.Event] = []
    sent = b""
    for piece in pieces:
        collected.extend(receive(connection, piece))
        sent += connection.data_to_send()
    return FeedResult(connection, collected, sent)


def feed_all_ways(
    factory: Callable[[], ClientConnection], data: bytes
) -> FeedResult:
    """Feed ``data`` whole, byte by byte and in random chunks, to fresh connections.

    Asserts that every chunking gives the same events, the same bytes to
    send and the same final state, and returns the result of the whole feed.
    """
    results = [(label, feed(factory(), pieces)) for label, pieces in chunkings(data)]
    _, expected = results[0]
    for label, result in results[1:]:
        assert result.outcome() == expected.outcome(), f"fed {label}, the result differs"
    return expected


def feed_frames(data: bytes, **options: Any) -> FeedResult:
    """Feed server frames to open connections in every chunking (see feed_all_ways)."""
    return feed_all_ways(lambda: open_connection(**options), data)
