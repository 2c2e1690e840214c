"""Proxy choice (proxies argument, environment, no_proxy) and HTTP CONNECT over loopback."""

from __future__ import annotations

import gevent
import gevent.ssl
import pytest

from lomond import WebSocket
from lomond.errors import ConnectFail, InvalidURL
from lomond.net import TLSOptions, open_transport
from lomond.protocol.url import parse_url
from lomond.proxy import bypass_proxy, parse_proxy_url, select_proxy
from lomond.testing import TIME_UNIT

from .conftest import first, names, needs_ipv6, run

WS = parse_url("ws://example.com/feed")
WSS = parse_url("wss://example.com/feed")


# --- the proxies argument ----------------------------------------------------------


def test_proxies_argument_by_scheme():
    proxies = {"http": "http://plain:3128", "https": "http://secure:3128"}
    assert select_proxy(WS, proxies) == "http://plain:3128"
    assert select_proxy(WSS, proxies) == "http://secure:3128"


def test_proxies_ws_keys_win_over_http_keys():
    proxies = {"http": "http://a:1", "ws": "http://b:1", "https": "http://c:1", "wss": "http://d:1"}
    assert select_proxy(WS, proxies) == "http://b:1"
    assert select_proxy(WSS, proxies) == "http://d:1"


def test_proxies_empty_means_direct():
    assert select_proxy(WS, {}, environ={"http_proxy": "http://env:1"}) is None
    assert select_proxy(WSS, {"http": "http://plain:1"}) is None


def test_proxies_argument_no_proxy_key():
    proxies = {"http": "http://p:1", "no_proxy": "example.com"}
    assert select_proxy(WS, proxies) is None


def test_unix_socket_never_proxied():
    url = parse_url("ws+unix:///tmp/app.sock")
    assert select_proxy(url, {"http": "http://p:1"}) is None
    assert select_proxy(url, None, environ={"http_proxy": "http://p:1"}) is None


# --- the environment ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "url", "expected"),
    [
        ({"http_proxy": "http://h:1"}, WS, "http://h:1"),
        ({"HTTP_PROXY": "http://H:1"}, WS, "http://H:1"),
        ({"https_proxy": "http://s:1"}, WSS, "http://s:1"),
        ({"HTTPS_PROXY": "http://S:1"}, WSS, "http://S:1"),
        ({"ws_proxy": "http://w:1", "http_proxy": "http://h:1"}, WS, "http://w:1"),
        ({"WS_PROXY": "http://W:1", "http_proxy": "http://h:1"}, WS, "http://W:1"),
        ({"wss_proxy": "http://x:1", "https_proxy": "http://s:1"}, WSS, "http://x:1"),
        ({"WSS_PROXY": "http://X:1"}, WSS, "http://X:1"),
        ({"http_proxy": "http://lower:1", "HTTP_PROXY": "http://upper:1"}, WS, "http://lower:1"),
        ({"https_proxy": "http://s:1"}, WS, None),
        ({"http_proxy": "http://h:1"}, WSS, None),
        ({"http_proxy": ""}, WS, None),
        ({}, WS, None),
    ],
)
def test_environment_variables(environ, url, expected):
    assert select_proxy(url, None, environ=environ) == expected


def test_environment_upper_http_proxy_ignored_under_cgi():
    environ = {"HTTP_PROXY": "http://attacker:1", "REQUEST_METHOD": "GET"}
    assert select_proxy(WS, None, environ=environ) is None
    environ["http_proxy"] = "http://mine:1"
    assert select_proxy(WS, None, environ=environ) == "http://mine:1"


def test_environment_read_from_os_environ(monkeypatch):
    monkeypatch.setenv("wss_proxy", "http://from-env:3128")
    assert select_proxy(WSS, None) == "http://from-env:3128"
    monkeypatch.setenv("NO_PROXY", ".example.com")
    assert select_proxy(WSS, None) is None


# --- no_proxy --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "bypass"),
    [
        ("example.com", 80, "*", True),
        ("example.com", 80, "example.com", True),
        ("ws.example.com", 80, "example.com", True),
        ("ws.example.com", 80, ".example.com", True),
        ("example.com", 80, ".example.com", True),
        ("ws.example.com", 80, "*.example.com", True),
        ("EXAMPLE.com.", 80, "example.COM", True),
        ("badexample.com", 80, "example.com", False),
        ("example.com.evil", 80, "example.com", False),
        ("example.org", 80, "example.com, other.org", False),
        ("other.org", 80, "example.com, other.org", True),
        ("other.org", 80, "example.com other.org", True),
        ("10.1.2.3", 80, "10.1.2.3", True),
        ("10.1.2.4", 80, "10.1.2.3", False),
        ("10.1.2.3", 80, "10.0.0.0/8", True),
        ("11.1.2.3", 80, "10.0.0.0/8", False),
        ("192.168.1.7", 80, "192.168.1.0/24", True),
        ("::1", 80, "::1", True),
        ("fd00::5", 80, "fd00::/8", True),
        ("fe80::5", 80, "fd00::/8", False),
        ("::1", 8080, "[::1]:8080", True),
        ("::1", 8081, "[::1]:8080", False),
        ("example.com", 8080, "example.com:8080", True),
        ("example.com", 443, "example.com:8080", False),
        ("10.1.2.3", 9000, "10.0.0.0/8:9000", True),
        ("example.com", 80, "10.0.0.0/8", False),
        ("example.com", 80, "example.com:notaport", False),
        ("example.com", 80, "", False),
        ("example.com", 80, " , ,", False),
    ],
)
def test_no_proxy_matching(host, port, no_proxy, bypass):
    assert bypass_proxy(host, port, no_proxy) is bypass


def test_no_proxy_from_environment():
    environ = {"https_proxy": "http://p:1", "no_proxy": "localhost,127.0.0.0/8"}
    assert select_proxy(parse_url("wss://127.0.0.1:8443/"), None, environ=environ) is None
    assert select_proxy(parse_url("wss://localhost/"), None, environ=environ) is None
    assert select_proxy(WSS, None, environ=environ) == "http://p:1"


# --- proxy URLs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "scheme", "host", "port"),
    [
        ("http://proxy.local:3128", "http", "proxy.local", 3128),
        ("http://proxy.local", "http", "proxy.local", 80),
        ("https://proxy.local", "https", "proxy.local", 443),
        ("proxy.local:3128", "http", "proxy.local", 3128),
        ("socks5h://proxy.local", "socks5h", "proxy.local", 1080),
        ("SOCKS4A://proxy.local:9050", "socks4a", "proxy.local", 9050),
        ("http://[::1]:3128", "http", "::1", 3128),
    ],
)
def test_proxy_url_parts(url, scheme, host, port):
    proxy = parse_proxy_url(url)
    assert (proxy.scheme, proxy.host, proxy.port) == (scheme, host, port)


def test_proxy_url_credentials_hidden():
    proxy = parse_proxy_url("http://alice:s%40cret@proxy.local:3128")
    assert proxy.username == "alice"
    assert proxy.password == "s@cret"
    assert proxy.safe_url == "http://proxy.local:3128"
    assert "cret" not in repr(proxy)


@pytest.mark.parametrize("url", ["ftp://p:1", "http://:3128", "http://p:0", "http://p:99999"])
def test_proxy_url_invalid(url):
    with pytest.raises(InvalidURL):
        parse_proxy_url(url)


def test_proxy_url_error_hides_credentials():
    with pytest.raises(InvalidURL) as caught:
        parse_proxy_url("gopher://alice:hunter2@p:1")
    assert "hunter2" not in str(caught.value)


# --- CONNECT over loopback ----------------------------------------------------------


def test_connect_proxy_tunnel(lomond_server, lomond_proxy):
    websocket = WebSocket(lomond_server.url, proxies={"http": lomond_proxy.url})
    seen = run(websocket)
    assert names(seen)[:3] == ["connecting", "connected", "ready"]
    assert first(seen, "connected").proxy == lomond_proxy.url
    request = lomond_proxy.next_request()
    assert request.method == "CONNECT"
    assert request.target == f"127.0.0.1:{lomond_server.port}"
    assert request.header("Host") == request.target


def test_connect_proxy_from_environment(lomond_server, lomond_proxy, monkeypatch):
    monkeypatch.setenv("http_proxy", lomond_proxy.url)
    seen = run(WebSocket(lomond_server.url))
    assert "ready" in names(seen)
    assert lomond_proxy.next_request().target == f"127.0.0.1:{lomond_server.port}"


def test_connect_proxy_skipped_by_no_proxy(lomond_server, lomond_proxy, monkeypatch):
    monkeypatch.setenv("http_proxy", lomond_proxy.url)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    seen = run(WebSocket(lomond_server.url))
    assert "ready" in names(seen)
    assert first(seen, "connected").proxy is None
    assert lomond_proxy.requests == []


def test_connect_proxy_basic_auth(lomond_server, lomond_proxy_factory):
    proxy = lomond_proxy_factory(auth=("alice", "s3cret"))
    websocket = WebSocket(
        lomond_server.url, proxies={"http": proxy.url_with_credentials("alice", "s3cret")}
    )
    seen = run(websocket)
    assert "ready" in names(seen)
    assert proxy.next_request().authorized
    assert first(seen, "connected").proxy == proxy.url


@needs_ipv6
def test_connect_proxy_ipv6_target(lomond_server_factory, lomond_proxy):
    server = lomond_server_factory(ipv6=True)
    seen = run(WebSocket(server.url, proxies={"http": lomond_proxy.url}))
    assert "ready" in names(seen)
    assert lomond_proxy.next_request().target == f"[::1]:{server.port}"


def test_https_proxy(lomond_server, tunnel_proxy_factory, certificates):
    proxy = tunnel_proxy_factory(ssl_context=certificates.server_context())
    websocket = WebSocket(
        lomond_server.url, proxies={"http": proxy.url}, ssl_cafile=certificates.ca_file
    )
    seen = run(websocket)
    assert "ready" in names(seen)
    assert proxy.targets == [f"127.0.0.1:{lomond_server.port}"]


def test_https_proxy_unknown_ca(lomond_server, tunnel_proxy_factory, certificates):
    proxy = tunnel_proxy_factory(ssl_context=certificates.server_context())
    seen = run(WebSocket(lomond_server.url, proxies={"http": proxy.url}))
    assert "unknown CA" in first(seen, "connect_fail").reason


def test_wss_through_https_proxy(lomond_server_factory, tunnel_proxy_factory):
    # TLS inside TLS: the server's certificate and the proxy's come from the
    # kit server's CA, so one CA file verifies both.
    server = lomond_server_factory(tls=True)
    context = gevent.ssl.SSLContext(gevent.ssl.PROTOCOL_TLS_SERVER)
    server.ca.issue_cert("127.0.0.1").configure_cert(context)
    proxy = tunnel_proxy_factory(ssl_context=context)
    websocket = WebSocket(server.url, proxies={"https": proxy.url}, ssl_cafile=server.ca_file)
    seen = run(websocket)
    assert "ready" in names(seen)
    assert first(seen, "closed").code == 1000


def test_large_messages_through_https_proxy(lomond_server_factory, tunnel_proxy_factory):
    # TLS inside TLS, with messages larger than a TLS record and a socket buffer.
    server = lomond_server_factory(tls=True)
    context = gevent.ssl.SSLContext(gevent.ssl.PROTOCOL_TLS_SERVER)
    server.ca.issue_cert("127.0.0.1").configure_cert(context)
    proxy = tunnel_proxy_factory(ssl_context=context)
    websocket = WebSocket(server.url, proxies={"https": proxy.url}, ssl_cafile=server.ca_file)
    payload = bytes(range(256)) * 8192
    echoed = []
    with gevent.Timeout(20 * TIME_UNIT):
        for event in websocket.connect(ping_rate=0, poll=0):
            if event.name == "ready":
                websocket.send_binary(payload)
                websocket.send_text("x" * 100_000)
            elif event.name in ("binary", "text"):
                echoed.append(event)
                if len(echoed) == 2:
                    websocket.close()
    assert echoed[0].data == payload
    assert echoed[1].text == "x" * 100_000


def test_wss_through_connect_proxy(lomond_tls_server, lomond_proxy):
    websocket = WebSocket(
        lomond_tls_server.url,
        proxies={"https": lomond_proxy.url},
        ssl_cafile=lomond_tls_server.ca_file,
    )
    seen = run(websocket)
    assert "ready" in names(seen)


# --- CONNECT failures -----------------------------------------------------------------


def connect_fail_reason(url, proxy_url, **options):
    seen = run(WebSocket(url, proxies={"http": proxy_url, "https": proxy_url}, **options))
    assert names(seen)[-2:] == ["connect_fail", "disconnected"]
    return first(seen, "connect_fail").reason


def test_proxy_407_without_credentials(lomond_server, lomond_proxy_factory):
    proxy = lomond_proxy_factory(auth=("alice", "s3cret"))
    reason = connect_fail_reason(lomond_server.url, proxy.url)
    assert "requires authentication" in reason
    assert "407" in reason
    assert "USER:PASSWORD@" in reason


def test_proxy_407_wrong_credentials(lomond_server, lomond_proxy_factory):
    proxy = lomond_proxy_factory(auth=("alice", "s3cret"))
    reason = connect_fail_reason(lomond_server.url, proxy.url_with_credentials("alice", "wrong"))
    assert "rejected the user name and password" in reason
    assert "wrong" not in reason


def test_proxy_403(lomond_server, lomond_proxy_factory):
    proxy = lomond_proxy_factory(status=403)
    reason = connect_fail_reason(lomond_server.url, proxy.url)
    assert "refused to open a tunnel" in reason
    assert f"port {lomond_server.port}" in reason


def test_proxy_other_status(lomond_server, lomond_proxy_factory):
    proxy = lomond_proxy_factory(status=502)
    reason = connect_fail_reason(lomond_server.url, proxy.url)
    assert "responded to CONNECT" in reason
    assert "502" in reason


def test_proxy_malformed_answer(lomond_server, lomond_proxy_factory):
    proxy = lomond_proxy_factory(answer=b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    reason = connect_fail_reason(lomond_server.url, proxy.url)
    assert "invalid response" in reason


def test_proxy_malformed_status_line(lomond_server, lomond_proxy_factory):
    proxy = lomond_proxy_factory(answer=b"HTTP/1.1 OK\r\n\r\n")
    reason = connect_fail_reason(lomond_server.url, proxy.url)
    assert "invalid response" in reason


def test_proxy_closes_without_answer(lomond_server, lomond_proxy_factory):
    proxy = lomond_proxy_factory(answer=b"")
    reason = connect_fail_reason(lomond_server.url, proxy.url)
    assert "closed the connection without responding" in reason


def test_proxy_closes_mid_answer(lomond_server, lomond_proxy_factory):
    proxy = lomond_proxy_factory(answer=b"HTTP/1.1 200 Connection est")
    reason = connect_fail_reason(lomond_server.url, proxy.url)
    assert "in the middle of its response" in reason


def test_proxy_never_answers(lomond_server, lomond_proxy_factory):
    proxy = lomond_proxy_factory(delay=20 * TIME_UNIT)
    started = gevent.get_hub().loop.now()
    reason = connect_fail_reason(lomond_server.url, proxy.url, connect_timeout=0.5 * TIME_UNIT)
    assert "did not respond to CONNECT within" in reason
    assert gevent.get_hub().loop.now() - started < 5 * TIME_UNIT


def test_proxy_refused(lomond_server, black_hole_factory):
    import socket

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    reason = connect_fail_reason(lomond_server.url, f"http://127.0.0.1:{port}")
    assert f"connection to proxy http://127.0.0.1:{port} failed" in reason


def test_proxy_invalid_url(lomond_server):
    reason = connect_fail_reason(lomond_server.url, "ftp://alice:hunter2@127.0.0.1:1")
    assert "unsupported proxy scheme" in reason
    assert "hunter2" not in reason


# --- bytes after the proxy's response ------------------------------------------------


def test_bytes_after_response_kept_for_websocket(tunnel_proxy_factory, mini_server_factory):
    server = mini_server_factory()
    proxy = tunnel_proxy_factory(after_response=b"early bytes")
    transport = open_transport(
        parse_url(server.url()), TLSOptions(), 5 * TIME_UNIT, proxy=proxy.url
    )
    try:
        assert transport.leftover == b"early bytes"
        assert transport.proxy == proxy.url
    finally:
        transport.sock.close()


def test_bytes_after_response_fed_to_tls(lomond_tls_server, tunnel_proxy_factory):
    # A TLS alert (handshake_failure) sent right after the 200 header block:
    # if lomond dropped it, the handshake with the real server would succeed.
    alert = b"\x15\x03\x03\x00\x02\x02\x28"
    proxy = tunnel_proxy_factory(after_response=alert)
    with pytest.raises(ConnectFail) as caught:
        open_transport(
            parse_url(lomond_tls_server.url),
            TLSOptions(cafile=lomond_tls_server.ca_file),
            5 * TIME_UNIT,
            proxy=proxy.url,
        )
    assert "handshake failure" in str(caught.value).replace("_", " ")


@pytest.mark.parametrize(
    "status_line",
    [b"HTTP/1.1 200 Connection established", b"HTTP/1.0 200 OK", b"HTTP/1.1 200"],
)
def test_proxy_status_lines_accepted(status_line):
    # A scripted proxy: it reads the CONNECT request, answers, then echoes.
    import gevent.server

    def serve(sock, address):
        with gevent.Timeout(5 * TIME_UNIT, False):
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(4096)
                if not chunk:
                    return
                head += chunk
            sock.sendall(status_line + b"\r\nProxy-Agent: test\r\n\r\n")
            sock.sendall(sock.recv(4096))
        sock.close()

    server = gevent.server.StreamServer(("127.0.0.1", 0), serve)
    server.start()
    try:
        transport = open_transport(
            parse_url("ws://example.com/"),
            TLSOptions(),
            5 * TIME_UNIT,
            proxy=f"http://127.0.0.1:{server.address[1]}",
        )
        transport.sock.sendall(b"ping")
        assert transport.sock.recv(16) == b"ping"
        transport.sock.close()
    finally:
        server.stop(timeout=1)
