"""SOCKS4, SOCKS4a, SOCKS5 and SOCKS5h proxies through python-socks, against a loopback SOCKS server."""

from __future__ import annotations

import sys

import gevent
import pytest

from lomond import WebSocket
from lomond.testing import TIME_UNIT

from .conftest import first, names, run

pytest.importorskip("python_socks")


def test_socks5_without_auth(lomond_server, socks_proxy_factory):
    proxy = socks_proxy_factory()
    seen = run(WebSocket(lomond_server.url, proxies={"http": proxy.url("socks5")}))
    assert names(seen)[:3] == ["connecting", "connected", "ready"]
    assert first(seen, "connected").proxy == proxy.url("socks5")
    assert proxy.requests == [(5, "127.0.0.1", lomond_server.port)]


def test_socks5_with_auth(lomond_server, socks_proxy_factory):
    proxy = socks_proxy_factory(auth=("alice", "s3cret"))
    url = proxy.url("socks5", credentials=("alice", "s3cret"))
    seen = run(WebSocket(lomond_server.url, proxies={"http": url}))
    assert "ready" in names(seen)
    assert proxy.usernames == ["alice"]
    assert first(seen, "connected").proxy == proxy.url("socks5")


def test_socks5_wrong_password(lomond_server, socks_proxy_factory):
    proxy = socks_proxy_factory(auth=("alice", "s3cret"))
    url = proxy.url("socks5", credentials=("alice", "wrong"))
    seen = run(WebSocket(lomond_server.url, proxies={"http": url}))
    reason = first(seen, "connect_fail").reason
    assert "rejected the user name and password" in reason
    assert "wrong" not in reason


def test_socks5_auth_required(lomond_server, socks_proxy_factory):
    proxy = socks_proxy_factory(auth=("alice", "s3cret"))
    seen = run(WebSocket(lomond_server.url, proxies={"http": proxy.url("socks5")}))
    reason = first(seen, "connect_fail").reason
    assert f"SOCKS proxy {proxy.url('socks5')}" in reason
    assert names(seen)[-1] == "disconnected"


def test_socks5_resolves_locally(lomond_server, socks_proxy_factory):
    proxy = socks_proxy_factory()
    url = f"ws://localhost:{lomond_server.port}/"
    seen = run(WebSocket(url, proxies={"http": proxy.url("socks5")}))
    assert "ready" in names(seen)
    assert proxy.requests == [(5, "127.0.0.1", lomond_server.port)]


def test_socks5h_sends_host_name(lomond_server, socks_proxy_factory):
    proxy = socks_proxy_factory()
    url = f"ws://localhost:{lomond_server.port}/"
    seen = run(WebSocket(url, proxies={"http": proxy.url("socks5h")}))
    assert "ready" in names(seen)
    assert proxy.requests == [(5, "localhost", lomond_server.port)]


def test_socks4_sends_address(lomond_server, socks_proxy_factory):
    proxy = socks_proxy_factory()
    url = f"ws://localhost:{lomond_server.port}/"
    seen = run(WebSocket(url, proxies={"http": proxy.url("socks4")}))
    assert "ready" in names(seen)
    assert proxy.requests == [(4, "127.0.0.1", lomond_server.port)]


def test_socks4a_sends_host_name(lomond_server, socks_proxy_factory):
    proxy = socks_proxy_factory()
    url = f"ws://localhost:{lomond_server.port}/"
    seen = run(WebSocket(url, proxies={"http": proxy.url("socks4a")}))
    assert "ready" in names(seen)
    assert proxy.requests == [(4, "localhost", lomond_server.port)]


def test_socks4_refuses_ipv6_literal(socks_proxy_factory):
    proxy = socks_proxy_factory()
    seen = run(WebSocket("ws://[::1]:9/", proxies={"http": proxy.url("socks4")}))
    assert "SOCKS4 carries only IPv4" in first(seen, "connect_fail").reason


def test_socks5_refused_target(socks_proxy_factory):
    # The test proxy tunnels only to loopback; it refuses 192.0.2.1 (TEST-NET-1).
    proxy = socks_proxy_factory()
    seen = run(WebSocket("ws://192.0.2.1:9/", proxies={"http": proxy.url("socks5")}))
    reason = first(seen, "connect_fail").reason
    assert "refused the connection to 192.0.2.1:9" in reason


def test_wss_through_socks5(lomond_tls_server, socks_proxy_factory):
    proxy = socks_proxy_factory(auth=("alice", "s3cret"))
    websocket = WebSocket(
        lomond_tls_server.url,
        proxies={"https": proxy.url("socks5", credentials=("alice", "s3cret"))},
        ssl_cafile=lomond_tls_server.ca_file,
    )
    seen = run(websocket)
    assert "ready" in names(seen)


def test_socks_handshake_is_cooperative(lomond_server, socks_proxy_factory):
    # While the proxy delays its reply, other greenlets keep running.
    proxy = socks_proxy_factory(reply_delay=0.3 * TIME_UNIT)
    ticks = []

    def tick():
        for _ in range(200):
            ticks.append(1)
            gevent.sleep(0.01 * TIME_UNIT)

    ticker = gevent.spawn(tick)
    try:
        seen = run(WebSocket(lomond_server.url, proxies={"http": proxy.url("socks5")}))
    finally:
        ticker.kill()
    assert "ready" in names(seen)
    assert len(ticks) >= 10


def test_socks_proxy_never_replies(lomond_server, socks_proxy_factory):
    proxy = socks_proxy_factory(never_reply=True)
    websocket = WebSocket(
        lomond_server.url, proxies={"http": proxy.url("socks5")}, connect_timeout=0.5 * TIME_UNIT
    )
    seen = run(websocket)
    reason = first(seen, "connect_fail").reason
    assert "within 0.5s" in reason or f"within {0.5 * TIME_UNIT:g}s" in reason


def test_socks_proxy_refused_port(lomond_server):
    import socket

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    seen = run(WebSocket(lomond_server.url, proxies={"http": f"socks5://127.0.0.1:{port}"}))
    assert "connection to SOCKS proxy socks5://127.0.0.1" in first(seen, "connect_fail").reason


def test_socks_missing_extra(lomond_server, monkeypatch):
    # A None entry in sys.modules makes "import python_socks" raise ImportError.
    monkeypatch.setitem(sys.modules, "python_socks", None)
    seen = run(WebSocket(lomond_server.url, proxies={"http": "socks5://127.0.0.1:1080"}))
    assert "pip install lomond[socks]" in first(seen, "connect_fail").reason


def test_socks5_under_monkey_patching():
    # With gevent's monkey-patching the handshake runs in the calling
    # greenlet instead of the thread pool; a subprocess keeps the patching
    # out of this test process.
    import subprocess
    from pathlib import Path

    import gevent.subprocess

    script = f"""
from gevent import monkey
monkey.patch_all()
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from conftest import SocksProxy, names, run
from lomond import WebSocket
from lomond.testing import Server

with Server() as server:
    proxy = SocksProxy()
    seen = run(WebSocket(server.url, proxies={{"http": proxy.url("socks5")}}))
    proxy.stop()
print(names(seen))
"""
    result = gevent.subprocess.run(
        [sys.executable, "-c", script],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30 * TIME_UNIT,
    )
    assert result.returncode == 0, result.stderr
    assert "'ready'" in result.stdout
