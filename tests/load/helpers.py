"""Helpers of the load tests: subprocess servers and commands, free ports."""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from lomond.testing.waits import scaled

# Seconds (scaled by LOMOND_TEST_TIMEOUT_SCALE) allowed for a subprocess
# to start, and for a whole command to finish.
START_TIMEOUT = scaled(20)
COMMAND_TIMEOUT = scaled(60)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def read_line(process: subprocess.Popen, timeout: float) -> str:
    """Return the next line of ``process``'s standard output, or "" after ``timeout`` seconds."""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            return ""
    return process.stdout.readline()


@dataclass
class LoadServer:
    """The bundled load server (``python -m lomond.load.server``) running in a subprocess."""

    process: subprocess.Popen
    url: str

    def stop(self) -> dict[str, Any]:
        """Stop the server with SIGTERM and return the counts it printed."""
        self.process.send_signal(signal.SIGTERM)
        output, _ = self.process.communicate(timeout=COMMAND_TIMEOUT)
        for line in output.splitlines():
            if line.startswith("stats "):
                return json.loads(line[len("stats "):])
        raise AssertionError(f"the load server printed no stats line; output: {output!r}")


def run_command(args: list[str], timeout: float = COMMAND_TIMEOUT, cwd: str | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m ...`` with ``args`` and return the finished process (output as text)."""
    environment = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-m", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=environment,
        stdin=subprocess.DEVNULL,
    )
