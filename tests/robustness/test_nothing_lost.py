"""Nothing is lost: received messages reach the application, and failed sends raise.

Three promises, each over real loopback sockets against lomond.testing:

1. every message the server sent before a clean close is an event before
   Closing or Closed, however the bytes were cut into TCP segments;
2. a send whose frame could not be written to the socket raises a
   :class:`~lomond.errors.WebSocketUnavailable` or
   :class:`~lomond.errors.TransportFail`; it is never dropped silently;
3. sends from other greenlets while the connection closes either reach the
   server before the close frame or raise.
"""

from __future__ import annotations

import itertools

import gevent
import pytest

from lomond import WebSocket, events
from lomond.errors import TransportFail, WebSocketClosing, WebSocketUnavailable
from lomond.testing import Server, scaled, steps
from lomond.testing.frames import OP_CLOSE, OP_TEXT, build_close_payload, build_frame

from .leaks import take_snapshot, wait_for_no_leaks

MESSAGES = [f"message {number}" for number in range(50)]


def text_frames(texts: list[str]) -> bytes:
    return b"".join(build_frame(OP_TEXT, text.encode("utf-8")) for text in texts)


CLOSE_FRAME = build_frame(OP_CLOSE, build_close_payload(1000, b"done"))

# Ways for a server to send MESSAGES and close cleanly, cut differently into TCP segments.
DELIVERIES = {
    "one-write-per-message": [steps.accept(), *map(steps.send_text, MESSAGES), steps.close(1000)],
    "same-segment-as-close": [steps.accept(), steps.send_raw(text_frames(MESSAGES) + CLOSE_FRAME),
                              steps.expect_close(), steps.drop()],
    "same-segment-as-101": [steps.accept(messages=MESSAGES), steps.close(1000)],
    "one-byte-segments": [steps.accept(), steps.slicer(1), *map(steps.send_text, MESSAGES),
                          steps.close(1000)],
    "close-then-fin": [steps.accept(), *map(steps.send_text, MESSAGES), steps.close_and_drop(1000)],
    "compressed": [steps.accept(extensions=["permessage-deflate"]), *map(steps.send_text, MESSAGES),
                   steps.close(1000)],
    "fragmented": [steps.accept(), *(steps.send_fragmented(text, 3) for text in MESSAGES),
                   steps.close(1000)],
}


def collect(websocket: WebSocket, **options: object) -> list[events.Event]:
    with gevent.Timeout(scaled(10)):
        return list(websocket.connect(poll=0, ping_rate=0, close_timeout=scaled(2), **options))


@pytest.mark.parametrize("delivery", list(DELIVERIES))
def test_messages_before_clean_close(delivery: str) -> None:
    before = take_snapshot()
    with Server(DELIVERIES[delivery]) as server:
        received = collect(WebSocket(server.url, compress=True, proxies={}))
        assert server.errors == []
    names = [event.name for event in received]
    texts = [event.text for event in received if isinstance(event, events.Text)]
    assert texts == MESSAGES
    assert "closing" in names, names
    assert names.index("closing") > max(index for index, name in enumerate(names) if name == "text")
    assert names[-1] == "disconnected"
    assert received[-1].graceful
    assert wait_for_no_leaks(before, scaled(1)) == []


def test_messages_before_drop() -> None:
    # Without a close frame the connection is not clean, but what arrived is still delivered.
    with Server([steps.accept(), steps.send_raw(text_frames(MESSAGES)), steps.drop()]) as server:
        received = collect(WebSocket(server.url, proxies={}))
    texts = [event.text for event in received if isinstance(event, events.Text)]
    assert texts == MESSAGES
    assert received[-1].name == "disconnected"
    assert not received[-1].graceful


# --- sends that cannot reach the socket ------------------------------------------


def test_send_after_disconnect_raises() -> None:
    with Server([steps.accept(), steps.drop()]) as server:
        websocket = WebSocket(server.url, proxies={})
        received = collect(websocket)
    assert received[-1].name == "disconnected"
    with pytest.raises(WebSocketUnavailable):
        websocket.send_text("too late")
    with pytest.raises(WebSocketUnavailable):
        websocket.send_binary(b"too late")
    with pytest.raises(WebSocketUnavailable):
        websocket.send_ping(b"too late")


def test_send_before_connect_raises() -> None:
    websocket = WebSocket("ws://127.0.0.1:9/", proxies={})
    with pytest.raises(WebSocketUnavailable):
        websocket.send_text("too early")


def test_send_while_closing_raises() -> None:
    with Server([steps.accept(), steps.ignore_close(), steps.hold()]) as server:
        websocket = WebSocket(server.url, proxies={})
        outcomes = []
        with gevent.Timeout(scaled(10)):
            for event in websocket.connect(poll=0, ping_rate=0, close_timeout=scaled(0.5)):
                if event.name == "ready":
                    websocket.close()
                    try:
                        websocket.send_text("after close")
                    except WebSocketClosing as error:
                        outcomes.append(error)
    assert len(outcomes) == 1


@pytest.mark.parametrize("fault", ["drop", "reset"])
def test_send_to_dead_socket_raises(fault: str) -> None:
    # The server goes away. A greenlet that keeps sending must get an
    # exception within a bounded number of sends, never silent success.
    fault_step = steps.drop() if fault == "drop" else steps.reset()
    with Server([steps.accept(), steps.delay(scaled(0.1)), fault_step]) as server:
        websocket = WebSocket(server.url, proxies={})
        errors: list[Exception] = []

        def keep_sending() -> None:
            for _ in range(100_000):
                try:
                    websocket.send_binary(b"x" * 1024)
                except (WebSocketUnavailable, TransportFail) as error:
                    errors.append(error)
                    return
                gevent.sleep(0.001)

        sender = None
        with gevent.Timeout(scaled(10)):
            for event in websocket.connect(poll=0, ping_rate=0):
                if event.name == "ready":
                    sender = gevent.spawn(keep_sending)
        assert sender is not None
        sender.join(scaled(5))
    assert sender.dead
    assert len(errors) == 1, errors


# --- sends from other greenlets during a close --------------------------------------

SENDERS = 4


def run_senders_through_close(script: list[steps.Step], client_closes: bool) -> None:
    """Send from SENDERS greenlets while the connection closes; check what reached the server."""
    before = take_snapshot()
    with Server(script) as server:
        websocket = WebSocket(server.url, proxies={})
        sent: list[str] = []
        stopped_by: list[Exception] = []

        def sender(number: int) -> None:
            for count in itertools.count():
                text = f"{number}:{count}"
                try:
                    websocket.send_text(text)
                except WebSocketUnavailable as error:
                    stopped_by.append(error)
                    return
                sent.append(text)
                gevent.sleep(0)

        greenlets = []
        with gevent.Timeout(scaled(10)):
            for event in websocket.connect(poll=0, ping_rate=0, close_timeout=scaled(2)):
                if event.name == "ready":
                    greenlets = [gevent.spawn(sender, number) for number in range(SENDERS)]
                    if client_closes:
                        gevent.spawn_later(scaled(0.1), websocket.close)
            gevent.joinall(greenlets, timeout=scaled(5))
        transcript = server.transcripts[0]
        transcript.wait_closed(scaled(5))
        assert server.errors == []

    assert all(greenlet.dead for greenlet in greenlets)
    # Every sender ended on an exception, because sends never stop by themselves.
    assert len(stopped_by) == SENDERS
    assert len(sent) > 0

    kinds = [message.kind for message in transcript.messages]
    assert kinds.count("close") == 1, kinds
    close_index = kinds.index("close")
    before_close = [message.text for message in transcript.messages[:close_index] if message.kind == "text"]
    after_close = [message for message in transcript.messages[close_index + 1 :]]
    assert after_close == []
    assert before_close == sent
    assert wait_for_no_leaks(before, scaled(1)) == []


def test_sends_during_client_close() -> None:
    run_senders_through_close([steps.accept(), steps.hold()], client_closes=True)


def test_sends_during_server_close() -> None:
    run_senders_through_close([steps.accept(), steps.delay(scaled(0.1)), steps.close(1000)], client_closes=False)


# --- back-pressure --------------------------------------------------------------

# Larger than loopback's socket buffers on both sides together, so that the
# send cannot complete while the server does not read.
LARGE = 32 * 1024 * 1024


@pytest.mark.parametrize("sender", ["loop-body", "other-greenlet"])
def test_large_send_waits_for_slow_reader(sender: str) -> None:
    # The poll interval bounds each read of the event loop. A write must
    # not inherit that bound: cut short, it would leave half a frame on the
    # wire. It blocks until the server reads again.
    script = [steps.accept(), steps.stall(scaled(1)), steps.expect_binary(), steps.close(1000)]
    with Server(script) as server:
        websocket = WebSocket(server.url, proxies={}, max_message_size=0)
        payload: bytes | None = b"\x01" * LARGE
        greenlets = []
        with gevent.Timeout(scaled(30)):
            for event in websocket.connect(poll=scaled(0.05), ping_rate=0, close_timeout=scaled(5)):
                # The first Poll comes after a read that was bounded by the poll interval.
                if event.name != "poll" or greenlets or payload is None:
                    continue
                if sender == "loop-body":
                    websocket.send_binary(payload)
                    payload = None
                else:
                    greenlets.append(gevent.spawn(websocket.send_binary, payload))
        transcript = server.transcripts[0]
        assert server.errors == []
    for greenlet in greenlets:
        assert greenlet.successful(), greenlet.exception
    binaries = [message for message in transcript.messages if message.kind == "binary"]
    assert len(binaries) == 1
    assert len(binaries[0].payload) == LARGE
