"""The closing handshake (RFC 6455 sections 5.5.1, 7.1 and 7.4) as one state machine."""

from __future__ import annotations

import struct

import pytest

from lomond.errors import InvalidPayload, ProtocolError, WebSocketClosed, WebSocketClosing
from lomond.protocol.connection import State
from lomond.protocol.frames import Opcode, build_close_payload, parse_close_payload
from lomond.status import Status, is_valid_close_code

from .helpers import (
    assert_failed,
    close_frame,
    feed_frames,
    open_connection,
    parse_client_frames,
    receive,
    sent_close,
    server_frame,
    xor_mask,
)

# --- section 7.4: which close codes may appear in a close frame ---------------

# Inclusive ranges, from RFC 6455 section 7.4.1 and 7.4.2 and the IANA
# "WebSocket Close Code Number Registry": 1000-1003 and 1007-1014 are
# assigned for the wire, 3000-4999 are for libraries and applications.
# 1004 is reserved, 1005, 1006 and 1015 must never be sent, 1016-2999 are
# unassigned, and codes below 1000 or from 5000 up are not used.
VALID_CODE_RANGES = [(1000, 1003), (1007, 1014), (3000, 4999)]
INVALID_CODE_RANGES = [(0, 999), (1004, 1006), (1015, 1015), (1016, 2999), (5000, 65535)]


def sample_codes(ranges: list[tuple[int, int]]) -> list[int]:
    """Return both ends and the middle of every range."""
    codes = set()
    for low, high in ranges:
        codes.update({low, (low + high) // 2, high})
    return sorted(codes)


VALID_CODES = sample_codes(VALID_CODE_RANGES)
INVALID_CODES = sample_codes(INVALID_CODE_RANGES)


def test_code_ranges_cover_every_code() -> None:
    covered = sorted(
        code for low, high in VALID_CODE_RANGES + INVALID_CODE_RANGES for code in range(low, high + 1)
    )
    assert covered == list(range(65536))


def test_every_code_checked() -> None:
    valid = {code for low, high in VALID_CODE_RANGES for code in range(low, high + 1)}
    for code in range(65536):
        payload = struct.pack("!H", code)
        assert is_valid_close_code(code) is (code in valid), code
        if code in valid:
            assert parse_close_payload(payload) == (code, "")
            assert build_close_payload(code) == payload
        else:
            with pytest.raises(ProtocolError, match=str(code)):
                parse_close_payload(payload)
            with pytest.raises(ValueError, match=str(code)):
                build_close_payload(code)


def test_status_invalid_codes_table() -> None:
    for code in Status.invalid_codes:
        assert not is_valid_close_code(code), code


@pytest.mark.parametrize("code", VALID_CODES)
def test_valid_code_received(code: int) -> None:
    result = feed_frames(close_frame(code, b"bye"))
    assert result.summary == [("closing", code, "bye")]
    # Section 5.5.1: the close frame sent in reply echoes the code.
    assert sent_close(result.sent) == (code, b"")


@pytest.mark.parametrize("code", INVALID_CODES)
def test_invalid_code_received(code: int) -> None:
    error = assert_failed(feed_frames(close_frame(code, b"bye")), 1002)
    assert str(code) in error.error


# --- section 5.5.1: the close payload -----------------------------------------


def test_empty_close_payload() -> None:
    # No code means 1005 locally, and the close frame sent in reply has no code either.
    result = feed_frames(close_frame())
    assert result.summary == [("closing", Status.NO_STATUS, "")]
    assert sent_close(result.sent) is None
    assert result.sent == b"\x88\x80\x01\x02\x03\x04"


def test_one_byte_close_payload() -> None:
    error = assert_failed(feed_frames(server_frame(Opcode.CLOSE, b"\x03")), 1002)
    assert "1 byte" in error.error


def test_close_reason_utf8() -> None:
    reason = "au revoir 👋"
    result = feed_frames(close_frame(1001, reason.encode("utf-8")))
    assert result.summary == [("closing", 1001, reason)]


@pytest.mark.parametrize("reason", [b"\xff", b"ok\xc3", b"\xed\xa0\x80", b"\xc0\xaf"])
def test_close_reason_not_utf8(reason: bytes) -> None:
    # Section 8.1: a close reason that is not UTF-8 fails with 1007.
    error = assert_failed(feed_frames(close_frame(1000, reason)), 1007)
    assert "UTF-8" in error.error
    with pytest.raises(InvalidPayload):
        parse_close_payload(b"\x03\xe8" + reason)


def test_close_reason_longest() -> None:
    reason = b"r" * 123
    assert feed_frames(close_frame(1000, reason)).summary == [("closing", 1000, "r" * 123)]


# --- section 7.1: the server starts the closing handshake ---------------------


def test_server_close_echoed() -> None:
    result = feed_frames(close_frame(1001, b"going away"))
    connection = result.connection
    assert result.summary == [("closing", 1001, "going away")]
    assert result.sent == b"\x88\x82\x01\x02\x03\x04" + xor_mask(b"\x01\x02\x03\x04", b"\x03\xe9")
    assert connection.state is State.CLOSED
    assert connection.close_received == (1001, "going away")
    assert connection.close_sent == (1001, "")
    # The server closes TCP first (section 7.1.1); lomond does not drop.
    assert connection.should_drop is False


def test_frames_after_server_close_ignored() -> None:
    # Section 5.5.1: nothing follows a close frame.
    data = close_frame(1000) + server_frame(Opcode.TEXT, b"late") + b"\xff\xff garbage"
    result = feed_frames(data)
    assert result.summary == [("closing", 1000, "")]
    assert len(parse_client_frames(result.sent)) == 1
    assert result.connection.receive(server_frame(Opcode.PING, b"x")) == []
    assert result.connection.data_to_send() == b""


def test_send_after_server_close() -> None:
    connection = feed_frames(close_frame(1000)).connection
    with pytest.raises(WebSocketClosed):
        connection.send_text("too late")
    with pytest.raises(WebSocketClosed):
        connection.send_binary(b"too late")
    with pytest.raises(WebSocketClosed):
        connection.send_ping()
    with pytest.raises(WebSocketClosed):
        connection.send_pong()
    assert connection.close() == b""


# --- section 7.1.2: the client starts the closing handshake -------------------


def test_client_close_bytes() -> None:
    connection = open_connection()
    frame = connection.close(1000, "done")
    assert frame == b"\x88\x86\x01\x02\x03\x04" + xor_mask(b"\x01\x02\x03\x04", b"\x03\xe8done")
    assert connection.state is State.CLOSING
    assert connection.close_sent == (1000, "done")
    assert connection.close_received is None


def test_client_close_completed_by_server() -> None:
    connection = open_connection()
    connection.close(3001, "bye")
    received = receive(connection, close_frame(3001, b"ok"))
    assert [(event.name, event.code, event.reason) for event in received] == [
        ("closed", 3001, "ok")
    ]
    # No second close frame: the handshake is complete.
    assert connection.data_to_send() == b""
    assert connection.state is State.CLOSED
    assert connection.close_received == (3001, "ok")
    assert connection.should_drop is False


def test_client_close_without_code() -> None:
    connection = open_connection()
    assert connection.close(None) == b"\x88\x80\x01\x02\x03\x04"
    assert connection.close_sent == (Status.NO_STATUS, "")


def test_data_while_closing() -> None:
    # Section 7.1.2: after sending close, the client still reads frames
    # until the server's close frame arrives.
    connection = open_connection()
    connection.close()
    data = (
        server_frame(Opcode.TEXT, b"still here")
        + server_frame(Opcode.PING, b"p")
        + close_frame(1000)
    )
    received = receive(connection, data)
    assert [event.name for event in received] == ["text", "ping", "closed"]
    # No pong once a close frame went out.
    assert connection.data_to_send() == b""


def test_send_while_closing() -> None:
    connection = open_connection()
    connection.close()
    for send in (
        lambda: connection.send_text("x"),
        lambda: connection.send_binary(b"x"),
        lambda: connection.send_ping(b"x"),
        lambda: connection.send_pong(b"x"),
    ):
        with pytest.raises(WebSocketClosing):
            send()
    # A second close sends nothing.
    assert connection.close() == b""
    assert connection.state is State.CLOSING


def test_send_after_handshake_complete() -> None:
    connection = open_connection()
    connection.close()
    receive(connection, close_frame(1000))
    with pytest.raises(WebSocketClosed):
        connection.send_text("x")
    assert connection.close() == b""


BAD_CLOSE_ARGUMENTS = [
    # (code, reason): rejected before any state changes.
    (1005, ""),
    (1006, ""),
    (999, ""),
    (5000, ""),
    (None, "reason without a code"),
    (1000, "x" * 124),
    (1000, b"\xff\xfe"),
]


@pytest.mark.parametrize("code, reason", BAD_CLOSE_ARGUMENTS)
def test_close_arguments_rejected(code: int | None, reason: str | bytes) -> None:
    connection = open_connection()
    with pytest.raises(ValueError):
        connection.close(code, reason)
    assert connection.state is State.OPEN
    assert connection.close_sent is None


def test_close_reason_123_bytes() -> None:
    connection = open_connection()
    frame = connection.close(1000, "é" * 61 + "x")
    assert len(frame) == 2 + 4 + 125


# --- section 7.1.7: failing the connection ----------------------------------


def test_protocol_error_while_closing() -> None:
    # A close frame already went out, so none is sent again.
    connection = open_connection()
    connection.close(1000)
    received = receive(connection, server_frame(0x3, b""))
    assert [event.name for event in received] == ["protocol_error"]
    assert received[0].critical is True
    assert connection.data_to_send() == b""
    assert connection.should_drop is True
    assert connection.state is State.CLOSED
    assert connection.close_sent == (1000, "")


def test_invalid_close_while_closing() -> None:
    connection = open_connection()
    connection.close(1000)
    received = receive(connection, close_frame(1006))
    assert [event.name for event in received] == ["protocol_error"]
    assert connection.should_drop is True
    assert connection.data_to_send() == b""


def test_error_after_valid_frames() -> None:
    # Events before the bad frame are delivered; the close frame follows.
    data = server_frame(Opcode.TEXT, b"fine") + server_frame(Opcode.TEXT, b"\xff")
    result = feed_frames(data)
    assert result.summary[0] == ("text", "fine")
    assert_failed(result, 1007)


def test_receive_eof() -> None:
    connection = open_connection()
    connection.receive_eof()
    assert connection.state is State.CLOSED
    assert connection.should_drop is True
    with pytest.raises(WebSocketClosed):
        connection.send_text("x")


# --- the whole state machine --------------------------------------------------

TRANSITIONS = [
    # (steps, final state, close_sent, close_received, should_drop)
    ([], State.OPEN, None, None, False),
    (["client close"], State.CLOSING, (1000, ""), None, False),
    (["client close", "server close"], State.CLOSED, (1000, ""), (1000, ""), False),
    (["server close"], State.CLOSED, (1000, ""), (1000, ""), False),
    (["server close", "client close"], State.CLOSED, (1000, ""), (1000, ""), False),
    (["bad frame"], State.CLOSED, (1002, "reserved opcode 0x3"), None, True),
    (["client close", "bad frame"], State.CLOSED, (1000, ""), None, True),
    (["eof"], State.CLOSED, None, None, True),
    (["client close", "eof"], State.CLOSED, (1000, ""), None, True),
]


@pytest.mark.parametrize("steps, state, close_sent, close_received, should_drop", TRANSITIONS)
def test_state_machine(
    steps: list[str],
    state: State,
    close_sent: tuple[int, str] | None,
    close_received: tuple[int, str] | None,
    should_drop: bool,
) -> None:
    connection = open_connection()
    for step in steps:
        if step == "client close":
            connection.close(1000)
        elif step == "server close":
            receive(connection, close_frame(1000))
        elif step == "bad frame":
            receive(connection, server_frame(0x3, b""))
        else:
            connection.receive_eof()
    assert connection.state is state
    assert connection.close_sent == close_sent
    assert connection.close_received == close_received
    assert connection.should_drop is should_drop
