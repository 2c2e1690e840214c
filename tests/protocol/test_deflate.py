"""Tests of permessage-deflate (RFC 7692), grouped by section of the RFC."""

from __future__ import annotations

import json
import random
import tracemalloc
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate as WebsocketsDeflate,
)
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Frame, Opcode

from lomond.errors import HandshakeError, PayloadTooLarge, PeerError, ProtocolError, UsageError
from lomond.protocol.deflate import DeflateOptions, PerMessageDeflate
from lomond.protocol.extensions import parse_extensions

HELLO = b"Hello"
# RFC 7692 section 7.2.3.1: "Hello" in one compressed DEFLATE block.
HELLO_COMPRESSED = bytes.fromhex("f2 48 cd c9 c9 07 00")
# RFC 7692 section 7.2.3.2: a second "Hello" that refers back to the first.
HELLO_AGAIN_COMPRESSED = bytes.fromhex("f2 00 11 00 00")
TAIL = b"\x00\x00\xff\xff"


def negotiate(header: str, **options: object) -> PerMessageDeflate | None:
    """Check a server's Sec-WebSocket-Extensions header against an offer."""
    return PerMessageDeflate.from_response(
        DeflateOptions(**options),  # type: ignore[arg-type]
        parse_extensions([header]),
    )


def agreed(header: str, **options: object) -> dict[str, bool | int]:
    deflate = negotiate(header, **options)
    assert deflate is not None
    return deflate.params


def sample_messages(count: int, seed: int = 7) -> list[bytes]:
    """Return JSON-like messages that repeat keys, so context takeover pays off."""
    rng = random.Random(seed)
    messages = []
    for index in range(count):
        record = {
            "type": rng.choice(["trade", "quote", "heartbeat"]),
            "symbol": rng.choice(["BTC-USD", "ETH-USD", "SOL-EUR"]),
            "price": f"{rng.uniform(10, 50000):.2f}",
            "sequence": index,
            "levels": [[rng.randint(1, 999), rng.random()] for _ in range(rng.randint(0, 40))],
        }
        messages.append(json.dumps(record).encode())
    messages.append(b"")
    messages.append(rng.randbytes(3000))
    messages.append(b"abcdefgh" * 5000)
    return messages


def inflate_strictly(data: bytes, window_bits: int) -> bytes:
    """Inflate raw DEFLATE data 16 bytes at a time.

    zlib checks back-references against its window only across calls, so
    small steps make it reject any distance larger than ``2 ** window_bits``.
    """
    decompressor = zlib.decompressobj(-window_bits)
    output = bytearray()
    pending = data
    for _ in range(len(data) * 1000 + 10):
        chunk = decompressor.decompress(pending, 16)
        output += chunk
        pending = decompressor.unconsumed_tail
        if not pending and not chunk:
            return bytes(output)
    raise AssertionError("inflate did not finish")


# --- RFC 7692 section 7.1: the client's offer --------------------------------

OFFERS = [
    ({}, "permessage-deflate; client_max_window_bits"),
    ({"client_max_window_bits": 12}, "permessage-deflate; client_max_window_bits=12"),
    ({"client_max_window_bits": 8}, "permessage-deflate; client_max_window_bits=8"),
    ({"client_max_window_bits": None}, "permessage-deflate"),
    (
        {"server_max_window_bits": 10, "client_max_window_bits": None},
        "permessage-deflate; server_max_window_bits=10",
    ),
    (
        {"server_no_context_takeover": True, "client_no_context_takeover": True},
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover;"
        " client_max_window_bits",
    ),
]


@pytest.mark.parametrize(("options", "expected"), OFFERS)
def test_offer_header(options: dict[str, object], expected: str) -> None:
    assert DeflateOptions(**options).offer() == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(("options", "offer"), OFFERS)
def test_offer_parses_back(options: dict[str, object], offer: str) -> None:
    [(name, params)] = parse_extensions([offer])
    assert name == "permessage-deflate"
    assert len(params) == len(offer.split(";")) - 1


INVALID_OPTIONS = [
    ("client_max_window_bits", 7, "from 8 to 15"),
    ("client_max_window_bits", 16, "from 8 to 15"),
    ("client_max_window_bits", "15", "from 8 to 15"),
    ("client_max_window_bits", True, "from 8 to 15"),
    ("server_max_window_bits", 0, "from 8 to 15"),
    ("server_max_window_bits", 15.0, "from 8 to 15"),
    ("server_no_context_takeover", 1, "True or False"),
    ("client_no_context_takeover", None, "True or False"),
    ("compress_level", -1, "from 0 to 9"),
    ("compress_level", 10, "from 0 to 9"),
    ("mem_level", 0, "from 1 to 9"),
    ("mem_level", 10, "from 1 to 9"),
    ("threshold", -1, "of 0 or more"),
    ("threshold", None, "of 0 or more"),
]


@pytest.mark.parametrize(("name", "value", "allowed"), INVALID_OPTIONS)
def test_options_reject_invalid_value(name: str, value: object, allowed: str) -> None:
    with pytest.raises(UsageError) as caught:
        DeflateOptions(**{name: value})  # type: ignore[arg-type]
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert name in message
    assert allowed in message
    assert repr(value) in message


def test_options_positional_rejected() -> None:
    with pytest.raises(TypeError):
        DeflateOptions(12)  # type: ignore[call-arg]


# --- RFC 7692 section 7.1: general rules for the response --------------------


def test_response_without_extension_declines() -> None:
    assert PerMessageDeflate.from_response(DeflateOptions(), []) is None


def test_response_plain_accepts_defaults() -> None:
    assert agreed("permessage-deflate") == {
        "server_no_context_takeover": False,
        "client_no_context_takeover": False,
        "server_max_window_bits": 15,
        "client_max_window_bits": 15,
    }


def test_response_params_are_json() -> None:
    deflate = negotiate("permessage-deflate; server_max_window_bits=10")
    assert deflate is not None
    assert json.loads(json.dumps(deflate.params)) == deflate.params
    assert "server_max_window_bits=10" in repr(deflate)


def test_response_copies_local_settings() -> None:
    deflate = negotiate("permessage-deflate", compress_level=1, mem_level=5, threshold=64)
    assert deflate is not None
    assert deflate.threshold == 64
    assert deflate.compress_level == 1
    assert deflate.mem_level == 5


REJECTED_RESPONSES = [
    # (offer options, response header, expected words in the error)
    ({}, "permessage-deflate; x_unknown", "unknown parameter 'x_unknown'"),
    ({}, "permessage-deflate; x_unknown=1", "unknown parameter 'x_unknown'"),
    (
        {},
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "'server_no_context_takeover' appears more than once",
    ),
    (
        {"server_max_window_bits": 12},
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
        "'server_max_window_bits' appears more than once",
    ),
    ({}, "permessage-deflate, permessage-deflate", "accepted permessage-deflate 2 times"),
    ({}, "x-webkit-deflate-frame", "extension 'x-webkit-deflate-frame'"),
]


@pytest.mark.parametrize(("options", "header", "problem"), REJECTED_RESPONSES)
def test_response_rejected_general(options: dict[str, object], header: str, problem: str) -> None:
    with pytest.raises(HandshakeError, match=problem):
        negotiate(header, **options)


# --- RFC 7692 section 7.1.1.1: server_no_context_takeover --------------------


def test_server_no_context_takeover_echoed() -> None:
    params = agreed(
        "permessage-deflate; server_no_context_takeover", server_no_context_takeover=True
    )
    assert params["server_no_context_takeover"] is True


def test_server_no_context_takeover_unasked() -> None:
    assert agreed("permessage-deflate; server_no_context_takeover")["server_no_context_takeover"]


def test_server_no_context_takeover_missing() -> None:
    with pytest.raises(HandshakeError, match="server_no_context_takeover is missing"):
        negotiate("permessage-deflate", server_no_context_takeover=True)


@pytest.mark.parametrize("value", ["1", '"true"'])
def test_server_no_context_takeover_value(value: str) -> None:
    with pytest.raises(HandshakeError, match="server_no_context_takeover must have no value"):
        negotiate(f"permessage-deflate; server_no_context_takeover={value}")


# --- RFC 7692 section 7.1.1.2: client_no_context_takeover --------------------


def test_client_no_context_takeover_echoed() -> None:
    params = agreed(
        "permessage-deflate; client_no_context_takeover", client_no_context_takeover=True
    )
    assert params["client_no_context_takeover"] is True


def test_client_no_context_takeover_unasked() -> None:
    assert agreed("permessage-deflate; client_no_context_takeover")["client_no_context_takeover"]


def test_client_no_context_takeover_not_echoed() -> None:
    # The server may ignore the request, but the client keeps its promise.
    params = agreed("permessage-deflate", client_no_context_takeover=True)
    assert params["client_no_context_takeover"] is True


def test_client_no_context_takeover_value() -> None:
    with pytest.raises(HandshakeError, match="client_no_context_takeover must have no value"):
        negotiate("permessage-deflate; client_no_context_takeover=0")


# --- RFC 7692 section 7.1.2.1: server_max_window_bits ------------------------


@pytest.mark.parametrize(("offered", "answered"), [(10, 10), (10, 8), (15, 9), (8, 8)])
def test_server_max_window_bits_accepted(offered: int, answered: int) -> None:
    params = agreed(
        f"permessage-deflate; server_max_window_bits={answered}",
        server_max_window_bits=offered,
    )
    assert params["server_max_window_bits"] == answered


def test_server_max_window_bits_quoted() -> None:
    params = agreed('permessage-deflate; server_max_window_bits="9"', server_max_window_bits=9)
    assert params["server_max_window_bits"] == 9


def test_server_max_window_bits_unasked() -> None:
    assert agreed("permessage-deflate; server_max_window_bits=11")["server_max_window_bits"] == 11


def test_server_max_window_bits_larger() -> None:
    with pytest.raises(HandshakeError, match="server_max_window_bits=11 is larger than the 10"):
        negotiate("permessage-deflate; server_max_window_bits=11", server_max_window_bits=10)


def test_server_max_window_bits_missing() -> None:
    with pytest.raises(HandshakeError, match="server_max_window_bits is missing"):
        negotiate("permessage-deflate", server_max_window_bits=10)


MALFORMED_WINDOW_BITS = ["7", "16", "08", "010", "+9", "9.0", "0x9", "nine", "-9", '""', None]


@pytest.mark.parametrize("value", MALFORMED_WINDOW_BITS)
@pytest.mark.parametrize("name", ["server_max_window_bits", "client_max_window_bits"])
def test_window_bits_malformed(name: str, value: str | None) -> None:
    param = name if value is None else f"{name}={value}"
    # A malformed value is rejected, or (for '""') already fails the header grammar.
    with pytest.raises(HandshakeError, match=f"{name} must have a value|quoted parameter value"):
        negotiate(f"permessage-deflate; {param}", server_max_window_bits=15)


# --- RFC 7692 section 7.1.2.2: client_max_window_bits ------------------------


@pytest.mark.parametrize("answered", [8, 9, 12, 15])
def test_client_max_window_bits_bare_offer(answered: int) -> None:
    params = agreed(f"permessage-deflate; client_max_window_bits={answered}")
    assert params["client_max_window_bits"] == answered


def test_client_max_window_bits_offered_value_kept() -> None:
    params = agreed("permessage-deflate", client_max_window_bits=12)
    assert params["client_max_window_bits"] == 12


def test_client_max_window_bits_lowered() -> None:
    params = agreed("permessage-deflate; client_max_window_bits=9", client_max_window_bits=12)
    assert params["client_max_window_bits"] == 9


def test_client_max_window_bits_larger() -> None:
    with pytest.raises(HandshakeError, match="client_max_window_bits=13 is larger than the 12"):
        negotiate("permessage-deflate; client_max_window_bits=13", client_max_window_bits=12)


def test_client_max_window_bits_not_offered() -> None:
    with pytest.raises(HandshakeError, match="the client did not offer it"):
        negotiate("permessage-deflate; client_max_window_bits=15", client_max_window_bits=None)


def test_client_max_window_bits_absent_unoffered() -> None:
    params = agreed("permessage-deflate", client_max_window_bits=None)
    assert params["client_max_window_bits"] == 15


# --- RFC 7692 section 7.2.1: compression -------------------------------------


def test_compress_hello() -> None:
    # RFC 7692 section 7.2.3.1.
    assert PerMessageDeflate().compress(HELLO) == HELLO_COMPRESSED


def test_compress_context_takeover() -> None:
    # RFC 7692 section 7.2.3.2: the second message refers back to the first.
    deflate = PerMessageDeflate()
    assert deflate.compress(HELLO) == HELLO_COMPRESSED
    assert deflate.compress(HELLO) == HELLO_AGAIN_COMPRESSED


def test_compress_no_context_takeover() -> None:
    deflate = PerMessageDeflate(client_no_context_takeover=True)
    assert deflate.compress(HELLO) == HELLO_COMPRESSED
    assert deflate.compress(HELLO) == HELLO_COMPRESSED


def test_compress_accepts_buffers() -> None:
    for payload in (bytearray(HELLO), memoryview(HELLO)):
        assert PerMessageDeflate().compress(payload) == HELLO_COMPRESSED


def test_compress_empty_message() -> None:
    # An empty stored block minus its last four octets.
    assert PerMessageDeflate().compress(b"") == b"\x00"
    assert PerMessageDeflate().decompress(b"\x00", True, 0) == b""


def test_compress_strips_tail() -> None:
    deflate = PerMessageDeflate()
    for message in sample_messages(20):
        compressed = deflate.compress(message)
        assert not compressed.endswith(TAIL)


# --- RFC 7692 section 7.2.2: decompression -----------------------------------


def test_decompress_hello() -> None:
    # RFC 7692 section 7.2.3.1.
    assert PerMessageDeflate().decompress(HELLO_COMPRESSED, True, 0) == HELLO


def test_decompress_hello_fragments() -> None:
    # RFC 7692 section 7.2.3.1: the same message in two frames.
    deflate = PerMessageDeflate()
    first = deflate.decompress(bytes.fromhex("f2 48 cd"), False, 0)
    second = deflate.decompress(bytes.fromhex("c9 c9 07 00"), True, 0)
    assert first + second == HELLO


def test_decompress_context_takeover() -> None:
    # RFC 7692 section 7.2.3.2.
    deflate = PerMessageDeflate()
    assert deflate.decompress(HELLO_COMPRESSED, True, 0) == HELLO
    assert deflate.decompress(HELLO_AGAIN_COMPRESSED, True, 0) == HELLO


def test_decompress_no_context_takeover() -> None:
    # With server_no_context_takeover the window starts empty for each
    # message, so a reference into the previous message is invalid.
    deflate = PerMessageDeflate(server_no_context_takeover=True)
    assert deflate.decompress(HELLO_COMPRESSED, True, 0) == HELLO
    assert deflate.decompress(HELLO_COMPRESSED, True, 0) == HELLO
    with pytest.raises(ProtocolError) as caught:
        deflate.decompress(HELLO_AGAIN_COMPRESSED, True, 0)
    assert caught.value.close_code == 1007


def test_decompress_stored_block() -> None:
    # RFC 7692 section 7.2.3.3: a DEFLATE block with no compression.
    payload = bytes.fromhex("00 05 00 fa ff 48 65 6c 6c 6f 00")
    assert PerMessageDeflate().decompress(payload, True, 0) == HELLO


def test_decompress_final_block() -> None:
    # RFC 7692 section 7.2.3.4: a DEFLATE block with BFINAL set. The next
    # message starts a new DEFLATE stream.
    deflate = PerMessageDeflate()
    payload = bytes.fromhex("f3 48 cd c9 c9 07 00 00")
    assert deflate.decompress(payload, True, 0) == HELLO
    assert deflate.decompress(HELLO_COMPRESSED, True, 0) == HELLO
    assert deflate.decompress(HELLO_AGAIN_COMPRESSED, True, 0) == HELLO


@pytest.mark.parametrize(
    "trailer",
    [b"", b"\x00"],
)
def test_decompress_final_block_trailers(trailer: bytes) -> None:
    deflate = PerMessageDeflate()
    payload = bytes.fromhex("f3 48 cd c9 c9 07 00") + trailer
    assert deflate.decompress(payload, True, 0) == HELLO


def test_decompress_final_block_split() -> None:
    # The end of the final block and its trailer arrive in later frames.
    deflate = PerMessageDeflate()
    pieces = [
        deflate.decompress(bytes.fromhex("f3 48 cd c9 c9"), False, 0),
        deflate.decompress(bytes.fromhex("07 00"), False, 0),
        deflate.decompress(b"", False, 0),
        deflate.decompress(b"\x00", True, 0),
    ]
    assert b"".join(pieces) == HELLO
    assert deflate.decompress(HELLO_COMPRESSED, True, 0) == HELLO


@pytest.mark.parametrize("trailer", [b"\x01", b"\x00\x00", b"\x00\x00\xff\xff\x00\x00"])
def test_decompress_data_after_final_block(trailer: bytes) -> None:
    payload = bytes.fromhex("f3 48 cd c9 c9 07 00") + trailer
    with pytest.raises(ProtocolError, match="final DEFLATE block") as caught:
        PerMessageDeflate().decompress(payload, True, 0)
    assert caught.value.close_code == 1007


def test_decompress_stream_after_final_block() -> None:
    # A second DEFLATE stream after BFINAL in the same message is rejected,
    # rather than silently dropped.
    payload = bytes.fromhex("f3 48 cd c9 c9 07 00") + HELLO_COMPRESSED
    with pytest.raises(ProtocolError, match="follow the final DEFLATE block"):
        PerMessageDeflate().decompress(payload, True, 0)


def test_decompress_two_blocks() -> None:
    # RFC 7692 section 7.2.3.5: two DEFLATE blocks in one message.
    payload = bytes.fromhex("f2 48 05 00 00 00 ff ff ca c9 c9 07 00")
    assert PerMessageDeflate().decompress(payload, True, 0) == HELLO


def test_decompress_empty_final_fragment() -> None:
    # A sender that learns of the end of a message only after flushing its
    # last data frame sends the empty stored block's first octet on its own.
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    first = compressor.compress(HELLO) + compressor.flush(zlib.Z_SYNC_FLUSH)
    deflate = PerMessageDeflate()
    assert deflate.decompress(first, False, 0) == HELLO
    assert deflate.decompress(b"\x00", True, 0) == b""
    assert deflate.decompress(HELLO_COMPRESSED, True, 0) == HELLO


def test_decompress_byte_by_byte() -> None:
    sender = PerMessageDeflate()
    receiver = PerMessageDeflate()
    for message in sample_messages(5):
        compressed = sender.compress(message)
        pieces = [
            receiver.decompress(compressed[index : index + 1], False, 0)
            for index in range(len(compressed))
        ]
        pieces.append(receiver.decompress(b"", True, 0))
        assert b"".join(pieces) == message


def test_decompress_accepts_buffers() -> None:
    for payload in (bytearray(HELLO_COMPRESSED), memoryview(HELLO_COMPRESSED)):
        assert PerMessageDeflate().decompress(payload, True, 0) == HELLO


CORRUPT_PAYLOADS = [
    bytes.fromhex("ff ff ff ff"),  # reserved block type 11
    bytes.fromhex("00 05 00 00 00 48 65 6c 6c 6f"),  # stored block with a wrong NLEN
    bytes.fromhex("f2 00 11 00 00"),  # a reference before the start of the stream
]


@pytest.mark.parametrize("payload", CORRUPT_PAYLOADS)
def test_decompress_corrupt_data(payload: bytes) -> None:
    with pytest.raises(ProtocolError, match="invalid compressed data") as caught:
        PerMessageDeflate().decompress(payload, True, 0)
    assert caught.value.close_code == 1007


def test_decompress_negative_max_size() -> None:
    with pytest.raises(UsageError, match="max_size must be 0 or more, got -1"):
        PerMessageDeflate().decompress(HELLO_COMPRESSED, True, -1)


# --- RFC 7692 section 7.1.2: window sizes -------------------------------------


@pytest.mark.parametrize("bits", [8, 9, 12, 15])
def test_window_bits_round_trip(bits: int) -> None:
    sender = PerMessageDeflate(client_max_window_bits=bits)
    receiver = PerMessageDeflate(server_max_window_bits=bits)
    for message in sample_messages(30):
        assert receiver.decompress(sender.compress(message), True, 0) == message


@pytest.mark.parametrize("bits", [8, 9, 12])
def test_window_bits_bound_distances(bits: int) -> None:
    # The compressed stream of all messages fits the agreed window, checked by
    # a zlib inflater with exactly that window. For 8, the compressor runs
    # with 9 bits because zlib rejects 8 for raw deflate.
    sender = PerMessageDeflate(client_max_window_bits=bits)
    messages = sample_messages(30)
    stream = b"".join(sender.compress(message) + TAIL for message in messages)
    assert inflate_strictly(stream, bits) == b"".join(messages)


def test_strict_inflate_detects_far_distance() -> None:
    # Control for the test above: a 15-bit stream with distances over 256
    # bytes fails in an 8-bit window.
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = random.Random(1).randbytes(300) * 20
    stream = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    with pytest.raises(zlib.error, match="too far back"):
        inflate_strictly(stream, 8)


@pytest.mark.parametrize(("agreed_bits", "valid"), [(9, False), (15, True)])
def test_window_bits_larger_than_agreed(agreed_bits: int, valid: bool) -> None:
    # The server repeats a 1000-byte message with a 15-bit window, so the
    # second message refers 1000 bytes back into the first. A client that
    # agreed on a 9-bit (512-byte) window cannot resolve that reference.
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    message = random.Random(2).randbytes(1000)
    payloads = [
        (compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
        for _ in range(2)
    ]
    deflate = PerMessageDeflate(server_max_window_bits=agreed_bits)
    assert deflate.decompress(payloads[0], True, 0) == message
    if valid:
        assert deflate.decompress(payloads[1], True, 0) == message
        return
    with pytest.raises(ProtocolError) as caught:
        deflate.decompress(payloads[1], True, 0)
    assert caught.value.close_code == 1007


@pytest.mark.parametrize("server_no_context_takeover", [False, True])
@pytest.mark.parametrize("client_no_context_takeover", [False, True])
def test_context_takeover_flags_round_trip(
    server_no_context_takeover: bool, client_no_context_takeover: bool
) -> None:
    # The sender plays the server: its compressor follows the server flag.
    sender = PerMessageDeflate(client_no_context_takeover=server_no_context_takeover)
    receiver = PerMessageDeflate(
        server_no_context_takeover=server_no_context_takeover,
        client_no_context_takeover=client_no_context_takeover,
    )
    # The peer inflates what the receiver compresses. When the client flag
    # is set, the peer drops its window after each message, which fails if
    # the receiver's compressor refers back to an earlier message.
    peer = PerMessageDeflate(server_no_context_takeover=client_no_context_takeover)
    for message in sample_messages(20):
        assert receiver.decompress(sender.compress(message), True, 0) == message
        assert peer.decompress(receiver.compress(message), True, 0) == message


def test_no_context_takeover_compresses_worse() -> None:
    messages = sample_messages(50)
    with_takeover = PerMessageDeflate()
    without_takeover = PerMessageDeflate(client_no_context_takeover=True)
    size_with = sum(len(with_takeover.compress(message)) for message in messages)
    size_without = sum(len(without_takeover.compress(message)) for message in messages)
    assert size_with < size_without


# --- RFC 7692 section 8: limits on decompressed size ---------------------------


def test_max_size_exact_fits() -> None:
    message = b"x" * 1000
    payload = PerMessageDeflate().compress(message)
    assert PerMessageDeflate().decompress(payload, True, 1000) == message


def test_max_size_one_over() -> None:
    payload = PerMessageDeflate().compress(b"x" * 1001)
    with pytest.raises(PayloadTooLarge, match="larger than the limit of 1000 bytes") as caught:
        PerMessageDeflate().decompress(payload, True, 1000)
    assert caught.value.close_code == 1009


def test_max_size_counts_whole_message() -> None:
    payload = PerMessageDeflate().compress(b"x" * 600 + b"y" * 600)
    deflate = PerMessageDeflate()
    middle = len(payload) // 2
    with pytest.raises(PayloadTooLarge):
        deflate.decompress(payload[:middle], False, 1000)
        deflate.decompress(payload[middle:], True, 1000)


def test_max_size_resets_per_message() -> None:
    deflate = PerMessageDeflate()
    sender = PerMessageDeflate()
    for _ in range(5):
        assert deflate.decompress(sender.compress(b"z" * 900), True, 1000) == b"z" * 900


@pytest.mark.parametrize("max_size", [0, None])
def test_max_size_unlimited(max_size: int | None) -> None:
    message = b"x" * (3 << 20)
    payload = PerMessageDeflate().compress(message)
    assert PerMessageDeflate().decompress(payload, True, max_size) == message


def make_bomb(mebibytes: int) -> bytes:
    """Return a compressed payload that inflates to ``mebibytes`` MiB of zeros.

    DEFLATE expands at most about 1032 times, so 256 MiB needs about 260 KiB.
    After the first MiB, each further MiB compresses to the same bytes, which
    are repeated instead of compressed again.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(1 << 20)
    first = compressor.compress(zeros) + compressor.flush(zlib.Z_SYNC_FLUSH)
    repeated = compressor.compress(zeros) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return (first + repeated * (mebibytes - 1))[: -len(TAIL)]


def test_bomb_payload_is_what_it_claims() -> None:
    bomb = make_bomb(256)
    assert len(bomb) < 300 << 10
    decompressor = zlib.decompressobj(-15)
    total = 0
    pending = bomb + TAIL
    for _ in range(1000):
        total += len(decompressor.decompress(pending, 16 << 20))
        pending = decompressor.unconsumed_tail
        if not pending:
            break
    assert total == 256 << 20


@pytest.mark.parametrize("frame_size", [None, 64 << 10])
def test_decompression_bomb(frame_size: int | None) -> None:
    bomb = make_bomb(256)
    if frame_size is None:
        frames = [bomb]
    else:
        frames = [bomb[start : start + frame_size] for start in range(0, len(bomb), frame_size)]
    deflate = PerMessageDeflate()

    tracemalloc.start()
    try:
        baseline, _ = tracemalloc.get_traced_memory()
        with pytest.raises(PayloadTooLarge) as caught:
            for index, frame in enumerate(frames):
                deflate.decompress(frame, index == len(frames) - 1, 1 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert caught.value.close_code == 1009
    assert peak - baseline < 4 << 20


# --- properties ----------------------------------------------------------------

window_bits = st.integers(min_value=8, max_value=15)
max_sizes = st.sampled_from([None, 0, 1, 100, 10_000])


@settings(max_examples=300, deadline=None)
@given(
    window_bits,
    st.booleans(),
    st.lists(st.tuples(st.binary(max_size=64), st.booleans()), min_size=1, max_size=8),
    max_sizes,
)
def test_decompress_arbitrary_bytes(
    bits: int,
    server_no_context_takeover: bool,
    frames: list[tuple[bytes, bool]],
    max_size: int | None,
) -> None:
    deflate = PerMessageDeflate(
        server_max_window_bits=bits, server_no_context_takeover=server_no_context_takeover
    )
    for payload, fin in frames:
        try:
            output = deflate.decompress(payload, fin, max_size)
        except PeerError:
            return
        assert isinstance(output, bytes)


@settings(max_examples=200, deadline=None)
@given(st.data(), max_sizes)
def test_decompress_damaged_messages(data: st.DataObject, max_size: int | None) -> None:
    # Valid compressed messages with a few bytes changed reach deeper into
    # the inflater than random bytes do.
    sender = PerMessageDeflate()
    receiver = PerMessageDeflate()
    for message in sample_messages(3, seed=data.draw(st.integers(0, 100))):
        payload = bytearray(sender.compress(message))
        for _ in range(data.draw(st.integers(0, 3))):
            if payload:
                index = data.draw(st.integers(0, len(payload) - 1))
                payload[index] = data.draw(st.integers(0, 255))
        cuts = sorted(data.draw(st.lists(st.integers(0, len(payload)), max_size=3)))
        pieces = [payload[start:end] for start, end in zip([0, *cuts], [*cuts, len(payload)])]
        try:
            for index, piece in enumerate(pieces):
                output = receiver.decompress(piece, index == len(pieces) - 1, max_size)
                assert isinstance(output, bytes)
        except PeerError:
            return


@settings(max_examples=200, deadline=None)
@given(
    window_bits,
    st.booleans(),
    st.lists(st.binary(max_size=2000), min_size=1, max_size=5),
    st.data(),
)
def test_round_trip_any_split(
    bits: int, no_context_takeover: bool, messages: list[bytes], data: st.DataObject
) -> None:
    sender = PerMessageDeflate(
        client_max_window_bits=bits, client_no_context_takeover=no_context_takeover
    )
    receiver = PerMessageDeflate(
        server_max_window_bits=bits, server_no_context_takeover=no_context_takeover
    )
    for message in messages:
        payload = sender.compress(message)
        cuts = sorted(data.draw(st.lists(st.integers(0, len(payload)), max_size=4)))
        pieces = [payload[start:end] for start, end in zip([0, *cuts], [*cuts, len(payload)])]
        output = b"".join(
            receiver.decompress(piece, index == len(pieces) - 1, 0)
            for index, piece in enumerate(pieces)
        )
        assert output == message


# --- interoperability with the websockets package ------------------------------
#
# websockets (https://github.com/python-websockets/websockets) has its own
# permessage-deflate, which here plays the server.


def websockets_negotiate(
    options: DeflateOptions, **server_settings: object
) -> tuple[PerMessageDeflate, WebsocketsDeflate]:
    """Run our offer through websockets' server negotiation and return both sides."""
    [(_, request_params)] = parse_extensions([options.offer()])
    factory = ServerPerMessageDeflateFactory(**server_settings)  # type: ignore[arg-type]
    response_params, server = factory.process_request_params(request_params, [])
    response = "; ".join(
        ["permessage-deflate"]
        + [name if value is None else f"{name}={value}" for name, value in response_params]
    )
    client = PerMessageDeflate.from_response(options, parse_extensions([response]))
    assert client is not None
    return client, server


def send_to_websockets(
    client: PerMessageDeflate, server: WebsocketsDeflate, message: bytes, frames: int
) -> bytes:
    """Compress with lomond, split into ``frames`` frames, inflate with websockets."""
    payload = client.compress(message)
    size = -(-len(payload) // frames) or 1
    pieces = [payload[start : start + size] for start in range(0, len(payload), size)] or [b""]
    output = []
    for index, piece in enumerate(pieces):
        frame = Frame(
            Opcode.BINARY if index == 0 else Opcode.CONT,
            piece,
            fin=index == len(pieces) - 1,
            rsv1=index == 0,
        )
        output.append(bytes(server.decode(frame, max_size=None).data))
    return b"".join(output)


def receive_from_websockets(
    client: PerMessageDeflate, server: WebsocketsDeflate, message: bytes, frames: int
) -> bytes:
    """Compress with websockets, frame by frame, and inflate with lomond."""
    size = -(-len(message) // frames) or 1
    pieces = [message[start : start + size] for start in range(0, len(message), size)] or [b""]
    output = []
    for index, piece in enumerate(pieces):
        fin = index == len(pieces) - 1
        frame = server.encode(Frame(Opcode.BINARY if index == 0 else Opcode.CONT, piece, fin=fin))
        assert frame.rsv1 == (index == 0)
        output.append(client.decompress(bytes(frame.data), fin, 0))
    return b"".join(output)


FLAG_PAIRS = [(False, False), (False, True), (True, False), (True, True)]


@pytest.mark.parametrize("frames", [1, 3])
@pytest.mark.parametrize(("server_no_context_takeover", "client_no_context_takeover"), FLAG_PAIRS)
@pytest.mark.parametrize("bits", [9, 12, 15])
def test_websockets_interop(
    bits: int, server_no_context_takeover: bool, client_no_context_takeover: bool, frames: int
) -> None:
    options = DeflateOptions(
        client_max_window_bits=bits,
        server_max_window_bits=bits,
        server_no_context_takeover=server_no_context_takeover,
        client_no_context_takeover=client_no_context_takeover,
    )
    client, server = websockets_negotiate(options)
    assert client.params == {
        "server_no_context_takeover": server_no_context_takeover,
        "client_no_context_takeover": client_no_context_takeover,
        "server_max_window_bits": bits,
        "client_max_window_bits": bits,
    }
    assert server.local_max_window_bits == bits
    assert server.remote_max_window_bits == bits

    for message in sample_messages(25):
        assert send_to_websockets(client, server, message, frames) == message
        assert receive_from_websockets(client, server, message, frames) == message


@pytest.mark.parametrize("bits", [9, 12])
def test_websockets_server_lowers_windows(bits: int) -> None:
    # The server picks smaller windows than the client's bare offer allows.
    client, server = websockets_negotiate(
        DeflateOptions(), server_max_window_bits=bits, client_max_window_bits=bits
    )
    assert client.params["server_max_window_bits"] == bits
    assert client.params["client_max_window_bits"] == bits
    for message in sample_messages(25):
        assert send_to_websockets(client, server, message, 1) == message
        assert receive_from_websockets(client, server, message, 1) == message


def test_websockets_inflates_window_8() -> None:
    # websockets 17.4 does not negotiate an 8-bit client window but inflates
    # one, so the extension objects are built directly.
    client = PerMessageDeflate(client_max_window_bits=8)
    server = WebsocketsDeflate(
        remote_no_context_takeover=False,
        local_no_context_takeover=False,
        remote_max_window_bits=8,
        local_max_window_bits=9,
    )
    for message in sample_messages(25):
        assert send_to_websockets(client, server, message, 2) == message
