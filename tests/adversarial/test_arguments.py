"""Bad arguments: each must raise a clear, specific error, early and without freezing the process."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import gevent
import pytest

from lomond import WebSocket
from lomond.errors import InvalidURL, UsageError, WebSocketUnavailable
from lomond.testing import Server, steps

from .conftest import assert_one_disconnected, collect
from .rawserver import RawServer

URL = "ws://127.0.0.1:9/"


@pytest.mark.parametrize(
    "url",
    [
        "ws://",
        "ws://:80",
        "ws://host:99999",
        "ws://[::1",
        "http://host/",
        "ws://ho st/",
        "ws://host:0",
    ],
)
def test_url_invalid_raises_invalid_url(url: str) -> None:
    with pytest.raises(InvalidURL):
        WebSocket(url)


def test_url_password_with_at_sign() -> None:
    websocket = WebSocket("wss://user:pa@ss@host/")

    assert websocket.host == "host"
    assert websocket.parsed_url.password == "pa@ss"
    assert "pa@ss" not in repr(websocket)


def test_url_unicode_host_uses_idna() -> None:
    websocket = WebSocket("ws://\u2603.example/")

    assert websocket.host == "xn--n3h.example"


def test_url_error_hides_password_with_slash() -> None:
    with pytest.raises(InvalidURL) as caught:
        WebSocket("ws://user:se/cret@host/")

    assert "se/cret" not in str(caught.value)
    assert "cret" not in str(caught.value)


@pytest.mark.parametrize(
    "options",
    [
        {"agent": "lomond\r\nX-Injected: 1"},
        {"agent": 5},
        {"origin": "http://a\r\nX-Injected: 1"},
        {"protocols": ["chat\r\nX-Injected: 1"]},
        {"headers": {"Host": "evil.example"}},
        {"headers": {"Sec-WebSocket-Key": "AAAAAAAAAAAAAAAAAAAAAA=="}},
    ],
    ids=[
        "agent-crlf",
        "agent-int",
        "origin-crlf",
        "protocol-crlf",
        "header-host",
        "header-key",
    ],
)
def test_constructor_rejects_bad_header_input(options: dict) -> None:
    with pytest.raises(UsageError):
        WebSocket(URL, **options)


def test_bad_header_input_not_reported_as_lomond_bug(debug_logs: list[str]) -> None:
    """Whatever the timing of the check, bad user input is not an internal error."""
    with Server([steps.accept(), steps.close(1000)]) as server:
        try:
            websocket = WebSocket(
                server.url, proxies={}, agent="lomond\r\nX-Injected: 1"
            )
        except UsageError:
            return
        found = collect(websocket)

    assert_one_disconnected(found)
    assert "internal error" not in found[-1].reason
    assert not [line for line in debug_logs if "lomond bug" in line]


def test_callable_headers_bad_value_not_internal_error(debug_logs: list[str]) -> None:
    with Server([steps.accept(), steps.close(1000)]) as server:
        websocket = WebSocket(
            server.url, proxies={}, headers=lambda: {"X-Token": "a\r\nb"}
        )
        found = collect(websocket)

    assert_one_disconnected(found)
    assert "internal error" not in found[-1].reason
    assert not [line for line in debug_logs if "lomond bug" in line]


def test_protocols_str_not_split_into_letters() -> None:
    try:
        websocket = WebSocket(URL, protocols="chat")
    except (UsageError, TypeError):
        return

    assert websocket.protocols == ["chat"]


def test_headers_str_gives_clear_error() -> None:
    with pytest.raises(UsageError) as caught:
        WebSocket(URL, headers="abc")

    assert "header" in str(caught.value)


@pytest.mark.parametrize("name", ["connect_timeout", "handshake_timeout"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_constructor_rejects_non_finite_timeout(name: str, value: float) -> None:
    with pytest.raises(UsageError):
        WebSocket(URL, **{name: value})


def test_nan_handshake_timeout_never_hangs() -> None:
    with Server([steps.never_answer()]) as server:
        try:
            websocket = WebSocket(
                server.url, proxies={}, handshake_timeout=float("nan")
            )
        except UsageError:
            return
        found = collect(websocket, timeout=2)

    assert_one_disconnected(found)


@pytest.mark.parametrize("name", ["poll", "ping_rate", "ping_timeout", "close_timeout"])
def test_connect_rejects_nan(name: str) -> None:
    with pytest.raises(UsageError):
        WebSocket(URL).connect(**{name: float("nan")})


_POLL_NAN_SCRIPT = textwrap.dedent(
    """
    import gevent
    from lomond import WebSocket
    from lomond.errors import UsageError
    from lomond.testing import Server, steps

    with Server([steps.accept(), steps.delay(0.2), steps.close(1000)]) as server:
        websocket = WebSocket(server.url, proxies={})
        try:
            events = websocket.connect(poll=float("nan"), ping_rate=0)
        except UsageError:
            raise SystemExit(0)
        with gevent.Timeout(1, False):
            for event in events:
                pass
    """
)


def test_poll_nan_does_not_freeze_process() -> None:
    try:
        result = subprocess.run(
            [sys.executable, "-c", _POLL_NAN_SCRIPT],
            timeout=4,
            capture_output=True,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the process hung for 4s with connect(poll=nan)")

    assert result.returncode == 0, result.stderr.decode()[-500:]


def test_send_before_connect_raises_unavailable() -> None:
    websocket = WebSocket(URL)

    with pytest.raises(WebSocketUnavailable):
        websocket.send_text("early")
    with pytest.raises(WebSocketUnavailable):
        websocket.send_ping(b"early")
    websocket.close()


def _open_and(action, timeout: float = 5.0):
    """Run ``action(websocket)`` on the Ready event of an echo connection, and return what it raised."""
    outcome = []
    with Server([steps.accept(), steps.echo()]) as server:
        websocket = WebSocket(server.url, proxies={})
        with gevent.Timeout(timeout):
            for event in websocket.connect(poll=0, ping_rate=0, close_timeout=1):
                if event.name == "ready":
                    try:
                        action(websocket)
                    except Exception as error:  # noqa: BLE001 - the test checks its type
                        outcome.append(error)
                    websocket.close()
    return outcome[0] if outcome else None


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (lambda ws: ws.send_ping(b"x" * 126), ValueError),
        (lambda ws: ws.send_ping("text"), TypeError),
        (lambda ws: ws.send_binary("text"), TypeError),
        (lambda ws: ws.close(999), ValueError),
        (lambda ws: ws.close(1005), ValueError),
        (lambda ws: ws.close(5000), ValueError),
        (lambda ws: ws.close(1000, "x" * 124), ValueError),
    ],
    ids=[
        "ping-126",
        "ping-str",
        "binary-str",
        "close-999",
        "close-1005",
        "close-5000",
        "reason-124",
    ],
)
def test_send_bad_argument_raises(action, expected) -> None:
    error = _open_and(action)

    assert isinstance(error, expected), repr(error)


def test_close_str_code_names_argument() -> None:
    error = _open_and(lambda ws: ws.close("1000"))

    assert isinstance(error, (TypeError, ValueError)), repr(error)
    assert "code" in str(error)


def test_close_int_reason_raises_type_error() -> None:
    error = _open_and(lambda ws: ws.close(1000, 5))

    assert isinstance(error, TypeError), repr(error)


def test_trace_callable_error_not_lomond_bug(debug_logs: list[str]) -> None:
    def trace(record: dict) -> None:
        raise ZeroDivisionError("from the trace callable")

    with Server([steps.accept(), steps.close(1000)]) as server:
        websocket = WebSocket(server.url, proxies={}, trace=trace)
        try:
            found = collect(websocket)
        except ZeroDivisionError:
            return

    assert not [line for line in debug_logs if "lomond bug" in line]
    assert "internal error" not in found[-1].reason


def test_ipv6_connect_fail_brackets_address() -> None:
    found = collect(WebSocket("ws://[::1]:1/", proxies={}))

    assert_one_disconnected(found)
    assert "[::1]:1" in found[-1].reason


def _stall(sock) -> None:
    gevent.sleep(2)


@pytest.mark.parametrize(
    "options",
    [
        {"proxies": "http://127.0.0.1:1"},
        {"proxies": [1]},
        {"proxies": {"https": 5}},
        {"unix_socket": 5},
        {"ssl_context": "not a context"},
    ],
    ids=[
        "proxies-str",
        "proxies-list",
        "proxy-url-int",
        "unix-socket-int",
        "ssl-context-str",
    ],
)
def test_wrong_type_option_gives_clear_error(
    options: dict, debug_logs: list[str]
) -> None:
    with RawServer(_stall) as server:
        url = server.url.replace("ws://", "wss://")
        try:
            websocket = WebSocket(url, **options)
        except (UsageError, TypeError):
            return
        found = collect(websocket)

    assert_one_disconnected(found)
    assert "internal error" not in found[-1].reason
    assert not [line for line in debug_logs if "lomond bug" in line]
