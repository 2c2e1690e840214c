"""Hostile servers: every fault must end the stream with one Disconnected, in time, with no leak."""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from typing import Any

import gevent
import pytest

from lomond import WebSocket
from lomond.testing import Server, steps

from .conftest import assert_one_disconnected, collect, open_fds
from .rawserver import RawServer, accept_response, deflate, frame, read_request

CLOSE_1000 = frame(8, struct.pack("!H", 1000))


def run_raw(
    handler: Callable[[Any], None], timeout: float = 5.0, **options: Any
) -> list[Any]:
    """Connect to a raw server running ``handler``, check for leaks, and return the events."""
    before = open_fds()
    with RawServer(handler) as server:
        websocket = WebSocket(server.url, proxies={}, **options.pop("websocket", {}))
        found = collect(websocket, timeout=timeout, **options)
    gevent.sleep(0.05)
    assert open_fds() - before == set()
    assert_one_disconnected(found)
    return found


def names(found: list[Any]) -> list[str]:
    return [event.name for event in found]


def test_endless_header_line_rejected() -> None:
    def handler(sock: Any) -> None:
        read_request(sock)
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nX-Long: ")
        for _ in range(200):
            sock.sendall(b"a" * 1024)
        gevent.sleep(3)

    found = run_raw(handler)

    assert "ready" not in names(found)


def test_many_header_lines_rejected() -> None:
    def handler(sock: Any) -> None:
        read_request(sock)
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\n")
        for index in range(10000):
            sock.sendall(b"X-%d: y\r\n" % index)
        gevent.sleep(3)

    found = run_raw(handler)

    assert "ready" not in names(found)


def test_slowloris_response_times_out() -> None:
    def handler(sock: Any) -> None:
        read_request(sock)
        for byte in b"HTTP/1.1 101 Switching Protocols\r\n" * 20:
            sock.sendall(bytes([byte]))
            gevent.sleep(0.05)

    found = run_raw(handler, websocket={"handshake_timeout": 0.5})

    assert "connect_fail" in names(found)


def test_frames_in_same_segment_as_101() -> None:
    def handler(sock: Any) -> None:
        request = read_request(sock)
        sock.sendall(
            accept_response(request)
            + frame(1, b"one")
            + frame(1, b"")
            + frame(2, b"")
            + CLOSE_1000
        )
        gevent.sleep(0.2)

    found = run_raw(handler)

    assert names(found)[:6] == [
        "connecting",
        "connected",
        "ready",
        "text",
        "text",
        "binary",
    ]
    assert [event.text for event in found if event.name == "text"] == ["one", ""]


def test_hundred_thousand_continuation_frames() -> None:
    def handler(sock: Any) -> None:
        request = read_request(sock)
        body = frame(1, b"a", fin=False) + frame(0, b"b", fin=False) * 100_000
        sock.sendall(
            accept_response(request) + body + frame(0, b"", fin=True) + CLOSE_1000
        )
        gevent.sleep(0.2)

    found = run_raw(handler)

    texts = [event.text for event in found if event.name == "text"]
    assert texts == ["a" + "b" * 100_000]


def test_compressed_bomb_fails_with_limit() -> None:
    def handler(sock: Any) -> None:
        request = read_request(sock)
        extension = b"Sec-WebSocket-Extensions: permessage-deflate\r\n"
        body = deflate(b"\0" * (64 * 1024 * 1024))
        sock.sendall(accept_response(request, extension) + frame(2, body, rsv1=True))
        gevent.sleep(1)

    found = run_raw(
        handler, websocket={"compress": True, "max_message_size": 1024 * 1024}
    )

    assert "binary" not in names(found)
    assert "protocol_error" in names(found)


def test_ping_flood_answered_and_ended() -> None:
    def handler(sock: Any) -> None:
        request = read_request(sock)
        sock.sendall(accept_response(request) + frame(9, b"p") * 20_000 + CLOSE_1000)
        gevent.sleep(0.2)

    found = run_raw(handler)

    assert names(found).count("ping") == 20_000


@pytest.mark.parametrize(
    "script",
    [
        [steps.accept(), steps.slicer(1), steps.send_text("sliced"), steps.close(1000)],
        [steps.accept(), steps.send_text("x"), steps.reset()],
        [steps.accept(), steps.drop_mid_frame()],
        [steps.accept(), steps.huge_length()],
        [steps.accept(), steps.close_invalid_reason()],
        [
            steps.accept(),
            steps.ignore_close(),
            steps.send_text("close now"),
            steps.hold(),
        ],
        [steps.reject(403)],
        [steps.send_garbage()],
        [steps.accept_wrong_key()],
        [steps.reset()],
    ],
    ids=[
        "slicer-1",
        "reset",
        "drop-mid-frame",
        "huge-length",
        "bad-close-reason",
        "ignore-close",
        "reject",
        "garbage",
        "wrong-key",
        "reset-before-101",
    ],
)
def test_scripted_fault_ends_with_one_disconnected(script: list[Any]) -> None:
    before = open_fds()
    with Server(script) as server:
        websocket = WebSocket(server.url, proxies={})
        found = []
        with gevent.Timeout(5):
            for event in websocket.connect(poll=0, ping_rate=0, close_timeout=0.5):
                found.append(event)
                if event.name == "text" and event.text == "close now":
                    websocket.close()
    gevent.sleep(0.05)

    assert_one_disconnected(found)
    assert open_fds() - before == set()


def test_close_after_reset_does_not_raise() -> None:
    def handler(sock: Any) -> None:
        request = read_request(sock)
        sock.sendall(accept_response(request) + frame(1, b"reset follows"))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()

    found = []
    with RawServer(handler) as server:
        websocket = WebSocket(server.url, proxies={})
        with gevent.Timeout(5):
            for event in websocket.connect(poll=0, ping_rate=0, close_timeout=0.5):
                found.append(event)
                if event.name == "text":
                    gevent.sleep(0.2)
                    websocket.close()

    assert_one_disconnected(found)


def test_socks_refused_prints_no_traceback(capfd: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proxy = f"socks5://127.0.0.1:{port}"
    found = collect(WebSocket("ws://127.0.0.1:9/", proxies={"http": proxy}))
    gevent.sleep(0.05)
    captured = capfd.readouterr()

    assert_one_disconnected(found)
    assert "connect_fail" in names(found)
    assert "Traceback" not in captured.err


def test_zero_close_timeout_waits_as_in_03() -> None:
    # lomond 0.3 documented close_timeout=0 (like None) as "no timeout";
    # the new lomond keeps that meaning: the stream stays open until the
    # server answers the close.
    script = [
        steps.accept(),
        steps.ignore_close(),
        steps.send_text("close now"),
        steps.hold(),
    ]
    names_seen = []
    with Server(script) as server:
        websocket = WebSocket(server.url, proxies={})
        with gevent.Timeout(1, False):
            for event in websocket.connect(poll=0, ping_rate=0, close_timeout=0):
                names_seen.append(event.name)
                if event.name == "text":
                    websocket.close()

    assert names_seen[-1] == "text", names_seen
    assert websocket.is_closing
