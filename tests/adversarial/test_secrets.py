"""No credential may appear in a log record, repr, event, exception message or trace record."""

from __future__ import annotations

import socket
from typing import Any

import gevent
import pytest

from lomond import WebSocket
from lomond.testing import Server, steps

from .conftest import assert_one_disconnected, collect

SECRETS = ("s3cretPW", "TOKEN123", "COOKIE9", "PXsecret")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def leaked(texts: list[str]) -> list[str]:
    return [text for text in texts for secret in SECRETS if secret in text]


def event_texts(found: list[Any]) -> list[str]:
    texts = []
    for event in found:
        texts.append(repr(event))
        for name in ("reason", "url", "proxy", "error"):
            texts.append(str(getattr(event, name, "")))
    return texts


def test_credentials_absent_from_logs_events_reprs(debug_logs: list[str]) -> None:
    traces: list[dict] = []
    seen: list[str] = []
    with Server(
        [steps.accept(), steps.send_text("x"), steps.expect_text(), steps.close(1000)]
    ) as server:
        url = server.url.replace("ws://", "ws://alice:s3cretPW@")
        websocket = WebSocket(
            url,
            proxies={},
            headers={"Authorization": "Bearer TOKEN123"},
            trace=traces.append,
        )
        websocket.add_header(b"Cookie", b"sid=COOKIE9")
        found = []
        with gevent.Timeout(5):
            for event in websocket.connect(poll=0, ping_rate=0):
                found.append(event)
                if event.name == "text":
                    websocket.send_text("y")
                    seen += [
                        repr(websocket),
                        repr(websocket.session),
                        repr(websocket.parsed_url),
                    ]

    assert_one_disconnected(found)
    assert leaked(debug_logs) == []
    assert leaked(event_texts(found)) == []
    assert leaked(seen) == []
    assert leaked([repr(record) for record in traces]) == []


@pytest.mark.parametrize("scheme", ["http", "socks5"])
def test_proxy_credentials_absent_when_proxy_down(
    scheme: str, debug_logs: list[str]
) -> None:
    proxy = f"{scheme}://bob:PXsecret@127.0.0.1:{free_port()}"
    websocket = WebSocket(
        "ws://127.0.0.1:9/", proxies={"http": proxy, "https": proxy}, trace=True
    )
    found = collect(websocket)

    assert_one_disconnected(found)
    assert leaked(debug_logs) == []
    assert leaked(event_texts(found)) == []
    assert leaked([repr(websocket)]) == []


def test_proxy_password_with_slash_absent(debug_logs: list[str]) -> None:
    proxy = "http://bob:PX/secret@127.0.0.1:1"
    websocket = WebSocket("ws://127.0.0.1:9/", proxies={"http": proxy}, trace=True)
    found = collect(websocket)
    texts = debug_logs + event_texts(found)

    assert_one_disconnected(found)
    assert [text for text in texts if "PX/secret" in text] == []
