"""Coverage-guided fuzzing of lomond's parsers with atheris (libFuzzer).

Usage::

    pip install atheris
    python fuzz/fuzz.py TARGET [libFuzzer options] [CORPUS_DIR ...]

TARGET is one of ``frames``, ``handshake``, ``extensions`` or ``deflate``
(the functions in ``tests/robustness/fuzz_targets.py``). For example, ten
minutes on the frame parser with a corpus that grows as coverage grows::

    python fuzz/fuzz.py frames -max_total_time=600 fuzz/corpus/frames

An input that fails is written by libFuzzer as ``crash-<sha1>`` in the
current directory. Copy it to ``fuzz/crashes/TARGET/``, where
``tests/robustness/test_fuzz_regressions.py`` replays it in every test run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

# The targets live with the tests, so that the regression test and this
# harness run the same code.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

with atheris.instrument_imports(include=["lomond", "robustness"]):
    from robustness.fuzz_targets import TARGETS


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: python {sys.argv[0]} {{{','.join(TARGETS)}}} [libFuzzer options]")
    target = TARGETS[sys.argv.pop(1)]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
