"""Server life cycle, transcripts and expectations of the test server."""

from __future__ import annotations

import re

import gevent
import pytest
from kit_raw import RawClient
from lomond.testing import Server, WaitTimeout, steps
from lomond.testing.frames import OP_BINARY, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT
from lomond.testing.waits import scaled


def test_context_manager_without_pytest():
    with Server() as server:
        with RawClient(server.port) as client:
            client.handshake()
            client.send_frame(OP_TEXT, b"ping")
            assert client.recv_frame().payload == b"ping"
    assert server.leaks() == []
    assert server.errors == []


def test_url_before_start_raises():
    with pytest.raises(RuntimeError, match="call start"):
        Server().url


def test_many_concurrent_connections(lomond_server):
    def talk(number):
        with RawClient(lomond_server.port) as client:
            client.handshake()
            payload = f"client {number}".encode()
            client.send_frame(OP_TEXT, payload)
            assert client.recv_frame().payload == payload
            client.send_close(1000)
            client.recv_all()
        return number

    greenlets = [gevent.spawn(talk, n) for n in range(50)]
    gevent.joinall(greenlets, timeout=scaled(10), raise_error=True)
    assert sorted(g.value for g in greenlets) == list(range(50))
    lomond_server.wait_idle()
    assert len(lomond_server.transcripts) == 50
    assert all(t.closing_handshake_completed for t in lomond_server.transcripts)


def test_stop_closes_every_connection():
    server = Server().start()
    clients = [RawClient(server.port) for _ in range(3)]
    for client in clients:
        client.handshake()
    for _ in range(3):
        server.next_connection()
    server.stop()
    for client in clients:
        frame = client.recv_frame()
        assert frame.payload == (1001).to_bytes(2, "big")
        assert client.is_closed_by_peer()
        client.close()
    assert server.leaks() == []


def test_stop_twice_is_harmless():
    server = Server().start()
    server.stop()
    server.stop()
    assert server.leaks() == []


def test_next_connection_timeout(lomond_server):
    with pytest.raises(WaitTimeout, match="a connection"):
        lomond_server.next_connection(timeout=scaled(0.1))


def test_transcript_records_frames_and_messages(lomond_server):
    with RawClient(lomond_server.port) as client:
        client.handshake()
        client.send_frame(OP_TEXT, b"he", fin=False)
        client.send_frame(OP_PING, b"p")
        client.send_frame(OP_CONTINUATION, b"llo")
        client.send_frame(OP_BINARY, b"\x01")
        client.send_frame(OP_PONG, b"q")
        client.send_close(1000, b"bye")
        client.recv_all()
    transcript = lomond_server.next_connection().wait_closed()
    kinds = [(m.kind, m.payload) for m in transcript.messages]
    assert kinds == [
        ("ping", b"p"),
        ("text", b"hello"),
        ("binary", b"\x01"),
        ("pong", b"q"),
        ("close", b"\x03\xe8bye"),
    ]
    assert all(m.masked for m in transcript.messages)
    assert len(transcript.messages[1].frames) == 2
    assert transcript.messages[1].time <= transcript.messages[1].end_time
    assert [f.opcode for f in transcript.frames] == [OP_TEXT, OP_PING, OP_CONTINUATION, OP_BINARY, OP_PONG, 0x8]
    assert transcript.close_code == 1000
    assert transcript.close_reason == "bye"
    assert transcript.closing_handshake_completed
    assert transcript.data_messages[0].data == "hello"


def test_next_message_filters_and_matches(lomond_server):
    with RawClient(lomond_server.port) as client:
        client.handshake()
        for payload in (b"one", b"two 2", b"three"):
            client.send_frame(OP_TEXT, payload)
        transcript = lomond_server.next_connection()
        assert transcript.next_message("text").text == "one"
        assert transcript.next_message("text", match=re.compile(r"\d")).text == "two 2"
        assert transcript.next_message(match=lambda text: text.startswith("th")).text == "three"
        with pytest.raises(WaitTimeout, match="a binary"):
            transcript.next_message("binary", timeout=scaled(0.1))


def test_expectations_read_as_conversation(lomond_server_factory):
    script = [
        steps.accept(),
        steps.expect_text("hello"),
        steps.send_text("world"),
        steps.expect_binary(b"\x00"),
        steps.ping(b"are you there"),
        steps.expect_pong(b"are you there"),
        steps.expect_close(1000),
    ]
    server = lomond_server_factory(script)
    with RawClient(server.port) as client:
        client.handshake()
        client.send_frame(OP_TEXT, b"hello")
        assert client.recv_frame().payload == b"world"
        client.send_frame(OP_BINARY, b"\x00")
        ping = client.recv_frame()
        client.send_frame(OP_PONG, ping.payload)
        client.send_close(1000)
        assert client.recv_frame().opcode == 0x8
    transcript = server.next_connection().wait_closed()
    assert transcript.script_error is None


def test_expectation_mismatch_is_recorded(lomond_server_factory):
    server = lomond_server_factory([steps.accept(), steps.expect_text("yes")])
    with RawClient(server.port) as client:
        client.handshake()
        client.send_frame(OP_TEXT, b"no")
        assert client.is_closed_by_peer()
    transcript = server.next_connection().wait_closed()
    assert "expected a text matching 'yes'" in transcript.script_error
    server.wait_idle()
    assert len(server.errors) == 1
    server.errors.clear()


def test_expectation_wrong_kind_is_recorded(lomond_server_factory):
    server = lomond_server_factory([steps.accept(), steps.expect_text()])
    with RawClient(server.port) as client:
        client.handshake()
        client.send_frame(OP_BINARY, b"no")
        assert client.is_closed_by_peer()
    assert "received Message('binary'" in server.next_connection().wait_closed().script_error
    server.wait_idle()
    server.errors.clear()


def test_expectation_timeout_is_recorded(lomond_server_factory):
    server = lomond_server_factory([steps.accept(), steps.expect_text(timeout=scaled(0.1))])
    with RawClient(server.port) as client:
        client.handshake()
        assert client.is_closed_by_peer()
    assert "timed out" in server.next_connection().wait_closed().script_error
    server.wait_idle()
    server.errors.clear()


def test_client_leaving_fails_expectation_at_once(lomond_server_factory):
    server = lomond_server_factory([steps.accept(), steps.expect_text(timeout=scaled(5))])
    with RawClient(server.port) as client:
        client.handshake()
    transcript = server.next_connection().wait_closed(timeout=scaled(1))
    assert "disconnected" in transcript.script_error
    server.wait_idle()
    server.errors.clear()


def test_script_ending_keeps_connection_open(lomond_server_factory):
    server = lomond_server_factory([steps.accept()])
    with RawClient(server.port) as client:
        client.handshake()
        client.send_frame(OP_PING, b"still here")
        assert client.recv_frame().payload == b"still here"
        client.send_close(1000)
        assert client.recv_frame().opcode == 0x8
        assert client.is_closed_by_peer()


def test_request_timeout_closes_silent_client(lomond_server_factory):
    server = lomond_server_factory(request_timeout=scaled(0.1))
    with RawClient(server.port) as client:
        assert client.is_closed_by_peer()
    transcript = server.next_connection().wait_closed()
    assert transcript.request is None
    assert transcript.end_reason == "no request before the timeout"


def test_plain_http_request_cannot_be_accepted(lomond_server):
    with RawClient(lomond_server.port) as client:
        client.sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.is_closed_by_peer()
    transcript = lomond_server.next_connection().wait_closed()
    assert transcript.response_status == 400
    assert "not a valid WebSocket upgrade" in transcript.script_error
    lomond_server.wait_idle()
    lomond_server.errors.clear()


def test_oversized_request_gets_431(lomond_server):
    with RawClient(lomond_server.port) as client:
        client.sock.sendall(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 70000)
        status, _, _ = client.read_head()
        assert client.is_closed_by_peer()
    assert status == 431
    assert lomond_server.next_connection().wait_closed().response_status == 431


MONKEY_PATCHED = """
from gevent import monkey
monkey.patch_all()

import socket
from lomond import WebSocket
from lomond.testing import Server

with Server() as server:
    # A stdlib socket, patched to be cooperative, reaches the server.
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\\r\\nHost: x\\r\\nUpgrade: websocket\\r\\n"
                     b"Connection: Upgrade\\r\\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\n"
                     b"Sec-WebSocket-Version: 13\\r\\n\\r\\n")
        assert sock.recv(1024).startswith(b"HTTP/1.1 101 ")
    websocket = WebSocket(server.url)
    for event in websocket.connect(ping_rate=0):
        if event.name == "ready":
            websocket.send_text("patched")
        elif event.name == "text":
            print(event.text)
            websocket.close()
assert server.leaks() == [], server.leaks()
"""


def test_works_under_monkey_patching():
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", MONKEY_PATCHED], capture_output=True, text=True, timeout=scaled(30)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "patched"


def test_stop_with_blocked_writer():
    # The client never reads, so the script's sendall() blocks on a full
    # socket buffer; stop() must still end it.
    server = Server([steps.accept(), steps.send_large(32 * 1024 * 1024)]).start()
    client = RawClient(server.port)
    client.send_request()
    assert client.read_head()[0] == 101
    server.stop(timeout=scaled(2))
    client.close()
    assert server.leaks() == []
