"""Messages (RFC 6455 sections 5.4, 5.6 and 8.1): reassembly, UTF-8 and size limits."""

from __future__ import annotations

from typing import Any

import pytest

from lomond.protocol.connection import MAX_FRAME_SIZE, MAX_MESSAGE_SIZE, ClientConnection
from lomond.protocol.frames import Opcode

from .helpers import (
    assert_failed,
    feed_frames,
    open_connection,
    parse_client_frames,
    receive,
    server_frame,
)

TEXT = Opcode.TEXT
BINARY = Opcode.BINARY
CONTINUATION = Opcode.CONTINUATION


def fragments(opcode: int, parts: list[bytes]) -> bytes:
    """Build one message split into ``parts``, one frame each (section 5.4)."""
    frames = []
    for index, part in enumerate(parts):
        first_opcode = opcode if index == 0 else CONTINUATION
        frames.append(server_frame(first_opcode, part, fin=index == len(parts) - 1))
    return b"".join(frames)


def failing_byte(data: bytes, **options: Any) -> int | None:
    """Feed ``data`` one byte per read; return the index of the byte whose read failed."""
    connection = open_connection(**options)
    for index in range(len(data)):
        received = receive(connection, data[index : index + 1])
        if any(event.name == "protocol_error" for event in received):
            return index
    return None


# --- section 5.4: reassembly ---------------------------------------------------


def test_single_frame_messages() -> None:
    data = server_frame(TEXT, "héllo".encode()) + server_frame(BINARY, b"\x00\x01")
    assert feed_frames(data).summary == [("text", "héllo"), ("binary", b"\x00\x01")]


def test_empty_messages() -> None:
    data = server_frame(TEXT, b"") + server_frame(BINARY, b"")
    assert feed_frames(data).summary == [("text", ""), ("binary", b"")]


@pytest.mark.parametrize(
    "parts",
    [
        [b"one", b"two", b"three"],
        [b"", b"abc"],
        [b"abc", b""],
        [b"", b"", b""],
        [b"a"] * 20,
        [b"x" * 200, b"y" * 70000],
    ],
)
@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_fragmented_message(parts: list[bytes], opcode: int) -> None:
    data = fragments(opcode, parts)
    whole = b"".join(parts)
    expected = ("text", whole.decode()) if opcode == TEXT else ("binary", whole)
    assert feed_frames(data).summary == [expected]


def test_control_frames_inside_message() -> None:
    # Section 5.4: control frames may be injected between the fragments of
    # a message, and are handled at once.
    data = (
        server_frame(TEXT, b"frag", fin=False)
        + server_frame(Opcode.PING, b"p1")
        + server_frame(CONTINUATION, b"men", fin=False)
        + server_frame(Opcode.PONG, b"p2")
        + server_frame(Opcode.PING, b"")
        + server_frame(CONTINUATION, b"ted", fin=True)
        + server_frame(BINARY, b"next")
    )
    result = feed_frames(data)
    assert result.summary == [
        ("ping", b"p1"),
        ("pong", b"p2", None),
        ("ping", b""),
        ("text", "fragmented"),
        ("binary", b"next"),
    ]
    pongs = [(first, payload) for first, _, payload, _ in parse_client_frames(result.sent)]
    assert pongs == [(0x8A, b"p1"), (0x8A, b"")]


def test_close_inside_message() -> None:
    # A close frame between fragments ends the connection; the unfinished
    # message is dropped.
    data = server_frame(TEXT, b"half", fin=False) + server_frame(Opcode.CLOSE, b"\x03\xe8")
    result = feed_frames(data)
    assert result.summary == [("closing", 1000, "")]


CONTINUATION_ERRORS = [
    # (case, bytes, events before the error). Section 5.4: a continuation
    # needs a message to continue, and a new message may not start before
    # the fragmented one ends.
    ("continuation first", server_frame(CONTINUATION, b"x"), []),
    ("non-final continuation first", server_frame(CONTINUATION, b"x", fin=False), []),
    (
        "continuation after final frame",
        server_frame(TEXT, b"a") + server_frame(CONTINUATION, b"b"),
        ["text"],
    ),
    (
        "text inside text",
        server_frame(TEXT, b"a", fin=False) + server_frame(TEXT, b"b"),
        [],
    ),
    (
        "binary inside text",
        server_frame(TEXT, b"a", fin=False) + server_frame(BINARY, b"b"),
        [],
    ),
    (
        "text inside binary",
        server_frame(BINARY, b"a", fin=False) + server_frame(TEXT, b"b", fin=False),
        [],
    ),
]


@pytest.mark.parametrize(
    "data, before",
    [case[1:] for case in CONTINUATION_ERRORS],
    ids=[case[0] for case in CONTINUATION_ERRORS],
)
def test_continuation_rules(data: bytes, before: list[str]) -> None:
    result = feed_frames(data)
    assert_failed(result, 1002)
    assert result.names[:-1] == before


# --- section 8.1: UTF-8 in text messages -------------------------------------


def test_utf8_split_across_frames() -> None:
    # A code point may be split between frames at any byte.
    text = "a€😀é"
    encoded = text.encode("utf-8")
    for cut in range(1, len(encoded)):
        data = fragments(TEXT, [encoded[:cut], encoded[cut:]])
        assert feed_frames(data).summary == [("text", text)], cut


INVALID_UTF8 = [
    # (description, payload, index of the byte that makes it invalid)
    ("lone continuation byte", b"ab\x80cd", 2),
    ("invalid start byte 0xff", b"ab\xffcd", 2),
    ("invalid start byte 0xf5", b"ab\xf5\x80\x80\x80", 2),
    ("overlong slash", b"ab\xc0\xaf", 2),
    ("overlong 3-byte", b"ab\xe0\x80\xaf", 3),
    ("overlong 4-byte", b"ab\xf0\x80\x80\xaf", 3),
    ("UTF-16 surrogate", b"ab\xed\xa0\x80", 3),
    ("low UTF-16 surrogate", b"ab\xed\xbf\xbf", 3),
    ("above U+10FFFF", b"ab\xf4\x90\x80\x80", 3),
    ("missing continuation", b"ab\xe2\x82cd", 4),
    ("ASCII after lead byte", b"ab\xc3(", 3),
]


@pytest.mark.parametrize(
    "payload, position", [case[1:] for case in INVALID_UTF8], ids=[case[0] for case in INVALID_UTF8]
)
def test_utf8_invalid(payload: bytes, position: int) -> None:
    data = server_frame(TEXT, payload + b"tail")
    error = assert_failed(feed_frames(data), 1007)
    assert "UTF-8" in error.error


@pytest.mark.parametrize(
    "payload, position", [case[1:] for case in INVALID_UTF8], ids=[case[0] for case in INVALID_UTF8]
)
def test_utf8_fails_fast_in_frame(payload: bytes, position: int) -> None:
    # The frame announces 1000 bytes, but the error must be found in the
    # read that brings the invalid byte, long before the frame ends.
    header = server_frame(TEXT, b"", length=1000, length_size=2)
    data = header + payload
    assert_failed(feed_frames(data), 1007)
    assert failing_byte(data) == len(header) + position


@pytest.mark.parametrize(
    "payload, position", [case[1:] for case in INVALID_UTF8], ids=[case[0] for case in INVALID_UTF8]
)
def test_utf8_fails_fast_in_message(payload: bytes, position: int) -> None:
    # A non-final frame holding invalid UTF-8 fails before the message ends.
    first = server_frame(TEXT, b"ok", fin=False)
    second = server_frame(CONTINUATION, payload, fin=False)
    data = first + second
    assert_failed(feed_frames(data), 1007)
    assert failing_byte(data) == len(first) + 2 + position


def test_utf8_truncated_at_message_end() -> None:
    # A code point cut short by the final frame is only known at the end.
    data = fragments(TEXT, [b"ok\xe2", b"\x82"])
    error = assert_failed(feed_frames(data), 1007)
    assert "UTF-8" in error.error
    assert failing_byte(data) == len(data) - 1


def test_binary_not_checked() -> None:
    payload = b"\xff\xed\xa0\x80\xc0"
    assert feed_frames(server_frame(BINARY, payload)).summary == [("binary", payload)]


# --- size limits: close code 1009 (section 7.4.1) ------------------------------


def test_default_limits() -> None:
    connection = open_connection()
    assert connection.max_message_size == MAX_MESSAGE_SIZE
    assert connection.max_frame_size == MAX_FRAME_SIZE


@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_message_size_at_limit(opcode: int) -> None:
    options = {"max_message_size": 10}
    assert len(feed_frames(server_frame(opcode, b"x" * 10), **options).summary) == 1
    data = fragments(opcode, [b"x" * 4, b"x" * 6])
    assert len(feed_frames(data, **options).summary) == 1


@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_message_size_over_limit(opcode: int) -> None:
    options = {"max_message_size": 10}
    single = server_frame(opcode, b"x" * 11)
    error = assert_failed(feed_frames(single, **options), 1009)
    assert "max_message_size" in error.error
    # The header is enough to know: fail before the payload arrives.
    assert failing_byte(single, **options) == 1


@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_message_size_over_limit_fragmented(opcode: int) -> None:
    options = {"max_message_size": 10}
    first = server_frame(opcode, b"x" * 6, fin=False)
    data = first + server_frame(CONTINUATION, b"x" * 5)
    assert_failed(feed_frames(data, **options), 1009)
    assert failing_byte(data, **options) == len(first) + 1


def test_message_size_counts_whole_message() -> None:
    # Many small frames add up: the limit is on the reassembled message.
    options = {"max_message_size": 50, "max_frame_size": 10}
    data = fragments(BINARY, [b"y" * 10] * 6)
    assert_failed(feed_frames(data, **options), 1009)


@pytest.mark.parametrize("opcode", [TEXT, BINARY, CONTINUATION])
def test_frame_size_over_limit(opcode: int) -> None:
    options = {"max_frame_size": 8}
    prefix = b"" if opcode != CONTINUATION else server_frame(TEXT, b"a", fin=False)
    frame = server_frame(opcode, b"z" * 9)
    error = assert_failed(feed_frames(prefix + frame, **options), 1009)
    assert "max_frame_size" in error.error
    assert failing_byte(prefix + frame, **options) == len(prefix) + 1


def test_frame_size_limit_lets_messages_grow() -> None:
    options = {"max_frame_size": 8}
    data = fragments(TEXT, [b"12345678", b"12345678", b"1234"])
    assert feed_frames(data, **options).summary == [("text", "12345678123456781234")]


def test_frame_size_64bit_header() -> None:
    options = {"max_frame_size": 1000}
    data = server_frame(BINARY, b"", length_size=8, length=1 << 40)
    assert_failed(feed_frames(data, **options), 1009)
    assert failing_byte(data, **options) == 9


def test_zero_means_no_limit() -> None:
    connection = open_connection(max_message_size=0, max_frame_size=0)
    assert isinstance(connection, ClientConnection)
    payload = b"q" * 200_000
    received = connection.receive(server_frame(BINARY, payload))
    assert [(event.name, len(event.data)) for event in received] == [("binary", 200_000)]


def test_message_limit_per_message() -> None:
    options = {"max_message_size": 5}
    data = server_frame(TEXT, b"12345") * 3
    assert feed_frames(data, **options).summary == [("text", "12345")] * 3
