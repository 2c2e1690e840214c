"""The examples and the command line run against the bundled server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_ticker_example_prints_ticks():
    result = run("examples/ticker.py")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["{'price': 100}", "{'price': 101}", "{'price': 99}"]


def test_reconnect_example_reconnects():
    result = run("examples/reconnect.py")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Ready(") == 3
    assert result.stdout.count("BackOff(") >= 2


def test_cli_without_url_runs_embedded_server():
    result = run("-m", "lomond", "--json")
    assert result.returncode == 0, result.stderr
    assert "started the bundled echo server at ws://127.0.0.1:" in result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    names = [event["name"] for event in events]
    assert names[:3] == ["connecting", "connected", "ready"]
    assert [event["text"] for event in events if event["name"] == "text"] == [
        "hello",
        "from",
        "lomond",
    ]
    assert names[-2:] == ["closed", "disconnected"]
    assert events[-1]["graceful"] is True


def test_cli_sends_stdin_lines_to_a_url():
    from lomond.testing import Server

    with Server() as server:
        # The server runs in this process's hub, so the client must run in
        # a subprocess while this process keeps serving.
        import gevent
        import gevent.subprocess

        process = gevent.subprocess.Popen(
            [sys.executable, "-m", "lomond", "--json", server.url],
            cwd=ROOT,
            stdin=gevent.subprocess.PIPE,
            stdout=gevent.subprocess.PIPE,
            stderr=gevent.subprocess.PIPE,
            text=True,
        )
        with gevent.Timeout(30):
            stdout, stderr = process.communicate("first line\nsecond line\n")
    assert process.returncode == 0, stderr
    events = [json.loads(line) for line in stdout.splitlines()]
    texts = [event["text"] for event in events if event["name"] == "text"]
    assert texts == ["first line", "second line"]
    assert events[-1] == {**events[-1], "name": "disconnected", "graceful": True}


def test_cli_rejects_invalid_url():
    result = run("-m", "lomond", "http://127.0.0.1/")
    assert result.returncode == 2
    assert "unsupported URL scheme 'http'" in result.stderr
    assert "Traceback" not in result.stderr
