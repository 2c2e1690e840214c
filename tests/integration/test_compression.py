"""permessage-deflate (RFC 7692) between lomond's client and servers that compress.

Two independent implementations compress on the server side: wsproto,
through the test kit, and the ``websockets`` package's asyncio server, which
this file runs in a subprocess (``python test_compression.py serve``). The
round trips run under every combination of the two no-context-takeover flags
and of window bits 9, 12 and 15 for each direction. Each side checks what
the other sent: the client compares the messages that it receives, and the
server records each frame's opcode, RSV1 bit, FIN bit and payload length.

The other tests feed the client hand-built bytes through the kit: a
compressed message split at odd frame boundaries, a small frame that inflates
past max_message_size, and invalid negotiation responses.
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import subprocess
import sys
import threading
import tracemalloc
import zlib

import gevent
import pytest

from lomond import WebSocket
from lomond.protocol.deflate import DeflateOptions
from lomond.testing import steps
from lomond.testing.frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
)
from lomond.testing.waits import scaled

# --- payloads ------------------------------------------------------------------

# A market-data tick that the client sends twice in a row. With context
# takeover the second copy compresses to a few bytes even with a 9-bit
# window, because zlib matches strings up to 250 bytes back in a 512-byte
# window and the tick is shorter than that.
TICK = '{"type":"ticker","product_id":"BTC-USD","price":"97012.55","size":"0.0041","seq":88213}'
assert len(TICK) < 250

# Random bytes repeated once, 5000 bytes apart. A 15-bit window (32 KiB)
# reaches back far enough to match the second half, but a 12-bit window
# (4 KiB) does not, so the compressed size shows the window that was used.
BLOCK_HALF = 5000
REPEATED_BLOCK = random.Random(7).randbytes(BLOCK_HALF) * 2

# A text message that the client sends with compress=False.
PLAIN_TEXT = "sent without compression " * 8

# A text message that the servers send in several compressed frames.
FRAGMENT_SIZE = 30_000


def make_fragmented_text(size: int = 4 * FRAGMENT_SIZE) -> str:
    """Return ``size`` characters of word-like text that compresses about 3:1."""
    rng = random.Random(11)
    words = "order filled cancelled price size market limit bid ask spread".split()
    parts: list[str] = []
    length = 0
    while length < size:
        part = f"{rng.choice(words)}{rng.randrange(10_000)} "
        parts.append(part)
        length += len(part)
    return "".join(parts)[:size]


FRAGMENTED_TEXT = make_fragmented_text()

# --- the parameter matrix ------------------------------------------------------

WINDOW_BITS = (9, 12, 15)
FLAGS = [(False, False), (True, False), (False, True), (True, True)]
OPTIONS = [
    DeflateOptions(
        server_no_context_takeover=server_flag,
        client_no_context_takeover=client_flag,
        server_max_window_bits=server_bits,
        client_max_window_bits=client_bits,
    )
    for server_flag, client_flag in FLAGS
    for server_bits in WINDOW_BITS
    for client_bits in WINDOW_BITS
]


def options_id(options: DeflateOptions) -> str:
    """Return a short pytest id such as ``s9-c15-snct``."""
    parts = [f"s{options.server_max_window_bits}", f"c{options.client_max_window_bits}"]
    if options.server_no_context_takeover:
        parts.append("snct")
    if options.client_no_context_takeover:
        parts.append("cnct")
    return "-".join(parts)


def agreed_params(options: DeflateOptions) -> dict[str, object]:
    """Return the parameters that a server which accepts the whole offer agrees to."""
    return {
        "server_no_context_takeover": options.server_no_context_takeover,
        "client_no_context_takeover": options.client_no_context_takeover,
        "server_max_window_bits": options.server_max_window_bits,
        "client_max_window_bits": options.client_max_window_bits,
    }


# --- running the client --------------------------------------------------------


def run_client(websocket, on_event, **options):
    """Iterate ``websocket`` under a time limit and return its events."""
    options.setdefault("ping_rate", 0)
    options.setdefault("poll", scaled(5))
    options.setdefault("close_timeout", scaled(2))
    seen = []
    with gevent.Timeout(scaled(15)):
        for event in websocket.connect(**options):
            if event.name == "poll":
                continue
            seen.append(event)
            on_event(websocket, event)
    assert [event.name for event in seen].count("disconnected") == 1
    assert seen[-1].name == "disconnected"
    return seen


def names(seen):
    return [event.name for event in seen]


def data_of(seen):
    """Return the text and binary payloads that the client received, in order."""
    return [event.text if event.name == "text" else event.data
            for event in seen if event.name in ("text", "binary")]


def send_client_messages(websocket):
    """Send the messages that every round trip expects the server to receive."""
    websocket.send_text(TICK)
    websocket.send_text(TICK)
    websocket.send_binary(REPEATED_BLOCK)
    websocket.send_text(PLAIN_TEXT, compress=False)
    websocket.send_ping(b"client")
    websocket.send_binary(REPEATED_BLOCK)


# The data frames that send_client_messages sends, as (opcode, RSV1).
CLIENT_DATA_FRAMES = [
    (OP_TEXT, True),
    (OP_TEXT, True),
    (OP_BINARY, True),
    (OP_TEXT, False),
    (OP_BINARY, True),
]


def check_compressed_sizes(agreed, tick_sizes, block_size):
    """Check that the client compressed with the agreed window and context takeover.

    ``agreed`` contains the agreed parameters. ``tick_sizes`` are the payload
    lengths of the two TICK frames, sent one after the other, and
    ``block_size`` that of the first REPEATED_BLOCK frame.
    """
    first_tick, second_tick = tick_sizes
    if agreed["client_no_context_takeover"]:
        # Each message starts from an empty window, so the output repeats.
        assert second_tick == first_tick
    else:
        assert second_tick < first_tick / 2

    if agreed["client_max_window_bits"] == 15:
        assert block_size < 1.25 * BLOCK_HALF
    else:
        assert block_size > 1.75 * BLOCK_HALF


# --- round trips through the kit (wsproto) -------------------------------------


def check_kit_frames(frames):
    """Check RFC 7692 section 6.1 on every frame that the kit received.

    RSV1 may be set only on the first frame of a data message: never on a
    continuation frame or a control frame. Returns (opcode, RSV1) for each
    frame that starts a data message, and the opcodes of the control frames.
    """
    starts = []
    controls = []
    for frame in frames:
        if frame.opcode == OP_CONTINUATION or frame.is_control:
            assert not frame.rsv1, f"RSV1 set on {frame!r}"
        if frame.is_control:
            controls.append(frame.opcode)
        elif frame.opcode != OP_CONTINUATION:
            starts.append((frame.opcode, frame.rsv1))
    return starts, controls


@pytest.mark.parametrize("options", OPTIONS, ids=options_id)
def test_round_trip_with_wsproto(lomond_server_factory, options):
    script = [
        steps.accept(extensions=["permessage-deflate"]),
        steps.send_text(TICK),
        steps.send_binary(REPEATED_BLOCK),
        steps.send_text(TICK),
        steps.ping(b"kit"),
        steps.send_fragmented(FRAGMENTED_TEXT, FRAGMENT_SIZE),
        steps.expect_text(TICK),
        steps.expect_text(TICK),
        steps.expect_binary(REPEATED_BLOCK),
        steps.expect_text(PLAIN_TEXT),
        steps.expect_binary(REPEATED_BLOCK),
        steps.close(1000),
    ]
    server = lomond_server_factory(script)
    websocket = WebSocket(server.url, compress=options)
    agreed_by_client = []

    def on_event(websocket, event):
        if event.name == "ready":
            agreed_by_client.extend([event.compression, websocket.compression])
            send_client_messages(websocket)

    seen = run_client(websocket, on_event)

    # The client agreed to the whole offer and read every message.
    assert agreed_by_client == [agreed_params(options)] * 2
    assert data_of(seen) == [TICK, REPEATED_BLOCK, TICK, FRAGMENTED_TEXT]
    assert [event.data for event in seen if event.name == "ping"] == [b"kit"]
    assert [event.data for event in seen if event.name == "pong"] == [b"client"]
    assert [event.code for event in seen if event.name == "closing"] == [1000]
    assert seen[-1].graceful

    # The kit inflated each message, and wsproto found no fault in the frames.
    transcript = server.next_connection().wait_closed()
    assert transcript.request.extensions == [options.offer()]
    assert transcript.protocol_errors == []
    messages = transcript.data_messages
    assert [message.data for message in messages] == [
        TICK, TICK, REPEATED_BLOCK, PLAIN_TEXT, REPEATED_BLOCK
    ]
    assert [message.compressed for message in messages] == [True, True, True, False, True]

    # RSV1 is on compressed data frames only, and never on control frames.
    starts, controls = check_kit_frames(transcript.frames)
    assert starts == CLIENT_DATA_FRAMES
    # The client's ping, its pong to the kit's ping (in either order), its close.
    assert sorted(controls[:2]) == [OP_PING, OP_PONG]
    assert controls[2:] == [OP_CLOSE]
    assert transcript.close_code == 1000

    sizes = [len(message.frames[0].payload) for message in messages]
    check_compressed_sizes(agreed_params(options), (sizes[0], sizes[1]), sizes[2])


# --- round trips with the websockets server -------------------------------------

# Text commands that the websockets server obeys. It echoes every other message.
FRAGMENTS_COMMAND = "!fragments"  # send FRAGMENTED_TEXT in several frames
PING_COMMAND = "!ping"  # ping, wait for the pong, then send "pong received"
REPORT_COMMAND = "!report"  # send the frames received so far and the agreed params


def serve_websockets(settings: str) -> None:
    """Run the websockets server: print ``PORT <n>``, serve until stdin closes.

    With ``settings`` "accept-offer" the server accepts the client's offer as
    it is. With "library-defaults" it uses the settings that websockets
    enables for ``compression="deflate"``.
    """
    from websockets.asyncio.server import serve
    from websockets.extensions.permessage_deflate import (
        PerMessageDeflate,
        ServerPerMessageDeflateFactory,
        enable_server_permessage_deflate,
    )

    class RecordingDeflate(PerMessageDeflate):
        """websockets' extension, recording each frame before it is decoded."""

        received: list[list[object]]

        def decode(self, frame, *, max_size=None):
            self.received.append([int(frame.opcode), frame.rsv1, frame.fin, len(frame.data)])
            return super().decode(frame, max_size=max_size)

    class RecordingFactory(ServerPerMessageDeflateFactory):
        def process_request_params(self, params, accepted_extensions):
            response, extension = super().process_request_params(params, accepted_extensions)
            extension.__class__ = RecordingDeflate
            extension.received = []
            return response, extension

    async def handler(ws) -> None:
        extension = ws.protocol.extensions[0]
        async for message in ws:
            if message == FRAGMENTS_COMMAND:
                await ws.send([
                    FRAGMENTED_TEXT[start : start + FRAGMENT_SIZE]
                    for start in range(0, len(FRAGMENTED_TEXT), FRAGMENT_SIZE)
                ])
            elif message == PING_COMMAND:
                pong_waiter = await ws.ping(b"server")
                await pong_waiter
                await ws.send("pong received")
            elif message == REPORT_COMMAND:
                agreed = {
                    "server_no_context_takeover": extension.local_no_context_takeover,
                    "client_no_context_takeover": extension.remote_no_context_takeover,
                    "server_max_window_bits": extension.local_max_window_bits,
                    "client_max_window_bits": extension.remote_max_window_bits,
                }
                await ws.send(json.dumps({"frames": extension.received, "agreed": agreed}))
            else:
                await ws.send(message)

    # Without settings of its own, the factory accepts what the client offers.
    factory = ServerPerMessageDeflateFactory()
    if settings == "library-defaults":
        factory = enable_server_permessage_deflate(None)[0]
    factory.__class__ = RecordingFactory

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stopped = asyncio.Event()
        threading.Thread(
            target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(stopped.set)),
            daemon=True,
        ).start()
        async with serve(
            handler, "127.0.0.1", 0, extensions=[factory], ping_interval=None
        ) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            print(f"PORT {port}", flush=True)
            await stopped.wait()

    asyncio.run(main())


def start_websockets(settings: str):
    """Start the websockets server in a subprocess and yield its URL; stop it after."""
    process = subprocess.Popen(
        [sys.executable, __file__, "serve", settings],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        if not line.startswith("PORT "):
            pytest.fail(f"the websockets server did not start: {line!r}")
        yield f"ws://127.0.0.1:{int(line.split()[1])}/"
    finally:
        process.stdin.close()
        try:
            process.wait(timeout=scaled(10))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def websockets_url():
    """The URL of a websockets server that accepts the client's offer as it is."""
    yield from start_websockets("accept-offer")


@pytest.fixture(scope="module")
def websockets_defaults_url():
    """The URL of a websockets server with the library's default deflate settings."""
    yield from start_websockets("library-defaults")


@pytest.mark.parametrize("options", OPTIONS, ids=options_id)
def test_round_trip_with_websockets(websockets_url, options):
    round_trip_with_websockets(websockets_url, options, agreed_params(options))


def test_websockets_defaults_lower_windows(websockets_defaults_url):
    # websockets 17.4 enables server_max_window_bits=12 and
    # client_max_window_bits=12 by default. The bare client_max_window_bits
    # of the default offer lets the server lower the client's window.
    agreed = {
        "server_no_context_takeover": False,
        "client_no_context_takeover": False,
        "server_max_window_bits": 12,
        "client_max_window_bits": 12,
    }
    round_trip_with_websockets(websockets_defaults_url, True, agreed)


def round_trip_with_websockets(url, compress, agreed):
    """Run the messages of one round trip through the websockets server and check both sides."""
    websocket = WebSocket(url, compress=compress)
    agreed_by_client = []
    reports = []

    def on_event(websocket, event):
        if event.name == "ready":
            agreed_by_client.extend([event.compression, websocket.compression])
            send_client_messages(websocket)
            websocket.send_text(FRAGMENTS_COMMAND)
            websocket.send_text(PING_COMMAND)
        elif event.name == "text" and event.text == "pong received":
            websocket.send_text(REPORT_COMMAND)
        elif event.name == "text" and event.text.startswith('{"frames"'):
            reports.append(json.loads(event.text))
            websocket.close()

    seen = run_client(websocket, on_event)

    # Both sides agreed to the same parameters, and every echo came back intact.
    assert agreed_by_client == [agreed] * 2
    assert len(reports) == 1
    assert reports[0]["agreed"] == agreed
    assert data_of(seen)[:6] == [
        TICK, TICK, REPEATED_BLOCK, PLAIN_TEXT, REPEATED_BLOCK, FRAGMENTED_TEXT
    ]
    assert [event.data for event in seen if event.name == "ping"] == [b"server"]
    assert [event.data for event in seen if event.name == "pong"] == [b"client"]
    # websockets fails the connection with 1002 on RSV1 in a close frame.
    assert [event.code for event in seen if event.name == "closed"] == [1000]
    assert seen[-1].graceful

    # Every frame was final, and RSV1 was set on compressed data frames only.
    frames = reports[0]["frames"]
    assert all(fin for opcode, rsv1, fin, size in frames)
    assert [(opcode, rsv1) for opcode, rsv1, fin, size in frames] == [
        *CLIENT_DATA_FRAMES[:4],
        (OP_PING, False),
        CLIENT_DATA_FRAMES[4],
        (OP_TEXT, True),  # FRAGMENTS_COMMAND
        (OP_TEXT, True),  # PING_COMMAND
        (OP_PONG, False),  # the pong to the server's ping
        (OP_TEXT, True),  # REPORT_COMMAND
    ]

    sizes = [size for opcode, rsv1, fin, size in frames]
    check_compressed_sizes(agreed, (sizes[0], sizes[1]), sizes[2])


# --- hand-built compressed frames -----------------------------------------------


def split_at(data: bytes, sizes: list[int]) -> list[bytes]:
    """Split ``data`` into pieces of ``sizes`` bytes, and the rest as a last piece."""
    pieces = []
    offset = 0
    for size in sizes:
        pieces.append(data[offset : offset + size])
        offset += size
    pieces.append(data[offset:])
    return pieces


def compressed_message_steps(compressor, text: str, sizes: list[int]):
    """Return steps that send ``text`` compressed, in frames of ``sizes`` bytes.

    RSV1 is set on the first frame only, and a ping goes between the first
    two frames, as RFC 6455 section 5.4 allows.
    """
    data = compressor.compress(text.encode()) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(b"\x00\x00\xff\xff")
    pieces = split_at(data[:-4], sizes)
    sent = [steps.send_frame(OP_TEXT, pieces[0], fin=False, rsv1=True), steps.ping(b"between")]
    for index, piece in enumerate(pieces[1:], start=1):
        sent.append(steps.send_frame(OP_CONTINUATION, piece, fin=index == len(pieces) - 1))
    return sent


def test_fragments_split_anywhere_inflate(lomond_server_factory):
    # Two messages from one compressor with context takeover: the second
    # refers back to the first. The frame boundaries fall inside DEFLATE
    # blocks, and two frames are empty.
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    first = FRAGMENTED_TEXT[:20_000]
    second = FRAGMENTED_TEXT[:20_000] + " and again"
    script = [
        steps.accept_raw(extensions="permessage-deflate"),
        *compressed_message_steps(compressor, first, [1, 0, 2, 3, 500]),
        *compressed_message_steps(compressor, second, [0, 7, 1, 1]),
        steps.close(1000),
    ]
    server = lomond_server_factory(script)

    seen = run_client(WebSocket(server.url, compress=True), lambda websocket, event: None)

    assert data_of(seen) == [first, second]
    assert [event.data for event in seen if event.name == "ping"] == [b"between"] * 2
    assert [event.code for event in seen if event.name == "closing"] == [1000]
    assert seen[-1].graceful


# --- a small frame that inflates past max_message_size ---------------------------

MAX_MESSAGE_SIZE = 1024 * 1024
# DEFLATE expands at most about 1032 times: 10.5 MiB of zeros compresses to
# about 10.4 KiB.
BOMB_SIZE = 21 * 512 * 1024


@functools.cache
def make_bomb() -> bytes:
    """Return BOMB_SIZE zero bytes compressed as a permessage-deflate payload."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    data = compressor.compress(bytes(BOMB_SIZE)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return data[:-4]



@pytest.mark.parametrize("frame_count", [1, 10])
def test_inflation_past_limit_closes_1009(lomond_server_factory, frame_count):
    bomb = make_bomb()
    assert 10 * 1024 < len(bomb) < 11 * 1024
    pieces = split_at(bomb, [len(bomb) // frame_count] * (frame_count - 1))
    sends = [steps.send_frame(OP_BINARY, pieces[0], fin=frame_count == 1, rsv1=True)]
    sends += [
        steps.send_frame(OP_CONTINUATION, piece, fin=index == frame_count - 1)
        for index, piece in enumerate(pieces[1:], start=1)
    ]
    script = [steps.accept(extensions=["permessage-deflate"]), *sends, steps.hold()]
    server = lomond_server_factory(script)
    websocket = WebSocket(server.url, compress=True, max_message_size=MAX_MESSAGE_SIZE)

    tracemalloc.start()
    try:
        seen = run_client(websocket, lambda websocket, event: None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # Inflating stopped just past the limit. zlib builds its output in blocks
    # and then joins them, so the peak is about twice the 1 MiB limit, plus
    # the kit's and the client's own allocations (2.2 to 2.7 MB on a 2-CPU
    # Xeon VM with zlib 1.2.13). Inflating the whole message needs 10.5 MiB.
    assert peak < 4 * MAX_MESSAGE_SIZE, f"peak traced memory {peak} bytes"
    assert names(seen) == ["connecting", "connected", "ready", "protocol_error", "disconnected"]
    assert "larger than the limit of 1048576 bytes" in seen[3].error
    assert not seen[-1].graceful
    transcript = server.next_connection().wait_closed()
    assert transcript.close_code == 1009


# --- invalid negotiation responses ----------------------------------------------

# (the client's offer, the server's Sec-WebSocket-Extensions, part of the reason)
BAD_RESPONSES = [
    pytest.param(True, "permessage-deflate; mode=fast", "unknown parameter 'mode'", id="unknown-param"),
    pytest.param(
        True,
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "parameter 'server_no_context_takeover' appears more than once",
        id="repeated-flag",
    ),
    pytest.param(
        True,
        "permessage-deflate; client_max_window_bits=12; client_max_window_bits=12",
        "parameter 'client_max_window_bits' appears more than once",
        id="repeated-bits",
    ),
    pytest.param(
        True,
        "permessage-deflate; server_max_window_bits=16",
        "server_max_window_bits must have a value from 8 to 15 without leading zeros, got '16'",
        id="bits-16",
    ),
    pytest.param(
        True,
        "permessage-deflate; client_max_window_bits=7",
        "client_max_window_bits must have a value from 8 to 15 without leading zeros, got '7'",
        id="bits-7",
    ),
    pytest.param(
        True,
        "permessage-deflate; server_max_window_bits=010",
        "got '010'",
        id="bits-leading-zero",
    ),
    pytest.param(
        True,
        "permessage-deflate; server_max_window_bits",
        "server_max_window_bits must have a value from 8 to 15",
        id="bits-without-value",
    ),
    pytest.param(
        True,
        "permessage-deflate; client_no_context_takeover=1",
        "client_no_context_takeover must have no value, got '1'",
        id="value-on-flag",
    ),
    pytest.param(
        True,
        'permessage-deflate; server_no_context_takeover="true"',
        "server_no_context_takeover must have no value, got 'true'",
        id="quoted-value-on-flag",
    ),
    pytest.param(
        True,
        "x-webkit-deflate-frame",
        "the server accepted extension 'x-webkit-deflate-frame', which the client did not offer",
        id="unoffered-extension",
    ),
    pytest.param(
        False,
        "permessage-deflate",
        "the server accepted extension 'permessage-deflate', which the client did not offer",
        id="deflate-not-offered",
    ),
    pytest.param(
        True,
        "permessage-deflate, permessage-deflate",
        "accepted permessage-deflate 2 times",
        id="deflate-twice",
    ),
    pytest.param(
        DeflateOptions(server_max_window_bits=10),
        "permessage-deflate; server_max_window_bits=12",
        "server_max_window_bits=12 is larger than the 10 that the client offered",
        id="server-bits-above-offer",
    ),
    pytest.param(
        DeflateOptions(client_max_window_bits=None),
        "permessage-deflate; client_max_window_bits=10",
        "client_max_window_bits=10 is present, but the client did not offer it",
        id="client-bits-not-offered",
    ),
    pytest.param(
        DeflateOptions(server_no_context_takeover=True),
        "permessage-deflate",
        "server_no_context_takeover is missing, but the client offered it",
        id="server-flag-dropped",
    ),
    pytest.param(
        True,
        "permessage-deflate; client_max_window_bits=12 server_no_context_takeover",
        "invalid Sec-WebSocket-Extensions header",
        id="missing-semicolon",
    ),
]


@pytest.mark.parametrize("compress, extensions, reason", BAD_RESPONSES)
def test_invalid_negotiation_rejected(lomond_server_factory, compress, extensions, reason):
    script = [steps.accept_raw(extensions=extensions), steps.hold()]
    server = lomond_server_factory(script)

    seen = run_client(WebSocket(server.url, compress=compress), lambda websocket, event: None)

    assert names(seen) == ["connecting", "connected", "rejected", "disconnected"]
    assert reason in seen[2].reason
    assert seen[2].response.status_code == 101
    # The client fails the connection without sending a single frame.
    transcript = server.next_connection().wait_closed()
    assert transcript.frames == []


if __name__ == "__main__" and sys.argv[1:2] == ["serve"]:
    serve_websockets(sys.argv[2])
