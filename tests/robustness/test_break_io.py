"""Attempts to break the descriptor-based session I/O, exact-size reads and C masking.

Each test runs lomond against a server on 127.0.0.1 that this file starts:
a raw gevent StreamServer that writes hand-built frames and parses the
client's masked frames byte for byte, so a lost, duplicated or interleaved
byte fails the test.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import os
import random
import statistics
import struct
import threading
import time
import zlib

import gevent
import gevent.event
import gevent.pool
import pytest
from gevent.server import StreamServer

from lomond import WebSocket
from lomond.protocol import mask as mask_module
from lomond.testing import Server, steps

_speedups = pytest.importorskip("lomond._speedups")

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
KIB = 1024
MIB = 1024 * 1024
# How late a timer may fire on a loaded test machine, beyond the 50 ms grid.
LATE = 0.1 * float(os.environ.get("LOMOND_TEST_TIMEOUT_SCALE", "1"))


# --- a raw server ---------------------------------------------------------------


def read_request(sock) -> tuple[dict[bytes, bytes], bytes]:
    """Read the handshake request and return its headers and the bytes after it."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(4096)
        if not chunk:
            raise EOFError("the client closed before the end of its request")
        buffer += chunk
    head, rest = buffer.split(b"\r\n\r\n", 1)
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        name, value = line.split(b":", 1)
        headers[name.strip().lower()] = value.strip()
    return headers, rest


def accept(sock, extensions: bytes | None = None) -> bytes:
    """Send the 101 response and return the bytes the client sent after its request."""
    headers, rest = read_request(sock)
    digest = hashlib.sha1(headers[b"sec-websocket-key"] + GUID).digest()
    response = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + base64.b64encode(digest) + b"\r\n"
    )
    if extensions:
        response += b"Sec-WebSocket-Extensions: " + extensions + b"\r\n"
    sock.sendall(response + b"\r\n")
    return rest


def frame(opcode: int, payload: bytes, fin: bool = True, rsv1: bool = False) -> bytes:
    """Build an unmasked server frame."""
    first = opcode
    if fin:
        first |= 0x80
    if rsv1:
        first |= 0x40
    size = len(payload)
    if size < 126:
        return struct.pack("!BB", first, size) + payload
    if size < 65536:
        return struct.pack("!BBH", first, 126, size) + payload
    return struct.pack("!BBQ", first, 127, size) + payload


def unmask(key: bytes, payload: bytes) -> bytes:
    """XOR with the key, written independently of lomond.protocol.mask."""
    size = len(payload)
    if not size:
        return b""
    repeated = (key * (size // 4 + 1))[:size]
    value = int.from_bytes(payload, "little") ^ int.from_bytes(repeated, "little")
    return value.to_bytes(size, "little")


def parse_client_frames(wire: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """Split the client's bytes into (first byte, unmasked payload) pairs and the incomplete rest."""
    frames = []
    pos = 0
    while pos + 2 <= len(wire):
        first, second = wire[pos], wire[pos + 1]
        assert second & 0x80, f"unmasked client frame at offset {pos}"
        length = second & 0x7F
        start = pos + 2
        if length == 126:
            length = struct.unpack("!H", wire[start : start + 2])[0]
            start += 2
        elif length == 127:
            length = struct.unpack("!Q", wire[start : start + 8])[0]
            start += 8
        end = start + 4 + length
        if end > len(wire):
            break
        frames.append((first, unmask(wire[start : start + 4], wire[start + 4 : end])))
        pos = end
    return frames, wire[pos:]


def client_frames(sock, wire=b""):
    """Yield the client's frames as (first byte, unmasked payload) until it closes TCP.

    ``wire`` contains the bytes that arrived with the handshake request.
    """
    while True:
        frames, wire = parse_client_frames(wire)
        yield from frames
        chunk = sock.recv(65536)
        if not chunk:
            return
        wire += chunk


class RawServer:
    """A loopback server running ``script(sock)`` for each connection."""

    def __init__(self, script) -> None:
        self.script = script
        self.errors: list[BaseException] = []
        # A pool, so that stop() waits for the scripts still running.
        self._server = StreamServer(("127.0.0.1", 0), self._handle, spawn=gevent.pool.Pool())

    def _handle(self, sock, _address) -> None:
        try:
            self.script(sock)
        except (OSError, EOFError):
            pass
        except BaseException as error:  # shown by the test that started the server
            self.errors.append(error)
        finally:
            sock.close()

    def __enter__(self) -> RawServer:
        self._server.start()
        self.url = f"ws://127.0.0.1:{self._server.server_port}/"
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.stop(timeout=5)


def receive_until_eof(sock, seconds: float) -> bytes:
    """Read what the client sends until a close frame, EOF, a socket error or ``seconds`` pass."""
    data = bytearray()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            chunk = sock.recv(MIB)
        except OSError:  # TimeoutError included
            break
        if not chunk:
            break
        data += chunk
        frames, _rest = parse_client_frames(bytes(data))
        if frames and frames[-1][0] == 0x88:
            break
    return bytes(data)


def wait_for_eof(sock, seconds: float) -> None:
    """Read and discard until the client closes TCP, a socket error or ``seconds`` pass."""
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except OSError:  # TimeoutError included
        pass


def summarize(event) -> tuple:
    """Return the name of an event and the facts a test compares."""
    if event.name == "text":
        return ("text", len(event.text), hashlib.sha1(event.text.encode()).hexdigest())
    if event.name == "binary":
        return ("binary", len(event.data), hashlib.sha1(event.data).hexdigest())
    if event.name in ("ping", "pong"):
        return (event.name, event.data)
    if event.name in ("closing", "closed"):
        return (event.name, event.code, event.reason)
    if event.name == "disconnected":
        return (event.name, event.reason, event.graceful)
    if event.name == "protocol_error":
        return (event.name, event.error)
    return (event.name,)


def collect(url: str, seconds: float = 8.0, websocket_options=None, **options) -> list[tuple]:
    """Iterate a WebSocket and return the summaries of its events, without the start events and polls."""
    connect_options = {"ping_rate": 0, "poll": 0, "close_timeout": 2}
    connect_options.update(options)
    websocket = WebSocket(url, **(websocket_options or {}))
    seen = []
    with gevent.Timeout(seconds):
        for event in websocket.connect(**connect_options):
            if event.name not in ("connecting", "connected", "ready", "poll"):
                seen.append(summarize(event))
    return seen


def random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def digest(data: bytes | str) -> tuple:
    if isinstance(data, str):
        return ("text", len(data), hashlib.sha1(data.encode()).hexdigest())
    return ("binary", len(data), hashlib.sha1(data).hexdigest())


# --- receiving: large frames -----------------------------------------------------


def mixed_stream() -> tuple[bytes, list[tuple]]:
    """Return server bytes that mix large, small, fragmented and control frames, and the expected events."""
    large = random_bytes(300 * KIB, 1)
    first_part = random_bytes(MIB, 2)
    last_part = random_bytes(500 * KIB, 3)
    accented = "\u00e9" * 200_000
    wire = (
        frame(2, large)
        + frame(9, b"p1")
        + frame(1, b"small")
        + frame(2, first_part, fin=False)
        + frame(9, b"p2")
        + frame(0, b"x" * 10, fin=False)
        + frame(0, last_part)
        + frame(1, accented.encode())
        + frame(1, b"a" * 100)
        + frame(2, b"c" * 70_000)
        + frame(8, struct.pack("!H", 1000) + b"bye")
    )
    expected = [
        digest(large),
        ("ping", b"p1"),
        digest("small"),
        ("ping", b"p2"),
        digest(first_part + b"x" * 10 + last_part),
        digest(accented),
        digest("a" * 100),
        digest(b"c" * 70_000),
        ("closing", 1000, "bye"),
        ("disconnected", "closed", True),
    ]
    return wire, expected


@pytest.mark.timeout(30)
@pytest.mark.parametrize("chunk", [None, 1000, 65_537, 262_145])
def test_large_frames_mixed_with_pings_arrive_exactly(chunk):
    wire, expected = mixed_stream()
    received = {}

    def script(sock):
        accept(sock)
        if chunk is None:
            sock.sendall(wire)
        else:
            for start in range(0, len(wire), chunk):
                sock.sendall(wire[start : start + chunk])
                gevent.sleep(0)
        received["wire"] = receive_until_eof(sock, 3)

    with RawServer(script) as server:
        seen = collect(server.url)
    assert server.errors == []
    assert seen == expected

    frames, rest = parse_client_frames(received["wire"])
    assert rest == b""
    assert frames == [(0x8A, b"p1"), (0x8A, b"p2"), (0x88, struct.pack("!H", 1000))]


@pytest.mark.timeout(10)
@pytest.mark.parametrize("tail", [b"\xc3", b"\xff", b"\xed\xa0\x80"])
def test_large_text_with_invalid_utf8_at_end(tail):
    payload = b"a" * (300 * KIB) + tail
    received = {}

    def script(sock):
        accept(sock)
        sock.sendall(frame(1, payload))
        received["wire"] = receive_until_eof(sock, 3)

    with RawServer(script) as server:
        seen = collect(server.url)
    assert server.errors == []
    assert [name for name, *_ in seen] == ["protocol_error", "disconnected"]
    assert seen[1][1] == "text message is not valid UTF-8"
    frames, _rest = parse_client_frames(received["wire"])
    assert frames[0][0] == 0x88
    assert frames[0][1][:2] == struct.pack("!H", 1007)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("size", [2 * MIB, 5 * MIB])
def test_large_frame_cut_mid_payload(size):
    def script(sock):
        accept(sock)
        sock.sendall(struct.pack("!BBQ", 0x82, 127, size) + random_bytes(size // 2, 4))
        gevent.sleep(0.2)

    with RawServer(script) as server:
        seen = collect(server.url)
    assert seen == [("disconnected", "the server closed the connection without a close frame", False)]


@pytest.mark.timeout(10)
def test_frame_length_above_limit_is_rejected():
    def script(sock):
        accept(sock)
        sock.sendall(struct.pack("!BBQ", 0x82, 127, 2**62) + b"x" * 100)
        gevent.sleep(1)

    with RawServer(script) as server:
        seen = collect(server.url)
    assert [name for name, *_ in seen] == ["protocol_error", "disconnected"]
    assert seen[1][1] == (
        "frame of 4611686018427387904 bytes is larger than max_frame_size (16777216 bytes)"
    )


def deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-15)
    compressed = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return compressed[:-4]


@pytest.mark.timeout(20)
@pytest.mark.parametrize("chunk", [None, 65_536])
def test_compressed_messages_after_large_uncompressed(chunk):
    large = random_bytes(MIB, 5)
    random_large = random_bytes(300 * KIB, 6)
    repeated = "z" * (2 * MIB)
    compressed_text = deflate(repeated.encode())
    wire = (
        frame(2, large)
        + frame(2, deflate(b"hello" * 1000), rsv1=True)
        + frame(2, deflate(random_large), rsv1=True)
        + frame(2, random_bytes(400 * KIB, 7))
        + frame(1, compressed_text[:10], fin=False, rsv1=True)
        + frame(0, compressed_text[10:])
        + frame(8, struct.pack("!H", 1000))
    )

    def script(sock):
        accept(sock, b"permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        if chunk is None:
            sock.sendall(wire)
        else:
            for start in range(0, len(wire), chunk):
                sock.sendall(wire[start : start + chunk])
        receive_until_eof(sock, 3)

    with RawServer(script) as server:
        seen = collect(server.url, websocket_options={"compress": True})
    assert server.errors == []
    assert seen == [
        digest(large),
        digest(b"hello" * 1000),
        digest(random_large),
        digest(random_bytes(400 * KIB, 7)),
        digest(repeated),
        ("closing", 1000, ""),
        ("disconnected", "closed", True),
    ]


# --- sending -----------------------------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize("ping_timeout", [None, 5.0])
def test_concurrent_sends_reach_a_slow_reader_whole(ping_timeout):
    received = {}

    def script(sock):
        accept(sock)
        wire = bytearray()
        unparsed = b""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            # Small, spaced reads keep the client's socket buffer full, so
            # its writes are partial.
            gevent.sleep(0.001)
            chunk = sock.recv(64 * KIB)
            if not chunk:
                break
            wire += chunk
            frames, unparsed = parse_client_frames(unparsed + chunk)
            if frames and frames[-1][0] == 0x88:
                sock.sendall(frame(8, frames[-1][1]))
                break
        received["wire"] = bytes(wire)

    sent = []

    def sender(websocket, number):
        for index in range(5):
            generator = random.Random(number * 1000 + index)
            size = generator.choice([10, 200, 70_000, 300 * KIB, MIB + 3])
            data = bytes([number]) + generator.randbytes(size)
            websocket.send_binary(data)
            sent.append(data)

    with RawServer(script) as server:
        websocket = WebSocket(server.url)
        names = []
        with gevent.Timeout(25):
            # Pings fall due while the writes stall and during the closing
            # handshake: they must neither interleave nor delay the close.
            for event in websocket.connect(
                ping_rate=0.2, poll=0.05, ping_timeout=ping_timeout, close_timeout=10
            ):
                names.append(event.name)
                if event.name == "ready":
                    senders = [gevent.spawn(sender, websocket, number) for number in range(4)]
                    gevent.spawn(lambda: (gevent.joinall(senders, raise_error=True), websocket.close()))
    assert server.errors == []
    assert names[-2:] == ["closed", "disconnected"]
    frames, rest = parse_client_frames(received["wire"])
    assert rest == b""
    binary = [payload for first, payload in frames if first == 0x82]
    assert len(sent) == 20
    assert sorted(binary) == sorted(sent)
    assert all(first in (0x82, 0x89, 0x88) for first, _payload in frames)


# --- closing, leaks and descriptor reuse -----------------------------------------


def echo_close_script(sock):
    for first, payload in client_frames(sock, accept(sock)):
        if first == 0x88:
            sock.sendall(frame(8, payload))
            return


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.timeout(30)
def test_connect_close_cycles_leak_no_descriptor_or_watcher():
    hub = gevent.get_hub()
    with RawServer(echo_close_script) as server:
        results = {}

        def cycle(index):
            websocket = WebSocket(server.url)
            mode = ("close", "force", "force_twice", "force_later")[index % 4]
            names = []
            with gevent.Timeout(5):
                for event in websocket.connect(ping_rate=0, poll=0, close_timeout=1):
                    names.append(event.name)
                    if event.name != "ready":
                        continue
                    if mode == "close":
                        websocket.close()
                    elif mode == "force":
                        gevent.spawn(websocket.force_disconnect)
                    elif mode == "force_twice":
                        gevent.spawn(lambda: (websocket.force_disconnect(), websocket.force_disconnect()))
                    else:
                        gevent.spawn_later(0.001, websocket.force_disconnect)
            results.setdefault(mode, set()).add(tuple(names))

        cycle(0)
        gc.collect()
        descriptors, watchers = open_descriptors(), hub.loop.activecnt
        for index in range(1000):
            cycle(index)
        gc.collect()
        gevent.sleep(0.1)
        assert open_descriptors() == descriptors
        assert hub.loop.activecnt == watchers
    assert results == {
        "close": {("connecting", "connected", "ready", "closed", "disconnected")},
        "force": {("connecting", "connected", "ready", "disconnected")},
        "force_twice": {("connecting", "connected", "ready", "disconnected")},
        "force_later": {("connecting", "connected", "ready", "disconnected")},
    }


@pytest.mark.timeout(30)
def test_reused_descriptors_keep_their_own_messages():
    def script(sock):
        headers, _rest = read_request(sock)
        sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: "
            + base64.b64encode(hashlib.sha1(headers[b"sec-websocket-key"] + GUID).digest())
            + b"\r\n\r\n"
        )
        name = headers[b"x-id"]
        for count in range(100_000):
            message = frame(1, name + b":" + str(count).encode())
            if count % 7 == 0:
                message += frame(2, name * 100_000)
            sock.sendall(message)
            gevent.sleep(0.002)

    wrong = []
    endings = {}

    def client(number):
        websocket = WebSocket(server.url)
        websocket.add_header(b"X-Id", str(number).encode())
        expected = 0
        mode = ("force_other", "force_self", "close", "timeout")[number % 4]
        try:
            with gevent.Timeout(0.03 if mode == "timeout" else 5):
                for event in websocket.connect(ping_rate=0.01, poll=0.01, close_timeout=0.3):
                    if event.name == "ready":
                        if mode == "force_other":
                            gevent.spawn_later(random.random() * 0.03, websocket.force_disconnect)
                        elif mode == "close":
                            gevent.spawn_later(random.random() * 0.03, websocket.close)
                    elif event.name == "text":
                        if event.text != f"{number}:{expected}":
                            wrong.append((number, event.text))
                        expected += 1
                        if mode == "force_self" and expected > 3:
                            websocket.force_disconnect()
                    elif event.name == "binary" and event.data != str(number).encode() * 100_000:
                        wrong.append((number, len(event.data)))
                    elif event.name == "disconnected":
                        endings[number] = event.reason
        except gevent.Timeout:
            endings[number] = "timeout"

    with RawServer(script) as server:
        descriptors = open_descriptors()
        clients = [gevent.spawn(client, number) for number in range(200)]
        gevent.joinall(clients, timeout=20, raise_error=True)
        gc.collect()
        gevent.sleep(0.2)
        assert open_descriptors() == descriptors
    assert wrong == []
    assert len(endings) == 200


# --- timers -------------------------------------------------------------------------


@pytest.mark.timeout(10)
def test_polls_keep_a_steady_cadence():
    with Server([steps.accept(), steps.hold()]) as server:
        websocket = WebSocket(server.url, proxies={})
        polls = []
        with gevent.Timeout(5):
            for event in websocket.connect(ping_rate=0, poll=0.05):
                if event.name == "poll":
                    polls.append(time.monotonic())
                    if len(polls) == 21:
                        websocket.force_disconnect()
    # Poll n is due n * 0.05 s after the first one: a late wake-up must not
    # push later polls back, so no lateness accumulates. The upper bound
    # leaves room for a loaded test machine.
    slack = 0.05 + LATE
    for index, moment in enumerate(polls):
        offset = moment - polls[0]
        assert offset <= index * 0.05 + slack, (index, offset)
    # A poll may fire up to 1% early, and the first one late, so single
    # intervals may fall a little short of 0.05 s, but not their median.
    intervals = [later - earlier for earlier, later in zip(polls, polls[1:])]
    assert statistics.median(intervals) >= 0.05 - 0.0015, intervals


@pytest.mark.timeout(10)
@pytest.mark.parametrize("ping_timeout", [0.3, 1.2])
def test_ping_timeout_fires_within_the_grid(ping_timeout):
    pings = []

    def script(sock):
        for first, _payload in client_frames(sock, accept(sock)):
            if first == 0x89:
                pings.append(time.monotonic())

    with RawServer(script) as server:
        websocket = WebSocket(server.url)
        ends = {}
        with gevent.Timeout(5):
            for event in websocket.connect(ping_rate=0.2, poll=0, ping_timeout=ping_timeout):
                if event.name in ("unresponsive", "disconnected"):
                    ends[event.name] = time.monotonic()
    # The server receives the ping a little after the client sent it.
    waited = ends["unresponsive"] - pings[0]
    assert ping_timeout - 0.02 <= waited, waited
    assert waited <= ping_timeout + 0.05 + LATE, waited
    assert ends["disconnected"] - ends["unresponsive"] < LATE


@pytest.mark.timeout(10)
@pytest.mark.parametrize("close_timeout", [0.3, 1.2])
def test_close_timeout_fires_within_the_grid(close_timeout):
    def script(sock):
        accept(sock)
        wait_for_eof(sock, 5)

    with RawServer(script) as server:
        websocket = WebSocket(server.url)
        moments = {}
        with gevent.Timeout(5):
            for event in websocket.connect(ping_rate=0, poll=0, close_timeout=close_timeout):
                if event.name == "ready":
                    moments["close"] = time.monotonic()
                    websocket.close()
                elif event.name == "disconnected":
                    moments["end"] = time.monotonic()
                    reason = event.reason
    assert reason == f"close timed out: no close frame within {close_timeout:g}s"
    waited = moments["end"] - moments["close"]
    assert close_timeout <= waited, waited
    assert waited <= close_timeout + 0.05 + LATE, waited


# --- redirects ----------------------------------------------------------------------


@pytest.mark.timeout(10)
def test_redirect_hops_keep_descriptor_reads():
    routes = {
        "/a": [steps.redirect("/b")],
        "/b": [steps.redirect("/c", status=307)],
        "/c": [steps.accept(messages=["first"]), steps.send_large(2 * MIB), steps.echo()],
    }
    with Server(routes=routes) as server:
        websocket = WebSocket(server.url_for("/a"), proxies={})
        seen = []
        with gevent.Timeout(5):
            for event in websocket.connect(ping_rate=0.2, poll=0.2, close_timeout=1):
                if event.name == "ready":
                    seen.append(("descriptor", websocket.session._fd >= 0))
                    websocket.send_text("x" * 100_000)
                elif event.name == "text":
                    seen.append(("text", len(event.text)))
                    if len(event.text) == 100_000:
                        websocket.close()
                elif event.name == "binary":
                    seen.append(("binary", len(event.data)))
                elif event.name in ("closed", "disconnected"):
                    seen.append((event.name,))
        hops = websocket.session.transport.hops
    assert seen == [
        ("descriptor", True),
        ("text", 5),
        ("binary", 2 * MIB),
        ("text", 100_000),
        ("closed",),
        ("disconnected",),
    ]
    assert hops == [server.url_for("/a"), server.url_for("/b")]


# --- C masking ----------------------------------------------------------------------


def outcome(function, *args):
    try:
        result = function(*args)
    except Exception as error:
        return type(error).__name__
    return result


@pytest.mark.timeout(10)
@pytest.mark.parametrize("size", [0, 1, 3, 7, 8, 9, 1023, 1025, 4099])
def test_c_masking_matches_python_on_odd_arguments(size):
    data = random_bytes(size, size)
    keys = [b"abcd", bytearray(b"abcd"), memoryview(b"xxabcdxx")[2:6], memoryview(b"aabbccdd")[::2],
            b"abc", b"abcde", "abcd", 1234, None]
    payloads = [data, bytearray(data), memoryview(data), memoryview(data * 2)[::2], "text", 5, None]
    for key in keys:
        for payload in payloads:
            assert outcome(_speedups.mask, key, payload) == outcome(
                mask_module.mask_python, key, payload
            ), (key, payload)
            for offset in (0, 1, 5, -1, size, 2**70, -(2**70), 1.5):
                c_out, python_out = bytearray(size + 5), bytearray(size + 5)
                c_result = outcome(_speedups.mask_into, c_out, offset, key, payload)
                python_result = outcome(mask_module.mask_into_python, python_out, offset, key, payload)
                assert c_result == python_result, (key, payload, offset)
                assert c_out == python_out, (key, payload, offset)


@pytest.mark.timeout(30)
def test_c_masking_from_threads():
    payload = bytes(range(256)) * 16_384
    expected = mask_module.mask_python(b"k3y!", payload)
    wrong = []

    def work():
        for _ in range(10):
            if _speedups.mask(b"k3y!", payload) != expected:
                wrong.append("mask")
            out = bytearray(len(payload) + 3)
            _speedups.mask_into(out, 3, b"k3y!", payload)
            if out[3:] != expected:
                wrong.append("mask_into")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert wrong == []


# --- bugs found by these tests, now fixed ----------------------------------------


@pytest.mark.timeout(15)
def test_iterating_in_another_thread_receives():
    """A receive-only loop in a thread other than the one that called connect()."""
    server_ready = threading.Event()
    info = {}

    def serve():
        with Server([steps.accept(), steps.send_text("one"), steps.close(1000)]) as server:
            info["url"] = server.url
            server_ready.set()
            gevent.sleep(5)

    threading.Thread(target=serve, daemon=True).start()
    assert server_ready.wait(5)
    websocket = WebSocket(info["url"], proxies={})
    events = websocket.connect(ping_rate=0, poll=0, close_timeout=1)
    seen = []

    def consume():
        try:
            with gevent.Timeout(5):
                for event in events:
                    seen.append(event.name)
        except BaseException as error:  # recorded for the assertion below
            seen.append(f"raised {type(error).__name__}: {error}")

    consumer = threading.Thread(target=consume)
    consumer.start()
    consumer.join(10)
    assert seen == ["connecting", "connected", "ready", "text", "closing", "disconnected"]


@pytest.mark.timeout(15)
def test_close_reply_read_while_ping_due():
    """The server replies to close() after 0.3 s, and an automatic ping falls due meanwhile."""

    def script(sock):
        for first, payload in client_frames(sock, accept(sock)):
            if first == 0x88:
                gevent.sleep(0.3)
                sock.sendall(frame(8, payload))
                wait_for_eof(sock, 5)
                return

    with RawServer(script) as server:
        websocket = WebSocket(server.url)
        moments = {}
        with gevent.Timeout(8):
            for event in websocket.connect(ping_rate=0.2, poll=0, close_timeout=3):
                if event.name == "ready":
                    moments["close"] = time.monotonic()
                    websocket.close()
                elif event.name == "closed":
                    moments["closed"] = time.monotonic()
    assert moments["closed"] - moments["close"] < 1.0


@pytest.mark.timeout(15)
def test_ping_due_while_closing_does_not_spin():
    """A ping falls due after close() while the server holds back its close frame."""

    def script(sock):
        accept(sock)
        wait_for_eof(sock, 3)

    with RawServer(script) as server:
        websocket = WebSocket(server.url)
        with gevent.Timeout(5):
            for event in websocket.connect(ping_rate=0.2, poll=0, close_timeout=1.5):
                if event.name == "ready":
                    gevent.spawn_later(0.1, websocket.close)
                    cpu_start = time.process_time()
                elif event.name == "disconnected":
                    cpu = time.process_time() - cpu_start
    # About 1.5 s of waiting: an idle loop uses a few milliseconds of CPU.
    assert cpu < 0.3


@pytest.mark.timeout(15)
def test_interrupted_send_drops_connection():
    """A send interrupted by gevent.Timeout drops the connection (half a frame may be on the wire)."""
    received = {}

    def script(sock):
        accept(sock)
        gevent.sleep(0.6)
        received["wire"] = receive_until_eof(sock, 3)

    with RawServer(script) as server:
        websocket = WebSocket(server.url)
        after = []
        with gevent.Timeout(8):
            for event in websocket.connect(ping_rate=0, poll=0.1, close_timeout=1):
                if event.name == "ready":
                    try:
                        with gevent.Timeout(0.2):
                            websocket.send_binary(b"x" * (16 * MIB))
                    except gevent.Timeout:
                        pass
                    try:
                        websocket.send_text("after")
                        after.append("sent")
                    except Exception as error:
                        after.append(type(error).__name__)
                    websocket.force_disconnect()
    # The interrupted send dropped the connection, so the later send fails
    # instead of following half a frame.
    assert after == ["WebSocketUnavailable"]
    frames, _rest = parse_client_frames(received["wire"])
    assert (0x81, b"after") not in frames


@pytest.mark.timeout(5)
def test_c_mask_into_with_key_in_out_buffer():
    """The key is a view of the part of ``out`` that is being written."""

    def run(function):
        out = bytearray(b"\x00\x00\x00\x00KEY!\x00\x00\x00\x00")
        function(out, 0, memoryview(out)[4:8], b"\x01" * 12)
        return bytes(out)

    assert run(_speedups.mask_into) == run(mask_module.mask_into_python)
