"""TCP faults of the test server (Toxiproxy's vocabulary), checked with a raw socket."""

from __future__ import annotations

import time

import pytest
from kit_raw import RawClient
from lomond.testing import steps
from lomond.testing.frames import OP_TEXT
from lomond.testing.waits import scaled


def test_drop_sends_fin(lomond_server_factory):
    server = lomond_server_factory([steps.accept(), steps.send_text("x"), steps.drop()])
    with RawClient(server.port) as client:
        client.handshake()
        assert client.recv_all() == b"\x81\x01x"


def test_drop_before_answer(lomond_server_factory):
    server = lomond_server_factory([steps.drop()])
    with RawClient(server.port) as client:
        client.send_request()
        assert client.recv_all() == b""


def test_drop_mid_frame(lomond_server_factory):
    server = lomond_server_factory([steps.accept(), steps.drop_mid_frame("hello", after=4)])
    with RawClient(server.port) as client:
        client.handshake()
        assert client.recv_all() == b"\x81\x05he"


def test_reset_sends_rst(lomond_server_factory):
    server = lomond_server_factory([steps.accept(), steps.reset()])
    with RawClient(server.port) as client:
        client.handshake()
        with pytest.raises(ConnectionResetError):
            client.recv_all()


def test_stall_stops_reading_and_writing(lomond_server_factory):
    server = lomond_server_factory([steps.accept(), steps.stall(scaled(0.4)), steps.echo()])
    with RawClient(server.port) as client:
        client.handshake()
        started = time.monotonic()
        client.send_frame(OP_TEXT, b"late")
        frame = client.recv_frame()
    assert frame.payload == b"late"
    assert time.monotonic() - started >= scaled(0.3)


def test_stall_forever_until_stop(lomond_server_factory):
    server = lomond_server_factory([steps.accept(), steps.stall()])
    with RawClient(server.port) as client:
        client.handshake()
        client.send_frame(OP_TEXT, b"ignored")
        assert not client.is_closed_by_peer(timeout=scaled(0.2))
        transcript = server.next_connection()
        assert transcript.messages == []
        server.stop()
        assert client.is_closed_by_peer()
    assert server.leaks() == []


def test_slicer_chops_writes(lomond_server_factory):
    server = lomond_server_factory([steps.accept(), steps.slicer(2, scaled(0.1)), steps.send_text("abcdef"), steps.drop()])
    with RawClient(server.port) as client:
        client.handshake()
        started = time.monotonic()
        segments = client.recv_segments()
    assert b"".join(segments) == b"\x81\x06abcdef"
    # Four 2-byte segments, 0.1 units apart. A busy machine may merge two
    # in one recv(), so the count is a lower bound.
    assert len(segments) >= 3
    assert time.monotonic() - started >= scaled(0.3)


def test_latency_delays_each_write(lomond_server_factory):
    server = lomond_server_factory([steps.accept(), steps.latency(scaled(0.2)), steps.send_text("a"), steps.send_text("b"), steps.drop()])
    with RawClient(server.port) as client:
        client.handshake()
        started = time.monotonic()
        data = client.recv_all()
    assert data == b"\x81\x01a\x81\x01b"
    assert time.monotonic() - started >= scaled(0.4)


def test_bandwidth_limits_rate(lomond_server_factory):
    server = lomond_server_factory([steps.accept(), steps.bandwidth(10000), steps.send_binary(b"x" * 3000), steps.drop()])
    with RawClient(server.port) as client:
        client.handshake()
        started = time.monotonic()
        data = client.recv_all()
    assert len(data) == 4 + 3000
    assert time.monotonic() - started >= 0.25


def test_limit_data_cuts_after_n_bytes(lomond_server_factory):
    server = lomond_server_factory([steps.accept(), steps.limit_data(5), steps.send_text("abcdefgh"), steps.send_text("never")])
    with RawClient(server.port) as client:
        client.handshake()
        assert client.recv_all() == b"\x81\x08abc"
    assert server.next_connection().wait_closed().bytes_out > 5


def test_slow_close_delays_tcp_close(lomond_server_factory):
    server = lomond_server_factory([steps.accept(), steps.slow_close(scaled(0.3)), steps.close(1000)])
    with RawClient(server.port) as client:
        client.handshake()
        client.recv_frame()
        client.send_close(1000)
        started = time.monotonic()
        assert client.is_closed_by_peer()
    assert time.monotonic() - started >= scaled(0.25)


def test_bytes_counted(lomond_server):
    with RawClient(lomond_server.port) as client:
        client.handshake()
        client.send_frame(OP_TEXT, b"12345")
        client.recv_frame()
        client.send_close(1000)
        client.recv_all()
    transcript = lomond_server.next_connection().wait_closed()
    request_size = len(transcript.request.raw) + 4
    assert transcript.bytes_in == request_size + 11 + 8
    assert transcript.bytes_out > 7 + 4
