"""lomond's own client run through every fault of the test server.

Each test checks the event stream the client produces and, where it
matters, what the server recorded about the client.
"""

from __future__ import annotations

import gevent
import pytest
from lomond import WebSocket
from lomond.testing import steps
from lomond.testing.waits import scaled


def collect(url, on_event=None, client_options=None, **connect_options):
    """Run a client to its end and return (websocket, events)."""
    websocket = WebSocket(url, **(client_options or {}))
    options = {"poll": scaled(5), "ping_rate": 0, "close_timeout": scaled(1)}
    options.update(connect_options)
    events = []
    with gevent.Timeout(scaled(10)):
        for event in websocket.connect(**options):
            events.append(event)
            if on_event is not None:
                on_event(websocket, event)
    assert [e.name for e in events].count("disconnected") == 1
    assert events[-1].name == "disconnected"
    return websocket, events


def names(events):
    return [event.name for event in events if event.name != "poll"]


def close_on_text(websocket, event):
    if event.name in ("text", "binary"):
        websocket.close()


def send_on_ready(*messages):
    def on_event(websocket, event):
        if event.name == "ready":
            for message in messages:
                if isinstance(message, str):
                    websocket.send_text(message)
                else:
                    websocket.send_binary(message)
        close_on_text(websocket, event)

    return on_event


# --- handshake --------------------------------------------------------------


def test_echo_roundtrip_and_close(lomond_server):
    _, events = collect(lomond_server.url, send_on_ready("hello"))
    assert names(events) == ["connecting", "connected", "ready", "text", "closed", "disconnected"]
    assert events[3].text == "hello"
    assert events[-1].graceful
    transcript = lomond_server.next_connection().wait_closed()
    assert transcript.messages[0].masked
    assert transcript.close_code == 1000
    assert transcript.closing_handshake_completed


def test_binary_roundtrip(lomond_server):
    _, events = collect(lomond_server.url, send_on_ready(b"\x00\x01\xff"))
    assert events[3].name == "binary"
    assert events[3].data == b"\x00\x01\xff"


def test_subprotocol_accepted(lomond_server_factory):
    server = lomond_server_factory([steps.accept(subprotocol="chat"), steps.close()])
    _, events = collect(server.url, client_options={"protocols": ["chat", "other"]})
    assert events[2].protocol == "chat"
    assert server.next_connection().request.subprotocols == ["chat", "other"]


def test_extra_headers_reach_client(lomond_server_factory):
    server = lomond_server_factory([steps.accept(headers=[("X-Served-By", "kit")]), steps.close()])
    _, events = collect(server.url)
    assert events[2].response.get("X-Served-By") == "kit"


def test_deflate_roundtrip(lomond_server_factory):
    server = lomond_server_factory([steps.accept(extensions=["permessage-deflate"]), steps.echo()])
    _, events = collect(server.url, send_on_ready("squeeze " * 20), client_options={"compress": True})
    assert "permessage-deflate" in events[2].extensions
    assert events[3].text == "squeeze " * 20
    assert server.next_connection().messages[0].compressed


@pytest.mark.parametrize("status, headers", [(503, [("Retry-After", "3")]), (401, []), (404, [])])
def test_rejected(lomond_server_factory, status, headers):
    server = lomond_server_factory([steps.reject(status, headers=headers, body="no")])
    _, events = collect(server.url)
    assert names(events) == ["connecting", "connected", "rejected", "disconnected"]
    assert events[2].response.status_code == status
    for name, value in headers:
        assert events[2].response.get(name) == value


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirect_followed(lomond_server_factory, status):
    server = lomond_server_factory(routes={"/": [steps.redirect("/target", status)], "/target": steps.ECHO})
    _, events = collect(server.url, send_on_ready("moved"))
    assert names(events) == ["connecting", "connected", "ready", "text", "closed", "disconnected"]
    assert [t.request.path for t in server.transcripts] == ["/", "/target"]


def test_redirect_absolute_location(lomond_server_factory):
    server = lomond_server_factory(routes={"/target": steps.ECHO})
    server.route("/", [steps.redirect(server.url_for("/target"), 307)])
    _, events = collect(server.url, send_on_ready("absolute"))
    assert events[3].text == "absolute"


def test_redirect_loop_rejected(lomond_server_factory):
    server = lomond_server_factory([steps.redirect("/again")])
    _, events = collect(server.url, client_options={"max_redirects": 2})
    assert names(events)[-2:] == ["rejected", "disconnected"]
    assert events[-2].response.get("Location") == "/again"
    assert len(server.transcripts) == 3


def test_redirect_not_followed_when_disabled(lomond_server_factory):
    server = lomond_server_factory([steps.redirect("/elsewhere", 302)])
    _, events = collect(server.url, client_options={"max_redirects": 0})
    assert names(events) == ["connecting", "connected", "rejected", "disconnected"]
    assert events[2].response.status_code == 302


@pytest.mark.parametrize("script", [[steps.never_answer()], [steps.delay(scaled(2)), steps.accept()]], ids=["never", "delay"])
def test_handshake_timeout(lomond_server_factory, script):
    server = lomond_server_factory(script)
    _, events = collect(server.url, client_options={"handshake_timeout": scaled(0.3)})
    assert names(events) == ["connecting", "connected", "connect_fail", "disconnected"]
    assert "timed out" in events[2].reason


@pytest.mark.parametrize(
    "step, words",
    [
        (steps.accept_missing_key(), "Sec-WebSocket-Accept"),
        (steps.accept_wrong_key(), "Sec-WebSocket-Accept"),
        (steps.accept_wrong_upgrade(), "Upgrade"),
        (steps.accept_unoffered_subprotocol(), "subprotocol"),
        (steps.send_garbage(), "HTTP"),
    ],
    ids=["missing-key", "wrong-key", "wrong-upgrade", "unoffered-subprotocol", "garbage"],
)
def test_malformed_answer_rejected(lomond_server_factory, step, words):
    server = lomond_server_factory([step, steps.hold()])
    _, events = collect(server.url)
    assert names(events) == ["connecting", "connected", "rejected", "disconnected"]
    assert words in events[2].reason


def test_frames_in_101_segment_delivered(lomond_server_factory):
    server = lomond_server_factory([steps.accept(messages=["first", b"second"]), steps.close()])
    _, events = collect(server.url)
    assert names(events) == ["connecting", "connected", "ready", "text", "binary", "closing", "disconnected"]


def test_drop_during_handshake(lomond_server_factory):
    server = lomond_server_factory([steps.drop()])
    _, events = collect(server.url)
    assert names(events) == ["connecting", "connected", "connect_fail", "disconnected"]


# --- messages ---------------------------------------------------------------


def test_fragmented_with_ping_inside(lomond_server_factory):
    script = [steps.accept(), steps.send_fragmented("hello world", 3, ping=b"mid"), steps.expect_pong(b"mid"), steps.close()]
    server = lomond_server_factory(script)
    _, events = collect(server.url)
    assert names(events) == ["connecting", "connected", "ready", "ping", "text", "closing", "disconnected"]
    assert events[3].data == b"mid"
    assert events[4].text == "hello world"


def test_fragmented_split_code_point(lomond_server_factory):
    server = lomond_server_factory([steps.accept(), steps.send_fragmented("ça va ✓", 1), steps.close()])
    _, events = collect(server.url)
    assert events[3].text == "ça va ✓"


def test_ping_answered_with_payload(lomond_server_factory):
    server = lomond_server_factory([steps.accept(), steps.ping(b"12345"), steps.expect_pong(b"12345"), steps.close()])
    _, events = collect(server.url)
    assert events[3].name == "ping"
    assert server.next_connection().wait_closed().script_error is None


def test_unsolicited_pong_event(lomond_server_factory):
    server = lomond_server_factory([steps.accept(), steps.pong(b"free"), steps.close()])
    _, events = collect(server.url)
    assert events[3].name == "pong"
    assert events[3].data == b"free"


def test_client_ping_answered(lomond_server_factory):
    server = lomond_server_factory([steps.accept(), steps.expect_ping(), steps.close()])
    _, events = collect(server.url, ping_rate=scaled(0.1), ping_timeout=scaled(2))
    assert "pong" in names(events)


def test_message_over_limit_fails(lomond_server_factory):
    server = lomond_server_factory([steps.accept(), steps.send_large(2000), steps.hold()])
    _, events = collect(server.url, client_options={"max_message_size": 1000})
    assert names(events) == ["connecting", "connected", "ready", "protocol_error", "disconnected"]


def test_long_length_form_accepted(lomond_server_factory):
    # RFC 6455 section 5.2 requires senders to use the shortest length
    # form, but lomond accepts a longer one.
    server = lomond_server_factory([steps.accept(), steps.long_length_form("short"), steps.close()])
    _, events = collect(server.url)
    assert events[3].text == "short"


def test_script_expectations_with_client(lomond_server_factory):
    script = [steps.accept(), steps.expect_text("hi"), steps.send_text("hello back"), steps.expect_close(1000)]
    server = lomond_server_factory(script)
    _, events = collect(server.url, send_on_ready("hi"))
    assert events[3].text == "hello back"
    assert server.next_connection().wait_closed().script_error is None


# --- protocol faults --------------------------------------------------------

PROTOCOL_FAULTS = {
    "invalid-utf8": steps.invalid_utf8(),
    "invalid-utf8-split": steps.invalid_utf8(split=True),
    "rsv1-without-deflate": steps.reserved_bits(rsv1=True, rsv2=False),
    "rsv2": steps.reserved_bits(),
    "rsv3": steps.reserved_bits(rsv2=False, rsv3=True),
    "reserved-data-opcode": steps.reserved_opcode(0x3),
    "reserved-control-opcode": steps.reserved_opcode(0xB),
    "masked-frame": steps.masked_frame(),
    "long-control-frame": steps.long_control_frame(),
    "fragmented-control-frame": steps.fragmented_control_frame(),
    "orphan-continuation": steps.orphan_continuation(),
    "huge-length": steps.huge_length(),
    "close-one-byte": steps.close_one_byte_payload(),
    "close-invalid-reason": steps.close_invalid_reason(),
}
PROTOCOL_FAULTS.update({f"close-code-{code}": steps.close(code) for code in (0, 999, 1004, 1005, 1006, 1015, 2999, 5000)})


@pytest.mark.parametrize("step", PROTOCOL_FAULTS.values(), ids=PROTOCOL_FAULTS.keys())
def test_protocol_fault_fails_connection(lomond_server_factory, step):
    server = lomond_server_factory([steps.accept(), step, steps.hold()])
    _, events = collect(server.url)
    assert names(events) == ["connecting", "connected", "ready", "protocol_error", "disconnected"]
    assert not events[-1].graceful
    server.next_connection().wait_closed()


@pytest.mark.parametrize(
    "step, code",
    [(steps.reserved_opcode(), 1002), (steps.invalid_utf8(), 1007), (steps.send_large(2000), 1009)],
    ids=["1002", "1007", "1009"],
)
def test_protocol_error_sends_close_code(lomond_server_factory, step, code):
    server = lomond_server_factory([steps.accept(), step, steps.hold()])
    collect(server.url, client_options={"max_message_size": 1000})
    transcript = server.next_connection().wait_closed()
    assert transcript.close_code == code


# --- closing ----------------------------------------------------------------


def test_server_close_handshake(lomond_server_factory):
    server = lomond_server_factory([steps.accept(), steps.close(4001, "bye")])
    _, events = collect(server.url)
    assert names(events) == ["connecting", "connected", "ready", "closing", "disconnected"]
    assert (events[3].code, events[3].reason) == (4001, "bye")
    assert events[-1].graceful
    transcript = server.next_connection().wait_closed()
    assert transcript.closing_handshake_completed
    assert transcript.close_code == 4001


def test_close_not_answered_times_out(lomond_server_factory):
    server = lomond_server_factory([steps.accept(), steps.ignore_close(), steps.hold()])

    def close_when_ready(websocket, event):
        if event.name == "ready":
            websocket.close()

    _, events = collect(server.url, close_when_ready, close_timeout=scaled(0.3))
    assert names(events) == ["connecting", "connected", "ready", "disconnected"]
    assert not events[-1].graceful
    assert "close" in events[-1].reason
    assert server.next_connection().close_code == 1000


def test_close_and_drop(lomond_server_factory):
    server = lomond_server_factory([steps.accept(), steps.close_and_drop(1001)])
    _, events = collect(server.url)
    assert names(events)[3] == "closing"
    assert events[3].code == 1001


def test_slow_close_still_graceful(lomond_server_factory):
    server = lomond_server_factory([steps.accept(), steps.slow_close(scaled(0.2)), steps.close()])
    _, events = collect(server.url)
    assert events[-1].graceful


# --- TCP faults -------------------------------------------------------------


@pytest.mark.parametrize(
    "script",
    [
        [steps.accept(), steps.send_text("before"), steps.drop()],
        [steps.accept(), steps.drop_mid_frame()],
        [steps.accept(), steps.limit_data(3), steps.send_text("abcdef")],
    ],
    ids=["drop", "drop-mid-frame", "limit-data"],
)
def test_drop_ends_in_disconnected(lomond_server_factory, script):
    server = lomond_server_factory(script)
    _, events = collect(server.url)
    assert "protocol_error" not in names(events)
    assert names(events)[-1] == "disconnected"
    assert not events[-1].graceful


def test_reset_ends_in_disconnected(lomond_server_factory):
    server = lomond_server_factory([steps.accept(), steps.reset()])
    _, events = collect(server.url)
    assert names(events) == ["connecting", "connected", "ready", "disconnected"]
    assert "reset" in events[-1].reason


@pytest.mark.parametrize("fault", [steps.stall(), steps.no_pong()], ids=["stall", "no-pong"])
def test_unresponsive_server(lomond_server_factory, fault):
    server = lomond_server_factory([steps.accept(), fault, steps.hold()])
    _, events = collect(server.url, ping_rate=scaled(0.1), ping_timeout=scaled(0.3))
    assert names(events) == ["connecting", "connected", "ready", "unresponsive", "disconnected"]


@pytest.mark.parametrize(
    "shaping",
    [steps.slicer(1, 0.001), steps.latency(scaled(0.05)), steps.bandwidth(20000)],
    ids=["slicer", "latency", "bandwidth"],
)
def test_shaped_echo_still_works(lomond_server_factory, shaping):
    server = lomond_server_factory([shaping, steps.accept(), steps.echo()])
    _, events = collect(server.url, send_on_ready("through a narrow pipe"))
    assert events[3].text == "through a narrow pipe"
    assert events[-1].graceful


def test_tls_echo(lomond_tls_server):
    client_options = {"ssl_context": lomond_tls_server.client_ssl_context()}
    _, events = collect(lomond_tls_server.url, send_on_ready("over tls"), client_options=client_options)
    assert events[3].text == "over tls"


def test_tls_with_ca_file(lomond_tls_server):
    client_options = {"ssl_cafile": lomond_tls_server.ca_file}
    _, events = collect(lomond_tls_server.url, send_on_ready("ca file"), client_options=client_options)
    assert events[3].text == "ca file"


def test_tls_untrusted_fails(lomond_tls_server):
    _, events = collect(lomond_tls_server.url)
    assert names(events) == ["connecting", "connect_fail", "disconnected"]


def test_through_proxy(lomond_proxy, lomond_server):
    client_options = {"proxies": {"http": lomond_proxy.url}}
    _, events = collect(lomond_server.url, send_on_ready("proxied"), client_options=client_options)
    assert events[3].text == "proxied"
    assert lomond_proxy.next_request().target == f"127.0.0.1:{lomond_server.port}"


def test_proxy_with_auth(lomond_proxy_factory, lomond_server):
    proxy = lomond_proxy_factory(auth=("user", "pass"))
    client_options = {"proxies": {"http": proxy.url_with_credentials("user", "pass")}}
    _, events = collect(lomond_server.url, send_on_ready("auth"), client_options=client_options)
    assert events[3].text == "auth"
    assert proxy.next_request().authorized


@pytest.mark.parametrize("status", [403, 407])
def test_proxy_refusal(lomond_proxy_factory, lomond_server, status):
    proxy = lomond_proxy_factory(status=status)
    _, events = collect(lomond_server.url, client_options={"proxies": {"http": proxy.url}})
    assert names(events) == ["connecting", "connect_fail", "disconnected"]
    assert str(status) in events[1].reason
