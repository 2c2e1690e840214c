"""Happy Eyeballs (RFC 8305): address order, staggered attempts, and one deadline for all of them."""

from __future__ import annotations

import os
import socket
import time

import pytest

from lomond import WebSocket
from lomond.net import CONNECTION_ATTEMPT_DELAY, interleave_addresses, race_connections
from lomond.testing import TIME_UNIT

from .conftest import first, names, needs_ipv6, run

V4, V6 = socket.AF_INET, socket.AF_INET6


def candidate(host, port):
    family = V6 if ":" in host else V4
    return (family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (host, port))


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def closed_port():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        return unused.getsockname()[1]


@pytest.fixture
def listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield server
    server.close()


# --- address order -------------------------------------------------------------------


def info(family, name):
    return (family, socket.SOCK_STREAM, 6, "", (name, 80))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (["6a", "6b", "4a", "4b"], ["6a", "4a", "6b", "4b"]),
        (["4a", "6a", "6b", "6c"], ["4a", "6a", "6b", "6c"]),
        (["6a", "6b"], ["6a", "6b"]),
        (["4a", "4b", "4c", "6a"], ["4a", "6a", "4b", "4c"]),
        ([], []),
    ],
)
def test_interleave_addresses(given, expected):
    infos = [info(V6 if name[0] == "6" else V4, name) for name in given]
    assert [entry[4][0] for entry in interleave_addresses(infos)] == expected


# --- racing attempts --------------------------------------------------------------------


def test_hanging_first_address_costs_one_delay(black_hole_factory, listener):
    hole = black_hole_factory()
    port = listener.getsockname()[1]
    started = time.monotonic()
    sock, errors = race_connections(
        [candidate("127.0.0.1", hole.port), candidate("127.0.0.1", port)],
        time.monotonic() + 10 * TIME_UNIT,
    )
    elapsed = time.monotonic() - started
    try:
        assert sock is not None
        assert sock.getpeername()[1] == port
        assert errors == []
        assert CONNECTION_ATTEMPT_DELAY * 0.8 <= elapsed < 5 * CONNECTION_ATTEMPT_DELAY * TIME_UNIT
    finally:
        sock.close()


def test_failed_first_address_starts_next_at_once(listener):
    port = listener.getsockname()[1]
    refused_port = closed_port()
    started = time.monotonic()
    sock, errors = race_connections(
        [candidate("127.0.0.1", refused_port), candidate("127.0.0.1", port)],
        time.monotonic() + 10 * TIME_UNIT,
    )
    elapsed = time.monotonic() - started
    try:
        assert sock.getpeername()[1] == port
        assert [address for address, _ in errors] == [("127.0.0.1", refused_port)]
        assert elapsed < CONNECTION_ATTEMPT_DELAY
    finally:
        sock.close()


def test_every_address_refused():
    ports = [closed_port(), closed_port()]
    sock, errors = race_connections(
        [candidate("127.0.0.1", port) for port in ports], time.monotonic() + 5 * TIME_UNIT
    )
    assert sock is None
    assert sorted(address[1] for address, _ in errors) == sorted(ports)


def test_deadline_covers_every_attempt(black_hole_factory):
    holes = [black_hole_factory(), black_hole_factory(), black_hole_factory()]
    timeout = 0.6 * TIME_UNIT
    started = time.monotonic()
    sock, _ = race_connections(
        [candidate("127.0.0.1", hole.port) for hole in holes], time.monotonic() + timeout
    )
    elapsed = time.monotonic() - started
    assert sock is None
    assert timeout * 0.9 <= elapsed < timeout * 2


def test_losing_attempts_closed(black_hole_factory, listener):
    hole = black_hole_factory()
    port = listener.getsockname()[1]
    before = open_fds()
    sock, _ = race_connections(
        [candidate("127.0.0.1", hole.port), candidate("127.0.0.1", hole.port), candidate("127.0.0.1", port)],
        time.monotonic() + 10 * TIME_UNIT,
    )
    assert sock is not None
    sock.close()
    assert open_fds() == before


@needs_ipv6
def test_ipv6_and_ipv4_raced(black_hole_factory, listener):
    hole = black_hole_factory(host="::1")
    port = listener.getsockname()[1]
    candidates = interleave_addresses(
        [candidate("::1", hole.port), candidate("::1", hole.port), candidate("127.0.0.1", port)]
    )
    assert [entry[0] for entry in candidates] == [V6, V4, V6]
    sock, _ = race_connections(candidates, time.monotonic() + 10 * TIME_UNIT)
    try:
        assert sock.family == V4
    finally:
        sock.close()


# --- through the WebSocket ----------------------------------------------------------------


def test_connect_timeout_whole_attempt(black_hole_factory):
    hole = black_hole_factory()
    timeout = 0.4 * TIME_UNIT
    started = time.monotonic()
    seen = run(WebSocket(f"ws://127.0.0.1:{hole.port}/", connect_timeout=timeout))
    elapsed = time.monotonic() - started
    assert names(seen) == ["connecting", "connect_fail", "disconnected"]
    assert f"timed out after {timeout:g}s" in first(seen, "connect_fail").reason
    assert elapsed < timeout * 3


def test_connect_refused_message():
    port = closed_port()
    seen = run(WebSocket(f"ws://127.0.0.1:{port}/"))
    reason = first(seen, "connect_fail").reason
    assert f"connection to 127.0.0.1:{port} failed" in reason
    assert "refused" in reason.lower()

