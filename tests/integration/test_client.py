"""The client over loopback against the bundled test server: API, scale and timeouts."""

from __future__ import annotations

import os
import socket
import threading

import gevent
import gevent.event
import gevent.server
import pytest

from lomond import WebSocket
from lomond.persist import persist
from lomond.testing import Server, steps

SCALE = float(os.environ.get("LOMOND_TEST_TIMEOUT_SCALE", "1"))


def run(websocket, on_event, limit=30.0, **options):
    """Iterate ``websocket`` with a hard time limit; return the events."""
    options.setdefault("ping_rate", 0)
    options.setdefault("poll", 0)
    seen = []
    with gevent.Timeout(limit * SCALE):
        for event in websocket.connect(**options):
            seen.append(event)
            on_event(websocket, event)
    return seen


def names(seen):
    return [event.name for event in seen]


# --- lomond 0.3's documented examples, unchanged -----------------------------


def test_ticker_example_from_03_docs():
    ticks = ['{"type": "ticker", "price": "1.0"}', '{"type": "ticker", "price": "2.0"}']
    script = [
        steps.accept(),
        steps.expect_text(),
        *[steps.send_text(tick) for tick in ticks],
        steps.close(1000, "done"),
    ]
    printed = []
    with Server(script) as server:
        websocket = WebSocket(server.url)
        with gevent.Timeout(10 * SCALE):
            # The example as lomond 0.3's README gives it, with print
            # replaced by a list append.
            for event in websocket:
                if event.name == "ready":
                    websocket.send_json(
                        type="subscribe", product_ids=["BTC-USD"], channels=["ticker"]
                    )
                elif event.name == "text":
                    printed.append(event.json)
        subscribe = server.transcripts[0].messages[0]
    assert subscribe.data == (
        '{"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["ticker"]}'
    )
    assert [tick["price"] for tick in printed] == ["1.0", "2.0"]


def test_persist_example_from_03_docs():
    exit_event = threading.Event()
    connections = []
    with Server([steps.accept(), steps.send_text("hello"), steps.close(1000)]) as server:
        websocket = WebSocket(server.url)
        with gevent.Timeout(10 * SCALE):
            for event in persist(websocket, min_wait=0.01, max_wait=0.05, exit_event=exit_event):
                if event.name == "ready":
                    connections.append([])
                elif event.name == "text":
                    connections[-1].append(event.text)
                if len(connections) == 3 and event.name == "disconnected":
                    exit_event.set()
    assert connections == [["hello"], ["hello"], ["hello"]]


# --- many connections in one process -------------------------------------------


def test_thousand_greenlets_echo_in_order():
    clients = 1000
    per_client = 10
    results: dict[int, list[str]] = {}

    def client(index: int, url: str) -> None:
        websocket = WebSocket(url)
        seen = []
        echoed = 0
        for event in websocket.connect(ping_rate=0, poll=0, close_timeout=10):
            seen.append(event.name)
            if event.name == "ready":
                for number in range(per_client):
                    websocket.send_text(f"{index}:{number}")
            elif event.name == "text":
                assert event.text == f"{index}:{echoed}"
                echoed += 1
                if echoed == per_client:
                    websocket.close()
        results[index] = seen

    with Server() as server:
        greenlets = [gevent.spawn(client, index, server.url) for index in range(clients)]
        gevent.joinall(greenlets, timeout=120 * SCALE, raise_error=True)
        assert all(greenlet.dead for greenlet in greenlets)
    expected = ["connecting", "connected", "ready"] + ["text"] * per_client + [
        "closed",
        "disconnected",
    ]
    assert len(results) == clients
    for index, seen in results.items():
        assert seen == expected, f"client {index}: {seen}"


# --- timeouts --------------------------------------------------------------------


def test_handshake_timeout_when_server_never_answers():
    with Server([steps.never_answer()]) as server:
        websocket = WebSocket(server.url, handshake_timeout=0.5)
        started = gevent.get_hub().loop.now()
        seen = run(websocket, lambda ws, event: None)
        elapsed = gevent.get_hub().loop.now() - started
    assert names(seen) == ["connecting", "connected", "connect_fail", "disconnected"]
    assert "handshake timed out" in seen[2].reason
    assert 0.4 < elapsed < 5 * SCALE


def test_close_timeout_when_server_ignores_close():
    with Server([steps.accept(), steps.ignore_close(), steps.hold()]) as server:
        websocket = WebSocket(server.url)

        def on_event(ws, event):
            if event.name == "ready":
                ws.close()

        started = gevent.get_hub().loop.now()
        seen = run(websocket, on_event, close_timeout=0.5)
        elapsed = gevent.get_hub().loop.now() - started
    assert names(seen) == ["connecting", "connected", "ready", "disconnected"]
    assert "close timed out" in seen[-1].reason
    assert seen[-1].graceful is False
    assert 0.4 < elapsed < 5 * SCALE


def test_unresponsive_when_server_stops_answering_pings():
    with Server([steps.accept(), steps.stall()]) as server:
        websocket = WebSocket(server.url)
        seen = run(websocket, lambda ws, event: None, ping_rate=0.2, ping_timeout=0.5)
    assert names(seen) == ["connecting", "connected", "ready", "unresponsive", "disconnected"]
    assert "no pong" in seen[-1].reason


def test_connect_fail_on_closed_port():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    seen = run(WebSocket(f"ws://127.0.0.1:{port}/"), lambda ws, event: None)
    assert names(seen) == ["connecting", "connect_fail", "disconnected"]
    assert f"127.0.0.1:{port}" in seen[1].reason


def test_connect_timeout_bounds_tls_handshake():
    # A TCP server that accepts and never speaks TLS: the TLS handshake must
    # give up within connect_timeout.
    held = []
    server = gevent.server.StreamServer(("127.0.0.1", 0), lambda sock, address: (held.append(sock), gevent.sleep(10)))
    server.start()
    try:
        websocket = WebSocket(f"wss://127.0.0.1:{server.server_port}/", connect_timeout=0.5)
        seen = run(websocket, lambda ws, event: None)
    finally:
        server.stop(timeout=0)
    assert names(seen) == ["connecting", "connect_fail", "disconnected"]
    assert "TLS" in seen[1].reason


# --- sending ---------------------------------------------------------------------


def test_send_before_connect_raises():
    from lomond.errors import WebSocketUnavailable

    websocket = WebSocket("ws://127.0.0.1:9/")
    with pytest.raises(WebSocketUnavailable):
        websocket.send_text("too early")


def test_sends_from_other_greenlets_do_not_interleave():
    size = 256 * 1024
    senders = 8
    with Server() as server:
        websocket = WebSocket(server.url)
        received = []

        def send(index):
            websocket.send_binary(bytes([index]) * size)

        def on_event(ws, event):
            if event.name == "ready":
                for index in range(senders):
                    gevent.spawn(send, index)
            elif event.name == "binary":
                received.append(event.data)
                if len(received) == senders:
                    ws.close()

        run(websocket, on_event)
    assert sorted(data[0] for data in received) == list(range(senders))
    for data in received:
        assert data == bytes([data[0]]) * size


def test_bug_in_lomond_still_ends_with_disconnected(monkeypatch, caplog):
    # A seam that raises where lomond never should: the outermost guard must
    # log it at ERROR and still end the stream with one Disconnected.
    from lomond.protocol.connection import ClientConnection

    def broken_receive(self, data, now=0.0):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(ClientConnection, "receive", broken_receive)
    with Server() as server:
        seen = run(WebSocket(server.url), lambda ws, event: None)
    assert names(seen) == ["connecting", "connected", "disconnected"]
    assert "internal error" in seen[-1].reason
    assert "simulated bug" in seen[-1].reason
    errors = [record for record in caplog.records if record.levelname == "ERROR"]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
