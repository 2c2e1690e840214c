"""Exact-size reads of large frames, and bounded memory for trickled messages.

``ClientConnection.read_size()`` returns how many bytes the session reads
next. These tests play the session's part: they cut the server's bytes at
the sizes read_size() returns, and check the events, the read sizes, and
that a payload read whole becomes the message without a copy.
"""

from __future__ import annotations

import tracemalloc

from lomond.protocol.connection import LARGE_PAYLOAD, MAX_EXACT_READ, ClientConnection
from lomond.protocol.deflate import DeflateOptions, PerMessageDeflate
from lomond.protocol.extensions import parse_extensions
from lomond.protocol.frames import Opcode

from .helpers import (
    make_connection,
    open_connection,
    parse_client_frames,
    receive,
    server_frame,
)

DEFAULT = 65536


def follow_read_size(connection: ClientConnection, wire: bytes) -> tuple[list, list[int], list[bytes]]:
    """Feed ``wire`` in reads of the sizes that read_size() returns.

    Return the events, the requested sizes, and the chunks fed.
    """
    seen, sizes, chunks = [], [], []
    pos = 0
    for _ in range(100_000):
        if pos >= len(wire):
            break
        size = connection.read_size(DEFAULT)
        chunk = wire[pos : pos + size]
        pos += len(chunk)
        sizes.append(size)
        chunks.append(chunk)
        seen += receive(connection, chunk)
    assert pos == len(wire), "the feed did not finish"
    return seen, sizes, chunks


def big(size: int, seed: int) -> bytes:
    return bytes((index * 7 + seed) % 251 for index in range(size))


def test_small_frames_use_the_default_size() -> None:
    connection = open_connection()
    wire = b"".join(server_frame(Opcode.TEXT, f"tick {index}".encode()) for index in range(50))
    seen, sizes, _ = follow_read_size(connection, wire)
    assert [event.text for event in seen] == [f"tick {index}" for index in range(50)]
    assert set(sizes) == {DEFAULT}


def test_large_frames_are_read_header_then_payload() -> None:
    payloads = [big(LARGE_PAYLOAD + 1000 * index, index) for index in range(4)]
    wire = b"".join(server_frame(Opcode.BINARY, payload) for payload in payloads)
    connection = open_connection(max_message_size=0, max_frame_size=0)
    seen, sizes, chunks = follow_read_size(connection, wire)

    assert [event.data for event in seen] == payloads
    # The first frame arrives inside a default read. Each later frame takes
    # three reads: 2 header bytes, the 8-byte length, and the whole payload.
    assert sizes[0] == DEFAULT
    later = sizes[sizes.index(2) :]
    assert later == [size for payload in payloads[1:] for size in (2, 8, len(payload))]
    # A payload read whole is the message: no copy was made.
    for event in seen[1:]:
        assert any(event.data is chunk for chunk in chunks)


def test_large_text_frames_read_whole() -> None:
    text = ("naïve café → " * (LARGE_PAYLOAD // 10))[: LARGE_PAYLOAD]
    payload = text.encode("utf-8")
    wire = server_frame(Opcode.TEXT, payload) * 3
    connection = open_connection(max_message_size=0, max_frame_size=0)
    seen, sizes, _ = follow_read_size(connection, wire)
    assert [event.text for event in seen] == [text] * 3
    assert sizes[-3:] == [2, 8, len(payload)]


def test_control_and_small_frames_between_large_ones() -> None:
    first = big(LARGE_PAYLOAD * 2, 1)
    second = big(LARGE_PAYLOAD, 2)
    wire = (
        server_frame(Opcode.BINARY, first)
        + server_frame(Opcode.PING, b"are you there")
        + server_frame(Opcode.TEXT, b"small")
        + server_frame(Opcode.BINARY, second)
        + server_frame(Opcode.BINARY, first)
    )
    connection = open_connection(max_message_size=0, max_frame_size=0)
    seen, sizes, _ = follow_read_size(connection, wire)
    assert [(event.name, getattr(event, "data", None)) for event in seen] == [
        ("binary", first),
        ("ping", b"are you there"),
        ("text", None),
        ("binary", second),
        ("binary", first),
    ]
    assert seen[2].text == "small"
    # The ping after a large frame is read header first, then its payload.
    ping_at = sizes.index(2)
    assert sizes[ping_at : ping_at + 2] == [2, len(b"are you there")]
    # The pong went out with the ping's payload.
    (frame,) = parse_client_frames(connection.data_to_send())
    assert frame[0] == 0x80 | Opcode.PONG
    assert frame[2] == b"are you there"


def test_fragmented_large_message_keeps_exact_reads() -> None:
    parts = [big(LARGE_PAYLOAD, seed) for seed in range(3)]
    wire = (
        server_frame(Opcode.BINARY, parts[0], fin=False)
        + server_frame(Opcode.CONTINUATION, parts[1], fin=False)
        + server_frame(Opcode.CONTINUATION, parts[2])
    )
    connection = open_connection(max_message_size=0, max_frame_size=0)
    seen, sizes, _ = follow_read_size(connection, wire)
    assert [event.data for event in seen] == [b"".join(parts)]
    assert sizes[-3:] == [2, 8, LARGE_PAYLOAD]


def test_exact_reads_are_capped() -> None:
    size = MAX_EXACT_READ + 5
    connection = open_connection(max_message_size=0, max_frame_size=0)
    header = server_frame(Opcode.BINARY, b"", length=size)
    receive(connection, header)
    assert connection.read_size(DEFAULT) == MAX_EXACT_READ
    receive(connection, bytes(MAX_EXACT_READ))
    assert connection.read_size(DEFAULT) == 5


def test_read_size_is_the_default_during_the_handshake() -> None:
    connection = make_connection()
    connection.request()
    assert connection.read_size(DEFAULT) == DEFAULT


def test_compressed_large_frames_use_the_default_size() -> None:
    # Compressed frames are inflated whole, so exact reads would save nothing.
    connection = open_connection(max_message_size=0, max_frame_size=0)
    connection.deflate = PerMessageDeflate.from_response(
        DeflateOptions(), parse_extensions(["permessage-deflate"])
    )
    assert connection.deflate is not None
    receive(connection, server_frame(Opcode.BINARY, b"", rsv=4, length=LARGE_PAYLOAD))
    assert connection.read_size(DEFAULT) == DEFAULT


def trickle_peak(opcode: int, payload: bytes) -> tuple[list, int]:
    """Feed one message one byte per read; return the events and the peak traced memory."""
    connection = open_connection()
    wire = server_frame(opcode, payload)
    seen = []
    tracemalloc.start()
    try:
        for index in range(len(wire)):
            seen += receive(connection, wire[index : index + 1])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return seen, peak


def test_trickled_binary_message_costs_little_memory() -> None:
    payload = big(100_000, 3)
    seen, peak = trickle_peak(Opcode.BINARY, payload)
    assert [event.data for event in seen] == [payload]
    # One bytes object per read would cost about 40 bytes per byte (4 MB).
    assert peak < 1_000_000, f"peak {peak} bytes for a 100,000-byte message"


def test_trickled_text_message_costs_little_memory() -> None:
    text = "ünïcode → " * 8000
    seen, peak = trickle_peak(Opcode.TEXT, text.encode("utf-8"))
    assert [event.text for event in seen] == [text]
    assert peak < 2_000_000, f"peak {peak} bytes for a {len(text.encode())}-byte message"
