"""``python -m lomond load`` end to end, against the bundled server in a subprocess."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from lomond.load.cli import main

from .helpers import COMMAND_TIMEOUT, START_TIMEOUT, free_port, run_command

pytestmark = [pytest.mark.load, pytest.mark.timeout(120)]


def read_report(path) -> dict:
    with open(path, encoding="utf-8") as report_file:
        return json.load(report_file)


def test_load_counts_match_server(load_server, tmp_path):
    report_path = tmp_path / "report.json"
    result = run_command([
        "lomond", "load", load_server.url,
        "--clients", "200", "--rate", "400", "--duration", "3", "--interval", "0.5",
        "--progress", "off", "--json", str(report_path),
    ])
    server = load_server.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    report = read_report(report_path)
    connections = report["connections"]
    messages = report["messages"]

    # Connections: every client opened, and closed with a closing handshake.
    assert connections["attempted"] == 200
    assert connections["opened"] == 200
    assert connections["failed"] == 0
    assert connections["dropped"] == 0
    assert connections["closed_cleanly"] == 200
    assert server["connections"] == 200
    assert server["accepted"] == 200
    assert server["closing_handshakes"] == 200
    assert server["close_codes_received"] == {"1000": 200}
    assert report["close_codes"] == {"1000": 200}

    # Messages: what one side sent, the other received.
    assert messages["sent"] >= 200 * 4  # 6 each: at Ready, then every 0.5 s until 0.5 s before the close
    assert messages["sent"] == server["messages_received"]
    assert messages["bytes_sent"] == server["bytes_received"]
    assert messages["received"] == server["messages_sent"]
    assert messages["bytes_received"] == server["bytes_sent"]
    assert messages["replies"] == messages["received"]
    assert messages["replies"] + messages["unanswered"] == messages["sent"]
    assert report["errors"] == {}

    # Percentiles come from every sample.
    assert report["connect_time"]["count"] == 200
    assert report["round_trip"]["count"] == messages["replies"]
    assert report["round_trip"]["exact"] is True
    for name in ("connect_time", "round_trip"):
        summary = report[name]
        assert 0 < summary["p50"] <= summary["p90"] <= summary["p99"] <= summary["max"]

    # The text report is on standard output.
    assert "connections   opened 200  failed 0  closed cleanly 200" in result.stdout
    assert "round trip    p50" in result.stdout
    assert report["client_resources"]["memory_per_connection_bytes"] is not None


def test_load_embedded_listen(tmp_path):
    report_path = tmp_path / "report.json"
    result = run_command([
        "lomond", "load", "--behaviour", "listen",
        "--clients", "50", "--rate", "200", "--duration", "2", "--interval", "0.25", "--size", "100",
        "--progress", "off", "--json", str(report_path),
    ])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no URL given: started the bundled test server at ws://127.0.0.1:" in result.stderr
    report = read_report(report_path)
    recorded = report["server"]["recorded"]

    assert report["server"]["embedded"] is True
    assert report["url"].endswith("/push")
    assert report["connections"]["closed_cleanly"] == 50
    assert recorded["accepted"] == 50
    assert report["messages"]["sent"] == 0
    assert report["messages"]["received"] == recorded["messages_sent"]
    assert report["messages"]["bytes_received"] == recorded["messages_sent"] * 100
    assert report["messages"]["received"] >= 50 * 8  # 2 s of one push every 0.25 s
    assert "(bundled test server)" in result.stdout


def test_load_interrupt_closes_cleanly(tmp_path):
    report_path = tmp_path / "report.json"
    command = [
        sys.executable, "-m", "lomond", "load",
        "--clients", "100", "--rate", "50", "--duration", "30",
        "--progress", "off", "--json", str(report_path),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # The note about the bundled server comes just before the first connection.
        deadline = time.monotonic() + START_TIMEOUT
        line = ""
        while "started the bundled test server" not in line and time.monotonic() < deadline:
            line = process.stderr.readline()
        assert "started the bundled test server" in line
        time.sleep(1.0)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=COMMAND_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 130, stdout + stderr
    assert "(interrupted)" in stdout
    report = read_report(report_path)
    connections = report["connections"]
    assert report["interrupted"] is True
    assert 0 < connections["opened"] < 100
    assert connections["not_started"] > 0
    assert connections["closed_cleanly"] == connections["opened"]
    assert connections["dropped"] == 0
    assert report["elapsed_seconds"] < 10
    assert report["server"]["recorded"]["close_codes_received"] == {"1000": connections["opened"]}


def test_load_refused_port(tmp_path):
    report_path = tmp_path / "report.json"
    port = free_port()
    result = run_command([
        "lomond", "load", f"ws://127.0.0.1:{port}/",
        "--clients", "5", "--duration", "1", "--progress", "off", "--json", str(report_path),
    ])
    assert result.returncode == 1
    report = read_report(report_path)
    assert report["connections"]["opened"] == 0
    assert report["connections"]["failed"] == 5
    (reason,) = report["connections"]["failed_by_reason"]
    assert "refused" in reason.lower()
    assert f"failed 5: {reason}" in result.stdout


SCRIPT = '''
import time

def run(websocket, events):
    sent_at = None
    for event in events:
        if event.name in ("ready", "poll") and websocket.is_active and sent_at is None:
            sent_at = time.monotonic()
            websocket.send_text("script message")
        elif event.name == "text":
            events.record_round_trip(time.monotonic() - sent_at)
            sent_at = None
            if events.number == 0:
                raise RuntimeError("client 0 gives up")
'''


def test_load_script_behaviour(load_server, tmp_path):
    script = tmp_path / "my_script.py"
    script.write_text(SCRIPT)
    report_path = tmp_path / "report.json"
    result = run_command([
        "lomond", "load", load_server.url, "--script", f"{script}:run",
        "--clients", "10", "--duration", "1.5", "--interval", "0.5",
        "--progress", "off", "--json", str(report_path),
    ])
    server = load_server.stop()
    assert result.returncode == 1, result.stdout + result.stderr
    report = read_report(report_path)

    assert report["settings"]["behaviour"] == {"name": "script", "script": f"{script}:run", "interval": 0.5}
    assert report["errors"] == {"script raised RuntimeError: client 0 gives up": 1}
    assert report["connections"]["dropped_by_reason"] == {"the script raised RuntimeError": 1}
    assert report["connections"]["closed_cleanly"] == 9
    assert report["messages"]["sent"] == server["messages_received"]
    assert report["round_trip"]["count"] == report["messages"]["replies"] > 10
    assert "client 0 gives up" in result.stderr  # logged once, with its traceback


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--clients", "0"], "--clients must be 1 or more"),
        (["--rate", "0"], "--rate must be above 0"),
        (["--interval", "-1"], "--interval must be above 0"),
        (["-H", "no colon"], "invalid header 'no colon'"),
        (["--script", "no_such_module_here:run"], "cannot import the script module"),
        (["--script", "nocolon"], "invalid script 'nocolon'"),
    ],
)
def test_load_invalid_arguments(arguments, message, capsys):
    assert main(["ws://127.0.0.1:9/", *arguments]) == 2
    assert message in capsys.readouterr().err


def test_load_open_files_limit(tmp_path):
    resource = pytest.importorskip("resource")
    report_path = tmp_path / "report.json"

    def lower_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (300, 300))

    result = subprocess.run(
        [
            sys.executable, "-m", "lomond", "load", "--clients", "500", "--rate", "1000", "--duration", "0.5",
            "--progress", "off", "--json", str(report_path),
        ],
        check=False, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, preexec_fn=lower_limit,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the open files limit is 300 (hard limit 300), so only 236 of 500 clients fit" in result.stderr
    report = read_report(report_path)
    assert report["open_files_limit"] == 300
    assert report["clients_limited_to"] == 236
    assert report["connections"]["closed_cleanly"] == 236
