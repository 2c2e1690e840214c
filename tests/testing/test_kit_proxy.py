"""The in-process HTTP CONNECT proxy."""

from __future__ import annotations

import base64

import pytest
from kit_raw import RawClient
from lomond.testing import ConnectProxy, WaitTimeout
from lomond.testing.frames import OP_TEXT
from lomond.testing.waits import scaled


class ProxiedClient(RawClient):
    """A RawClient connected to the proxy, which requests a tunnel before the handshake."""

    def __init__(self, proxy_port: int) -> None:
        super().__init__(proxy_port)

    def connect_to(self, target: str, headers: list[tuple[str, str]] = ()) -> int:
        lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
        lines += [f"{name}: {value}" for name, value in headers]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return self.read_head()[0]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_proxy_tunnels_to_server(lomond_proxy, lomond_server):
    with ProxiedClient(lomond_proxy.port) as client:
        assert client.connect_to(f"127.0.0.1:{lomond_server.port}") == 200
        client.handshake()
        client.send_frame(OP_TEXT, b"through")
        assert client.recv_frame().payload == b"through"
    request = lomond_proxy.next_request()
    assert request.method == "CONNECT"
    assert request.target == f"127.0.0.1:{lomond_server.port}"
    assert request.status == 200


def test_proxy_basic_auth(lomond_proxy_factory, lomond_server):
    proxy = lomond_proxy_factory(auth=("user", "secret"))
    target = f"127.0.0.1:{lomond_server.port}"
    with ProxiedClient(proxy.port) as client:
        assert client.connect_to(target) == 407
        assert client.recv_all() == b""
    with ProxiedClient(proxy.port) as client:
        assert client.connect_to(target, [("Proxy-Authorization", basic("user", "wrong"))]) == 407
    with ProxiedClient(proxy.port) as client:
        assert client.connect_to(target, [("Proxy-Authorization", basic("user", "secret"))]) == 200
        client.handshake()
    assert [r.authorized for r in proxy.requests] == [False, False, True]
    assert "secret" not in repr(proxy.requests[2])
    assert proxy.url == f"http://127.0.0.1:{proxy.port}"
    assert proxy.url_with_credentials("u", "p") == f"http://u:p@127.0.0.1:{proxy.port}"


def test_proxy_407_challenge_header(lomond_proxy_factory):
    proxy = lomond_proxy_factory(status=407)
    with ProxiedClient(proxy.port) as client:
        client.sock.sendall(b"CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n")
        status, headers, _ = client.read_head()
    assert status == 407
    assert headers["proxy-authenticate"].startswith("Basic ")


def test_proxy_forced_403(lomond_proxy_factory):
    proxy = lomond_proxy_factory(status=403)
    with ProxiedClient(proxy.port) as client:
        assert client.connect_to("127.0.0.1:1") == 403


def test_proxy_refuses_non_loopback(lomond_proxy):
    with ProxiedClient(lomond_proxy.port) as client:
        assert client.connect_to("example.org:443") == 403


def test_proxy_502_when_target_closed(lomond_proxy):
    # Port 1 on loopback has no listener, so the connect is refused.
    with ProxiedClient(lomond_proxy.port) as client:
        assert client.connect_to("127.0.0.1:1") == 502


def test_proxy_405_for_other_methods(lomond_proxy):
    with ProxiedClient(lomond_proxy.port) as client:
        client.sock.sendall(b"GET http://127.0.0.1/ HTTP/1.1\r\n\r\n")
        assert client.read_head()[0] == 405


def test_proxy_broken_answer(lomond_proxy_factory):
    proxy = lomond_proxy_factory(answer=b"HTTP/1.1 2")
    with ProxiedClient(proxy.port) as client:
        client.sock.sendall(b"CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n")
        assert client.recv_all() == b"HTTP/1.1 2"


def test_proxy_slow_answer(lomond_proxy_factory, lomond_server):
    proxy = lomond_proxy_factory(delay=scaled(0.3))
    with ProxiedClient(proxy.port) as client:
        client.sock.sendall(f"CONNECT 127.0.0.1:{lomond_server.port} HTTP/1.1\r\n\r\n".encode())
        with pytest.raises(TimeoutError):
            client.read_head(timeout=scaled(0.1))
        assert client.read_head()[0] == 200


def test_proxy_next_request_timeout(lomond_proxy):
    with pytest.raises(WaitTimeout, match="proxy request"):
        lomond_proxy.next_request(timeout=scaled(0.1))


def test_proxy_stop_closes_tunnels(lomond_server):
    proxy = ConnectProxy().start()
    client = ProxiedClient(proxy.port)
    assert client.connect_to(f"127.0.0.1:{lomond_server.port}") == 200
    client.handshake()
    proxy.stop()
    assert client.is_closed_by_peer()
    client.close()
    assert proxy.leaks() == []
