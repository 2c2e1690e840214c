"""Property tests: arbitrary bytes in arbitrary chunks never raise from the parsers.

Whatever the server sends, ClientConnection.receive() returns events: the
handshake ends in Ready or Rejected, and a broken frame ends in one
ProtocolError event with should_drop set. The same bytes cut differently
give the same events.
"""

from __future__ import annotations

import struct
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lomond import events
from lomond.protocol.connection import State

from .helpers import (
    ACCEPT_HEADER,
    feed,
    make_connection,
    make_handshake,
    open_connection,
    parse_client_frames,
    split,
)

FUZZ_SETTINGS = settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# Chunk sizes: mostly small, so that headers and code points get split.
chunk_sizes = st.lists(st.integers(min_value=1, max_value=40), max_size=60)


@st.composite
def frames(draw: Any) -> bytes:
    """Draw one frame that is often valid and sometimes bent in one place."""
    fin = draw(st.booleans())
    rsv = draw(st.sampled_from([0, 0, 0, 0, 1, 2, 4]))
    opcode = draw(st.sampled_from([0, 1, 1, 2, 2, 8, 9, 10, 3, 11]))
    if opcode == 1:
        payload = draw(st.text(max_size=40)).encode("utf-8")
        if draw(st.integers(0, 9)) == 0:
            payload += draw(st.binary(min_size=1, max_size=4))
    elif opcode == 8:
        code = draw(st.sampled_from([1000, 1001, 1005, 1006, 3000, 4999, 999, 5000]))
        payload = draw(st.sampled_from([b"", b"\x03", struct.pack("!H", code) + b"ok"]))
    else:
        payload = draw(st.binary(max_size=140))
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    masked = draw(st.integers(0, 19)) == 0
    length = len(payload)
    encoding = draw(st.sampled_from(["short", "short", "16", "64"]))
    if encoding == "short" and length < 126:
        header = bytes((first, length))
    elif encoding in ("short", "16") and length < 0x10000:
        header = struct.pack("!BBH", first, 126, length)
    else:
        header = struct.pack("!BBQ", first, 127, length)
    if masked:
        header = bytes((header[0], header[1] | 0x80)) + header[2:] + b"\x00\x00\x00\x00"
    return header + payload


server_bytes = st.one_of(
    st.binary(max_size=300),
    st.lists(frames(), max_size=8).map(b"".join),
    st.tuples(st.lists(frames(), max_size=4).map(b"".join), st.binary(max_size=20)).map(
        lambda parts: parts[0] + parts[1]
    ),
)

connection_options = st.sampled_from(
    [
        {},
        {"max_message_size": 64, "max_frame_size": 32},
        {"auto_pong": False},
    ]
)


def check_events(received: list[events.Event], connection: Any) -> None:
    """Check the invariants of one connection's events after a feed."""
    names = [event.name for event in received]
    if "protocol_error" in names:
        assert names.count("protocol_error") == 1
        assert names[-1] == "protocol_error"
        assert connection.should_drop is True
        assert connection.state is State.CLOSED
    for event in received:
        assert isinstance(event, events.Event)


@FUZZ_SETTINGS
@given(data=server_bytes, sizes=chunk_sizes, options=connection_options)
def test_fuzz_frames(data: bytes, sizes: list[int], options: dict[str, int]) -> None:
    whole = feed(open_connection(**options), [data])
    check_events(whole.events, whole.connection)
    chunked = feed(open_connection(**options), split(data, sizes))
    check_events(chunked.events, chunked.connection)
    assert chunked.outcome() == whole.outcome()
    # What lomond wrote back (pongs, close frames) is well-formed and masked.
    for first, _, payload, _ in parse_client_frames(whole.sent):
        assert first in (0x88, 0x8A)
        assert len(payload) <= 125


@FUZZ_SETTINGS
@given(data=server_bytes, sizes=chunk_sizes)
def test_fuzz_frames_after_close(data: bytes, sizes: list[int]) -> None:
    # The same invariants apply after the client started the closing handshake.
    connection = open_connection()
    connection.close(1000)
    result = feed(connection, split(data, sizes))
    check_events(result.events, connection)
    assert connection.state in (State.CLOSING, State.CLOSED)


# --- the handshake response ------------------------------------------------------

status_lines = st.sampled_from(
    [
        b"HTTP/1.1 101 Switching Protocols",
        b"HTTP/1.1 101",
        b"HTTP/1.0 101 OK",
        b"HTTP/1.1 200 OK",
        b"HTTP/1.1 999 X",
        b"HTTP/1.1 \xb9\xb2\xb3 X",
        b"HTTP/1.1",
        b"HTTP/",
        b"GET / HTTP/1.1",
    ]
)
header_lines = st.sampled_from(
    [
        b"Upgrade: websocket",
        b"upgrade: WebSocket",
        b"Connection: Upgrade",
        b"connection: keep-alive, upgrade",
        b"Sec-WebSocket-Accept: " + ACCEPT_HEADER.encode("ascii"),
        b"Sec-WebSocket-Accept: x",
        b"Sec-WebSocket-Protocol: chat",
        b"Sec-WebSocket-Extensions: permessage-deflate",
        b"Sec-WebSocket-Extensions: ;;,",
        b" folded",
        b"no colon",
        b":",
        b"X-Latin: caf\xe9",
    ]
)


@st.composite
def answers(draw: Any) -> bytes:
    """Draw a handshake response built from likely lines, or plain random bytes."""
    if draw(st.booleans()):
        return bytes(draw(st.binary(max_size=200)))
    lines = [draw(status_lines)]
    lines += draw(st.lists(st.one_of(header_lines, st.binary(max_size=30)), max_size=8))
    tail = draw(st.one_of(st.just(b""), st.binary(max_size=30), frames()))
    return b"\r\n".join(lines) + b"\r\n\r\n" + tail


@FUZZ_SETTINGS
@given(data=answers(), sizes=chunk_sizes, protocols=st.sampled_from([(), ("chat",)]))
def test_fuzz_handshake(data: bytes, sizes: list[int], protocols: tuple[str, ...]) -> None:
    def factory() -> Any:
        return make_connection(make_handshake(protocols=protocols), max_header_size=150)

    whole = feed(factory(), [data])
    chunked = feed(factory(), split(data, sizes))
    for result in (whole, chunked):
        names = result.names
        if names:
            assert names[0] in ("ready", "rejected")
        if "rejected" in names:
            assert names == ["rejected"]
            assert result.connection.should_drop is True
            assert result.connection.state is State.CLOSED
        elif not names:
            assert result.connection.state is State.CONNECTING
        check_events(result.events, result.connection)
    assert chunked.summary == whole.summary
