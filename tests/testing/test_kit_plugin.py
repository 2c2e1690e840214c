"""The pytest plugin, used the way a downstream project uses it.

A temporary project holds only a test file (no conftest): lomond is
installed into it from a freshly built wheel, and pytest finds the
fixtures through the ``pytest11`` entry point, with and without xdist.
"""

from __future__ import annotations

import email
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import lomond

REPOSITORY = Path(lomond.__file__).resolve().parent.parent

DOWNSTREAM_TEST = '''
import os

import lomond
from lomond import WebSocket
from lomond.testing import steps


def run(url, **options):
    websocket = WebSocket(url, **options)
    events = []
    for event in websocket.connect(poll=60, ping_rate=0, close_timeout=2):
        events.append(event.name)
        if event.name == "ready":
            websocket.send_text("hi")
        elif event.name == "text":
            websocket.close()
    return events


def test_installed_copy_is_used():
    assert lomond.__file__.startswith(os.environ["DOWNSTREAM_SITE"])


def test_echo_fixture(lomond_server):
    assert run(lomond_server.url)[-3:] == ["text", "closed", "disconnected"]
    assert lomond_server.next_connection().wait_closed().closing_handshake_completed


def test_reconnect_after_drop(lomond_server_factory):
    server = lomond_server_factory([steps.accept(), steps.drop()])
    for _ in range(2):
        assert run(server.url)[-1] == "disconnected"
    assert len(server.transcripts) == 2


def test_tls_fixture(lomond_tls_server):
    assert "text" in run(lomond_tls_server.url, ssl_cafile=lomond_tls_server.ca_file)


def test_proxy_fixture(lomond_proxy, lomond_server):
    assert "text" in run(lomond_server.url, proxies={"http": lomond_proxy.url})
    assert lomond_proxy.next_request().status == 200
'''

BROKEN_SCRIPT_TEST = '''
from lomond import WebSocket
from lomond.testing import steps


def test_client_never_sends_expected_text(lomond_server_factory):
    server = lomond_server_factory([steps.accept(), steps.expect_text("never sent", timeout=0.2)])
    for event in WebSocket(server.url).connect(poll=60, ping_rate=0, close_timeout=1):
        pass
'''


def start_pytest(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    output, _ = process.communicate(timeout=120)
    return process.returncode, output


def install_wheel(tmp_path: Path) -> Path:
    """Build lomond from a copy of the source tree and install it into a target folder."""
    source = tmp_path / "source"
    shutil.copytree(
        REPOSITORY,
        source,
        ignore=shutil.ignore_patterns(".git", "build", "*.egg-info", "__pycache__", ".hypothesis"),
    )
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(source)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return site


def test_downstream_project_uses_fixtures(tmp_path):
    site = install_wheel(tmp_path)

    # The installed metadata declares the extra and the plugin entry point.
    dist_info = next(site.glob("lomond-*.dist-info"))
    metadata = email.message_from_string((dist_info / "METADATA").read_text())
    testing_requirements = [r for r in metadata.get_all("Requires-Dist") if 'extra == "testing"' in r]
    for package in ("wsproto", "trustme", "pytest"):
        assert any(r.startswith(package) for r in testing_requirements), testing_requirements
    assert "lomond = lomond.testing.plugin" in (dist_info / "entry_points.txt").read_text()

    # A project with only a test file, run plainly and under xdist.
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_downstream.py").write_text(textwrap.dedent(DOWNSTREAM_TEST))
    env = {**os.environ, "PYTHONPATH": str(site), "DOWNSTREAM_SITE": str(site)}
    plain = start_pytest(project, env=env)
    parallel = start_pytest(project, "-n", "2", env=env)
    code, output = finish(plain)
    assert code == 0, output
    assert "5 passed" in output
    code, output = finish(parallel)
    assert code == 0, output
    assert "5 passed" in output


def test_teardown_reports_script_error(tmp_path):
    (tmp_path / "test_broken.py").write_text(textwrap.dedent(BROKEN_SCRIPT_TEST))
    code, output = finish(start_pytest(tmp_path))
    assert code == 1, output
    assert "1 passed, 1 error" in output
    assert "script failed" in output
    assert "timed out" in output


WITHOUT_EXTRA = '''
import sys

# Hide wsproto, as if lomond were installed without the testing extra.
sys.modules["wsproto"] = None

import pytest

sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", sys.argv[1]]))
'''

PLAIN_TESTS = '''
def test_unrelated():
    assert True


def test_uses_fixture(lomond_server):
    pass
'''


def test_plugin_without_testing_extra(tmp_path):
    (tmp_path / "test_plain.py").write_text(PLAIN_TESTS)
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRA, "test_plain.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 passed, 1 error" in result.stdout
    assert "pip install 'lomond[testing]'" in result.stdout
