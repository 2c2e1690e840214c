"""Property tests: arbitrary server bytes, in arbitrary chunks, give only events or protocol errors.

Four entry points of the sans-I/O core are fed what a hostile or broken
server could send: the frame parser (:meth:`ClientConnection.receive`
after the handshake), the handshake response parser, the
Sec-WebSocket-Extensions parser with permessage-deflate negotiation, and
the permessage-deflate decompressor. Each test checks that nothing but the
documented outcome comes out: events from ``receive``, or the
:class:`~lomond.errors.PeerError` family from the lower-level parsers.
"""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lomond import events
from lomond.errors import HandshakeError, PeerError
from lomond.protocol.connection import State
from lomond.protocol.deflate import DeflateOptions, PerMessageDeflate
from lomond.protocol.extensions import parse_extensions
from lomond.protocol.response import Response, ResponseReader

from .wire import (
    deflate_message,
    feed_all,
    new_connection,
    open_connection,
    server_frame,
    upgrade_response,
)

FUZZ_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- strategies ---------------------------------------------------------------

# Every opcode, weighted towards the six that RFC 6455 defines.
opcodes = st.one_of(st.sampled_from([0x0, 0x1, 0x2, 0x8, 0x9, 0xA]), st.integers(0, 15))

# Payloads: raw bytes, valid UTF-8, close payloads with any code.
payloads = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=60).map(lambda text: text.encode("utf-8")),
    st.tuples(st.integers(0, 0xFFFF), st.text(max_size=20)).map(
        lambda pair: struct.pack("!H", pair[0]) + pair[1].encode("utf-8")
    ),
)


@st.composite
def frames(draw: st.DrawFn, compressed: bool = False) -> bytes:
    """One frame, usually well formed, sometimes broken in one detail."""
    opcode = draw(opcodes)
    payload = draw(payloads)
    rsv = draw(st.sampled_from([0, 0, 0, 0, 4, 2, 1, 7]))
    if compressed and opcode in (0x1, 0x2) and draw(st.booleans()):
        payload, rsv = deflate_message(payload), 4
    return server_frame(
        opcode,
        payload,
        fin=draw(st.booleans()) if opcode < 8 else draw(st.sampled_from([True, True, False])),
        rsv=rsv,
        mask=draw(st.sampled_from([None, None, None, b"\x01\x02\x03\x04"])),
        length_form=draw(st.sampled_from([None, None, None, 16, 64])),
    )


@st.composite
def fragmented_message(draw: st.DrawFn, compressed: bool = False) -> bytes:
    """A valid text or binary message split into frames, maybe with pings between them."""
    is_text = draw(st.booleans())
    data = draw(st.text(max_size=100)).encode("utf-8") if is_text else draw(st.binary(max_size=300))
    rsv = 0
    if compressed:
        data, rsv = deflate_message(data), 4
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=4)))
    pieces = [data[start:end] for start, end in zip([0] + cuts, cuts + [len(data)])]
    out = b""
    for index, piece in enumerate(pieces):
        opcode = (0x1 if is_text else 0x2) if index == 0 else 0x0
        out += server_frame(opcode, piece, fin=index == len(pieces) - 1, rsv=rsv if index == 0 else 0)
        if draw(st.booleans()):
            out += server_frame(0x9, draw(st.binary(max_size=10)))
    return out


def streams(compressed: bool = False) -> st.SearchStrategy[bytes]:
    """A byte stream: frames and whole messages, with an occasional run of garbage."""
    parts = st.one_of(
        frames(compressed),
        fragmented_message(compressed),
        st.binary(min_size=1, max_size=20),
    )
    return st.lists(parts, max_size=8).map(b"".join)


def chunked(data: bytes, sizes: list[int]) -> list[bytes]:
    """Cut ``data`` into pieces of the given sizes (cycled), the rest in the last piece."""
    chunks, position, index = [], 0, 0
    while position < len(data):
        size = sizes[index % len(sizes)] if sizes else len(data)
        chunks.append(data[position : position + size])
        position += size
        index += 1
    return chunks


chunk_sizes = st.lists(st.integers(1, 40), min_size=1, max_size=10)


def summarize(received: list[events.Event]) -> list[tuple[str, object]]:
    """Return comparable (name, content) pairs for a list of events."""
    summary: list[tuple[str, object]] = []
    for event in received:
        if isinstance(event, events.Text):
            summary.append(("text", event.text))
        elif isinstance(event, (events.Binary, events.Ping, events.Pong)):
            summary.append((event.name, bytes(event.data)))
        elif isinstance(event, (events.Closing, events.Closed)):
            summary.append((event.name, (event.code, event.reason)))
        else:
            summary.append((event.name, None))
    return summary


def check_event_stream(connection: object, received: list[events.Event]) -> None:
    """Check the invariants of what receive() returned over a whole stream."""
    for event in received:
        assert isinstance(event, events.Event), f"receive() returned {event!r}"
    names = [event.name for event in received]
    assert names.count("protocol_error") <= 1, names
    if "protocol_error" in names:
        # Nothing follows the failure, and the caller is told to drop TCP.
        assert names[-1] == "protocol_error", names
        assert connection.should_drop  # type: ignore[attr-defined]
        assert connection.state is State.CLOSED  # type: ignore[attr-defined]
    assert names.count("closing") + names.count("closed") <= 1, names


# --- the frame parser ---------------------------------------------------------


class TestFrameParser:
    @FUZZ_SETTINGS
    @given(data=streams(), sizes=chunk_sizes)
    def test_arbitrary_stream_gives_events(self, data: bytes, sizes: list[int]) -> None:
        connection = open_connection()
        received = feed_all(connection, chunked(data, sizes))
        check_event_stream(connection, received)

    @FUZZ_SETTINGS
    @given(data=streams(compressed=True), sizes=chunk_sizes)
    def test_compressed_stream_gives_events(self, data: bytes, sizes: list[int]) -> None:
        connection = open_connection(deflate=True)
        received = feed_all(connection, chunked(data, sizes))
        check_event_stream(connection, received)

    @FUZZ_SETTINGS
    @given(data=streams(compressed=True), sizes=chunk_sizes, deflate=st.booleans())
    def test_chunking_does_not_change_events(self, data: bytes, sizes: list[int], deflate: bool) -> None:
        whole = summarize(feed_all(open_connection(deflate=deflate), [data]))
        in_chunks = summarize(feed_all(open_connection(deflate=deflate), chunked(data, sizes)))
        one_by_one = summarize(feed_all(open_connection(deflate=deflate), chunked(data, [1])))
        assert in_chunks == whole
        assert one_by_one == whole

    @FUZZ_SETTINGS
    @given(message=fragmented_message(), sizes=chunk_sizes)
    def test_valid_message_arrives_whole(self, message: bytes, sizes: list[int]) -> None:
        received = feed_all(open_connection(), chunked(message, sizes))
        data_events = [event for event in received if event.name in ("text", "binary")]
        assert len(data_events) == 1, received
        assert "protocol_error" not in [event.name for event in received]

    @FUZZ_SETTINGS
    @given(data=streams(), sizes=chunk_sizes, limit=st.integers(1, 64))
    def test_message_limit_is_enforced(self, data: bytes, sizes: list[int], limit: int) -> None:
        connection = open_connection(max_message_size=limit)
        received = feed_all(connection, chunked(data, sizes))
        check_event_stream(connection, received)
        for event in received:
            if isinstance(event, events.Text):
                assert len(event.text.encode("utf-8")) <= limit
            elif isinstance(event, events.Binary):
                assert len(event.data) <= limit


# --- the handshake response parser -------------------------------------------

header_names = st.sampled_from(
    [
        "Upgrade",
        "Connection",
        "Sec-WebSocket-Accept",
        "Sec-WebSocket-Protocol",
        "Sec-WebSocket-Extensions",
        "Content-Length",
        "Retry-After",
        "X-Other",
    ]
)
header_values = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40),
    st.sampled_from(["websocket", "Upgrade", "permessage-deflate", "x; y=1", ""]),
)


@st.composite
def responses(draw: st.DrawFn) -> bytes:
    """An HTTP response head that is close to a valid upgrade answer, plus what follows it."""
    status = draw(st.one_of(st.just("101"), st.text(max_size=4)))
    lines = [f"HTTP/1.1 {status} {draw(st.text(max_size=10))}"]
    for name, value in draw(st.lists(st.tuples(header_names, header_values), max_size=6)):
        lines.append(f"{name}: {value}")
    head = "\r\n".join(lines).encode("utf-8", "surrogatepass")
    head = draw(st.sampled_from([head, head.replace(b"\r\n", b"\n")]))
    return head + b"\r\n\r\n" + draw(st.binary(max_size=30))


def check_handshake_outcome(connection: object, received: list[events.Event]) -> None:
    for event in received:
        assert isinstance(event, events.Event), f"receive() returned {event!r}"
    names = [event.name for event in received]
    assert names.count("ready") + names.count("rejected") <= 1, names
    if "rejected" in names:
        assert connection.should_drop  # type: ignore[attr-defined]


class TestHandshakeParser:
    @FUZZ_SETTINGS
    @given(data=st.binary(max_size=400), sizes=chunk_sizes, deflate=st.booleans())
    def test_arbitrary_bytes_give_events(self, data: bytes, sizes: list[int], deflate: bool) -> None:
        connection = new_connection(deflate=DeflateOptions() if deflate else None)
        received = feed_all(connection, chunked(data, sizes))
        check_handshake_outcome(connection, received)

    @FUZZ_SETTINGS
    @given(data=responses(), sizes=chunk_sizes, deflate=st.booleans())
    def test_near_valid_response_gives_events(self, data: bytes, sizes: list[int], deflate: bool) -> None:
        connection = new_connection(deflate=DeflateOptions() if deflate else None)
        received = feed_all(connection, chunked(data, sizes))
        check_handshake_outcome(connection, received)

    @FUZZ_SETTINGS
    @given(data=st.binary(max_size=400), sizes=chunk_sizes, limit=st.integers(16, 200))
    def test_reader_returns_or_raises_handshake_error(self, data: bytes, sizes: list[int], limit: int) -> None:
        reader = ResponseReader(limit)
        for chunk in chunked(data, sizes):
            try:
                result = reader.feed(chunk)
            except HandshakeError:
                return
            if result is not None:
                response, _extra = result
                assert isinstance(response, Response)
                return

    @FUZZ_SETTINGS
    @given(extensions=st.text(max_size=80), frames_after=streams(compressed=True))
    def test_any_extension_header_gives_events(self, extensions: str, frames_after: bytes) -> None:
        # The header value is arbitrary; the frames after it test that a
        # negotiation that succeeded works with what it agreed.
        value = extensions.encode("latin-1", "replace").decode("latin-1").replace("\r", "").replace("\n", "")
        connection = new_connection(deflate=DeflateOptions())
        received = feed_all(connection, [upgrade_response(value, frames_after)])
        check_handshake_outcome(connection, received)
        check_event_stream(connection, [e for e in received if e.name != "rejected"])


def test_status_code_with_superscript_digit() -> None:
    # str.isdigit() is True for "\xb2" (latin-1 superscript two), which int() rejects.
    connection = new_connection()
    received = connection.receive(b"HTTP/1.1 \xb2 OK\r\n\r\n")
    assert [event.name for event in received] == ["rejected"]


# --- the extension header parser ----------------------------------------------

param_names = st.sampled_from(
    [
        "server_no_context_takeover",
        "client_no_context_takeover",
        "server_max_window_bits",
        "client_max_window_bits",
        "unknown",
    ]
)
param_values = st.one_of(
    st.none(),
    st.integers(0, 20).map(str),
    st.integers(0, 20).map(lambda bits: f'"{bits}"'),
    st.text(max_size=5),
)


@st.composite
def extension_headers(draw: st.DrawFn) -> str:
    """A Sec-WebSocket-Extensions value made of plausible names and parameters."""
    entries = []
    for _ in range(draw(st.integers(0, 3))):
        parts = [draw(st.sampled_from(["permessage-deflate", "x-webkit-deflate-frame", "PerMessage-Deflate"]))]
        for name, value in draw(st.lists(st.tuples(param_names, param_values), max_size=4)):
            parts.append(name if value is None else f"{name}={value}")
        entries.append(draw(st.sampled_from(["; ", ";", " ;\t"])).join(parts))
    return draw(st.sampled_from([", ", ",", " , , "])).join(entries)


deflate_options = st.builds(
    DeflateOptions,
    client_max_window_bits=st.sampled_from([None, 8, 9, 12, 15]),
    server_max_window_bits=st.sampled_from([None, 8, 10, 15]),
    server_no_context_takeover=st.booleans(),
    client_no_context_takeover=st.booleans(),
)


class TestExtensionParser:
    @FUZZ_SETTINGS
    @given(values=st.lists(st.text(max_size=60), max_size=3))
    def test_arbitrary_text_parses_or_raises(self, values: list[str]) -> None:
        try:
            parsed = parse_extensions(values)
        except HandshakeError:
            return
        for name, params in parsed:
            assert name == name.lower()
            for param_name, _value in params:
                assert param_name == param_name.lower()

    @FUZZ_SETTINGS
    @given(value=extension_headers(), options=deflate_options)
    def test_negotiation_agrees_or_raises(self, value: str, options: DeflateOptions) -> None:
        try:
            entries = parse_extensions([value])
            agreed = PerMessageDeflate.from_response(
                options, [entry for entry in entries if entry[0] == "permessage-deflate"]
            )
        except HandshakeError:
            return
        if agreed is not None:
            # Whatever was agreed must round-trip a message.
            data = b"lomond " * 20
            assert agreed.decompress(agreed.compress(data), True, 0) == data
            assert 8 <= agreed.server_max_window_bits <= 15
            assert 8 <= agreed.client_max_window_bits <= 15


# --- the decompressor ---------------------------------------------------------


@st.composite
def compressed_messages(draw: st.DrawFn) -> tuple[bytes, bytes, int]:
    """(original, compressed, server window bits) for one message."""
    bits = draw(st.integers(9, 15))
    original = draw(st.one_of(st.binary(max_size=2000), st.text(max_size=300).map(str.encode)))
    return original, deflate_message(original, bits), bits


class TestDecompressor:
    @FUZZ_SETTINGS
    @given(data=st.binary(max_size=600), sizes=chunk_sizes, limit=st.integers(0, 1000))
    @example(data=b"\x03\x00", sizes=[1], limit=0)  # an empty final block
    def test_arbitrary_bytes_decompress_or_raise(self, data: bytes, sizes: list[int], limit: int) -> None:
        deflate = PerMessageDeflate()
        pieces = chunked(data, sizes) or [b""]
        output = b""
        try:
            for index, piece in enumerate(pieces):
                output += deflate.decompress(piece, index == len(pieces) - 1, limit)
        except PeerError as error:
            assert error.close_code in (1007, 1009)
            return
        if limit:
            assert len(output) <= limit

    @FUZZ_SETTINGS
    @given(message=compressed_messages(), sizes=chunk_sizes)
    def test_round_trip_in_any_frames(self, message: tuple[bytes, bytes, int], sizes: list[int]) -> None:
        original, compressed, bits = message
        deflate = PerMessageDeflate(server_max_window_bits=bits)
        pieces = chunked(compressed, sizes) or [b""]
        output = b"".join(
            deflate.decompress(piece, index == len(pieces) - 1, 0) for index, piece in enumerate(pieces)
        )
        assert output == original

    @FUZZ_SETTINGS
    @given(message=compressed_messages(), limit=st.integers(1, 500))
    def test_limit_stops_inflating(self, message: tuple[bytes, bytes, int], limit: int) -> None:
        original, compressed, bits = message
        deflate = PerMessageDeflate(server_max_window_bits=bits)
        try:
            output = deflate.decompress(compressed, True, limit)
        except PeerError as error:
            assert error.close_code == 1009
            assert len(original) > limit
            return
        assert output == original

    def test_bomb_is_stopped_at_the_limit(self) -> None:
        # 10 MB of zeros compress to about 10 KB; the limit stops inflation
        # long before the whole message is in memory.
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        bomb = compressor.compress(bytes(10_000_000)) + compressor.flush(zlib.Z_SYNC_FLUSH)
        deflate = PerMessageDeflate()
        with pytest.raises(PeerError) as caught:
            deflate.decompress(bomb[:-4], True, 65536)
        assert caught.value.close_code == 1009
