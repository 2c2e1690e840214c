"""An independent client (the websockets package) against the test server.

websockets' sync client blocks its OS thread, so it runs in gevent's
thread pool while the server's greenlets keep running in this thread.
"""

from __future__ import annotations

import ssl

import gevent
import pytest
from lomond.testing import steps
from lomond.testing.waits import scaled

sync_client = pytest.importorskip("websockets.sync.client")


def in_thread(function, *args):
    """Run ``function`` in gevent's thread pool and wait cooperatively for its result."""
    result = gevent.get_hub().threadpool.spawn(function, *args)
    return result.get(timeout=scaled(10))


def echo_twice(url, ssl_context=None):
    with sync_client.connect(url, ssl=ssl_context, open_timeout=scaled(5), close_timeout=scaled(5)) as websocket:
        websocket.send("text from websockets")
        text = websocket.recv(timeout=scaled(5))
        websocket.send(b"\x00binary")
        data = websocket.recv(timeout=scaled(5))
    return text, data


def test_websockets_client_echo(lomond_server):
    text, data = in_thread(echo_twice, lomond_server.url)
    assert text == "text from websockets"
    assert data == b"\x00binary"
    transcript = lomond_server.next_connection().wait_closed()
    assert transcript.closing_handshake_completed
    assert transcript.close_code == 1000
    assert all(message.masked for message in transcript.messages)


def test_websockets_client_tls(lomond_tls_server):
    # websockets is not a gevent program, so it gets a stdlib context built
    # from the CA file rather than the server's gevent context.
    context = ssl.create_default_context(cafile=lomond_tls_server.ca_file)
    text, data = in_thread(echo_twice, lomond_tls_server.url, context)
    assert text == "text from websockets"
    assert data == b"\x00binary"


def test_websockets_client_sees_close_code(lomond_server_factory):
    server = lomond_server_factory([steps.accept(), steps.send_text("bye soon"), steps.close(4002, "done")])

    def receive_until_closed(url):
        from websockets.exceptions import ConnectionClosed

        with sync_client.connect(url, open_timeout=scaled(5)) as websocket:
            first = websocket.recv(timeout=scaled(5))
            try:
                websocket.recv(timeout=scaled(5))
            except ConnectionClosed as closed:
                return first, closed.rcvd.code, closed.rcvd.reason
        return first, None, None

    assert in_thread(receive_until_closed, server.url) == ("bye soon", 4002, "done")
