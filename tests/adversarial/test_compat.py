"""Programs written for the documented API of lomond 0.3.4 must run unchanged."""

from __future__ import annotations

import importlib
import threading

import gevent
import pytest

from lomond import WebSocket, events
from lomond.persist import persist
from lomond.status import Status
from lomond.testing import Server, steps

from .conftest import assert_one_disconnected

EVENT_NAMES = {
    "Connecting": "connecting",
    "ConnectFail": "connect_fail",
    "Connected": "connected",
    "Rejected": "rejected",
    "Ready": "ready",
    "Text": "text",
    "Binary": "binary",
    "Ping": "ping",
    "Pong": "pong",
    "Poll": "poll",
    "Closing": "closing",
    "Closed": "closed",
    "ProtocolError": "protocol_error",
    "Unresponsive": "unresponsive",
    "UnknownMessage": "unknown",
    "BackOff": "back_off",
    "Disconnected": "disconnected",
}


@pytest.mark.parametrize(("class_name", "name"), sorted(EVENT_NAMES.items()))
def test_event_class_name_unchanged(class_name: str, name: str) -> None:
    assert getattr(events, class_name).name == name


def test_status_names_unchanged() -> None:
    assert Status.NORMAL == 1000
    assert Status.GOING_AWAY == 1001
    assert Status.PROTOCOL_ERROR == 1002
    assert Status.DATA_NOT_UNDERSTOOD == 1003
    assert Status.BAD_DATA == 1007
    assert Status.POLICY_VIOLATION == 1008
    assert Status.MESSAGE_TOO_LARGE == 1009
    assert Status.EXTENSION_FAILED == 1010
    assert Status.UNEXPECTED_CONDITION == 1011


def test_positional_constructor_and_connect_arguments() -> None:
    with Server(
        [steps.accept(), steps.send_text('{"a": 1}'), steps.close(1000)]
    ) as server:
        websocket = WebSocket(
            server.url, {}, ["chat"], "agent/1", False, True, None, None, None
        )
        websocket.add_header(b"X-Custom", b"value")
        with gevent.Timeout(5):
            found = list(
                websocket.connect(
                    WebSocket.connect.__defaults__[0], 0, 0, None, True, 1
                )
            )

    assert_one_disconnected(found)
    text = next(event for event in found if event.name == "text")
    assert text.json == {"a": 1}
    assert isinstance(text.received_time, float)


def test_persist_stops_on_exit_event_from_thread() -> None:
    exit_event = threading.Event()
    with Server([steps.accept(), steps.close(1000)]) as server:
        websocket = WebSocket(server.url, proxies={})
        threading.Timer(0.3, exit_event.set).start()
        found = []
        with gevent.Timeout(5):
            for event in persist(
                websocket,
                poll=0,
                min_wait=0.05,
                max_wait=0.1,
                ping_rate=0,
                exit_event=exit_event,
            ):
                found.append(event.name)

    assert "ready" in found
    assert "back_off" in found


def test_force_disconnect_method_exists() -> None:
    with Server([steps.accept(), steps.hold()]) as server:
        websocket = WebSocket(server.url, proxies={})
        found = []
        with gevent.Timeout(5):
            for event in websocket.connect(poll=0, ping_rate=0):
                found.append(event)
                if event.name == "ready":
                    websocket.force_disconnect()

    assert_one_disconnected(found)


def test_websocketsession_name_importable() -> None:
    session_module = importlib.import_module("lomond.session")

    assert session_module.WebsocketSession is session_module.WebSocketSession


def test_constants_user_agent_importable() -> None:
    constants = importlib.import_module("lomond.constants")

    assert constants.USER_AGENT


@pytest.mark.parametrize("name", ["FrameBuildError", "CompressionParameterError"])
def test_errors_from_03_exist(name: str) -> None:
    errors = importlib.import_module("lomond.errors")

    assert issubclass(getattr(errors, name), Exception)


@pytest.mark.parametrize("name", ["ssl_verify", "ssl_cafile", "ssl_context"])
def test_ssl_attributes_from_03_exist(name: str) -> None:
    websocket = WebSocket("wss://127.0.0.1:9/", ssl_verify=False)

    getattr(websocket, name)


def test_event_constructors_from_03() -> None:
    assert events.Connecting("ws://h/").url == "ws://h/"
    assert events.Disconnected().graceful is False
    assert events.Closed(1000, "bye").code == 1000
    assert events.BackOff(1.5).delay == 1.5
    assert events.Text("hi").text == "hi"
