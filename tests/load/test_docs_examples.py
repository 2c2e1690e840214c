"""The worked examples of docs/load-testing.md run as written."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
from pathlib import Path

import pytest

from .helpers import run_command

pytestmark = [pytest.mark.load, pytest.mark.timeout(120)]

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "load-testing.md"

# An example is the first fenced block after a "<!-- example: NAME -->" line.
EXAMPLE = re.compile(r"<!-- example: (\S+) -->\s*```python\n(.*?)```", re.DOTALL)


def save_example(name: str, directory: Path) -> Path:
    """Write the example called ``name`` from the guide to ``directory``; return its path."""
    examples = dict(EXAMPLE.findall(GUIDE.read_text(encoding="utf-8")))
    assert name in examples, f"docs/load-testing.md has no example {name}; it has {sorted(examples)}"
    path = directory / name
    path.write_text(examples[name], encoding="utf-8")
    return path


def test_guide_script_example(tmp_path):
    script = save_example("json_requests.py", tmp_path)
    report_path = tmp_path / "report.json"
    result = run_command([
        "lomond", "load", "--script", f"{script}:run",
        "--clients", "20", "--duration", "1", "--interval", "0.25",
        "--progress", "off", "--json", str(report_path),
    ])
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["connections"]["closed_cleanly"] == 20
    assert report["round_trip"]["count"] >= 20 * 4
    assert report["round_trip"]["count"] == report["messages"]["replies"]
    assert report["errors"] == {}


@pytest.mark.skipif(importlib.util.find_spec("locust") is None, reason="needs lomond[locust]")
def test_guide_locust_example(load_server, tmp_path):
    locustfile = save_example("status_user.py", tmp_path)
    prefix = tmp_path / "run"
    result = run_command(
        [
            "locust", "-f", str(locustfile), "--host", load_server.url, "--loglevel", "WARNING",
            "--headless", "-u", "5", "-r", "5", "-t", "3s", "--csv", str(prefix),
        ],
        cwd=str(tmp_path),
    )
    load_server.stop()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with open(f"{prefix}_stats.csv", newline="", encoding="utf-8") as stats_file:
        rows = {row["Name"]: row for row in csv.DictReader(stats_file) if row["Type"] == "WS"}
    assert int(rows["connect"]["Request Count"]) == 5
    assert int(rows["status"]["Request Count"]) >= 1
    for name, row in rows.items():
        assert row["Failure Count"] == "0", (name, row)
