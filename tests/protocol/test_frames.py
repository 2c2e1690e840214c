"""Framing (RFC 6455 section 5): lengths, masking, reserved bits and opcodes, control frames."""

from __future__ import annotations

import pytest

from lomond.errors import WebSocketUnavailable
from lomond.protocol.connection import ClientConnection
from lomond.protocol.deflate import DeflateOptions
from lomond.protocol.frames import (
    CONTROL_OPCODES,
    DATA_OPCODES,
    MAX_CONTROL_PAYLOAD,
    Opcode,
    build_frame,
)

from .helpers import (
    CountingSource,
    VALID_RESPONSE,
    assert_failed,
    feed_all_ways,
    feed_frames,
    make_connection,
    make_handshake,
    open_connection,
    parse_client_frames,
    response_bytes,
    server_frame,
    xor_mask,
)

RESERVED_OPCODES = [3, 4, 5, 6, 7, 11, 12, 13, 14, 15]


def test_opcode_tables() -> None:
    # Section 5.2: 0-2 are data opcodes, 8-10 control, the rest reserved.
    assert {int(opcode) for opcode in DATA_OPCODES} == {0, 1, 2}
    assert {int(opcode) for opcode in CONTROL_OPCODES} == {8, 9, 10}
    assert sorted(set(range(16)) - {int(opcode) for opcode in Opcode}) == RESERVED_OPCODES


# --- section 5.2: payload length --------------------------------------------

LENGTHS = [
    # (payload size, header size): 7-bit up to 125, 16-bit up to 65535,
    # then 64-bit.
    (0, 2),
    (1, 2),
    (125, 2),
    (126, 4),
    (127, 4),
    (65535, 4),
    (65536, 10),
    (70000, 10),
]


@pytest.mark.parametrize("size, header_size", LENGTHS)
def test_server_frame_lengths(size: int, header_size: int) -> None:
    payload = bytes(index % 251 for index in range(size))
    data = server_frame(Opcode.BINARY, payload)
    assert len(data) == header_size + size
    assert feed_frames(data).summary == [("binary", payload)]


@pytest.mark.parametrize("size", [0, 5, 125])
@pytest.mark.parametrize("length_size", [2, 8])
def test_server_frame_length_not_minimal(size: int, length_size: int) -> None:
    # Section 5.2 requires the shortest encoding from senders but does not
    # tell receivers to fail on a longer one, so lomond accepts it.
    payload = b"x" * size
    data = server_frame(Opcode.BINARY, payload, length_size=length_size)
    assert feed_frames(data).summary == [("binary", payload)]


def test_server_frame_64bit_top_bit() -> None:
    # Section 5.2: the most significant bit of a 64-bit length must be 0.
    data = server_frame(Opcode.BINARY, b"", length_size=8, length=1 << 63)
    assert_failed(feed_frames(data), 1002)


def test_server_frame_64bit_largest_valid() -> None:
    # 2**63 - 1 is a valid length; it then fails on the frame size limit.
    data = server_frame(Opcode.BINARY, b"", length_size=8, length=(1 << 63) - 1)
    assert_failed(feed_frames(data), 1009)


# --- section 5.1 and 5.3: masking --------------------------------------------


@pytest.mark.parametrize("opcode", [Opcode.TEXT, Opcode.BINARY, Opcode.PING, Opcode.CLOSE])
def test_server_frame_masked(opcode: int) -> None:
    # Section 5.1: a client must close the connection on a masked frame.
    data = server_frame(opcode, b"\x03\xe8hi", mask_key=b"\x10\x20\x30\x40")
    error = assert_failed(feed_frames(data), 1002)
    assert "masked" in error.error


def test_build_frame_exact_bytes() -> None:
    key = b"\x37\xfa\x21\x3d"
    # The masked "Hello" example of section 5.7.
    assert build_frame(Opcode.TEXT, b"Hello", key) == bytes.fromhex("818537fa213d7f9f4d5158")
    assert build_frame(Opcode.PING, b"", key) == bytes.fromhex("898037fa213d")
    assert build_frame(Opcode.TEXT, b"a", key, fin=False) == b"\x01\x81" + key + b"\x56"
    assert build_frame(Opcode.BINARY, b"", key, rsv1=True) == b"\xc2\x80" + key


@pytest.mark.parametrize("size, header", [(125, b"\x82\xfd"), (126, b"\x82\xfe\x00\x7e"),
                                          (65535, b"\x82\xfe\xff\xff"),
                                          (65536, b"\x82\xff\x00\x00\x00\x00\x00\x01\x00\x00")])
def test_build_frame_lengths(size: int, header: bytes) -> None:
    key = b"\x01\x02\x03\x04"
    payload = bytes(index % 256 for index in range(size))
    frame = build_frame(Opcode.BINARY, payload, key)
    assert frame[: len(header)] == header
    assert frame[len(header) : len(header) + 4] == key
    assert frame[len(header) + 4 :] == xor_mask(key, payload)


def test_send_exact_bytes() -> None:
    # Keys from the counting source: 01020304, then 05060708, and so on.
    connection = open_connection()
    assert connection.send_text("hé") == b"\x81\x83\x01\x02\x03\x04" + xor_mask(
        b"\x01\x02\x03\x04", "hé".encode("utf-8")
    )
    assert connection.send_binary(b"\x00\xff") == b"\x82\x82\x05\x06\x07\x08\x05\xf9"
    assert connection.send_ping(b"p") == b"\x89\x81\x09\x0a\x0b\x0c" + bytes([ord("p") ^ 9])
    assert connection.send_pong(b"") == b"\x8a\x80\x0d\x0e\x0f\x10"
    assert connection.close(1000, "bye") == (
        b"\x88\x85\x11\x12\x13\x14" + xor_mask(b"\x11\x12\x13\x14", b"\x03\xe8bye")
    )


def test_send_uses_a_new_key_per_frame() -> None:
    source = CountingSource()
    connection = open_connection(random_bytes=source)
    frames = [connection.send_text("x") for _ in range(3)]
    keys = [frame[2:6] for frame in frames]
    assert len(set(keys)) == 3
    assert source.counter == 12


def test_send_default_source_keys_differ() -> None:
    # With os.urandom, two frames with the same payload get different keys
    # (equal keys would happen with probability 2**-32 per pair).
    connection = ClientConnection(make_handshake())
    connection.receive(VALID_RESPONSE)
    first = parse_client_frames(connection.send_text("same"))[0]
    second = parse_client_frames(connection.send_text("same"))[0]
    assert first[1] != second[1]
    assert first[2] == second[2] == b"same"
    assert first[3] != second[3]


# --- section 5.2: reserved bits ----------------------------------------------


@pytest.mark.parametrize("rsv", range(1, 8))
@pytest.mark.parametrize("opcode", [Opcode.TEXT, Opcode.BINARY, Opcode.PING])
def test_rsv_without_extension(rsv: int, opcode: int) -> None:
    # Section 5.2: a nonzero RSV bit without an extension that defines it fails.
    data = server_frame(opcode, b"x", rsv=rsv)
    error = assert_failed(feed_frames(data), 1002)
    assert "reserved bit" in error.error


def test_rsv_on_continuation_without_extension() -> None:
    data = server_frame(Opcode.TEXT, b"a", fin=False) + server_frame(0, b"b", rsv=4)
    assert_failed(feed_frames(data), 1002)


def open_deflate_connection() -> ClientConnection:
    """Return an open connection that agreed on permessage-deflate."""
    connection = make_connection(handshake=make_handshake(deflate=DeflateOptions()))
    received = connection.receive(
        response_bytes(extra=[("Sec-WebSocket-Extensions", "permessage-deflate")])
    )
    assert [event.name for event in received] == ["ready"]
    return connection


@pytest.mark.parametrize(
    "rsv, opcode",
    [(2, Opcode.TEXT), (1, Opcode.BINARY), (4, Opcode.PING), (4, Opcode.CLOSE), (2, Opcode.PONG)],
)
def test_rsv_not_defined_by_deflate(rsv: int, opcode: int) -> None:
    # RFC 7692 section 6: permessage-deflate defines RSV1 on the first frame
    # of a data message only.
    data = server_frame(opcode, b"", rsv=rsv)
    result = feed_all_ways(open_deflate_connection, data)
    assert_failed(result, 1002)


# --- section 5.2: reserved opcodes -------------------------------------------


@pytest.mark.parametrize("opcode", RESERVED_OPCODES)
def test_reserved_opcode(opcode: int) -> None:
    error = assert_failed(feed_frames(server_frame(opcode, b"abc")), 1002)
    assert f"{opcode:#x}" in error.error


@pytest.mark.parametrize("opcode", RESERVED_OPCODES)
def test_reserved_opcode_inside_message(opcode: int) -> None:
    data = server_frame(Opcode.TEXT, b"a", fin=False) + server_frame(opcode, b"")
    assert_failed(feed_frames(data), 1002)


# --- section 5.5: control frames ---------------------------------------------


@pytest.mark.parametrize("opcode", [Opcode.PING, Opcode.PONG])
def test_control_frame_125_bytes(opcode: Opcode) -> None:
    payload = bytes(range(125))
    result = feed_frames(server_frame(opcode, payload))
    assert result.summary[0][:2] == (opcode.name.lower(), payload)


@pytest.mark.parametrize("opcode", [Opcode.PING, Opcode.PONG, Opcode.CLOSE])
@pytest.mark.parametrize("size, length_size", [(126, 2), (126, 8), (65536, 8)])
def test_control_frame_too_long(opcode: int, size: int, length_size: int) -> None:
    # Section 5.5: control frames carry at most 125 bytes.
    data = server_frame(opcode, b"\x03\xe8" + b"x" * 124, length_size=length_size, length=size)
    error = assert_failed(feed_frames(data), 1002)
    assert str(MAX_CONTROL_PAYLOAD) in error.error


@pytest.mark.parametrize("opcode", [Opcode.PING, Opcode.PONG, Opcode.CLOSE])
def test_control_frame_fragmented(opcode: int) -> None:
    # Section 5.5: control frames must not be fragmented.
    error = assert_failed(feed_frames(server_frame(opcode, b"", fin=False)), 1002)
    assert "fragmented" in error.error


def test_ping_answered_with_pong() -> None:
    # Section 5.5.2: the pong echoes the ping's payload, masked.
    result = feed_frames(server_frame(Opcode.PING, b"are you there"))
    assert result.summary == [("ping", b"are you there")]
    assert result.sent == b"\x8a\x8d\x01\x02\x03\x04" + xor_mask(
        b"\x01\x02\x03\x04", b"are you there"
    )
    assert result.connection.should_drop is False


def test_ping_without_auto_pong() -> None:
    result = feed_frames(server_frame(Opcode.PING, b"x"), auto_pong=False)
    assert result.summary == [("ping", b"x")]
    assert result.sent == b""


def test_pong_round_trip_time() -> None:
    connection = open_connection()
    connection.send_ping(b"t1", now=100.0)
    other = connection.receive(server_frame(Opcode.PONG, b"other"), 100.2)
    assert [(event.name, event.latency) for event in other] == [("pong", None)]
    answer = connection.receive(server_frame(Opcode.PONG, b"t1"), 100.5)
    assert [(event.name, event.data) for event in answer] == [("pong", b"t1")]
    assert answer[0].latency == pytest.approx(0.5)
    # Only the first matching pong reports a round trip.
    again = connection.receive(server_frame(Opcode.PONG, b"t1"), 101.0)
    assert again[0].latency is None


def test_send_control_payload_limit() -> None:
    connection = open_connection()
    assert len(connection.send_ping(b"x" * 125)) == 2 + 4 + 125
    with pytest.raises(ValueError, match="126 bytes"):
        connection.send_ping(b"x" * 126)
    with pytest.raises(ValueError, match="126 bytes"):
        connection.send_pong(b"x" * 126)
    with pytest.raises(TypeError):
        connection.send_ping("text")  # type: ignore[arg-type]


def test_send_before_open() -> None:
    connection = make_connection()
    with pytest.raises(WebSocketUnavailable, match="not open yet"):
        connection.send_text("early")
    with pytest.raises(WebSocketUnavailable):
        connection.send_ping()
    assert connection.close() == b""
