"""Closing steps of the test server, checked byte by byte with a raw socket."""

from __future__ import annotations

import pytest
from kit_raw import RawClient
from lomond.testing import steps
from lomond.testing.frames import OP_CLOSE, OP_TEXT
from lomond.testing.waits import scaled


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 2999, 5000])
def test_close_with_invalid_code(lomond_server_factory, code):
    server = lomond_server_factory([steps.accept(), steps.close(code, "why", wait=False)])
    with RawClient(server.port) as client:
        client.handshake()
        frame = client.recv_frame()
    assert frame.opcode == OP_CLOSE
    assert frame.payload == code.to_bytes(2, "big") + b"why"


@pytest.mark.parametrize("code", [1000, 1001, 1011, 3000, 4999])
def test_close_handshake_with_valid_code(lomond_server_factory, code):
    server = lomond_server_factory([steps.accept(), steps.close(code, "bye")])
    with RawClient(server.port) as client:
        client.handshake()
        frame = client.recv_frame()
        client.send_close(code)
        assert client.is_closed_by_peer()
    assert frame.payload == code.to_bytes(2, "big") + b"bye"
    transcript = server.next_connection().wait_closed()
    assert transcript.closing_handshake_completed
    assert transcript.close_code == code


def test_close_without_code(lomond_server_factory):
    server = lomond_server_factory([steps.accept(), steps.close(None, wait=False)])
    with RawClient(server.port) as client:
        client.handshake()
        assert client.recv_frame().payload == b""


def test_close_one_byte_payload(lomond_server_factory):
    server = lomond_server_factory([steps.accept(), steps.close_one_byte_payload()])
    with RawClient(server.port) as client:
        client.handshake()
        assert client.recv_frame().payload == b"\x03"


def test_close_invalid_reason(lomond_server_factory):
    server = lomond_server_factory([steps.accept(), steps.close_invalid_reason()])
    with RawClient(server.port) as client:
        client.handshake()
        assert client.recv_frame().payload == b"\x03\xe8\xff\xfe bad"


def test_close_waits_for_reply_then_closes_tcp(lomond_server_factory):
    server = lomond_server_factory([steps.accept(), steps.close(1000, timeout=scaled(3))])
    with RawClient(server.port) as client:
        client.handshake()
        client.recv_frame()
        # Without our close frame the server keeps the socket open.
        assert not client.is_closed_by_peer(timeout=scaled(0.2))
        client.send_close(1000)
        assert client.is_closed_by_peer()


def test_close_and_drop_does_not_wait(lomond_server_factory):
    server = lomond_server_factory([steps.accept(), steps.close_and_drop(1001)])
    with RawClient(server.port) as client:
        client.handshake()
        assert client.recv_frame().payload == b"\x03\xe9"
        assert client.is_closed_by_peer(timeout=scaled(1))
    assert not server.next_connection().closing_handshake_completed


def test_server_answers_client_close(lomond_server):
    with RawClient(lomond_server.port) as client:
        client.handshake()
        client.send_close(4000, b"done")
        reply = client.recv_frame()
        assert client.is_closed_by_peer()
    assert reply.payload == b"\x0f\xa0done"
    transcript = lomond_server.next_connection().wait_closed()
    assert transcript.close_code == 4000
    assert transcript.close_reason == "done"
    assert transcript.closing_handshake_completed


def test_ignore_close_never_answers(lomond_server_factory):
    server = lomond_server_factory([steps.accept(), steps.ignore_close(), steps.hold()])
    with RawClient(server.port) as client:
        client.handshake()
        client.send_close(1000)
        assert not client.is_closed_by_peer(timeout=scaled(0.3))
        assert client.buffer == b""
    transcript = server.next_connection().wait_closed()
    assert transcript.close_code == 1000
    assert not transcript.closing_handshake_completed


def test_client_protocol_error_recorded(lomond_server):
    with RawClient(lomond_server.port) as client:
        client.handshake()
        client.send_frame(OP_TEXT, b"plain", mask=False)
        close = client.recv_frame()
        assert client.is_closed_by_peer()
    assert close.payload[:2] == (1002).to_bytes(2, "big")
    transcript = lomond_server.next_connection().wait_closed()
    assert transcript.messages[0].masked is False
    assert transcript.protocol_errors
    lomond_server.wait_idle()
    assert any("broke the protocol" in error for error in lomond_server.errors)
    lomond_server.errors.clear()


def test_client_invalid_close_code_recorded(lomond_server):
    with RawClient(lomond_server.port) as client:
        client.handshake()
        client.send_close(1005)
        reply = client.recv_frame()
    assert reply.payload[:2] == (1002).to_bytes(2, "big")
    lomond_server.wait_idle()
    assert lomond_server.next_connection().protocol_errors
    lomond_server.errors.clear()
