"""The opening handshake (RFC 6455 section 4): the request and the server's response."""

from __future__ import annotations

from typing import Any

import pytest

from lomond import events
from lomond.errors import InvalidHeader
from lomond.protocol.connection import MAX_REJECTED_BODY, State
from lomond.protocol.deflate import DeflateOptions
from lomond.protocol.handshake import Handshake, accept_key, check_header
from lomond.protocol.response import Response, ResponseReader
from lomond.protocol.url import parse_url

from .helpers import (
    ACCEPT_HEADER,
    AGENT,
    KEY,
    KEY_HEADER,
    VALID_RESPONSE,
    feed_all_ways,
    make_connection,
    make_handshake,
    response_bytes,
    server_frame,
)


def request_lines(handshake: Handshake) -> list[str]:
    """Return the request's lines, checking that it ends with one empty line."""
    data = handshake.request()
    assert data.endswith(b"\r\n\r\n")
    assert data.count(b"\r\n\r\n") == 1
    return data[:-4].decode("latin-1").split("\r\n")


def header_values(handshake: Handshake, name: str) -> list[str]:
    prefix = name.lower() + ":"
    return [
        line.split(":", 1)[1].strip()
        for line in request_lines(handshake)[1:]
        if line.lower().startswith(prefix)
    ]


# --- section 4.1: the client's request -------------------------------------


def test_request_exact_bytes() -> None:
    handshake = make_handshake("ws://example.com:8080/feed?x=1")
    assert handshake.request() == (
        b"GET /feed?x=1 HTTP/1.1\r\n"
        b"Host: example.com:8080\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Key: AAECAwQFBgcICQoLDA0ODw==\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        b"User-Agent: lomond-test/1.0\r\n"
        b"\r\n"
    )


def test_request_connection_method() -> None:
    assert make_connection().request() == make_handshake().request()


HOSTS = [
    # Section 4.1 item 4 and RFC 7230 section 5.4: brackets around an IPv6
    # literal, and the port only when it is not the scheme's default.
    ("ws://example.com/", "example.com"),
    ("ws://example.com:80/", "example.com"),
    ("ws://example.com:81/", "example.com:81"),
    ("wss://example.com:443/", "example.com"),
    ("wss://example.com:444/", "example.com:444"),
    ("ws://[::1]/", "[::1]"),
    ("ws://[::1]:8000/", "[::1]:8000"),
    ("wss://[2001:db8::1]/", "[2001:db8::1]"),
]


@pytest.mark.parametrize("url, host", HOSTS)
def test_request_host(url: str, host: str) -> None:
    assert header_values(make_handshake(url), "Host") == [host]


def test_request_line_encodes_resource() -> None:
    lines = request_lines(make_handshake("ws://example.com/caf\u00e9 au lait"))
    assert lines[0] == "GET /caf%C3%A9%20au%20lait HTTP/1.1"


def test_request_key_base64() -> None:
    # Section 4.1 item 7: a nonce of 16 random bytes, base64-encoded.
    assert header_values(make_handshake(), "Sec-WebSocket-Key") == [KEY_HEADER]
    other = Handshake(parse_url("ws://example.com/"), b"\xff" * 16, agent=AGENT)
    assert header_values(other, "Sec-WebSocket-Key") == ["/////////////////////w=="]


@pytest.mark.parametrize("size", [0, 15, 17, 24])
def test_request_key_wrong_size(size: int) -> None:
    with pytest.raises(ValueError, match=f"not {size}"):
        Handshake(parse_url("ws://example.com/"), bytes(size), agent=AGENT)


def test_request_version_13() -> None:
    # Section 4.1 item 9.
    assert header_values(make_handshake(), "Sec-WebSocket-Version") == ["13"]


def test_request_upgrade_tokens() -> None:
    assert header_values(make_handshake(), "Upgrade") == ["websocket"]
    assert header_values(make_handshake(), "Connection") == ["Upgrade"]


def test_request_user_agent() -> None:
    assert header_values(make_handshake(agent="probe/2"), "User-Agent") == ["probe/2"]


def test_request_user_agent_overridden_once() -> None:
    handshake = make_handshake(headers=[("user-agent", "custom/3")])
    assert header_values(handshake, "User-Agent") == ["custom/3"]


def test_request_origin() -> None:
    # Section 4.1 item 8: Origin is sent only when the caller gives one.
    assert header_values(make_handshake(), "Origin") == []
    handshake = make_handshake(origin="https://app.example")
    assert header_values(handshake, "Origin") == ["https://app.example"]


def test_request_subprotocols() -> None:
    # Section 4.1 item 10: one header, protocols in order of preference.
    assert header_values(make_handshake(), "Sec-WebSocket-Protocol") == []
    handshake = make_handshake(protocols=["v2.feed", "v1.feed"])
    assert header_values(handshake, "Sec-WebSocket-Protocol") == ["v2.feed, v1.feed"]


@pytest.mark.parametrize("protocol", ["", "a b", "a,b", "chat\r\nX: 1", "caf\u00e9"])
def test_request_invalid_subprotocol(protocol: str) -> None:
    with pytest.raises(InvalidHeader):
        make_handshake(protocols=[protocol])


def test_request_extension_offer() -> None:
    # Section 4.1 item 11: the offer is sent only when deflate is enabled.
    assert header_values(make_handshake(), "Sec-WebSocket-Extensions") == []
    options = DeflateOptions()
    handshake = make_handshake(deflate=options)
    assert header_values(handshake, "Sec-WebSocket-Extensions") == [options.offer()]
    assert options.offer().startswith("permessage-deflate")


def test_request_extra_headers() -> None:
    handshake = make_handshake(headers=[("Authorization", "Bearer x"), (b"X-Id", b"7")])
    lines = request_lines(handshake)
    assert lines[-2:] == ["Authorization: Bearer x", "X-Id: 7"]


BAD_HEADERS = [
    # (name, value): CR or LF could start a new header or end the request.
    ("X-Id", "1\r\nEvil: yes"),
    ("X-Id", "1\nEvil: yes"),
    ("X-Id", "1\rEvil: yes"),
    ("X-Id", "1\x00"),
    ("X-Id\r\nEvil", "1"),
    ("X-Id\n", "1"),
    ("X Id", "1"),
    ("X-Id:", "1"),
    ("", "1"),
    (b"X-Id", b"1\r\n"),
    ("X-Id", "\u20ac"),
]


@pytest.mark.parametrize("name, value", BAD_HEADERS)
def test_request_header_rejected(name: str, value: str) -> None:
    with pytest.raises(InvalidHeader):
        check_header(name, value)
    with pytest.raises(InvalidHeader):
        make_handshake(headers=[(name, value)])


@pytest.mark.parametrize("value", ["https://a\r\nEvil: 1", "https://a\n", "\u20ac"])
def test_request_origin_rejected(value: str) -> None:
    with pytest.raises(InvalidHeader):
        make_handshake(origin=value)


@pytest.mark.parametrize("value", ["agent\r\nEvil: 1", "agent\r", "\u20ac"])
def test_request_agent_rejected(value: str) -> None:
    with pytest.raises(InvalidHeader):
        make_handshake(agent=value)


@pytest.mark.parametrize(
    "name", ["Host", "upgrade", "CONNECTION", "Sec-WebSocket-Key", "sec-websocket-version"]
)
def test_request_reserved_header(name: str) -> None:
    with pytest.raises(InvalidHeader, match="set by the handshake"):
        make_handshake(headers=[(name, "x")])


def test_request_header_latin1_value() -> None:
    assert check_header(b"X-Name", b"caf\xe9") == ("X-Name", "caf\u00e9")
    handshake = make_handshake(headers=[("X-Name", "caf\u00e9")])
    assert b"X-Name: caf\xe9\r\n" in handshake.request()


# --- section 4.2.2: the server's response -----------------------------------


def test_accept_key_rfc_example() -> None:
    # The worked example in section 1.3.
    assert accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert accept_key(KEY_HEADER.encode("ascii")) == ACCEPT_HEADER


def test_response_valid() -> None:
    result = feed_all_ways(make_connection, VALID_RESPONSE)
    assert result.summary == [("ready", None, [])]
    assert result.connection.state is State.OPEN
    assert result.connection.should_drop is False
    assert result.sent == b""
    ready = result.events[0]
    assert isinstance(ready, events.Ready)
    assert ready.response.status_code == 101


def assert_rejected(data: bytes, **options: Any) -> events.Rejected:
    """Feed ``data`` in every chunking and check that the handshake failed."""
    result = feed_all_ways(lambda: make_connection(**options), data)
    assert result.names == ["rejected"]
    assert result.connection.state is State.CLOSED
    assert result.connection.should_drop is True
    assert result.sent == b""
    rejected = result.events[0]
    assert isinstance(rejected, events.Rejected)
    return rejected


@pytest.mark.parametrize("status", ["200 OK", "301 Moved", "400 Bad Request", "100 Continue"])
def test_response_not_101(status: str) -> None:
    rejected = assert_rejected(response_bytes(status=status))
    assert rejected.response.status_code == int(status[:3])
    assert status[:3] in rejected.reason


def test_response_rejected_keeps_body() -> None:
    body = b"go away" * (MAX_REJECTED_BODY // 7 + 10)
    rejected = assert_rejected(response_bytes(status="403 Forbidden") + body)
    assert rejected.response.body == body[:MAX_REJECTED_BODY]


def test_response_ignored_after_rejection() -> None:
    connection = make_connection()
    assert [e.name for e in connection.receive(response_bytes(status="404 Not Found"))] == [
        "rejected"
    ]
    assert connection.receive(VALID_RESPONSE + server_frame(0x1, b"hi")) == []


UPGRADE_TOKENS = [
    # (Upgrade, Connection): tokens match case-insensitively (section 4.2.2
    # items 2 and 3), and Connection may list other tokens too.
    ("websocket", "Upgrade"),
    ("WebSocket", "upgrade"),
    ("WEBSOCKET", "UPGRADE"),
    ("websocket", "keep-alive, Upgrade"),
    ("websocket", "Upgrade , keep-alive"),
]


@pytest.mark.parametrize("upgrade, connection", UPGRADE_TOKENS)
def test_response_tokens_any_case(upgrade: str, connection: str) -> None:
    data = response_bytes(
        [
            ("upgrade", upgrade),
            ("CONNECTION", connection),
            ("Sec-WebSocket-Accept", ACCEPT_HEADER),
        ]
    )
    assert feed_all_ways(make_connection, data).names == ["ready"]


BAD_TOKENS = [
    (None, "Upgrade"),
    ("h2c", "Upgrade"),
    ("websocket2", "Upgrade"),
    ("websocket", None),
    ("websocket", "keep-alive"),
    ("websocket", "upgrades"),
]


@pytest.mark.parametrize("upgrade, connection", BAD_TOKENS)
def test_response_tokens_wrong(upgrade: str | None, connection: str | None) -> None:
    headers = [("Sec-WebSocket-Accept", ACCEPT_HEADER)]
    if upgrade is not None:
        headers.append(("Upgrade", upgrade))
    if connection is not None:
        headers.append(("Connection", connection))
    assert_rejected(response_bytes(headers))


@pytest.mark.parametrize(
    "accept", [None, "", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", ACCEPT_HEADER.lower(), KEY_HEADER]
)
def test_response_wrong_accept(accept: str | None) -> None:
    # Section 4.2.2 item 4: the accept value proves the server read our key.
    headers = [("Upgrade", "websocket"), ("Connection", "Upgrade")]
    if accept is not None:
        headers.append(("Sec-WebSocket-Accept", accept))
    rejected = assert_rejected(response_bytes(headers))
    assert "Sec-WebSocket-Accept" in rejected.reason


def test_response_subprotocol_offered() -> None:
    data = response_bytes(extra=[("Sec-WebSocket-Protocol", "v1.feed")])
    result = feed_all_ways(lambda: make_connection(make_handshake(protocols=["v2.feed", "v1.feed"])), data)
    assert result.summary == [("ready", "v1.feed", [])]
    assert result.connection.protocol == "v1.feed"


@pytest.mark.parametrize(
    "offered, chosen",
    [([], "v1.feed"), (["v1.feed"], "v2.feed"), (["v1.feed"], "V1.FEED"), (["a", "b"], "a, b")],
)
def test_response_subprotocol_not_offered(offered: list[str], chosen: str) -> None:
    # Section 4.2.2 item 6: a subprotocol the client did not offer fails.
    data = response_bytes(extra=[("Sec-WebSocket-Protocol", chosen)])
    rejected = assert_rejected(data, handshake=make_handshake(protocols=offered))
    assert "did not offer" in rejected.reason


@pytest.mark.parametrize(
    "extension", ["permessage-deflate", "x-webkit-deflate-frame", "permessage-foo; a=1"]
)
def test_response_extension_not_offered(extension: str) -> None:
    # Section 4.2.2 item 5: an extension the client did not offer fails.
    data = response_bytes(extra=[("Sec-WebSocket-Extensions", extension)])
    rejected = assert_rejected(data)
    assert "did not offer" in rejected.reason


def test_response_unknown_extension_with_deflate_offered() -> None:
    data = response_bytes(extra=[("Sec-WebSocket-Extensions", "x-other")])
    assert_rejected(data, handshake=make_handshake(deflate=DeflateOptions()))


def test_response_deflate_accepted() -> None:
    data = response_bytes(extra=[("Sec-WebSocket-Extensions", "permessage-deflate")])
    handshake = make_handshake(deflate=DeflateOptions())
    result = feed_all_ways(lambda: make_connection(handshake=handshake), data)
    assert result.summary == [("ready", None, ["permessage-deflate"])]


def test_response_deflate_declined() -> None:
    handshake = make_handshake(deflate=DeflateOptions())
    result = feed_all_ways(lambda: make_connection(handshake=handshake), VALID_RESPONSE)
    assert result.summary == [("ready", None, [])]
    assert result.connection.deflate is None


MALFORMED = [
    b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
    b"\r\n\r\n",
    b"HTTP/1.1\r\n\r\n",
    b"HTTP/1.1 1O1 Switching Protocols\r\n\r\n",
    b"HTTP/1.1 \xb9\xb2\xb3 Switching Protocols\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade websocket\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nno colon here\r\n\r\n",
]


@pytest.mark.parametrize("data", MALFORMED)
def test_response_malformed(data: bytes) -> None:
    assert_rejected(data)


def test_response_obsolete_line_folding() -> None:
    data = (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: keep-alive,\r\n"
        b" Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + ACCEPT_HEADER.encode("ascii") + b"\r\n\r\n"
    )
    assert feed_all_ways(make_connection, data).names == ["ready"]


# --- header block size limit ------------------------------------------------


def padded_response(size: int) -> bytes:
    """Return a valid response whose header block (before CRLF CRLF) is ``size`` bytes."""
    base = len(VALID_RESPONSE) - 4
    padding = size - base - len("\r\nX-Pad: ")
    assert padding >= 0
    return response_bytes(extra=[("X-Pad", "p" * padding)])


@pytest.mark.parametrize("limit", [200, 1000])
def test_response_header_limit_at(limit: int) -> None:
    data = padded_response(limit)
    assert data.index(b"\r\n\r\n") == limit
    result = feed_all_ways(lambda: make_connection(max_header_size=limit), data)
    assert result.names == ["ready"]


@pytest.mark.parametrize("limit", [200, 1000])
def test_response_header_limit_passed(limit: int) -> None:
    rejected = assert_rejected(padded_response(limit + 1), max_header_size=limit)
    assert rejected.response is None
    assert str(limit) in rejected.reason


def test_response_header_limit_without_end() -> None:
    # A server that never ends its header block is cut off at the limit.
    connection = make_connection(max_header_size=100)
    assert connection.receive(b"HTTP/1.1 101 OK\r\nX: " + b"y" * 83) == []
    received = connection.receive(b"y" * 5)
    assert [event.name for event in received] == ["rejected"]
    assert connection.should_drop is True


def test_reader_split_terminator() -> None:
    # CRLF CRLF split over reads, at every position.
    for cut in range(len(VALID_RESPONSE) - 4, len(VALID_RESPONSE)):
        reader = ResponseReader()
        assert reader.feed(VALID_RESPONSE[:cut]) is None
        result = reader.feed(VALID_RESPONSE[cut:] + b"rest")
        assert result is not None
        response, extra = result
        assert extra == b"rest"
        assert response.status_code == 101


# --- frames that arrive with the response -------------------------------------


def test_response_followed_by_frames() -> None:
    # The server may send frames right after its answer, in the same read:
    # they must reach the frame parser.
    frames = server_frame(0x1, b"hello") + server_frame(0x9, b"p") + server_frame(0x2, b"\x00")
    result = feed_all_ways(make_connection, VALID_RESPONSE + frames)
    assert result.summary == [
        ("ready", None, []),
        ("text", "hello"),
        ("ping", b"p"),
        ("binary", b"\x00"),
    ]


def test_response_followed_by_partial_frame() -> None:
    connection = make_connection()
    frame = server_frame(0x1, b"split")
    first = connection.receive(VALID_RESPONSE + frame[:3])
    assert [event.name for event in first] == ["ready"]
    second = connection.receive(frame[3:])
    assert [(event.name, getattr(event, "text", None)) for event in second] == [
        ("text", "split")
    ]


# --- Response ------------------------------------------------------------------


def test_response_headers_joined() -> None:
    response = Response(
        b"HTTP/1.1 101 Switching Protocols\r\nX-A: 1\r\nx-a: 2\r\nSet-Cookie: c=d"
    )
    assert response.http_ver == "HTTP/1.1"
    assert response.status == "Switching Protocols"
    assert response.get("X-A") == "1,2"
    assert response.get_list("x-a") == ["1", "2"]
    assert response.get("missing", "none") == "none"
    assert response.header_list == [("x-a", "1"), ("x-a", "2"), ("set-cookie", "c=d")]
