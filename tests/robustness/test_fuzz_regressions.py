"""Replay every input that made a fuzz target fail, and the seed inputs of each target.

Inputs live in ``fuzz/crashes/<target>/`` and ``fuzz/seeds/<target>/``, one
file each, as the atheris harness (``fuzz/fuzz.py``) reads and writes them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .fuzz_targets import TARGETS

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"
# Valid or nearly valid inputs that start the fuzzer's corpus.
SEEDS = FUZZ / "seeds"
CRASHES = FUZZ / "crashes"

def stored_inputs() -> list[tuple[str, str, bytes]]:
    cases = []
    for folder in (SEEDS, CRASHES):
        for path in sorted(folder.glob("*/*")):
            if path.is_file() and path.parent.name in TARGETS:
                cases.append((path.parent.name, f"{folder.name}-{path.name}", path.read_bytes()))
    return cases


@pytest.mark.parametrize(
    ("target", "name", "data"), stored_inputs(), ids=[f"{t}-{n}" for t, n, _ in stored_inputs()]
)
def test_fuzz_input(target: str, name: str, data: bytes) -> None:
    TARGETS[target](data)
