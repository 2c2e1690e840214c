"""The recipes of docs/testing.md, run as written there."""

from __future__ import annotations

import pytest
from lomond import WebSocket
from lomond.persist import persist
from lomond.testing import steps


def test_app_reads_greeting(lomond_server_factory):
    server = lomond_server_factory([
        steps.accept(),
        steps.send_text("hello"),
        steps.expect_text("hello back"),
        steps.close(1000),
    ])
    websocket = WebSocket(server.url)
    for event in websocket.connect(ping_rate=0):
        if event.name == "text":
            websocket.send_text(event.text + " back")

    transcript = server.next_connection().wait_closed()
    assert transcript.closing_handshake_completed


def test_reconnects_after_drop(lomond_server_factory):
    server = lomond_server_factory([steps.accept(), steps.send_text("hello"), steps.drop()])
    websocket = WebSocket(server.url)
    greetings = 0
    for event in persist(websocket, min_wait=0.01, max_wait=0.02, ping_rate=0):
        if event.name == "text":
            greetings += 1
        if greetings == 2:
            break
    assert len(server.transcripts) >= 2


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 2999, 5000])
def test_rejects_bad_close_code(lomond_server_factory, code):
    server = lomond_server_factory([steps.accept(), steps.close(code)])
    names = [event.name for event in WebSocket(server.url).connect(ping_rate=0)]
    assert "protocol_error" in names
    assert server.next_connection().wait_closed().close_code == 1002


def test_detects_stall(lomond_server_factory):
    server = lomond_server_factory([steps.accept(), steps.stall()])
    websocket = WebSocket(server.url)
    names = [e.name for e in websocket.connect(ping_rate=0.1, ping_timeout=0.3)]
    assert "unresponsive" in names


def test_respects_retry_after(lomond_server_factory):
    server = lomond_server_factory([steps.reject(503, headers=[("Retry-After", "1")])])
    websocket = WebSocket(server.url)
    for event in persist(websocket, min_wait=0.01, max_retries=1):
        if event.name == "back_off":
            assert event.delay == 1
            break
