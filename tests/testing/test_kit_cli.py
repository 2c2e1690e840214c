"""``python -m lomond serve`` (lomond.testing.cli)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest
from kit_raw import RawClient
from lomond.testing.cli import main
from lomond.testing.frames import OP_TEXT
from lomond.testing.waits import scaled


def start_serve(*args, command=("-m", "lomond.testing.cli")):
    process = subprocess.Popen(
        [sys.executable, *command, "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()
    found = re.search(r"at wss?://127\.0\.0\.1:(\d+)/", line)
    if found is None:
        process.kill()
        pytest.fail(f"no URL in the first line: {line!r} {process.stderr.read()!r}")
    return process, int(found.group(1))


def stop_serve(process):
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=scaled(10))
    return process.returncode, out


def test_serve_echo():
    process, port = start_serve(command=("-m", "lomond", "serve"))
    try:
        with RawClient(port) as client:
            client.handshake()
            client.send_frame(OP_TEXT, b"from outside")
            assert client.recv_frame().payload == b"from outside"
    finally:
        code, out = stop_serve(process)
    assert code == 0
    assert "stopped" in out


def test_serve_named_fault():
    process, port = start_serve("--fault", "hello-drop")
    try:
        with RawClient(port) as client:
            client.handshake()
            assert client.recv_all() == b"\x81\x05hello"
    finally:
        assert stop_serve(process)[0] == 0


def test_serve_tls_prints_ca_file():
    process, port = start_serve("--tls")
    try:
        ca_line = process.stdout.readline()
        assert ca_line.startswith("CA certificate: ")
        ca_file = ca_line.split(": ", 1)[1].strip()
        assert os.path.exists(ca_file)
    finally:
        assert stop_serve(process)[0] == 0
    assert not os.path.exists(ca_file)


def test_list_faults(capsys):
    assert main(["--list-faults"]) == 0
    out = capsys.readouterr().out
    assert "hello-drop" in out
    assert "echo" in out


def test_unknown_fault(capsys):
    assert main(["--fault", "nope"]) == 2
    assert "unknown fault 'nope'" in capsys.readouterr().err


def test_port_in_use(capsys, lomond_server):
    assert main(["--port", str(lomond_server.port)]) == 1
    assert "cannot listen" in capsys.readouterr().err
