"""Message steps and protocol faults of the test server, checked byte by byte."""

from __future__ import annotations

import pytest
from kit_raw import RawClient
from lomond.testing import steps
from lomond.testing.frames import (
    OP_BINARY,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    build_frame,
)


def run(server_factory, script, client_frames=()):
    """Connect, handshake, send ``client_frames``, and return every frame received until EOF."""
    server = server_factory(script + [steps.drop()])
    frames = []
    with RawClient(server.port) as client:
        client.handshake()
        for opcode, payload in client_frames:
            client.send_frame(opcode, payload)
        while True:
            try:
                frames.append(client.recv_frame())
            except EOFError:
                break
    return frames


def test_send_text_and_binary(lomond_server_factory):
    frames = run(lomond_server_factory, [steps.accept(), steps.send_text("héllo"), steps.send_binary(b"\x00\xff")])
    assert [(f.opcode, f.fin, f.masked, f.payload) for f in frames] == [
        (OP_TEXT, True, False, "héllo".encode()),
        (OP_BINARY, True, False, b"\x00\xff"),
    ]


def test_send_fragmented_sizes(lomond_server_factory):
    frames = run(lomond_server_factory, [steps.accept(), steps.send_fragmented(b"abcdefgh", [3, 3])])
    assert [(f.opcode, f.fin, f.payload) for f in frames] == [
        (OP_BINARY, False, b"abc"),
        (OP_CONTINUATION, False, b"def"),
        (OP_CONTINUATION, True, b"gh"),
    ]


def test_send_fragmented_text_splits_code_point(lomond_server_factory):
    # "aé" is three bytes, so 2-byte frames split the "é": still valid, sent by hand.
    frames = run(lomond_server_factory, [steps.accept(), steps.send_fragmented("aé", 2)])
    assert [(f.opcode, f.fin, f.payload) for f in frames] == [
        (OP_TEXT, False, b"a\xc3"),
        (OP_CONTINUATION, True, b"\xa9"),
    ]


def test_ping_inside_fragmented_message(lomond_server_factory):
    frames = run(lomond_server_factory, [steps.accept(), steps.send_fragmented("abcd", 2, ping=b"mid")])
    assert [(f.opcode, f.fin, f.payload) for f in frames] == [
        (OP_TEXT, False, b"ab"),
        (OP_PING, True, b"mid"),
        (OP_CONTINUATION, True, b"cd"),
    ]


def test_ping_and_unsolicited_pong(lomond_server_factory):
    frames = run(lomond_server_factory, [steps.accept(), steps.ping(b"payload"), steps.pong(b"free")])
    assert [(f.opcode, f.payload) for f in frames] == [(OP_PING, b"payload"), (OP_PONG, b"free")]


def test_send_large(lomond_server_factory):
    frames = run(lomond_server_factory, [steps.accept(), steps.send_large(70000)])
    assert len(frames[0].payload) == 70000


def test_server_answers_client_ping(lomond_server_factory):
    frames = run(lomond_server_factory, [steps.accept(), steps.expect_ping(b"hi")], [(OP_PING, b"hi")])
    assert [(f.opcode, f.payload) for f in frames] == [(OP_PONG, b"hi")]


def test_no_pong_leaves_ping_unanswered(lomond_server_factory):
    frames = run(lomond_server_factory, [steps.accept(), steps.no_pong(), steps.expect_ping()], [(OP_PING, b"x")])
    assert frames == []


# --- protocol faults: the exact bytes on the wire ---------------------------


def raw_bytes(server_factory, step):
    server = server_factory([steps.accept(), step, steps.drop()])
    with RawClient(server.port) as client:
        client.handshake()
        return client.recv_all()


def test_invalid_utf8(lomond_server_factory):
    data = raw_bytes(lomond_server_factory, steps.invalid_utf8())
    assert data == b"\x81\x0bbad \xc3\x28 text"


def test_invalid_utf8_split(lomond_server_factory):
    data = raw_bytes(lomond_server_factory, steps.invalid_utf8(split=True))
    assert data == b"\x01\x04caf\xc3" + b"\x80\x09\x28 au lait"


@pytest.mark.parametrize("bits, first_byte", [((True, False, False), 0xC1), ((False, True, False), 0xA1), ((False, False, True), 0x91)])
def test_reserved_bits(lomond_server_factory, bits, first_byte):
    data = raw_bytes(lomond_server_factory, steps.reserved_bits(*bits))
    assert data[0] == first_byte


@pytest.mark.parametrize("opcode", [0x3, 0x7, 0xB, 0xF])
def test_reserved_opcode(lomond_server_factory, opcode):
    data = raw_bytes(lomond_server_factory, steps.reserved_opcode(opcode))
    assert data == bytes([0x80 | opcode, 1]) + b"?"


def test_masked_frame(lomond_server_factory):
    data = raw_bytes(lomond_server_factory, steps.masked_frame("abc"))
    assert data[:2] == b"\x81\x83"
    key = data[2:6]
    assert bytes(b ^ key[i % 4] for i, b in enumerate(data[6:])) == b"abc"


def test_long_control_frame(lomond_server_factory):
    data = raw_bytes(lomond_server_factory, steps.long_control_frame(126))
    assert data[:4] == b"\x89\x7e\x00\x7e"
    assert len(data) == 4 + 126


def test_fragmented_control_frame(lomond_server_factory):
    data = raw_bytes(lomond_server_factory, steps.fragmented_control_frame())
    assert data == b"\x09\x04part" + b"\x80\x04rest"


def test_orphan_continuation(lomond_server_factory):
    data = raw_bytes(lomond_server_factory, steps.orphan_continuation(b"x"))
    assert data == b"\x80\x01x"


def test_long_length_form(lomond_server_factory):
    data = raw_bytes(lomond_server_factory, steps.long_length_form("hi"))
    assert data == b"\x81\x7f" + (2).to_bytes(8, "big") + b"hi"


def test_huge_length(lomond_server_factory):
    data = raw_bytes(lomond_server_factory, steps.huge_length())
    assert data == b"\x82\x7f\x80" + b"\x00" * 7


def test_send_frame_generic(lomond_server_factory):
    data = raw_bytes(lomond_server_factory, steps.send_frame(OP_BINARY, b"xy", fin=False, rsv3=True))
    assert data == b"\x12\x02xy"


def test_build_frame_lengths():
    assert build_frame(OP_BINARY, b"a" * 125)[:2] == b"\x82\x7d"
    assert build_frame(OP_BINARY, b"a" * 126)[:4] == b"\x82\x7e\x00\x7e"
    assert build_frame(OP_BINARY, b"a" * 65536)[:2] == b"\x82\x7f"
    masked = bytes([0x61 ^ 1, 0x62 ^ 2, 0x63 ^ 3, 0x64 ^ 4])
    assert build_frame(OP_TEXT, b"abcd", mask=b"\x01\x02\x03\x04") == b"\x81\x84\x01\x02\x03\x04" + masked


def test_build_frame_rejects_bad_arguments():
    with pytest.raises(ValueError, match="4 bits"):
        build_frame(16)
    with pytest.raises(ValueError, match="7-bit form"):
        build_frame(OP_TEXT, b"a" * 200, length_form="7")
    with pytest.raises(ValueError, match="4 bytes"):
        build_frame(OP_TEXT, b"", mask=b"\x00")
