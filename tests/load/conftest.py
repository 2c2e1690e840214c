"""Fixtures for the load tests.

Every test here is marked ``load``; ``pytest -m load`` runs them alone, in
well under a minute.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from .helpers import COMMAND_TIMEOUT, START_TIMEOUT, LoadServer, read_line


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "load: load-testing command and Locust user tests (about 30 s in all)")


@pytest.fixture
def load_server() -> Iterator[LoadServer]:
    """Start the bundled load server on a free loopback port; kill it if the test left it running."""
    process = subprocess.Popen(
        [sys.executable, "-m", "lomond.load.server", "--port", "0", "--max-seconds", str(COMMAND_TIMEOUT)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = read_line(process, START_TIMEOUT)
        if not line.startswith("listening on "):
            pytest.fail(f"the load server did not start: {line!r}")
        yield LoadServer(process, line[len("listening on "):].strip())
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
