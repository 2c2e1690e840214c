"""Fixtures that start independent WebSocket servers in subprocesses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PEERS = ["websockets", "aiohttp", "gevent-websocket"]
_SCRIPT = Path(__file__).with_name("peer_servers.py")


@pytest.fixture(scope="module", params=PEERS)
def peer_url(request):
    """The URL of an independent echo server (one per peer implementation)."""
    process = subprocess.Popen(
        [sys.executable, str(_SCRIPT), request.param],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        if not line.startswith("PORT "):
            pytest.fail(f"{request.param} server did not start: {line!r}")
        yield request.param, f"ws://127.0.0.1:{int(line.split()[1])}/echo"
    finally:
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
