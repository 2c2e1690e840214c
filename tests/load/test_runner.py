"""LoadRunner in this process, against scripted test servers that misbehave."""

from __future__ import annotations

import gevent
import pytest

from lomond.load import EchoBehaviour, ListenBehaviour, LoadConfig, LoadRunner
from lomond.testing import steps

pytestmark = [pytest.mark.load, pytest.mark.timeout(60)]


def run(url: str, behaviour=None, **settings) -> dict:
    config = LoadConfig(url=url, **{"clients": 5, "rate": 100, "duration": 0.5, "close_timeout": 1, **settings})
    return LoadRunner(config, behaviour or ListenBehaviour()).run()


def test_runner_server_close_code(lomond_server_factory):
    server = lomond_server_factory([steps.accept(), steps.close(1011, "server bug")])
    report = run(server.url, duration=5)
    connections = report["connections"]
    assert connections["opened"] == 5
    assert connections["closed_cleanly"] == 0
    assert connections["dropped_by_reason"] == {"closed by the server with code 1011": 5}
    assert report["close_codes"] == {"1011": 5}
    assert report["elapsed_seconds"] < 4  # the connections ended before their duration


def test_runner_rejected(lomond_server_factory):
    server = lomond_server_factory([steps.reject(503)])
    report = run(server.url)
    connections = report["connections"]
    assert connections["opened"] == 0
    assert connections["failed"] == 5
    (reason,) = connections["failed_by_reason"]
    assert reason.startswith("rejected:")
    assert "503" in reason
    assert report["connect_time"]["count"] == 0


def test_runner_dropped_connection(lomond_server_factory):
    server = lomond_server_factory([steps.accept(), steps.drop()])
    report = run(server.url)
    assert report["connections"]["dropped_by_reason"] == {
        "the server closed the connection without a close frame": 5
    }
    assert report["close_codes"] == {}


def test_runner_unanswered_echo(lomond_server_factory):
    # The server accepts and reads, but never replies.
    server = lomond_server_factory([steps.accept(), steps.hold()])
    report = run(server.url, EchoBehaviour(interval=0.2, size=8), duration=1)
    messages = report["messages"]
    assert messages["sent"] >= 5 * 5
    assert messages["received"] == 0
    assert messages["unanswered"] == messages["sent"]
    assert report["round_trip"]["count"] == 0
    assert report["connections"]["closed_cleanly"] == 5


def test_runner_stop_before_handshake(lomond_server_factory):
    # The server never replies to the handshake, and stop() ends the run at once.
    server = lomond_server_factory([steps.never_answer()])
    config = LoadConfig(url=server.url, clients=3, rate=100, duration=1, connect_timeout=30)
    runner = LoadRunner(config, ListenBehaviour())
    gevent.spawn_later(0.3, runner.stop)
    report = runner.run()
    assert report["interrupted"] is True
    assert report["connections"]["failed_by_reason"] == {"the run stopped before the handshake completed": 3}
    assert report["elapsed_seconds"] < 3
