"""lomond against WebSocket servers that nobody here wrote, over loopback.

Each test runs against the ``websockets`` package's server, aiohttp's
server and gevent-websocket (see peer_servers.py).
"""

from __future__ import annotations

import os

import gevent
import pytest

from lomond import WebSocket

SIZES = [0, 125, 126, 65535, 65536, 1024 * 1024]
TIMEOUT = 20 * float(os.environ.get("LOMOND_TEST_TIMEOUT_SCALE", "1"))


def run_session(websocket, on_ready, on_event=None, **options):
    """Iterate ``websocket`` under a timeout and return the events."""
    options.setdefault("ping_rate", 0)
    options.setdefault("poll", 0)
    options.setdefault("close_timeout", 5)
    seen = []
    with gevent.Timeout(TIMEOUT):
        for event in websocket.connect(**options):
            seen.append(event)
            if event.name == "ready":
                on_ready(websocket)
            elif on_event is not None:
                on_event(websocket, event, seen)
    return seen


def names(seen):
    return [event.name for event in seen]


@pytest.mark.parametrize("size", SIZES)
def test_echo_text_and_binary(peer_url, size):
    _, url = peer_url
    text = ("é" * size)[: size // 2] + "x" * (size - len(("é" * size)[: size // 2]) * 2)
    payload = os.urandom(size)
    received = []

    def on_ready(ws):
        ws.send_text(text)
        ws.send_binary(payload)

    def on_event(ws, event, seen):
        if event.name in ("text", "binary"):
            received.append(event)
            if len(received) == 2:
                ws.close()

    seen = run_session(WebSocket(url), on_ready, on_event)
    assert [event.name for event in received] == ["text", "binary"]
    assert received[0].text == text
    assert received[1].data == payload
    assert names(seen)[-2:] == ["closed", "disconnected"]
    assert seen[-1].graceful is True


def test_close_started_by_client(peer_url):
    _, url = peer_url
    seen = run_session(WebSocket(url), lambda ws: ws.close(1000, "bye"))
    assert names(seen) == ["connecting", "connected", "ready", "closed", "disconnected"]
    assert seen[-2].code == 1000
    assert seen[-1].graceful is True


def test_close_started_by_server(peer_url):
    _, url = peer_url
    seen = run_session(WebSocket(url), lambda ws: ws.send_text("close 4001 server says bye"))
    assert names(seen) == ["connecting", "connected", "ready", "closing", "disconnected"]
    assert seen[-2].code == 4001
    assert seen[-2].reason == "server says bye"
    assert seen[-1].graceful is True


def test_ping_from_client_gets_pong(peer_url):
    _, url = peer_url

    def on_event(ws, event, seen):
        if event.name == "pong":
            ws.close()

    seen = run_session(WebSocket(url), lambda ws: ws.send_ping(b"are you there"), on_event)
    pongs = [event for event in seen if event.name == "pong"]
    assert len(pongs) == 1
    assert pongs[0].data == b"are you there"
    assert pongs[0].latency is not None and pongs[0].latency >= 0


def test_ping_from_server_is_answered(peer_url):
    peer, url = peer_url

    def on_event(ws, event, seen):
        if event.name == "ping" and peer == "gevent-websocket":
            # gevent-websocket does not report pongs to the application.
            ws.close()
        elif event.name == "text" and event.text.startswith("pong "):
            ws.close()

    seen = run_session(WebSocket(url), lambda ws: ws.send_text("ping hello"), on_event)
    pings = [event for event in seen if event.name == "ping"]
    assert [ping.data for ping in pings] == [b"hello"]
    if peer != "gevent-websocket":
        assert "pong hello" in [event.text for event in seen if event.name == "text"]
    assert seen[-1].name == "disconnected"


def test_websocket_latency_follows_pongs(peer_url):
    _, url = peer_url
    websocket = WebSocket(url)
    assert websocket.latency is None

    def on_event(ws, event, seen):
        if event.name == "pong":
            ws.close()

    seen = run_session(websocket, lambda ws: ws.send_ping(b"rtt"), on_event)
    pong = next(event for event in seen if event.name == "pong")
    assert websocket.latency == pong.latency
    assert websocket.latency is not None and websocket.latency >= 0


def test_command_line_against_peer(peer_url):
    # The main job on real input: python -m lomond URL, lines on stdin.
    import json
    import subprocess
    import sys

    _, url = peer_url
    result = subprocess.run(
        [sys.executable, "-m", "lomond", "--json", url],
        input="first line\nsecond line\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [event["name"] for event in events][:3] == ["connecting", "connected", "ready"]
    texts = [event["text"] for event in events if event["name"] == "text"]
    assert texts == ["first line", "second line"]
    assert events[-1]["name"] == "disconnected"
    assert events[-1]["graceful"] is True
