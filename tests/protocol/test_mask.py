"""Masking (RFC 6455 section 5.3) by the pure Python and the C functions.

Every test that takes ``implementation`` runs once for ``mask_python`` and
``mask_into_python`` and once for the C extension ``lomond._speedups``. The
C run is skipped when the extension is not importable: not built, or
disabled by ``LOMOND_NO_SPEEDUPS``. In CI, where a C compiler is expected,
``test_speedups_built_in_ci`` fails instead.
"""

from __future__ import annotations

import array
import os
import random
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lomond.protocol import mask as mask_module
from lomond.protocol.mask import mask_into_python, mask_python

from .helpers import xor_mask

try:
    from lomond import _speedups
except ImportError as error:
    speedups = None
    SPEEDUPS_MISSING = f"lomond._speedups is not importable: {error}"
else:
    speedups = _speedups
    SPEEDUPS_MISSING = ""


@dataclass(frozen=True)
class Implementation:
    mask: Callable[..., bytes]
    mask_into: Callable[..., None]


PYTHON = Implementation(mask_python, mask_into_python)
IMPLEMENTATIONS = [
    pytest.param(PYTHON, id="python"),
    pytest.param(
        Implementation(speedups.mask, speedups.mask_into) if speedups else PYTHON,
        id="c",
        marks=pytest.mark.skipif(speedups is None, reason=SPEEDUPS_MISSING),
    ),
]

# Sizes around the 1 KiB switch to bytes.translate in the pure version and
# the 64 KiB from which frames.py calls mask_into. Each multiple of 8 has a
# neighbour that is not, so the C loop also runs its bytewise tail.
LARGE_SIZES = [
    127,
    1023,
    1024,
    1025,
    4099,
    65535,
    65536,
    65541,
    1024 * 1024,
    1024 * 1024 + 7,
]
MASK_INTO_SIZES = [0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1023, 1024, 1025, 4099]

KEY = b"\x37\xfa\x21\x3d"


@pytest.fixture(params=IMPLEMENTATIONS)
def implementation(request: pytest.FixtureRequest) -> Implementation:
    result: Implementation = request.param
    return result


# --- results against the bytewise reference -------------------------------


@pytest.mark.parametrize("size", range(71))
def test_mask_small_sizes(implementation: Implementation, size: int) -> None:
    rng = random.Random(size)
    for _ in range(5):
        key = rng.randbytes(4)
        data = rng.randbytes(size)
        masked = implementation.mask(key, data)
        assert type(masked) is bytes
        assert masked == xor_mask(key, data)
        # Masking is its own inverse (section 5.3).
        assert implementation.mask(key, masked) == data


@pytest.mark.parametrize("size", LARGE_SIZES)
def test_mask_large_sizes(implementation: Implementation, size: int) -> None:
    rng = random.Random(size)
    key = rng.randbytes(4)
    data = rng.randbytes(size)
    masked = implementation.mask(key, data)
    assert masked == xor_mask(key, data)
    assert implementation.mask(key, masked) == data


def test_mask_key_bytes_00_and_ff(implementation: Implementation) -> None:
    data = bytes(range(256)) * 5
    assert implementation.mask(b"\x00\x00\x00\x00", data) == data
    assert implementation.mask(b"\xff\xff\xff\xff", data) == bytes(255 - byte for byte in data)
    assert implementation.mask(b"\x00\xff\x00\xff", data) == xor_mask(b"\x00\xff\x00\xff", data)


@pytest.mark.parametrize("offset", range(9))
@pytest.mark.parametrize("size", MASK_INTO_SIZES)
def test_mask_into_offsets(implementation: Implementation, offset: int, size: int) -> None:
    rng = random.Random(offset * 10_000 + size)
    key = rng.randbytes(4)
    data = rng.randbytes(size)
    # Bytes before and after the target range must stay as they were.
    out = bytearray(b"\xaa" * (offset + size + 5))
    implementation.mask_into(out, offset, key, data)
    assert out[:offset] == b"\xaa" * offset
    assert out[offset : offset + size] == xor_mask(key, data)
    assert out[offset + size :] == b"\xaa" * 5


@pytest.mark.parametrize("size", [1024 * 1024, 1024 * 1024 + 3])
def test_mask_into_large(implementation: Implementation, size: int) -> None:
    rng = random.Random(size)
    key = rng.randbytes(4)
    data = rng.randbytes(size)
    # 14 is the offset of a 64-bit length header and key in a frame.
    out = bytearray(14 + size)
    implementation.mask_into(out, 14, key, data)
    assert out[:14] == bytes(14)
    assert out[14:] == xor_mask(key, data)


def test_mask_into_fills_to_end(implementation: Implementation) -> None:
    out = bytearray(10)
    implementation.mask_into(out, 3, KEY, b"\x00" * 7)
    assert out == b"\x00" * 3 + (KEY * 2)[:7]


def test_mask_into_empty_data(implementation: Implementation) -> None:
    out = bytearray(b"abc")
    implementation.mask_into(out, 3, KEY, b"")
    implementation.mask_into(out, 0, KEY, b"")
    assert out == b"abc"


# --- argument types ---------------------------------------------------------


def test_mask_bytearray_and_memoryview(implementation: Implementation) -> None:
    for size in (10, 2000):
        data = (bytes(range(256)) * 8)[:size]
        expected = xor_mask(KEY, data)
        assert implementation.mask(KEY, bytearray(data)) == expected
        assert implementation.mask(KEY, memoryview(data)) == expected
        assert implementation.mask(bytearray(KEY), data) == expected
        assert implementation.mask(memoryview(KEY), memoryview(bytearray(data))) == expected


def test_mask_memoryview_slice(implementation: Implementation) -> None:
    # A contiguous slice that starts 3 bytes into its buffer. The key phase
    # follows the index in the slice, not the position in the buffer.
    buffer = bytes(range(256)) * 8
    view = memoryview(buffer)[3:2001]
    assert implementation.mask(KEY, view) == xor_mask(KEY, buffer[3:2001])


def test_mask_other_buffer_format(implementation: Implementation) -> None:
    # An array of 16-bit integers is masked as its raw bytes, whose count
    # is twice len(values).
    values = array.array("H", range(1000))
    expected = xor_mask(KEY, values.tobytes())
    assert implementation.mask(KEY, values) == expected
    assert implementation.mask(KEY, memoryview(values)) == expected


def test_mask_into_memoryview_out(implementation: Implementation) -> None:
    for size in (10, 2000):
        data = (bytes(range(256)) * 8)[:size]
        buffer = bytearray(size + 4)
        implementation.mask_into(memoryview(buffer), 4, memoryview(KEY), bytearray(data))
        assert buffer[:4] == bytes(4)
        assert buffer[4:] == xor_mask(KEY, data)


def test_mask_into_data_view_of_out(implementation: Implementation) -> None:
    # data may be a view of out itself, in place or shifted either way.
    # Each byte must be read before it is overwritten.
    original = bytes(range(256)) * 4
    for source_start, target_start in [(0, 0), (0, 3), (3, 0), (0, 8), (8, 0), (5, 5)]:
        out = bytearray(original)
        size = len(out) - max(source_start, target_start)
        with memoryview(out) as view:
            implementation.mask_into(out, target_start, KEY, view[source_start : source_start + size])
        expected = bytearray(original)
        expected[target_start : target_start + size] = xor_mask(
            KEY, original[source_start : source_start + size]
        )
        assert out == expected, (source_start, target_start)


# --- invalid arguments ------------------------------------------------------


@pytest.mark.parametrize("key", [b"", b"abc", b"abcde", bytearray(8), memoryview(b"ab")])
def test_mask_key_length_invalid(implementation: Implementation, key: bytes) -> None:
    with pytest.raises(ValueError, match=f"expected 4 bytes, got {len(key)}"):
        implementation.mask(key, b"payload")
    with pytest.raises(ValueError, match=f"expected 4 bytes, got {len(key)}"):
        implementation.mask(key, b"x" * 2000)
    out = bytearray(10)
    with pytest.raises(ValueError, match=f"expected 4 bytes, got {len(key)}"):
        implementation.mask_into(out, 0, key, b"payload")
    assert out == bytearray(10)


@pytest.mark.parametrize("value", ["abcd", 4, None, [1, 2, 3, 4]])
def test_mask_not_bytes_like(implementation: Implementation, value: object) -> None:
    # An int is rejected, not read as a size as bytes(4) would.
    with pytest.raises(TypeError):
        implementation.mask(value, b"data")
    with pytest.raises(TypeError):
        implementation.mask(KEY, value)
    with pytest.raises(TypeError):
        implementation.mask_into(bytearray(10), 0, value, b"data")
    with pytest.raises(TypeError):
        implementation.mask_into(bytearray(10), 0, KEY, value)


def test_mask_strided_memoryview(implementation: Implementation) -> None:
    strided = memoryview(bytes(range(100)))[::2]
    with pytest.raises(BufferError):
        implementation.mask(KEY, strided)
    with pytest.raises(BufferError):
        implementation.mask(memoryview(bytes(8))[::2], b"data")
    with pytest.raises(BufferError):
        implementation.mask_into(bytearray(100), 0, KEY, strided)
    with pytest.raises(BufferError):
        implementation.mask_into(memoryview(bytearray(100))[::2], 0, KEY, b"data")


@pytest.mark.parametrize("out", [b"\x00" * 10, memoryview(b"\x00" * 10), "0123456789"])
def test_mask_into_out_not_writable(implementation: Implementation, out: object) -> None:
    with pytest.raises(TypeError):
        implementation.mask_into(out, 0, KEY, b"data")


def test_mask_into_read_only_message(implementation: Implementation) -> None:
    with pytest.raises(TypeError, match="writable out buffer such as a bytearray, not bytes"):
        implementation.mask_into(b"\x00" * 10, 0, KEY, b"data")


@pytest.mark.parametrize(
    "offset, size",
    [(-1, 4), (0, 11), (7, 4), (10, 1), (11, 0), (-(2**70), 1), (2**70, 1), (2**62, 1)],
)
def test_mask_into_out_too_small(implementation: Implementation, offset: int, size: int) -> None:
    out = bytearray(b"\xaa" * 10)
    with pytest.raises(ValueError, match="bytes of data do not fit in an out buffer of 10 bytes"):
        implementation.mask_into(out, offset, KEY, bytes(size))
    # Nothing is written when the arguments are rejected.
    assert out == b"\xaa" * 10


def test_mask_into_offset_message(implementation: Implementation) -> None:
    with pytest.raises(ValueError, match="invalid offset 7: 4 bytes of data do not fit"):
        implementation.mask_into(bytearray(10), 7, KEY, b"data")


@pytest.mark.parametrize("offset", [1.0, "1", None])
def test_mask_into_offset_not_integer(implementation: Implementation, offset: object) -> None:
    with pytest.raises(TypeError):
        implementation.mask_into(bytearray(10), offset, KEY, b"data")


def test_mask_into_offset_index(implementation: Implementation) -> None:
    # Any object with __index__ is accepted, as in slicing.
    class Three:
        def __index__(self) -> int:
            return 3

    out = bytearray(7)
    implementation.mask_into(out, Three(), KEY, b"\x00" * 4)
    assert out == b"\x00" * 3 + KEY


def test_mask_positional_only(implementation: Implementation) -> None:
    with pytest.raises(TypeError):
        implementation.mask(key=KEY, data=b"data")
    with pytest.raises(TypeError):
        implementation.mask(KEY)
    with pytest.raises(TypeError):
        implementation.mask(KEY, b"data", b"extra")
    with pytest.raises(TypeError):
        implementation.mask_into(bytearray(4), 0, KEY)
    with pytest.raises(TypeError):
        implementation.mask_into(bytearray(4), 0, KEY, data=b"data")


# --- property ---------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    key=st.binary(min_size=4, max_size=4),
    data=st.binary(max_size=300),
    offset=st.integers(min_value=0, max_value=9),
    spare=st.integers(min_value=0, max_value=9),
)
def test_mask_matches_reference_property(
    key: bytes, data: bytes, offset: int, spare: int
) -> None:
    # Hypothesis and function-scoped fixtures do not mix, so this test
    # loops over the implementations itself.
    implementations = [PYTHON]
    if speedups is not None:
        implementations.append(Implementation(speedups.mask, speedups.mask_into))
    expected = xor_mask(key, data)
    for implementation in implementations:
        assert implementation.mask(key, data) == expected
        out = bytearray(b"\x5a" * (offset + len(data) + spare))
        implementation.mask_into(out, offset, key, data)
        assert out[:offset] == b"\x5a" * offset
        assert out[offset : offset + len(data)] == expected
        assert out[offset + len(data) :] == b"\x5a" * spare


# --- which implementation is used -------------------------------------------


def test_active_implementation() -> None:
    if speedups is None:
        assert mask_module.ACCELERATED is False
        assert mask_module.mask is mask_python
        assert mask_module.mask_into is mask_into_python
    else:
        assert mask_module.ACCELERATED is True
        assert mask_module.mask is speedups.mask
        assert mask_module.mask_into is speedups.mask_into


def test_speedups_built_in_ci() -> None:
    # CI is expected to have a C compiler, so a missing extension there means
    # that the build or the import is broken and lomond silently runs the
    # slow path.
    if not os.environ.get("CI"):
        pytest.skip("checked only in CI (the CI environment variable is not set)")
    if os.environ.get("LOMOND_NO_SPEEDUPS"):
        pytest.skip("LOMOND_NO_SPEEDUPS is set, so the pure Python path is under test")
    assert speedups is not None, (
        f"{SPEEDUPS_MISSING}. Install lomond with a C compiler"
        " (pip install -e .) so that setup.py builds lomond/_speedups.c."
    )
    assert mask_module.ACCELERATED is True


def run_with_no_speedups(value: str) -> str:
    """Return ACCELERATED, as printed by a fresh interpreter with LOMOND_NO_SPEEDUPS=value."""
    environment = dict(os.environ, LOMOND_NO_SPEEDUPS=value)
    completed = subprocess.run(
        [sys.executable, "-c", "import lomond.protocol.mask as m; print(m.ACCELERATED)"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed.stdout.strip()


def test_no_speedups_variable_selects_python() -> None:
    assert run_with_no_speedups("1") == "False"


@pytest.mark.skipif(speedups is None, reason=SPEEDUPS_MISSING)
def test_no_speedups_empty_keeps_c() -> None:
    # Only a non-empty value disables the extension.
    assert run_with_no_speedups("") == "True"
