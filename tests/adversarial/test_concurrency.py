"""Closing, breaking out, user exceptions and sends from other greenlets and threads."""

from __future__ import annotations

import threading

import gevent
import pytest

from lomond import WebSocket
from lomond.errors import TransportFail, WebSocketUnavailable
from lomond.persist import persist
from lomond.testing import Server, steps

from .conftest import assert_one_disconnected, collect, open_fds
from .rawserver import RawServer, accept_response, read_request


class LoopBodyError(Exception):
    """Raised by a test's own loop body."""


def send_large(websocket: WebSocket) -> None:
    """Send 32 MiB, more than the socket buffers take, and ignore the failure when the socket closes."""
    try:
        websocket.send_binary(b"x" * (32 * 1024 * 1024))
    except TransportFail:
        pass


def test_close_during_handshake_ends_stream() -> None:
    names = []
    with Server([steps.accept(), steps.echo()]) as server:
        websocket = WebSocket(server.url, proxies={})
        with gevent.Timeout(3, False):
            for event in websocket.connect(poll=0, ping_rate=0, close_timeout=1):
                names.append(event.name)
                if event.name == "connected":
                    websocket.close()

    assert names[-1:] == ["disconnected"], names


def test_close_from_other_greenlet_ends_stream() -> None:
    with Server([steps.accept(), steps.echo()]) as server:
        websocket = WebSocket(server.url, proxies={})
        closer = gevent.spawn_later(0.2, websocket.close)
        found = collect(websocket, close_timeout=1)
        closer.join(1)

    assert_one_disconnected(found)
    assert "closing" in [event.name for event in found] or "closed" in [
        e.name for e in found
    ]


def test_loop_body_error_propagates_and_closes_socket() -> None:
    with Server([steps.accept(), steps.send_text("go"), steps.hold()]) as server:
        websocket = WebSocket(server.url, proxies={})
        with pytest.raises(LoopBodyError, match="mine"), gevent.Timeout(3):
            for event in websocket.connect(poll=0, ping_rate=0):
                if event.name == "text":
                    raise LoopBodyError("mine")

        assert websocket.session is not None
        assert websocket.session._sock is None


def test_break_out_of_loop_closes_socket() -> None:
    with Server([steps.accept(), steps.send_text("go"), steps.hold()]) as server:
        before = open_fds()
        websocket = WebSocket(server.url, proxies={})
        with gevent.Timeout(3):
            for event in websocket.connect(poll=0, ping_rate=0):
                if event.name == "text":
                    break

        assert websocket.session is not None
        assert websocket.session._sock is None
        server.stop(timeout=1)
        gevent.sleep(0.05)
        assert open_fds() - before == set()


def test_user_timeout_exception_propagates(debug_logs: list[str]) -> None:
    with Server([steps.accept(), steps.hold()]) as server:
        websocket = WebSocket(server.url, proxies={})
        with pytest.raises(LoopBodyError), gevent.Timeout(0.3, LoopBodyError()):
            for _event in websocket.connect(poll=0, ping_rate=0):
                pass

    assert not [line for line in debug_logs if "lomond bug" in line]


def test_kill_with_exception_reaches_caller() -> None:
    with Server([steps.accept(), steps.hold()]) as server:
        websocket = WebSocket(server.url, proxies={})

        def iterate() -> list[str]:
            return [event.name for event in websocket.connect(poll=0, ping_rate=0)]

        worker = gevent.spawn(iterate)
        gevent.sleep(0.2)
        worker.kill(LoopBodyError, block=True, timeout=2)

    assert isinstance(worker.exception, LoopBodyError), (worker.value, worker.exception)


def test_connect_again_after_disconnected() -> None:
    with Server([steps.accept(), steps.close(1000)]) as server:
        websocket = WebSocket(server.url, proxies={})
        first = collect(websocket)
        second = collect(websocket)

    assert_one_disconnected(first)
    assert_one_disconnected(second)
    assert [event.name for event in second][:3] == ["connecting", "connected", "ready"]


def test_send_after_disconnected_raises_unavailable() -> None:
    with Server([steps.accept(), steps.close(1000)]) as server:
        websocket = WebSocket(server.url, proxies={})
        collect(websocket)

    with pytest.raises(WebSocketUnavailable):
        websocket.send_text("late")
    with pytest.raises(WebSocketUnavailable):
        websocket.send_binary(b"late")
    websocket.close()


def test_sends_from_eight_threads_all_arrive() -> None:
    received = []
    errors: list[BaseException] = []
    with Server([steps.accept(), steps.echo()]) as server:
        websocket = WebSocket(server.url, proxies={})

        def send_many(number: int) -> None:
            for index in range(25):
                try:
                    websocket.send_text(f"{number}-{index}")
                except BaseException as error:  # noqa: BLE001 - every failure is reported
                    errors.append(error)

        with gevent.Timeout(10):
            for event in websocket.connect(poll=0, ping_rate=0, close_timeout=1):
                if event.name == "ready":
                    threads = [
                        threading.Thread(target=send_many, args=(n,)) for n in range(8)
                    ]
                    for thread in threads:
                        thread.start()
                    while any(thread.is_alive() for thread in threads):
                        gevent.sleep(0.01)
                if event.name == "text":
                    received.append(event.text)
                    if len(received) == 200:
                        websocket.close()

    assert errors == []
    assert sorted(received) == sorted(f"{n}-{i}" for n in range(8) for i in range(25))


def test_server_close_while_client_closes() -> None:
    with Server([steps.accept(), steps.send_text("go"), steps.close(1000)]) as server:
        websocket = WebSocket(server.url, proxies={})
        found = []
        with gevent.Timeout(5):
            for event in websocket.connect(poll=0, ping_rate=0, close_timeout=1):
                found.append(event)
                if event.name == "text":
                    websocket.close()

    assert_one_disconnected(found)


def test_close_while_send_blocked_respects_close_timeout() -> None:
    def handler(sock) -> None:
        request = read_request(sock)
        sock.sendall(accept_response(request))
        gevent.sleep(5)

    names = []
    with RawServer(handler) as server:
        websocket = WebSocket(server.url, proxies={})
        workers = []
        with gevent.Timeout(3, False):
            for event in websocket.connect(poll=0, ping_rate=0, close_timeout=1):
                names.append(event.name)
                if event.name == "ready":
                    workers.append(gevent.spawn(send_large, websocket))
                    gevent.sleep(0.2)
                    workers.append(gevent.spawn(websocket.close))
        gevent.killall(workers, timeout=1)

    assert names[-1:] == ["disconnected"], names


def test_persist_exit_event_ends_open_connection() -> None:
    exit_event = threading.Event()
    names = []
    with Server([steps.accept(), steps.hold()]) as server:
        websocket = WebSocket(server.url, proxies={})
        threading.Timer(0.3, exit_event.set).start()
        with gevent.Timeout(3, False):
            for event in persist(
                websocket,
                poll=0.1,
                ping_rate=0,
                exit_event=exit_event,
                min_wait=0.1,
                max_wait=0.2,
            ):
                names.append(event.name)

    assert names[-1:] == ["disconnected"], names[-5:]


def test_blocked_send_does_not_freeze_event_loop() -> None:
    def handler(sock) -> None:
        request = read_request(sock)
        sock.sendall(accept_response(request))
        gevent.sleep(5)

    polls = 0
    with RawServer(handler) as server:
        websocket = WebSocket(server.url, proxies={})
        workers = []
        with gevent.Timeout(2.5, False):
            for event in websocket.connect(poll=0.1, ping_rate=0.3, close_timeout=1):
                if event.name == "ready":
                    workers.append(gevent.spawn(send_large, websocket))
                if event.name == "poll":
                    polls += 1
        gevent.killall(workers, timeout=1)

    assert polls >= 10
