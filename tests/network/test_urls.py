"""URLs on the wire: user-info, Unix sockets, IPv6 literals, ports, query strings, headers and cookies."""

from __future__ import annotations

import base64
import itertools

import gevent
import gevent.event
import pytest

from lomond import WebSocket
from lomond.errors import InvalidURL
from lomond.persist import persist
from lomond.testing import TIME_UNIT, steps

from .conftest import first, names, needs_ipv6, run

ACCEPT = [steps.accept(), steps.close(1000)]


def header(server, name, number=0):
    request = server.transcripts[number].request
    values = [value for key, value in request.headers if key.lower() == name.lower()]
    return values[0] if values else None


def test_userinfo_sent_as_basic_auth(lomond_server):
    url = lomond_server.url.replace("ws://", "ws://alice:s%40cret@")
    seen = run(WebSocket(url))
    assert "ready" in names(seen)
    expected = "Basic " + base64.b64encode(b"alice:s@cret").decode()
    assert header(lomond_server, "Authorization") == expected


def test_unix_socket_url(mini_server_factory, tmp_path):
    path = str(tmp_path / "ws.sock")
    server = mini_server_factory(unix_path=path)
    seen = run(WebSocket(f"ws+unix://{path}"))
    assert names(seen)[:3] == ["connecting", "connected", "ready"]
    assert server.requests[0][0] == "/"


def test_unix_socket_url_with_resource(mini_server_factory, tmp_path):
    path = str(tmp_path / "ws.sock")
    server = mini_server_factory(unix_path=path)
    seen = run(WebSocket(f"ws+unix://{path}:/feed?x=1"))
    assert "ready" in names(seen)
    assert server.requests[0][0] == "/feed?x=1"


def test_unix_socket_argument(mini_server_factory, tmp_path):
    path = str(tmp_path / "ws.sock")
    server = mini_server_factory(unix_path=path)
    seen = run(WebSocket("ws://localhost/app", unix_socket=path))
    assert "ready" in names(seen)
    assert server.requests[0][0] == "/app"


def test_unix_socket_ignores_proxy(mini_server_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    path = str(tmp_path / "ws.sock")
    mini_server_factory(unix_path=path)
    seen = run(WebSocket(f"ws+unix://{path}"))
    assert "ready" in names(seen)


def test_unix_socket_missing(tmp_path):
    seen = run(WebSocket(f"ws+unix://{tmp_path}/absent.sock"))
    assert "Unix socket" in first(seen, "connect_fail").reason


def test_tls_over_unix_socket(mini_server_factory, tmp_path, certificates):
    path = str(tmp_path / "wss.sock")
    mini_server_factory(unix_path=path, ssl_context=certificates.server_context())
    seen = run(WebSocket(f"wss+unix://{path}", ssl_cafile=certificates.ca_file))
    assert "ready" in names(seen)


@needs_ipv6
def test_ipv6_literal(lomond_server_factory):
    server = lomond_server_factory(ipv6=True)
    assert server.url.startswith("ws://[::1]:")
    seen = run(WebSocket(server.url))
    assert "ready" in names(seen)
    assert header(server, "Host") == f"[::1]:{server.port}"


def test_host_header_keeps_port(lomond_server):
    run(WebSocket(lomond_server.url))
    assert header(lomond_server, "Host") == f"127.0.0.1:{lomond_server.port}"


@pytest.mark.parametrize(
    ("url", "port"),
    [("ws://example.com/", 80), ("wss://example.com/", 443), ("ws://example.com:8080/", 8080)],
)
def test_default_ports(url, port):
    assert WebSocket(url).port == port


def test_query_string_kept(lomond_server_factory):
    server = lomond_server_factory(routes={"/feed": ACCEPT})
    seen = run(WebSocket(server.url_for("/feed") + "?symbol=ABC&depth=5#ignored"))
    assert "ready" in names(seen)
    assert server.transcripts[0].request.target == "/feed?symbol=ABC&depth=5"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://example.com/", "unsupported URL scheme"),
        ("ftp://example.com/", "unsupported URL scheme"),
        ("example.com/feed", "unsupported URL scheme"),
        ("ws://example.com:0/", "invalid port"),
        ("ws://example.com:99999/", "invalid port"),
        ("ws://example.com:port/", "invalid port"),
        ("ws:///feed", "missing host"),
        ("ws://:80/", "missing host"),
    ],
)
def test_invalid_url(url, words):
    with pytest.raises(InvalidURL) as caught:
        WebSocket(url)
    assert words in str(caught.value)


# --- headers and cookies ---------------------------------------------------------------


def test_custom_headers_and_cookie(lomond_server):
    websocket = WebSocket(lomond_server.url, headers={"Cookie": "a=1; b=2", "X-Client": "test"})
    websocket.add_header("X-Added", "yes")
    run(websocket)
    assert header(lomond_server, "Cookie") == "a=1; b=2"
    assert header(lomond_server, "X-Client") == "test"
    assert header(lomond_server, "X-Added") == "yes"


def test_headers_callable_per_connection(lomond_server_factory):
    server = lomond_server_factory(ACCEPT)
    tokens = itertools.count(1)
    websocket = WebSocket(
        server.url, headers=lambda: {"Authorization": f"Bearer token-{next(tokens)}"}
    )
    run(websocket)
    run(websocket)
    assert header(server, "Authorization", 0) == "Bearer token-1"
    assert header(server, "Authorization", 1) == "Bearer token-2"


def test_headers_callable_under_persist(lomond_server_factory):
    server = lomond_server_factory(ACCEPT)
    tokens = itertools.count(1)
    websocket = WebSocket(server.url, headers=lambda: [("X-Token", f"t{next(tokens)}")])
    exit_event = gevent.event.Event()
    ready = 0
    with gevent.Timeout(10 * TIME_UNIT):
        for event in persist(websocket, poll=0, ping_rate=0, min_wait=0.01, max_wait=0.02, exit_event=exit_event):
            if event.name == "ready":
                ready += 1
                if ready == 3:
                    exit_event.set()
    tokens_sent = [header(server, "X-Token", number) for number in range(3)]
    assert tokens_sent == ["t1", "t2", "t3"]
