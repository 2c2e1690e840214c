"""lomond.contrib.locust.WebSocketUser under Locust: headless, distributed, and failure cases.

Locust runs in subprocesses only, because importing it monkey-patches the
whole process.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import COMMAND_TIMEOUT, free_port, run_command

pytestmark = [
    pytest.mark.load,
    pytest.mark.timeout(120),
    # find_spec, because importing locust here would monkey-patch pytest's own process.
    pytest.mark.skipif(importlib.util.find_spec("locust") is None, reason="needs lomond[locust]"),
]

# Each user echoes a request, sends a message whose echo comes back as a
# push, and pings five times a second. It closes its connection every tenth
# task, so that sessions end (and are reported) while the test runs, and
# reconnect opens the next one.
LOCUSTFILE = '''
from locust import constant, task

from lomond.contrib.locust import WebSocketUser


class EchoUser(WebSocketUser):
    wait_time = constant(0.1)
    ping_rate = 0.2
    reconnect = True
    reconnect_min_wait = 0.05
    reconnect_max_wait = 0.2

    def on_start(self):
        self.tasks_run = 0
        super().on_start()

    def reply_key(self, event):
        return event.text

    @task
    def echo(self):
        if not self.connected and not self.connect(timeout=2.0):
            return
        self.tasks_run += 1
        text = f"user {id(self)} request {self.tasks_run}"
        self.request(text, key=text, name="echo")
        self.send("fire and forget")
        if self.tasks_run % 10 == 0:
            self.close()
'''

USERS = 4


def read_stats(prefix: Path) -> dict[str, dict[str, str]]:
    """Return the rows of Locust's PREFIX_stats.csv by entry name (request type WS only)."""
    with open(f"{prefix}_stats.csv", newline="", encoding="utf-8") as stats_file:
        return {row["Name"]: row for row in csv.DictReader(stats_file) if row["Type"] == "WS"}


def read_failures(prefix: Path) -> list[dict[str, str]]:
    with open(f"{prefix}_failures.csv", newline="", encoding="utf-8") as failures_file:
        return list(csv.DictReader(failures_file))


def check_entries(stats: dict[str, dict[str, str]]) -> None:
    """Assert that every kind of entry was reported, without failures."""
    assert set(stats) == {"connect", "echo", "send", "push", "ping", "session"}
    for name, row in stats.items():
        assert row["Failure Count"] == "0", (name, row)
    count = {name: int(row["Request Count"]) for name, row in stats.items()}
    assert count["connect"] >= USERS + 1  # every user, and at least one reconnect
    assert count["session"] >= USERS  # closed every tenth task
    assert count["echo"] >= 5 * USERS
    assert count["send"] >= count["echo"] - USERS  # each task sends after its request
    assert count["push"] >= 1
    assert count["ping"] >= 1
    assert float(stats["echo"]["Average Response Time"]) > 0
    assert float(stats["connect"]["Average Response Time"]) > 0


def check_server(server: dict, stats: dict[str, dict[str, str]]) -> None:
    """Assert that the server saw the connections Locust reported, all closed with 1000."""
    assert server["accepted"] >= int(stats["connect"]["Request Count"])
    assert server["accepted"] == server["connections"]
    assert set(server["close_codes_received"]) <= {"1000"}
    assert server["error_count"] == 0


def explain_failure(result: subprocess.CompletedProcess, prefix: Path) -> str:
    """Return Locust's failures and exceptions CSV files and the end of its output."""
    parts = []
    for suffix in ("_failures.csv", "_exceptions.csv"):
        path = Path(f"{prefix}{suffix}")
        if path.exists():
            parts.append(path.read_text(encoding="utf-8"))
    parts.append(result.stdout[-2000:])
    parts.append(result.stderr[-2000:])
    return "\n".join(parts)


def locust_command(locustfile: Path, url: str, *options: str) -> list[str]:
    return ["locust", "-f", str(locustfile), "--host", url, "--loglevel", "WARNING", *options]


def test_locust_headless(load_server, tmp_path):
    locustfile = tmp_path / "locustfile.py"
    locustfile.write_text(LOCUSTFILE)
    prefix = tmp_path / "headless"
    result = run_command(
        locust_command(
            locustfile, load_server.url,
            "--headless", "-u", str(USERS), "-r", str(USERS), "-t", "5s", "--csv", str(prefix),
        ),
        cwd=str(tmp_path),
    )
    server = load_server.stop()
    assert result.returncode == 0, explain_failure(result, prefix)
    stats = read_stats(prefix)
    check_entries(stats)
    assert read_failures(prefix) == []
    check_server(server, stats)


def test_locust_distributed(load_server, tmp_path):
    locustfile = tmp_path / "locustfile.py"
    locustfile.write_text(LOCUSTFILE)
    prefix = tmp_path / "distributed"
    port = str(free_port())
    worker_command = [
        sys.executable, "-m",
        *locust_command(locustfile, load_server.url, "--worker", "--master-host", "127.0.0.1", "--master-port", port),
    ]
    workers = [
        subprocess.Popen(worker_command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    try:
        result = run_command(
            locust_command(
                locustfile, load_server.url,
                "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", port,
                "--expect-workers", "2", "--headless",
                "-u", str(USERS), "-r", str(USERS), "-t", "5s", "--csv", str(prefix),
            ),
            cwd=str(tmp_path),
        )
        worker_output = [worker.communicate(timeout=COMMAND_TIMEOUT)[0] for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.communicate()
    server = load_server.stop()

    assert result.returncode == 0, explain_failure(result, prefix)
    for worker, output in zip(workers, worker_output):
        assert worker.returncode == 0, output[-3000:]
    stats = read_stats(prefix)
    check_entries(stats)
    assert read_failures(prefix) == []
    check_server(server, stats)


def test_locust_failure_reports():
    script = Path(__file__).with_name("locust_scenarios.py")
    result = subprocess.run(
        [sys.executable, str(script)], check=False, capture_output=True, text=True, timeout=COMMAND_TIMEOUT
    )
    assert result.returncode == 0, result.stderr[-3000:]
    records = json.loads(result.stdout.splitlines()[-1])

    def errors(label: str, name: str) -> list:
        return [r["error"] for r in records if r["label"] == label and r["name"] == name]

    # Connect failures name their reason.
    (refused,) = errors("refused", "connect")
    assert refused.startswith("connect failed:")
    assert "refused" in refused.lower()
    (rejected,) = errors("rejected", "connect")
    assert rejected.startswith("rejected:")
    assert "503" in rejected

    # Abnormal closes fail the session entry with the close code.
    assert errors("dropped", "connect") == [None]
    (dropped,) = errors("dropped", "session")
    assert dropped.startswith("abnormal close (1006):")
    assert errors("close-1011", "session") == ["close code 1011: server bug"]

    # A request left unanswered times out, while another user keeps going.
    assert errors("silent", "ask") == ["no reply within 1 s"]
    echoes = errors("echo", "echo")
    assert len(echoes) >= 10
    assert set(echoes) == {None}
    assert errors("echo", "send") == [None]
    assert errors("echo", "push") == [None]
    assert errors("echo", "session") == [None]  # closed by on_stop with 1000
    (ask,) = [r for r in records if r["name"] == "ask"]
    assert 900 <= ask["ms"] < 2000

    # The push hooks.
    assert errors("hooked", "pushed news") == [None]
    assert "on_message received ['news']" in result.stdout

    # request() needs reply_key.
    assert "usage error: Plain.request() needs a reply_key() method" in result.stdout

    # Reconnects after each drop, then stops cleanly.
    connects = errors("persistent", "connect")
    assert len(connects) >= 3
    assert set(connects) == {None}
    sessions = errors("persistent", "session")
    assert len(sessions) == len(connects)
    assert sessions[-1] is None
    assert all(error.startswith("abnormal close (1006)") for error in sessions[:-1])

    # Stopped during the handshake: close() gives the attempt up at once, so
    # it is reported neither as a connect nor as a session.
    assert errors("slow", "connect") == []
    assert errors("slow", "session") == []
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("stop during handshake took")]
    assert float(line.split()[-2]) < 2.0
