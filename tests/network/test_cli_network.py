"""``python -m lomond`` with --proxy and --cafile, against loopback servers in this process."""

from __future__ import annotations

import subprocess
import sys

import gevent.subprocess

from lomond.testing import TIME_UNIT


def run_cli(*arguments):
    # gevent's subprocess keeps this process's servers running while it waits.
    return gevent.subprocess.run(
        [sys.executable, "-m", "lomond", *arguments],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30 * TIME_UNIT,
    )


def test_cli_proxy_and_cafile(lomond_tls_server, lomond_proxy):
    result = run_cli("--proxy", lomond_proxy.url, "--cafile", lomond_tls_server.ca_file, lomond_tls_server.url)
    assert result.returncode == 0, result.stderr
    assert f"proxy='{lomond_proxy.url}'" in result.stdout
    assert "Ready(" in result.stdout
    assert lomond_proxy.next_request().target == f"127.0.0.1:{lomond_tls_server.port}"


def test_cli_without_cafile_fails_verification(lomond_tls_server):
    result = run_cli(lomond_tls_server.url)
    assert result.returncode == 1
    assert "unknown CA" in result.stdout
