"""Run the fast Autobahn|Testsuite subset against lomond, when the suite is available.

``compliance/run_subset.sh`` starts the suite's fuzzingserver on loopback,
runs ``compliance/testee.py`` through its cases and fails unless each is
OK or one of the suite's INFORMATIONAL cases. The suite's runner is looked
up in ``AUTOBAHN_DIR`` (default: ``../shared/autobahn`` next to the
repository); without it the test is skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AUTOBAHN_DIR = Path(os.environ.get("AUTOBAHN_DIR", ROOT.parent / "shared" / "autobahn"))

# The subset takes under a minute; the script's own bound is 5 minutes,
# plus about a minute to build the fuzzingserver on a fresh machine.
TIMEOUT = 420


@pytest.mark.skipif(
    not (AUTOBAHN_DIR / "run-client.sh").exists(),
    reason=f"Autobahn|Testsuite runner not found in {AUTOBAHN_DIR}",
)
@pytest.mark.timeout(TIMEOUT + 30)
def test_autobahn_subset_passes() -> None:
    environment = dict(os.environ, PYTHON=sys.executable, AUTOBAHN_DIR=str(AUTOBAHN_DIR))
    result = subprocess.run(
        ["bash", str(ROOT / "compliance" / "run_subset.sh")],
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "cases passed" in result.stdout
