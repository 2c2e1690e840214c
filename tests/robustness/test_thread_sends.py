"""Sends and close() from OS threads other than the one that iterates the WebSocket.

lomond 0.3 documented this pattern: one thread runs the event loop, others
call ``send_*`` and ``close()``. The session hands each such call to the
hub of the iterating thread, which owns the socket, and waits for the
outcome. The threads here are real OS threads; the iterating thread keeps
running the gevent hub, so the hand-over can complete.
"""

from __future__ import annotations

import threading
import time

import gevent
import pytest

from lomond import WebSocket, events
from lomond.errors import WebSocketUnavailable
from lomond.testing import Server, scaled, steps

from .leaks import take_snapshot, wait_for_no_leaks

THREADS = 8
MESSAGES_PER_THREAD = 100


def wait_for_threads(threads: list[threading.Thread], timeout: float) -> None:
    """Wait for ``threads`` without blocking the hub (a blocking join would stop the hand-overs)."""
    deadline = time.monotonic() + timeout
    while any(thread.is_alive() for thread in threads) and time.monotonic() < deadline:
        gevent.sleep(0.01)


def test_eight_threads_send_while_loop_receives() -> None:
    before = take_snapshot()
    with Server() as server:
        websocket = WebSocket(server.url, proxies={})
        errors: list[Exception] = []
        ready = threading.Event()

        def send_numbered(thread_number: int) -> None:
            ready.wait(scaled(10))
            try:
                for count in range(MESSAGES_PER_THREAD):
                    websocket.send_text(f"{thread_number}:{count}")
            except Exception as error:  # noqa: BLE001  (reported by the assertions below)
                errors.append(error)

        threads = [threading.Thread(target=send_numbered, args=(n,), daemon=True) for n in range(THREADS)]
        for thread in threads:
            thread.start()

        echoed: list[str] = []
        with gevent.Timeout(scaled(30)):
            for event in websocket.connect(poll=0, ping_rate=0):
                if event.name == "ready":
                    ready.set()
                elif isinstance(event, events.Text):
                    echoed.append(event.text)
                    if len(echoed) == THREADS * MESSAGES_PER_THREAD:
                        websocket.close()
            wait_for_threads(threads, scaled(10))
        # The kit's server checks every frame with wsproto: interleaved
        # frames from two threads would be recorded as a protocol error.
        assert server.errors == []

    assert errors == []
    assert not any(thread.is_alive() for thread in threads)
    assert len(echoed) == THREADS * MESSAGES_PER_THREAD
    assert len(set(echoed)) == len(echoed)
    # Each thread's messages arrive in the order that thread sent them.
    for thread_number in range(THREADS):
        counts = [int(text.split(":")[1]) for text in echoed if text.startswith(f"{thread_number}:")]
        assert counts == list(range(MESSAGES_PER_THREAD))
    assert wait_for_no_leaks(before, scaled(1)) == []


def test_close_from_another_thread() -> None:
    with Server([steps.accept(), steps.hold()]) as server:
        websocket = WebSocket(server.url, proxies={})
        closer = threading.Thread(target=websocket.close, daemon=True)
        received = []
        with gevent.Timeout(scaled(10)):
            for event in websocket.connect(poll=0, ping_rate=0):
                received.append(event)
                if event.name == "ready":
                    closer.start()
            wait_for_threads([closer], scaled(5))
        transcript = server.transcripts[0]
        transcript.wait_closed(scaled(5))
    names = [event.name for event in received]
    assert names[-2:] == ["closed", "disconnected"]
    assert received[-1].graceful
    assert transcript.close_code == 1000


@pytest.mark.parametrize("when", ["before-connect", "after-disconnect"])
def test_thread_send_not_open_raises(when: str) -> None:
    # The iterating thread is blocked in join() here, not running the hub:
    # the send must not wait for a hand-over that cannot happen.
    with Server([steps.accept(), steps.close(1000)]) as server:
        websocket = WebSocket(server.url, proxies={})
        if when == "after-disconnect":
            with gevent.Timeout(scaled(10)):
                for _event in websocket.connect(poll=0, ping_rate=0):
                    pass
    outcome: list[Exception] = []

    def send() -> None:
        try:
            websocket.send_text("not open")
        except Exception as error:  # noqa: BLE001  (checked below)
            outcome.append(error)

    thread = threading.Thread(target=send, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(scaled(5))
    assert not thread.is_alive()
    assert time.monotonic() - started < scaled(1)
    assert len(outcome) == 1
    assert isinstance(outcome[0], WebSocketUnavailable)
