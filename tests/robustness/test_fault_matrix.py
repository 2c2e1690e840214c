"""The fault matrix: every fault of the test kit, in every state where it can happen.

Each row of :data:`MATRIX` is one specification: in connection state
``state``, when the server (or the network) does ``fault``, the client's
event stream

1. ends with exactly one Disconnected, whose reason matches ``reason``;
2. has ``failure`` as the event that reports it (ConnectFail, Rejected,
   ProtocolError, Unresponsive), or none when the Disconnected is the report;
3. raises no exception out of the iterator;
4. ends within ``budget`` time units, which is the configured timeout that
   the fault must trigger plus one unit, or one unit when no timeout is
   involved;
5. leaves no file descriptor or greenlet behind, on the client or the
   server.

The states, in the order a connection goes through them:

- ``connect``: TCP and TLS, before the upgrade request is sent;
- ``handshake``: the request is sent and the 101 response is awaited;
- ``open``: after Ready;
- ``fragment``: in the middle of a fragmented text message;
- ``closing``: the client called close() and awaits the server's close frame;
- ``backoff``: persist() waits to reconnect after a failed connection.

Timeouts are scaled by ``LOMOND_TEST_TIMEOUT_SCALE`` through
:func:`lomond.testing.scaled`.
"""

from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import gevent
import pytest

from lomond import WebSocket, events
from lomond.errors import TransportFail
from lomond.persist import persist
from lomond.testing import ConnectProxy, Server, scaled, steps
from lomond.testing.frames import OP_BINARY, OP_CONTINUATION, OP_PING, OP_TEXT

from .leaks import take_snapshot, wait_for_no_leaks

# Client settings of every row, in time units.
CONNECT_TIMEOUT = 1.0
HANDSHAKE_TIMEOUT = 1.0
CLOSE_TIMEOUT = 1.0
PING_RATE = 0.2
PING_TIMEOUT = 1.0
MAX_MESSAGE_SIZE = 1024
# More than loopback's socket buffers hold, so that a send to a server that
# does not read cannot complete.
LARGE_SEND = 32 * 1024 * 1024

# The time units a fault that involves no timeout may take.
QUICK = 1.0


@dataclass
class Row:
    """One fault in one state, and what the client must report."""

    state: str
    fault: str
    steps: list[Any] = field(default_factory=list)
    failure: str | None = None
    reason: str = ""
    budget: float = QUICK
    # How to reach the server: "kit" (ws://), "tls" (wss:// with a trusted
    # CA), "closed-port", "tls-untrusted", "tls-stall", or "proxy-..." (an
    # HTTP CONNECT proxy that fails as named).
    target: str = "kit"
    # Shaping rows (slow or sliced TCP) end with a clean close, not a fault.
    graceful: bool = False
    # Bytes the client sends from its loop body on Ready (0: none).
    client_sends: int = 0

    @property
    def id(self) -> str:
        return f"{self.state}-{self.fault}"


# Prefixes that bring a connection into each state before the fault.
FRAGMENT = [steps.accept(), steps.send_frame(OP_TEXT, b"first half, ", fin=False)]
# The client calls close() on Ready. The server reads its close frame
# without replying, then does the fault.
CLOSING = [steps.accept(), steps.ignore_close(), steps.expect_close()]

TIMED_OUT = r"timed out"
NO_CLOSE_FRAME = r"closed the connection without a close frame"
RESET = r"reset|Connection reset"

MATRIX = [
    # --- connect: TCP and TLS -------------------------------------------------
    Row("connect", "refused", target="closed-port", failure="connect_fail", reason=r"refused"),
    Row("connect", "tls-untrusted-certificate", target="tls-untrusted", failure="connect_fail",
        reason=r"certificate"),
    Row("connect", "tls-no-answer", target="tls-stall", failure="connect_fail", reason=TIMED_OUT,
        budget=CONNECT_TIMEOUT + QUICK),
    Row("connect", "proxy-407", target="proxy-407", failure="connect_fail", reason=r"\b407\b"),
    Row("connect", "proxy-403", target="proxy-403", failure="connect_fail", reason=r"\b403\b"),
    Row("connect", "proxy-garbage", target="proxy-garbage", failure="connect_fail", reason=r"proxy"),
    Row("connect", "proxy-no-answer", target="proxy-stall", failure="connect_fail", reason=r"proxy .*did not respond",
        budget=CONNECT_TIMEOUT + QUICK),

    # --- handshake: the response to the upgrade request ------------------------
    Row("handshake", "never-answer", [steps.never_answer()], "connect_fail", TIMED_OUT,
        budget=HANDSHAKE_TIMEOUT + QUICK),
    Row("handshake", "half-answer-then-stall",
        [steps.send_raw(b"HTTP/1.1 101 Switching Protocols\r\nUpg"), steps.never_answer()],
        "connect_fail", TIMED_OUT, budget=HANDSHAKE_TIMEOUT + QUICK),
    Row("handshake", "drop", [steps.drop()], "connect_fail", r"closed the connection during the handshake"),
    Row("handshake", "drop-mid-answer", [steps.send_raw(b"HTTP/1.1 101 Switching"), steps.drop()],
        "connect_fail", r"closed the connection during the handshake"),
    Row("handshake", "reset", [steps.reset()], "connect_fail", RESET),
    Row("handshake", "garbage", [steps.send_garbage()], "rejected", r"not .*HTTP"),
    Row("handshake", "reject-503", [steps.reject(503, headers=[("Retry-After", "1")])], "rejected",
        r"\b503\b"),
    Row("handshake", "reject-401", [steps.reject(401)], "rejected", r"\b401\b"),
    Row("handshake", "redirect-loop", [steps.redirect("/elsewhere")], "rejected", r"redirect"),
    Row("handshake", "wrong-accept-key", [steps.accept_wrong_key()], "rejected", r"Sec-WebSocket-Accept"),
    Row("handshake", "missing-accept-key", [steps.accept_missing_key()], "rejected",
        r"missing Sec-WebSocket-Accept"),
    Row("handshake", "wrong-upgrade", [steps.accept_wrong_upgrade()], "rejected", r"Upgrade header"),
    Row("handshake", "unoffered-subprotocol", [steps.accept_unoffered_subprotocol()], "rejected",
        r"subprotocol"),
    Row("handshake", "unoffered-extension", [steps.accept_raw(extensions="x-unknown")], "rejected",
        r"extension 'x-unknown'"),
    Row("handshake", "limit-data", [steps.limit_data(20), steps.accept()], "connect_fail",
        r"closed the connection during the handshake"),
    Row("handshake", "tls-never-answer", [steps.never_answer()], "connect_fail", TIMED_OUT,
        budget=HANDSHAKE_TIMEOUT + QUICK, target="tls"),
    Row("handshake", "slicer", [steps.slicer(1), steps.accept(), steps.close(1000)], None, r"^closed$",
        graceful=True),

    # --- open: after Ready ------------------------------------------------------
    Row("open", "drop", [steps.accept(), steps.drop()], None, NO_CLOSE_FRAME),
    Row("open", "drop-mid-frame", [steps.accept(), steps.drop_mid_frame()], None, NO_CLOSE_FRAME),
    Row("open", "reset", [steps.accept(), steps.reset()], None, RESET),
    Row("open", "stall", [steps.accept(), steps.stall()], "unresponsive", r"no pong",
        budget=PING_RATE + PING_TIMEOUT + QUICK),
    Row("open", "no-pong", [steps.accept(), steps.no_pong(), steps.hold()], "unresponsive", r"no pong",
        budget=PING_RATE + PING_TIMEOUT + QUICK),
    # The send fills the socket buffers and blocks; the ping timeout also
    # bounds a send that makes no progress.
    Row("open", "stall-while-sending", [steps.accept(), steps.stall()], None, r"send .*timed out",
        budget=PING_TIMEOUT + QUICK, client_sends=LARGE_SEND),
    Row("open", "invalid-utf8", [steps.accept(), steps.invalid_utf8()], "protocol_error", r"not valid UTF-8"),
    Row("open", "reserved-bits", [steps.accept(), steps.reserved_bits()], "protocol_error", r"reserved bit"),
    Row("open", "rsv1-without-extension", [steps.accept(), steps.reserved_bits(rsv1=True, rsv2=False)],
        "protocol_error", r"RSV1"),
    Row("open", "reserved-opcode", [steps.accept(), steps.reserved_opcode()], "protocol_error",
        r"reserved opcode"),
    Row("open", "reserved-control-opcode", [steps.accept(), steps.reserved_opcode(0xB)], "protocol_error",
        r"reserved opcode"),
    Row("open", "masked-frame", [steps.accept(), steps.masked_frame()], "protocol_error", r"masked"),
    Row("open", "long-control-frame", [steps.accept(), steps.long_control_frame()], "protocol_error",
        r"control frame of 126 bytes"),
    Row("open", "fragmented-control-frame", [steps.accept(), steps.fragmented_control_frame()],
        "protocol_error", r"fragmented control frame"),
    Row("open", "orphan-continuation", [steps.accept(), steps.orphan_continuation()], "protocol_error",
        r"continuation frame without a message"),
    Row("open", "huge-length", [steps.accept(), steps.huge_length()], "protocol_error",
        r"most significant bit"),
    Row("open", "message-too-large", [steps.accept(), steps.send_large(MAX_MESSAGE_SIZE + 1)],
        "protocol_error", r"larger than max_message_size"),
    Row("open", "close-code-1005", [steps.accept(), steps.close(1005)], "protocol_error",
        r"invalid close code 1005"),
    Row("open", "close-code-999", [steps.accept(), steps.close(999)], "protocol_error",
        r"invalid close code 999"),
    Row("open", "close-one-byte", [steps.accept(), steps.close_one_byte_payload()], "protocol_error",
        r"close frame payload is 1 byte"),
    Row("open", "close-invalid-reason", [steps.accept(), steps.close_invalid_reason()], "protocol_error",
        r"close reason is not valid UTF-8"),
    Row("open", "limit-data", [steps.accept(), steps.limit_data(3), steps.send_text("cut short")], None,
        NO_CLOSE_FRAME),
    Row("open", "tls-drop", [steps.accept(), steps.drop()], None, NO_CLOSE_FRAME, target="tls"),
    # Over TLS a reset can surface as an end of stream, because the ssl
    # module reports a TCP close without TLS close_notify as EOF.
    Row("open", "tls-reset", [steps.accept(), steps.reset()], None, RESET + "|" + NO_CLOSE_FRAME,
        target="tls"),
    Row("open", "tls-invalid-frame", [steps.accept(), steps.reserved_opcode()], "protocol_error",
        r"reserved opcode", target="tls"),
    Row("open", "slicer", [steps.accept(), steps.slicer(1), steps.send_text("sliced"), steps.close(1000)],
        None, r"^closed$", graceful=True),
    Row("open", "long-length-form", [steps.accept(), steps.long_length_form(), steps.close(1000)], None,
        r"^closed$", graceful=True),

    # --- fragment: between the frames of one message ------------------------------
    Row("fragment", "drop", FRAGMENT + [steps.drop()], None, NO_CLOSE_FRAME),
    Row("fragment", "drop-mid-frame",
        FRAGMENT + [steps.send_raw(b"\x80\x10half"), steps.drop()], None, NO_CLOSE_FRAME),
    Row("fragment", "reset", FRAGMENT + [steps.reset()], None, RESET),
    Row("fragment", "stall", FRAGMENT + [steps.stall()], "unresponsive", r"no pong",
        budget=PING_RATE + PING_TIMEOUT + QUICK),
    Row("fragment", "new-message", FRAGMENT + [steps.send_frame(OP_BINARY, b"new")], "protocol_error",
        r"new data frame before the fragmented message ended"),
    Row("fragment", "invalid-utf8", FRAGMENT + [steps.send_frame(OP_CONTINUATION, b"\xc3\x28")],
        "protocol_error", r"not valid UTF-8"),
    Row("fragment", "rsv1-on-continuation", FRAGMENT + [steps.send_frame(OP_CONTINUATION, b"x", rsv1=True)],
        "protocol_error", r"RSV1"),
    Row("fragment", "fragmented-control-frame", FRAGMENT + [steps.send_frame(OP_PING, b"p", fin=False)],
        "protocol_error", r"fragmented control frame"),
    Row("fragment", "message-too-large",
        FRAGMENT + [steps.send_frame(OP_CONTINUATION, b"x" * MAX_MESSAGE_SIZE)], "protocol_error",
        r"larger than max_message_size"),
    Row("fragment", "close-code-1005", FRAGMENT + [steps.close(1005)], "protocol_error",
        r"invalid close code 1005"),

    # --- closing: the client sent its close frame --------------------------------
    Row("closing", "no-answer", CLOSING + [steps.never_answer()], None, r"close timed out",
        budget=CLOSE_TIMEOUT + QUICK),
    Row("closing", "stall", CLOSING + [steps.stall()], None, r"close timed out",
        budget=CLOSE_TIMEOUT + QUICK),
    Row("closing", "drop", CLOSING + [steps.drop()], None, NO_CLOSE_FRAME),
    Row("closing", "reset", CLOSING + [steps.reset()], None, RESET),
    Row("closing", "close-code-1005", CLOSING + [steps.close(1005)], "protocol_error",
        r"invalid close code 1005"),
    Row("closing", "close-invalid-reason", CLOSING + [steps.close_invalid_reason()], "protocol_error",
        r"close reason is not valid UTF-8"),
    Row("closing", "reserved-opcode", CLOSING + [steps.reserved_opcode(), steps.never_answer()],
        "protocol_error", r"reserved opcode"),
    Row("closing", "masked-frame", CLOSING + [steps.masked_frame(), steps.never_answer()],
        "protocol_error", r"masked"),
    # The server replies to the close frame but keeps TCP open. The client
    # waits for the FIN at most its close timeout (and at most 2 s), then
    # closes TCP itself.
    Row("closing", "slow-tcp-close", CLOSING + [steps.slow_close(scaled(10)), steps.close(1000)], None,
        r"^closed$", budget=CLOSE_TIMEOUT + QUICK, graceful=True),

    # --- backoff: persist() between two connections --------------------------------
    # The first connection fails with the fault. During the back-off that
    # follows, the test sets persist's exit event. For "server-gone" it
    # stops the server first, so that the second attempt is refused.
    Row("backoff", "exit-after-reject", [steps.reject(503)], "rejected", r"\b503\b"),
    Row("backoff", "exit-after-drop", [steps.accept(), steps.drop()], None, NO_CLOSE_FRAME),
    Row("backoff", "exit-after-timeout", [steps.never_answer()], "connect_fail", TIMED_OUT,
        budget=HANDSHAKE_TIMEOUT + QUICK),
    Row("backoff", "server-gone", [steps.accept(), steps.drop()], None, NO_CLOSE_FRAME),
]


# --- running one row ----------------------------------------------------------


def closed_port_url() -> str:
    """Return a ws:// URL of a loopback port that nothing listens on."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return f"ws://127.0.0.1:{port}/"


def start_proxy(target: str) -> ConnectProxy | None:
    """Start the failing proxy that a "proxy-..." target names, or return None."""
    options: dict[str, Any] = {
        "proxy-407": {"status": 407},
        "proxy-403": {"status": 403},
        "proxy-garbage": {"answer": b"SSH-2.0-OpenSSH_9.6\r\n"},
        "proxy-stall": {"delay": scaled(CONNECT_TIMEOUT) * 5},
    }.get(target, None)
    if options is None:
        return None
    return ConnectProxy(**options).start()


def new_websocket(url: str, ssl_context: Any = None, proxies: dict[str, str] | None = None) -> WebSocket:
    return WebSocket(
        url,
        proxies=proxies or {},
        ssl_context=ssl_context,
        connect_timeout=scaled(CONNECT_TIMEOUT),
        handshake_timeout=scaled(HANDSHAKE_TIMEOUT),
        max_message_size=MAX_MESSAGE_SIZE,
    )


def connect_options(row: Row) -> dict[str, Any]:
    """Return the connect() options of a row: pings only where a stall must be noticed."""
    pings = row.failure == "unresponsive" or row.client_sends > 0
    return {
        "poll": 0,
        "ping_rate": scaled(PING_RATE) if pings else 0,
        "ping_timeout": scaled(PING_TIMEOUT) if pings else None,
        "close_timeout": scaled(CLOSE_TIMEOUT),
    }


def run_session(websocket: WebSocket, row: Row) -> list[events.Event]:
    """Iterate one connection, closing it on Ready in the closing state."""
    received = []
    for event in websocket.connect(**connect_options(row)):
        received.append(event)
        if event.name == "ready" and row.state == "closing":
            websocket.close()
        if event.name == "ready" and row.client_sends:
            with pytest.raises(TransportFail):
                websocket.send_binary(bytes(row.client_sends))
    return received


def run_persist(websocket: WebSocket, row: Row, server: Server) -> list[events.Event]:
    """Run persist() until the first back-off, end it there, and return every event."""
    exit_event = gevent.event.Event()
    received = []
    back_offs = 0
    # Long enough that an exit which did not end the wait would blow the budget.
    wait = scaled(QUICK) * 4
    for event in persist(websocket, min_wait=wait, max_wait=wait, exit_event=exit_event,
                         **connect_options(row)):
        received.append(event)
        if event.name != "back_off":
            continue
        back_offs += 1
        if row.fault == "server-gone" and back_offs == 1:
            # The server goes away during the first back-off, so that the
            # second attempt is refused; the exit comes in the second one.
            server.stop()
        else:
            gevent.spawn_later(scaled(0.1), exit_event.set)
    return received


def check_stream(received: list[events.Event], row: Row) -> None:
    """Check one connection's events (Connecting to Disconnected)."""
    names = [event.name for event in received]
    assert names[0] == "connecting", names
    assert names.count("disconnected") == 1, names
    assert names[-1] == "disconnected", names
    disconnected = received[-1]
    assert re.search(row.reason, disconnected.reason), (
        f"Disconnected reason {disconnected.reason!r} does not match {row.reason!r}"
    )
    failures = [name for name in names if name in ("connect_fail", "rejected", "protocol_error", "unresponsive")]
    expected = [row.failure] if row.failure else []
    assert failures == expected, names
    assert disconnected.graceful == row.graceful, disconnected


def split_sessions(received: list[events.Event]) -> list[list[events.Event]]:
    """Split persist()'s events into one list per connection (BackOff events left out)."""
    sessions: list[list[events.Event]] = []
    for event in received:
        if event.name == "connecting":
            sessions.append([])
        if event.name != "back_off":
            sessions[-1].append(event)
    return sessions


@pytest.mark.parametrize("row", MATRIX, ids=[row.id for row in MATRIX])
def test_fault(row: Row) -> None:
    before = take_snapshot()
    server = Server(row.steps, tls=row.target in ("tls", "tls-untrusted"))
    if row.target != "closed-port":
        server.start()
    proxy = start_proxy(row.target)
    if row.target == "closed-port":
        url = closed_port_url()
    elif row.target == "tls-stall":
        # A plain TCP server that never completes the TLS handshake.
        server.default_script = [steps.never_answer()]
        url = server.url.replace("ws://", "wss://")
    else:
        url = server.url

    websocket = new_websocket(
        url,
        ssl_context=server.client_ssl_context() if row.target == "tls" else None,
        proxies={"ws": proxy.url} if proxy is not None else {},
    )
    budget = scaled(row.budget)
    started = time.monotonic()
    try:
        # The hard bound only stops a hung test; the budget check below is the assertion.
        with gevent.Timeout(budget * 4 + scaled(5)):
            if row.state == "backoff":
                received = run_persist(websocket, row, server)
            else:
                received = run_session(websocket, row)
    finally:
        server.stop()
        if proxy is not None:
            proxy.stop()
    elapsed = time.monotonic() - started

    if row.state == "backoff":
        sessions = split_sessions(received)
        assert received[-1].name == "back_off", [event.name for event in received]
        check_stream(sessions[0], row)
        for later in sessions[1:]:
            # Attempts after the first: to the same faulty server, or refused.
            assert [event.name for event in later].count("disconnected") == 1
            assert later[-1].name == "disconnected"
        assert len(sessions) == (2 if row.fault == "server-gone" else 1), [e.name for e in received]
        if row.fault == "server-gone":
            assert re.search("refused", sessions[1][-1].reason), sessions[1][-1]
        budget += scaled(QUICK) * 4 * (len(sessions) - 1)
    else:
        check_stream(received, row)
    assert elapsed < budget, f"the client took {elapsed:.2f}s; the budget is {budget:.2f}s"

    assert server.leaks() == []
    if proxy is not None:
        assert proxy.leaks() == []
    if row.target in ("kit", "tls"):
        assert server.errors == [], server.errors
    assert wait_for_no_leaks(before, scaled(1)) == []
