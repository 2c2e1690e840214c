"""Smoke test of the benchmark command on tiny sizes.

It checks that `python -m benchmarks --quick` runs the raw baseline and this
tree's lomond through every scenario and writes parseable results. It
asserts nothing about timing: benchmark numbers never gate CI.
"""

import json
import subprocess
import sys
from pathlib import Path

from benchmarks import catalog, report

REPO_ROOT = Path(__file__).resolve().parent.parent
# The quick run takes about 10 seconds on a 2-core machine.
RUN_TIMEOUT_SECONDS = 90


def run_benchmarks(*arguments):
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *arguments],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS)


def test_quick_run_writes_results(tmp_path):
    completed = run_benchmarks("--quick", "--clients", "raw,lomond", "--output", str(tmp_path))
    assert completed.returncode == 0, completed.stderr[-3000:]

    document = json.loads((tmp_path / "latest.json").read_text())
    assert set(document["scenarios"]) == set(catalog.SCENARIOS_BY_NAME)
    for scenario, clients in document["scenarios"].items():
        for client in ("raw", "lomond"):
            assert clients[client]["status"] == "ok", (scenario, client, clients[client])
    assert document["settings"]["quick"] is True
    assert "Command: `python -m benchmarks --quick" in (tmp_path / "RESULTS.md").read_text()


def test_unknown_client_is_rejected(tmp_path):
    completed = run_benchmarks("--quick", "--clients", "no-such-client", "--output", str(tmp_path))
    assert completed.returncode == 2
    assert "unknown client 'no-such-client'" in completed.stderr
    assert not (tmp_path / "latest.json").exists()


def test_results_page_keeps_handwritten_text():
    page = "intro\n%s\nold table\n%s\nanalysis\n" % (report.GENERATED_START,
                                                     report.GENERATED_END)
    merged = report.merge_results_page(page, "new table")
    assert merged.startswith("intro\n")
    assert merged.endswith("\nanalysis\n")
    assert "new table" in merged
    assert "old table" not in merged
