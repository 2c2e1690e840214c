"""Handshake steps of the test server, checked byte by byte with a raw socket."""

from __future__ import annotations

import base64
import hashlib
import time

import pytest
from kit_raw import RawClient
from lomond.testing import Server, steps
from lomond.testing.frames import OP_TEXT
from lomond.testing.waits import scaled

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def expected_accept(key: str) -> str:
    # RFC 6455 section 4.2.2: base64 of SHA-1 of the key and the GUID.
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def test_server_url_is_loopback_ephemeral(lomond_server):
    assert lomond_server.url == f"ws://127.0.0.1:{lomond_server.port}/"
    assert lomond_server.port != 0


def test_accept_sends_valid_101(lomond_server):
    with RawClient(lomond_server.port) as client:
        client.send_request()
        status, headers, _ = client.read_head()
    assert status == 101
    assert headers["upgrade"].lower() == "websocket"
    assert headers["connection"].lower() == "upgrade"
    assert headers["sec-websocket-accept"] == expected_accept(client.key)


def test_accept_subprotocol_extension_headers(lomond_server_factory):
    script = [steps.accept(subprotocol="chat", extensions=["x-custom"], headers=[("X-Test", "1")])]
    server = lomond_server_factory(script)
    with RawClient(server.port) as client:
        client.send_request(headers=[("Sec-WebSocket-Protocol", "other, chat")])
        status, headers, _ = client.read_head()
    assert status == 101
    assert headers["sec-websocket-protocol"] == "chat"
    assert headers["sec-websocket-extensions"] == "x-custom"
    assert headers["x-test"] == "1"


def test_accept_negotiates_deflate(lomond_server_factory):
    server = lomond_server_factory([steps.accept(extensions=["permessage-deflate"]), steps.echo()])
    with RawClient(server.port) as client:
        client.send_request(headers=[("Sec-WebSocket-Extensions", "permessage-deflate")])
        status, headers, _ = client.read_head()
        assert status == 101
        assert headers["sec-websocket-extensions"].startswith("permessage-deflate")
        # A compressed "Hello" (RFC 7692 section 7.2.3.1), masked.
        client.send_frame(OP_TEXT, bytes.fromhex("f248cdc9c90700"), rsv1=True)
        frame = client.recv_frame()
    transcript = server.next_connection()
    message = transcript.next_message("text")
    assert message.text == "Hello"
    assert message.compressed
    assert frame.rsv1  # wsproto compressed the echo


def test_accept_unoffered_subprotocol_refused_by_accept(lomond_server_factory):
    server = lomond_server_factory([steps.accept(subprotocol="chat")])
    with RawClient(server.port) as client:
        client.send_request()
        assert client.is_closed_by_peer()
    transcript = server.next_connection().wait_closed()
    assert "did not offer subprotocol" in transcript.script_error
    server.errors.clear()


@pytest.mark.parametrize(
    "status, headers, body",
    [
        (503, [("Retry-After", "7")], b"busy\n"),
        (401, [("WWW-Authenticate", 'Basic realm="x"')], b""),
        (404, [], b"not here"),
    ],
)
def test_reject_status_headers_body(lomond_server_factory, status, headers, body):
    server = lomond_server_factory([steps.reject(status, headers=headers, body=body)])
    with RawClient(server.port) as client:
        client.send_request()
        got_status, got_headers, _ = client.read_head()
        rest = client.recv_all()
    assert got_status == status
    for name, value in headers:
        assert got_headers[name.lower()] == value
    assert rest == body
    assert server.next_connection().response_status == status


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirect_sends_location(lomond_server_factory, status):
    server = lomond_server_factory([steps.redirect("ws://127.0.0.1:1/next", status)])
    with RawClient(server.port) as client:
        client.send_request()
        got_status, headers, _ = client.read_head()
    assert got_status == status
    assert headers["location"] == "ws://127.0.0.1:1/next"


def test_redirect_rejects_non_redirect_status():
    with pytest.raises(ValueError, match="not 200"):
        steps.redirect("/x", 200)


def test_delay_before_answer(lomond_server_factory):
    server = lomond_server_factory([steps.delay(scaled(0.3)), steps.accept()])
    with RawClient(server.port) as client:
        started = time.monotonic()
        client.send_request()
        status, _, _ = client.read_head()
    assert status == 101
    assert time.monotonic() - started >= scaled(0.3)


def test_never_answer_sends_nothing(lomond_server_factory):
    server = lomond_server_factory([steps.never_answer()])
    with RawClient(server.port) as client:
        client.send_request()
        assert not client.is_closed_by_peer(timeout=scaled(0.3))
        assert client.buffer == b""
    transcript = server.next_connection().wait_closed()
    assert transcript.bytes_out == 0
    assert transcript.request.path == "/"


def test_accept_missing_key(lomond_server_factory):
    server = lomond_server_factory([steps.accept_missing_key()])
    with RawClient(server.port) as client:
        client.send_request()
        status, headers, _ = client.read_head()
    assert status == 101
    assert "sec-websocket-accept" not in headers


def test_accept_wrong_key(lomond_server_factory):
    server = lomond_server_factory([steps.accept_wrong_key()])
    with RawClient(server.port) as client:
        client.send_request()
        _, headers, _ = client.read_head()
    assert headers["sec-websocket-accept"] != expected_accept(client.key)


def test_accept_wrong_upgrade(lomond_server_factory):
    server = lomond_server_factory([steps.accept_wrong_upgrade()])
    with RawClient(server.port) as client:
        client.send_request()
        _, headers, _ = client.read_head()
    assert headers["upgrade"] == "h2c"
    assert headers["sec-websocket-accept"] == expected_accept(client.key)


def test_accept_unoffered_subprotocol(lomond_server_factory):
    server = lomond_server_factory([steps.accept_unoffered_subprotocol("ghost")])
    with RawClient(server.port) as client:
        client.send_request()
        _, headers, _ = client.read_head()
    assert headers["sec-websocket-protocol"] == "ghost"


def test_garbage_instead_of_http(lomond_server_factory):
    server = lomond_server_factory([steps.send_garbage(b"\x00\x01garbage")])
    with RawClient(server.port) as client:
        client.send_request()
        data = client.recv_all()
    assert data == b"\x00\x01garbage"


def test_frames_share_segment_with_101(lomond_server_factory):
    server = lomond_server_factory([steps.accept(messages=["first", b"\x01"])])
    with RawClient(server.port) as client:
        client.send_request()
        # The 101 and both frames arrive in the first recv() on loopback.
        client._fill(scaled(5))
        data = bytes(client.buffer)
    assert data.startswith(b"HTTP/1.1 101 ")
    assert data.endswith(b"\x81\x05first\x82\x01\x01")


def test_request_recorded(lomond_server):
    with RawClient(lomond_server.port) as client:
        client.handshake("/path?q=1", headers=[("Origin", "http://example.org")])
    request = lomond_server.next_connection().request
    assert request.method == "GET"
    assert request.target == "/path?q=1"
    assert request.path == "/path"
    assert request.header("origin") == "http://example.org"
    assert request.header("Sec-WebSocket-Key") == client.key


def test_routes_choose_script_by_path(lomond_server_factory):
    server = lomond_server_factory(
        routes={"/ok": steps.ECHO, "/busy": [steps.reject(503)]},
    )
    with RawClient(server.port) as client:
        client.send_request("/busy")
        assert client.read_head()[0] == 503
    with RawClient(server.port) as client:
        client.send_request("/ok")
        assert client.read_head()[0] == 101
    with RawClient(server.port) as client:
        client.send_request("/missing")
        assert client.read_head()[0] == 404


def test_function_script(lomond_server_factory):
    def script(conn):
        conn.accept(subprotocol=conn.request.subprotocols[0])
        message = conn.expect("text")
        conn.send_text(message.text.upper())
        conn.close(1000, "done")

    server = lomond_server_factory(script)
    with RawClient(server.port) as client:
        headers = client.handshake(headers=[("Sec-WebSocket-Protocol", "p1")])
        client.send_frame(OP_TEXT, b"shout")
        reply = client.recv_frame()
        close = client.recv_frame()
        client.send_close(1000)
        assert client.is_closed_by_peer()
    assert headers["sec-websocket-protocol"] == "p1"
    assert reply.payload == b"SHOUT"
    assert close.payload == b"\x03\xe8done"


def test_ipv6_server():
    try:
        server = Server(ipv6=True).start()
    except OSError as error:
        pytest.skip(f"no IPv6 loopback: {error}")
    try:
        assert server.url == f"ws://[::1]:{server.port}/"
        with RawClient(server.port, host="::1") as client:
            client.handshake()
            client.send_frame(OP_TEXT, b"v6")
            assert client.recv_frame().payload == b"v6"
    finally:
        server.stop()
    assert server.leaks() == []


def test_reject_with_reason_phrase(lomond_server_factory):
    server = lomond_server_factory([steps.reject(503, reason="Service Unavailable", body="x")])
    with RawClient(server.port) as client:
        client.send_request()
        client._fill(scaled(5))
        head = bytes(client.buffer)
    assert head.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
