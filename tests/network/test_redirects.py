"""Redirects of the opening handshake: which are followed, where to, and with which credentials."""

from __future__ import annotations

import base64

import pytest

from lomond import WebSocket
from lomond.errors import HandshakeError, UsageError
from lomond.net import resolve_redirect
from lomond.protocol.url import parse_url
from lomond.testing import steps

from .conftest import first, names, run

ACCEPT = [steps.accept(), steps.close(1000)]


def request_paths(server):
    return [transcript.request.target for transcript in server.transcripts if transcript.request]


def request_header(server, number, name):
    request = server.transcripts[number].request
    values = [value for key, value in request.headers if key.lower() == name.lower()]
    return values[0] if values else None


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_status_followed(lomond_server_factory, status):
    server = lomond_server_factory(routes={"/old": [steps.redirect("/new", status)], "/new": ACCEPT})
    seen = run(WebSocket(server.url_for("/old")))
    assert names(seen)[:3] == ["connecting", "connected", "ready"]
    assert "rejected" not in names(seen)
    assert request_paths(server) == ["/old", "/new"]


def test_redirect_relative_location(lomond_server_factory):
    server = lomond_server_factory(
        routes={"/a/b": [steps.redirect("c?x=1")], "/a/c": ACCEPT}
    )
    seen = run(WebSocket(server.url_for("/a/b")))
    assert "ready" in names(seen)
    assert request_paths(server) == ["/a/b", "/a/c?x=1"]


def test_redirect_absolute_location(lomond_server_factory):
    target = lomond_server_factory(routes={"/there": ACCEPT})
    origin = lomond_server_factory(routes={"/": [steps.redirect(target.url_for("/there"))]})
    seen = run(WebSocket(origin.url))
    assert "ready" in names(seen)
    assert request_paths(target) == ["/there"]


def test_redirect_http_scheme_location(lomond_server_factory):
    server = lomond_server_factory(routes={"/old": [steps.redirect("/new")], "/new": ACCEPT})
    location = server.url_for("/new").replace("ws://", "http://")
    server.route("/old", [steps.redirect(location)])
    seen = run(WebSocket(server.url_for("/old")))
    assert "ready" in names(seen)


def test_redirect_chain_within_limit(lomond_server_factory):
    routes = {f"/{hop}": [steps.redirect(f"/{hop + 1}")] for hop in range(5)}
    routes["/5"] = ACCEPT
    server = lomond_server_factory(routes=routes)
    seen = run(WebSocket(server.url_for("/0")))
    assert "ready" in names(seen)
    assert request_paths(server) == [f"/{hop}" for hop in range(6)]


def test_redirect_limit_exceeded(lomond_server_factory):
    routes = {f"/{hop}": [steps.redirect(f"/{hop + 1}")] for hop in range(6)}
    routes["/6"] = ACCEPT
    server = lomond_server_factory(routes=routes)
    seen = run(WebSocket(server.url_for("/0")))
    rejected = first(seen, "rejected")
    assert rejected.response.status_code == 302
    assert "max_redirects is 5" in rejected.reason
    assert names(seen)[-1] == "disconnected"
    assert "max_redirects is 5" in seen[-1].reason
    assert len(request_paths(server)) == 6


def test_redirect_limit_settable(lomond_server_factory):
    routes = {"/0": [steps.redirect("/1")], "/1": [steps.redirect("/2")], "/2": ACCEPT}
    server = lomond_server_factory(routes=routes)
    seen = run(WebSocket(server.url_for("/0"), max_redirects=1))
    assert "max_redirects is 1" in first(seen, "rejected").reason
    assert request_paths(server) == ["/0", "/1"]


def test_redirects_off(lomond_server_factory):
    server = lomond_server_factory(routes={"/old": [steps.redirect("/new")], "/new": ACCEPT})
    seen = run(WebSocket(server.url_for("/old"), max_redirects=0))
    rejected = first(seen, "rejected")
    assert rejected.response.status_code == 302
    assert rejected.response.get("location") == "/new"
    assert "not followed" in rejected.reason
    assert request_paths(server) == ["/old"]


@pytest.mark.parametrize("value", [-1, 1.5, "5"])
def test_max_redirects_invalid(value):
    with pytest.raises(UsageError):
        WebSocket("ws://127.0.0.1/", max_redirects=value)


def test_redirect_without_location_rejected(lomond_server_factory):
    server = lomond_server_factory([steps.reject(302)])
    seen = run(WebSocket(server.url))
    assert first(seen, "rejected").response.status_code == 302
    assert len(server.transcripts) == 1


def test_redirect_downgrade_refused(lomond_server_factory):
    plain = lomond_server_factory(ACCEPT)
    secure = lomond_server_factory([steps.redirect(plain.url)], tls=True)
    seen = run(WebSocket(secure.url, ssl_cafile=secure.ca_file))
    rejected = first(seen, "rejected")
    assert "wss:// for ws://" in rejected.reason
    assert plain.transcripts == []


def test_redirect_upgrade_to_wss(lomond_server_factory):
    secure = lomond_server_factory(ACCEPT, tls=True)
    plain = lomond_server_factory([steps.redirect(secure.url)])
    seen = run(WebSocket(plain.url, ssl_cafile=secure.ca_file))
    assert "ready" in names(seen)


def test_redirect_invalid_location(lomond_server_factory):
    server = lomond_server_factory([steps.redirect("ftp://127.0.0.1/file")])
    seen = run(WebSocket(server.url))
    assert "invalid redirect Location" in first(seen, "rejected").reason


def test_redirect_target_unreachable(lomond_server_factory):
    import socket

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    server = lomond_server_factory([steps.redirect(f"ws://127.0.0.1:{port}/")])
    seen = run(WebSocket(server.url))
    assert names(seen)[-2:] == ["connect_fail", "disconnected"]
    assert f"127.0.0.1:{port}" in first(seen, "connect_fail").reason


def test_redirect_hops_traced(lomond_server_factory):
    routes = {"/0": [steps.redirect("/1", 301)], "/1": [steps.redirect("/2", 307)], "/2": ACCEPT}
    server = lomond_server_factory(routes=routes)
    records = []
    run(WebSocket(server.url_for("/0"), trace=records.append))
    hops = [record for record in records if record["stage"] == "redirect"]
    assert [hop["hop"] for hop in hops] == [1, 2]
    assert [hop["status"] for hop in hops] == [301, 307]
    assert [hop["location"] for hop in hops] == [server.url_for("/1"), server.url_for("/2")]


# --- credentials ------------------------------------------------------------------------


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_redirect_same_host_keeps_credentials(lomond_server_factory):
    server = lomond_server_factory(routes={"/old": [steps.redirect("/new")], "/new": ACCEPT})
    url = server.url_for("/old").replace("ws://", "ws://alice:s3cret@")
    seen = run(WebSocket(url, headers={"Cookie": "session=1"}))
    assert "ready" in names(seen)
    assert request_header(server, 1, "Authorization") == basic("alice", "s3cret")
    assert request_header(server, 1, "Cookie") == "session=1"


def test_redirect_other_host_drops_credentials(lomond_server_factory):
    # "localhost" and "127.0.0.1" are different hosts, though both are loopback.
    target = lomond_server_factory(ACCEPT)
    origin = lomond_server_factory([steps.redirect(f"ws://localhost:{target.port}/")])
    url = origin.url.replace("ws://", "ws://alice:s3cret@")
    websocket = WebSocket(
        url,
        headers={"Cookie": "session=1", "Authorization": "Bearer token", "X-Trace": "kept"},
    )
    seen = run(websocket)
    assert "ready" in names(seen)
    assert request_header(origin, 0, "Authorization") is not None
    assert request_header(target, 0, "Authorization") is None
    assert request_header(target, 0, "Cookie") is None
    assert request_header(target, 0, "X-Trace") == "kept"


def test_redirect_other_port_drops_credentials(lomond_server_factory):
    target = lomond_server_factory(ACCEPT)
    origin = lomond_server_factory([steps.redirect(target.url)])
    url = origin.url.replace("ws://", "ws://alice:s3cret@")
    seen = run(WebSocket(url))
    assert "ready" in names(seen)
    assert request_header(target, 0, "Authorization") is None


def test_redirect_location_credentials_used(lomond_server_factory):
    target = lomond_server_factory(ACCEPT)
    origin = lomond_server_factory([steps.redirect(f"ws://bob:pw@localhost:{target.port}/")])
    seen = run(WebSocket(origin.url))
    assert "ready" in names(seen)
    assert request_header(target, 0, "Authorization") == basic("bob", "pw")


# --- resolving Location ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "location", "expected"),
    [
        ("ws://h/a/b", "c", "ws://h/a/c"),
        ("ws://h/a/b", "/c?q=1", "ws://h/c?q=1"),
        ("ws://h:8080/a", "../x", "ws://h:8080/x"),
        ("ws://h/a", "//other/p", "ws://other/p"),
        ("ws://h/a", "wss://other:444/p", "wss://other:444/p"),
        ("ws://h/a", "https://other/p", "wss://other/p"),
        ("wss://h/a", "http://h/", None),
        ("wss://h/a", "ws://h/", None),
        ("ws://h/a", "mailto:x@y", None),
        ("ws://h/a", "ws+unix:///tmp/s", None),
        ("ws://h/a", "ws://other:0/", None),
        ("ws://[::1]:9/a", "b", "ws://[::1]:9/b"),
    ],
)
def test_resolve_redirect(current, location, expected):
    if expected is None:
        with pytest.raises(HandshakeError):
            resolve_redirect(parse_url(current), location)
    else:
        assert resolve_redirect(parse_url(current), location).safe_url == expected


def test_resolve_redirect_unix_socket_relative():
    current = parse_url("ws+unix:///tmp/app.sock:/feed")
    target = resolve_redirect(current, "/other")
    assert target.unix_socket == "/tmp/app.sock"
    assert target.resource == "/other"


def test_redirect_chain_never_returns_credentials(lomond_server_factory):
    # After leaving the original host, a further hop on the new host must
    # not pick the credentials up again.
    target = lomond_server_factory(
        routes={"/first": [steps.redirect("/second")], "/second": ACCEPT}
    )
    origin = lomond_server_factory([steps.redirect(f"ws://localhost:{target.port}/first")])
    url = origin.url.replace("ws://", "ws://alice:s3cret@")
    websocket = WebSocket(url, headers={"Authorization": "Bearer token", "Cookie": "session=1"})
    seen = run(websocket)
    assert "ready" in names(seen)
    assert request_paths(target) == ["/first", "/second"]
    for number in (0, 1):
        assert request_header(target, number, "Authorization") is None
        assert request_header(target, number, "Cookie") is None
