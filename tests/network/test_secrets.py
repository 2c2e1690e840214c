"""Credentials from URLs, proxies and headers never reach a log record, a repr, a trace record or an event."""

from __future__ import annotations

import base64
import logging

import pytest

from lomond import WebSocket
from lomond.errors import InvalidURL
from lomond.testing import steps

from .conftest import names, run

URL_SECRET = "url-secret-5f1c"
PROXY_SECRET = "proxy-secret-9a2e"
HEADER_SECRET = "header-secret-77d0"
COOKIE_SECRET = "cookie-secret-c3b8"


def secret_forms():
    """Each secret, and the base64 forms that Basic authentication sends."""
    forms = [URL_SECRET, PROXY_SECRET, HEADER_SECRET, COOKIE_SECRET]
    for user, password in (("alice", URL_SECRET), ("bob", PROXY_SECRET)):
        forms.append(base64.b64encode(f"{user}:{password}".encode()).decode())
    return forms


def everything_shown(websocket, seen, records, caplog):
    """Return the text of every log record, trace record, event and repr of the connection."""
    texts = []
    for record in caplog.records:
        texts.append(record.getMessage())
        texts.append(repr(record.args))
    texts += [repr(record) for record in records]
    for event in seen:
        texts.append(repr(event))
        texts.append(repr(event.to_dict()))
        texts.append(str(getattr(event, "reason", "")))
    texts.append(repr(websocket))
    texts.append(repr(websocket.parsed_url))
    texts.append(repr(websocket.tls))
    if websocket.session is not None:
        texts.append(repr(websocket.session))
        texts.append(repr(websocket.session.transport))
    return texts


def assert_no_secret(texts):
    for text in texts:
        for secret in secret_forms():
            assert secret not in text, f"secret {secret!r} shown in {text!r}"


@pytest.fixture
def debug_logs(caplog):
    caplog.set_level(logging.DEBUG)
    return caplog


def test_secrets_hidden_through_proxy_and_redirect(lomond_server_factory, lomond_proxy_factory, debug_logs):
    server = lomond_server_factory(
        routes={"/old": [steps.redirect("/new")], "/new": [steps.accept(), steps.close(1000)]}
    )
    proxy = lomond_proxy_factory(auth=("bob", PROXY_SECRET))
    url = server.url_for("/old").replace("ws://", f"ws://alice:{URL_SECRET}@")
    records = []
    websocket = WebSocket(
        url,
        proxies={"http": proxy.url_with_credentials("bob", PROXY_SECRET)},
        headers={"Authorization": f"Bearer {HEADER_SECRET}", "Cookie": f"sid={COOKIE_SECRET}"},
        trace=records.append,
    )
    seen = run(websocket)
    assert "ready" in names(seen)
    # The secrets did reach the server and the proxy, where they belong.
    assert server.transcripts[1].request.headers
    assert proxy.next_request().authorized
    assert_no_secret(everything_shown(websocket, seen, records, debug_logs))


def test_secrets_hidden_when_proxy_rejects(lomond_server, lomond_proxy_factory, debug_logs):
    proxy = lomond_proxy_factory(auth=("bob", "the-right-one"))
    url = lomond_server.url.replace("ws://", f"ws://alice:{URL_SECRET}@")
    records = []
    websocket = WebSocket(
        url,
        proxies={"http": proxy.url_with_credentials("bob", PROXY_SECRET)},
        headers=lambda: {"Authorization": f"Bearer {HEADER_SECRET}"},
        trace=records.append,
    )
    seen = run(websocket)
    assert names(seen)[-2:] == ["connect_fail", "disconnected"]
    assert_no_secret(everything_shown(websocket, seen, records, debug_logs))


def test_secrets_hidden_with_socks(lomond_tls_server, socks_proxy_factory, debug_logs):
    pytest.importorskip("python_socks")
    proxy = socks_proxy_factory(auth=("bob", PROXY_SECRET))
    url = lomond_tls_server.url.replace("wss://", f"wss://alice:{URL_SECRET}@")
    records = []
    websocket = WebSocket(
        url,
        proxies={"https": proxy.url("socks5h", credentials=("bob", PROXY_SECRET))},
        ssl_cafile=lomond_tls_server.ca_file,
        trace=records.append,
    )
    seen = run(websocket)
    assert "ready" in names(seen)
    assert_no_secret(everything_shown(websocket, seen, records, debug_logs))


def test_secrets_hidden_when_server_rejects(lomond_server_factory, debug_logs):
    server = lomond_server_factory([steps.reject(401)])
    url = server.url.replace("ws://", f"ws://alice:{URL_SECRET}@")
    records = []
    websocket = WebSocket(url, headers={"Cookie": f"sid={COOKIE_SECRET}"}, trace=records.append)
    seen = run(websocket)
    assert "rejected" in names(seen)
    assert_no_secret(everything_shown(websocket, seen, records, debug_logs))


def test_secrets_hidden_in_invalid_proxy_message(lomond_server, debug_logs):
    records = []
    websocket = WebSocket(
        lomond_server.url,
        proxies={"http": f"gopher://bob:{PROXY_SECRET}@127.0.0.1:1"},
        trace=records.append,
    )
    seen = run(websocket)
    assert "connect_fail" in names(seen)
    assert_no_secret(everything_shown(websocket, seen, records, debug_logs))


def test_secrets_hidden_in_url_errors():
    with pytest.raises(InvalidURL) as caught:
        WebSocket(f"ws://alice:{URL_SECRET}@example.com:99999/")
    assert URL_SECRET not in str(caught.value)
