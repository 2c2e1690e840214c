"""Replay every input that made a fuzz target fail, and a few seeds for each target.

Inputs live in ``fuzz/crashes/<target>/``, one file each, as the atheris
harness (``fuzz/fuzz.py``) wrote them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .fuzz_targets import TARGETS
from .wire import deflate_message, server_frame, upgrade_response

CRASHES = Path(__file__).resolve().parents[2] / "fuzz" / "crashes"

SEEDS = {
    "frames": [
        b"\x00\x00" + server_frame(0x1, b"hello") + server_frame(0x8, b"\x03\xe8"),
        b"\x01\x05" + server_frame(0x1, deflate_message(b"hello " * 20), rsv=4),
        b"\x00\x01" + server_frame(0x1, b"caf\xc3", fin=False) + server_frame(0x0, b"\xa9"),
    ],
    "handshake": [
        b"\x00\x00" + upgrade_response(),
        b"\x01\x07" + upgrade_response("permessage-deflate; server_max_window_bits=10"),
        b"\x00\x03HTTP/1.1 503 Busy\r\nRetry-After: 1\r\n\r\n",
    ],
    "extensions": [
        b"\x00permessage-deflate; client_max_window_bits=12",
        b"\x02permessage-deflate; server_max_window_bits=\"9\"; client_max_window_bits=9\x00"
        + server_frame(0x1, b"plain"),
    ],
    "deflate": [
        b"\x07\x00\x00" + deflate_message(b"x" * 100),
        b"\x07\x03\x01" + deflate_message(b"y" * 1000),
    ],
}


def stored_inputs() -> list[tuple[str, str, bytes]]:
    cases = []
    for target, seeds in SEEDS.items():
        cases += [(target, f"seed-{index}", seed) for index, seed in enumerate(seeds)]
    for path in sorted(CRASHES.glob("*/*")):
        if path.is_file() and path.parent.name in TARGETS:
            cases.append((path.parent.name, path.name, path.read_bytes()))
    return cases


@pytest.mark.parametrize(
    ("target", "name", "data"), stored_inputs(), ids=[f"{t}-{n}" for t, n, _ in stored_inputs()]
)
def test_fuzz_input(target: str, name: str, data: bytes) -> None:
    TARGETS[target](data)
