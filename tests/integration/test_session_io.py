"""How the session reads and writes its socket, over loopback.

Plain sockets are read and written through their descriptor, with one
read watcher and one timer per wait; TLS sockets go through the socket
object. These tests cover both paths, a close() that ends a wait from
another greenlet, large messages in both directions, and the rounding of
long waits.
"""

from __future__ import annotations

import os

import gevent
import pytest

from lomond import WebSocket
from lomond.session import coalesce_deadline

SCALE = float(os.environ.get("LOMOND_TEST_TIMEOUT_SCALE", "1"))


def test_plain_socket_is_read_through_its_descriptor(lomond_server):
    websocket = WebSocket(lomond_server.url)
    seen = {}
    with gevent.Timeout(10 * SCALE):
        for event in websocket.connect(ping_rate=0, poll=0):
            if event.name == "ready":
                seen["fd"] = websocket.session._fd
                websocket.close()
    assert seen["fd"] >= 0
    assert websocket.session._fd == -1
    assert websocket.session._read_io is None


def test_tls_socket_is_read_through_the_socket_object(lomond_tls_server):
    websocket = WebSocket(
        lomond_tls_server.url, ssl_context=lomond_tls_server.client_ssl_context()
    )
    seen = {}
    with gevent.Timeout(10 * SCALE):
        for event in websocket.connect(ping_rate=0, poll=0):
            if event.name == "ready":
                seen["fd"] = websocket.session._fd
                websocket.send_text("over tls")
            elif event.name == "text":
                seen["text"] = event.text
                websocket.close()
    assert seen == {"fd": -1, "text": "over tls"}


def test_force_disconnect_from_another_greenlet_ends_the_wait(lomond_server):
    websocket = WebSocket(lomond_server.url)
    names = []

    def disconnect_soon():
        gevent.sleep(0.2)
        websocket.force_disconnect()

    with gevent.Timeout(10 * SCALE):
        for event in websocket.connect(ping_rate=0, poll=0, close_timeout=60):
            names.append(event.name)
            if event.name == "ready":
                started = gevent.get_hub().loop.now()
                gevent.spawn(disconnect_soon)
    elapsed = gevent.get_hub().loop.now() - started
    assert names[-1] == "disconnected"
    # The loop waited with no deadline of its own before close_timeout
    # (60 s): only the close could have ended the wait this soon.
    assert elapsed < 5 * SCALE
    assert websocket.session._read_io is None


@pytest.mark.parametrize("ping_timeout", [None, 30.0], ids=["no-stall-bound", "stall-bound"])
@pytest.mark.parametrize("kind", ["binary", "text"])
def test_large_messages_round_trip_intact(lomond_server, kind, ping_timeout):
    # Larger than the socket buffers, so that writes are partial and
    # reads come in exact sizes after the first message.
    size = 8 * 1024 * 1024
    if kind == "binary":
        payload = bytes(range(256)) * (size // 256)
    else:
        payload = ("é→x" * (size // 6)).encode("utf-8").decode("utf-8")
    websocket = WebSocket(lomond_server.url, max_message_size=2 * size)
    received = []
    with gevent.Timeout(60 * SCALE):
        for event in websocket.connect(ping_rate=0, poll=0, ping_timeout=ping_timeout):
            if event.name == "ready":
                for _ in range(3):
                    if kind == "binary":
                        websocket.send_binary(payload)
                    else:
                        websocket.send_text(payload)
            elif event.name == kind:
                received.append(event.data if kind == "binary" else event.text)
                if len(received) == 3:
                    websocket.close()
    assert len(received) == 3
    assert all(message == payload for message in received)


@pytest.mark.parametrize(
    "deadline, now, expected",
    [
        (100.01, 99.99, 100.01),  # a short wait ends on time
        (100.999, 100.0, 100.999),  # just under a second: still on time
        (101.01, 100.0, 101.05),  # a long wait ends on the next 50 ms boundary
        (105.0, 100.0, 105.0),  # already on a boundary (within float error)
        (130.26, 100.0, 130.3),
    ],
)
def test_long_waits_end_on_a_shared_boundary(deadline, now, expected):
    assert coalesce_deadline(deadline, now) == pytest.approx(expected, abs=1e-9)
    assert coalesce_deadline(deadline, now) >= deadline - 1e-9
