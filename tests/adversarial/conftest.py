"""Helpers shared by the adversarial tests."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import gevent
import pytest

from lomond import WebSocket
from lomond.testing import Server, steps


def open_fds() -> set[int]:
    return {int(name) for name in os.listdir("/proc/self/fd")}


def collect(websocket: WebSocket, timeout: float = 5.0, **options: Any) -> list[Any]:
    """Return every event of one connection; fail the test after ``timeout`` seconds."""
    options.setdefault("poll", 0)
    options.setdefault("ping_rate", 0)
    found = []
    # gevent.Timeout itself, not an Exception subclass: lomond's last-resort
    # handler catches Exception raised inside the iterator.
    try:
        with gevent.Timeout(timeout):
            for event in websocket.connect(**options):
                found.append(event)  # noqa: PERF402 - keeps the events seen before a timeout
    except gevent.Timeout:
        raise AssertionError(
            f"the stream did not end within {timeout}s: {[event.name for event in found]}"
        ) from None
    return found


def assert_one_disconnected(found: list[Any]) -> None:
    names = [event.name for event in found]
    assert names.count("disconnected") == 1, names
    assert names[-1] == "disconnected", names


@pytest.fixture(scope="session", autouse=True)
def warm_hub() -> None:
    """Open one connection first, so that the hub's own descriptors exist before fd checks."""
    with Server([steps.accept(), steps.close(1000)]) as server:
        collect(WebSocket(server.url, proxies={}))


@pytest.fixture
def debug_logs() -> Iterator[list[str]]:
    """Capture every log record of the process at DEBUG, formatted."""
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Collect(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
