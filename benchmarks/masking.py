"""Compare ways to mask a WebSocket payload (RFC 6455 section 5.3).

Run with ``python benchmarks/masking.py``. It prints the time per call and
the throughput of each approach at 32 B, 1 KiB, 64 KiB and 1 MiB, how many
times faster lomond's C function is than its pure Python one, then the
payload sizes around the point where ``bytes.translate`` overtakes the
big-integer XOR. ``_TRANSLATE_THRESHOLD`` in ``lomond/protocol/mask.py`` is
set from that last table.

Approaches:

- big-int XOR: one ``int.from_bytes`` XOR of the payload and the key
  repeated to the same length;
- translate per lane: four ``bytes.translate`` calls, one per key byte, on
  the interleaved slices ``data[i::4]`` with a 256-byte XOR table;
- bytearray loop: XOR byte by byte in a Python loop (the naive baseline);
- lomond pure: ``lomond.protocol.mask.mask_python``, which picks one of the
  first two by size;
- lomond C: ``lomond._speedups.mask``, the C extension, when it is built
  and ``LOMOND_NO_SPEEDUPS`` is not set;
- websockets C: ``websockets.speedups.apply_mask``, for comparison, when
  websockets and its C extension are installed.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import timeit
from collections.abc import Callable

from lomond.protocol.mask import _TRANSLATE_THRESHOLD, ACCELERATED, mask_python

try:
    from lomond._speedups import mask as mask_c
except ImportError as error:
    mask_c = None
    MASK_C_MISSING = str(error)

try:
    from websockets.speedups import apply_mask as websockets_apply_mask
except ImportError:
    websockets_apply_mask = None

TABLES = [bytes(value ^ key_byte for value in range(256)) for key_byte in range(256)]

SIZES = [32, 1024, 64 * 1024, 1024 * 1024]
CROSSOVER_SIZES = [128, 256, 384, 512, 768, 1024, 1536, 2048, 4096]

# Each measurement runs for about this long, in seconds.
TARGET_SECONDS = 0.05
REPEATS = 9


def mask_big_int(key: bytes, data: bytes) -> bytes:
    size = len(data)
    repeated = (key * (size // 4 + 1))[:size]
    value = int.from_bytes(data, "little") ^ int.from_bytes(repeated, "little")
    return value.to_bytes(size, "little")


def mask_translate(key: bytes, data: bytes) -> bytes:
    # Unrolled, as in lomond: a loop over the lanes costs about 1 us per call.
    out = bytearray(len(data))
    out[0::4] = data[0::4].translate(TABLES[key[0]])
    out[1::4] = data[1::4].translate(TABLES[key[1]])
    out[2::4] = data[2::4].translate(TABLES[key[2]])
    out[3::4] = data[3::4].translate(TABLES[key[3]])
    return bytes(out)


def mask_bytearray_loop(key: bytes, data: bytes) -> bytes:
    out = bytearray(data)
    for index in range(len(out)):
        out[index] ^= key[index & 3]
    return bytes(out)


APPROACHES: dict[str, Callable[[bytes, bytes], bytes]] = {
    "big-int XOR": mask_big_int,
    "translate per lane": mask_translate,
    "bytearray loop": mask_bytearray_loop,
    "lomond pure": mask_python,
}
if mask_c is not None:
    APPROACHES["lomond C"] = mask_c
if websockets_apply_mask is not None:
    APPROACHES["websockets C"] = websockets_apply_mask

# Approaches that take (data, key) instead of (key, data).
DATA_FIRST = {"websockets C"}


def bind(name: str, key: bytes, data: bytes) -> Callable[[], bytes]:
    """Return a zero-argument call of one approach.

    Every approach runs under one lambda and no other wrapper, so that the
    call overhead at small sizes is the same for each.
    """
    function = APPROACHES[name]
    if name in DATA_FIRST:
        return lambda: function(data, key)
    return lambda: function(key, data)


def seconds_per_call(call: Callable[[], bytes]) -> float:
    """Return the best time per call over REPEATS runs of about TARGET_SECONDS each."""
    timer = timeit.Timer(call)
    number = 1
    # Grow the call count until one run takes long enough to time well.
    while number < 1_000_000:
        if timer.timeit(number) >= TARGET_SECONDS / 5:
            break
        number *= 4
    return min(timer.repeat(REPEATS, number)) / number


def format_size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):g} MiB"
    if size >= 1024:
        return f"{size / 1024:g} KiB"
    return f"{size} B"


def check_results(key: bytes) -> None:
    """Stop with an error if any approach gives a wrong mask."""
    data = os.urandom(4099)
    expected = bytes(byte ^ key[index % 4] for index, byte in enumerate(data))
    for name in APPROACHES:
        if bind(name, key, data)() != expected:
            sys.exit(f"{name} gives a wrong result")


def print_table(key: bytes, sizes: list[int], names: list[str]) -> dict[tuple[str, int], float]:
    """Print the time per call and throughput of each approach, and return the times."""
    print(f"{'size':>8} | " + " | ".join(f"{name:>22}" for name in names))
    print("-" * (11 + 25 * len(names)))
    times = {}
    for size in sizes:
        data = os.urandom(size)
        cells = []
        for name in names:
            seconds = seconds_per_call(bind(name, key, data))
            times[name, size] = seconds
            rate = size / seconds / 1e6
            cells.append(f"{seconds * 1e6:9.2f} us {rate:7.0f} MB/s")
        print(f"{format_size(size):>8} | " + " | ".join(f"{cell:>22}" for cell in cells))
    return times


def print_ratios(times: dict[tuple[str, int], float], sizes: list[int]) -> None:
    """Print how many times faster lomond C is than lomond pure and than websockets C."""
    if "lomond C" not in APPROACHES:
        print(f"\nlomond C is not measured: {MASK_C_MISSING}")
        return
    print("\nTimes faster, lomond C against:\n")
    others = [name for name in ("lomond pure", "websockets C") if name in APPROACHES]
    print(f"{'size':>8} | " + " | ".join(f"{name:>14}" for name in others))
    print("-" * (11 + 17 * len(others)))
    for size in sizes:
        cells = [f"{times[name, size] / times['lomond C', size]:13.2f}x" for name in others]
        print(f"{format_size(size):>8} | " + " | ".join(f"{cell:>14}" for cell in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="skip the 1 MiB row, where the bytearray loop takes about 70 ms a call",
    )
    arguments = parser.parse_args()

    key = b"\x37\xfa\x21\x3d"
    check_results(key)
    print(f"Python {platform.python_version()} ({platform.python_implementation()}),"
          f" {platform.machine()}, {platform.processor() or 'unknown processor'}")
    print(f"lomond.protocol.mask.mask is {'lomond C' if ACCELERATED else 'lomond pure'};"
          f" lomond pure switches to translate at {_TRANSLATE_THRESHOLD} bytes\n")

    sizes = SIZES[:-1] if arguments.quick else SIZES
    times = print_table(key, sizes, list(APPROACHES))
    print_ratios(times, sizes)
    print("\nCrossover between the two fast approaches:\n")
    print_table(key, CROSSOVER_SIZES, ["big-int XOR", "translate per lane"])


if __name__ == "__main__":
    main()
