"""The kit's frame builder and parser (RFC 6455 section 5.2)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lomond.testing import steps
from lomond.testing.frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_TEXT,
    FrameParser,
    build_close_payload,
    build_frame,
    is_valid_close_code,
    mask_payload,
)

frame_options = st.fixed_dictionaries(
    {
        "opcode": st.integers(0, 15),
        "payload": st.binary(max_size=300),
        "fin": st.booleans(),
        "rsv1": st.booleans(),
        "rsv2": st.booleans(),
        "rsv3": st.booleans(),
        "mask": st.one_of(st.just(False), st.binary(min_size=4, max_size=4)),
        "length_form": st.sampled_from([None, "16", "64"]),
    }
)


@given(st.lists(frame_options, min_size=1, max_size=5), st.data())
def test_parser_reads_built_frames_in_any_chunks(frames, data):
    stream = b"".join(build_frame(**options) for options in frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    parser = FrameParser()
    parsed = []
    start = 0
    for cut in [*cuts, len(stream)]:
        parsed += parser.feed(stream[start:cut])
        start = cut
    assert len(parsed) == len(frames)
    for options, frame in zip(frames, parsed):
        assert frame.opcode == options["opcode"]
        assert frame.payload == options["payload"]
        assert frame.fin == options["fin"]
        assert (frame.rsv1, frame.rsv2, frame.rsv3) == (options["rsv1"], options["rsv2"], options["rsv3"])
        assert frame.masked == (options["mask"] is not False)


def test_mask_payload_is_its_own_inverse():
    key = b"\x01\x02\x03\x04"
    assert mask_payload(mask_payload(b"hello world", key), key) == b"hello world"
    assert mask_payload(b"", key) == b""


def test_parser_rejects_frame_over_limit():
    parser = FrameParser(max_frame=10)
    with pytest.raises(ValueError, match="over the 10 byte limit"):
        parser.feed(build_frame(OP_BINARY, b"x" * 11))


def test_close_payload_forms():
    assert build_close_payload(1000, "ok") == b"\x03\xe8ok"
    assert build_close_payload(5000, b"\xff") == b"\x13\x88\xff"
    assert build_close_payload(None) == b""
    assert build_frame(OP_CLOSE, build_close_payload(1001)) == b"\x88\x02\x03\xe9"


@pytest.mark.parametrize("code", [1000, 1003, 1007, 1014, 3000, 4999])
def test_valid_close_codes(code):
    assert is_valid_close_code(code)


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 2999, 5000])
def test_invalid_close_codes(code):
    assert not is_valid_close_code(code)


def test_explicit_length_overrides_payload():
    assert build_frame(OP_TEXT, b"ab", length=5) == b"\x81\x05ab"


@pytest.mark.parametrize(
    "make_step, message",
    [
        (lambda: steps.slicer(0), "at least 1 byte"),
        (lambda: steps.bandwidth(0), "must be positive"),
        (lambda: steps.redirect("/x", 200), "not 200"),
        (lambda: steps.send_fragmented(b"x", 0), None),
    ],
)
def test_step_arguments_checked(make_step, message):
    if message is None:
        # A bad frame size is found when the step runs, on the data it splits.
        assert repr(make_step()).startswith("send_fragmented(")
        return
    with pytest.raises(ValueError, match=message):
        make_step()


def test_step_repr_names_arguments():
    assert repr(steps.close(1000, "bye")) == "close(1000, 'bye', wait=True, timeout=None)"
