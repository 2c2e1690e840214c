"""Fixtures shared by the robustness tests."""

from __future__ import annotations

import gevent
import pytest

from lomond import WebSocket
from lomond.testing import Server, scaled, steps


@pytest.fixture(scope="session", autouse=True)
def warm_hub() -> None:
    """Run one clean connection first, so that the hub's own descriptors and
    threads (event loop, resolver, thread pool) exist before any leak snapshot."""
    with Server([steps.accept(), steps.close(1000)]) as server, gevent.Timeout(scaled(5)):
        for _event in WebSocket(server.url, proxies={}).connect(poll=0, ping_rate=0):
            pass
