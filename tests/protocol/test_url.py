"""WebSocket URLs (RFC 6455 section 3) and the Host header they produce (section 4.1)."""

from __future__ import annotations

import pytest

from lomond.errors import InvalidURL
from lomond.protocol.url import parse_url, redact_url

# --- RFC 6455 section 3: scheme, host, port, resource ----------------------

PARSED_URLS = [
    # (url, host, port, resource, secure)
    ("ws://example.com", "example.com", 80, "/", False),
    ("wss://example.com", "example.com", 443, "/", True),
    ("WS://Example.COM:8080/Feed", "example.com", 8080, "/Feed", False),
    ("ws://example.com/a/b?x=1&y=2", "example.com", 80, "/a/b?x=1&y=2", False),
    ("ws://example.com?x=1", "example.com", 80, "/?x=1", False),
    ("ws://192.0.2.7:9000/", "192.0.2.7", 9000, "/", False),
    ("ws://[::1]/", "::1", 80, "/", False),
    ("wss://[2001:DB8:0:0:0:0:0:1]:8443/", "2001:db8::1", 8443, "/", True),
    ("ws://[fe80::1%25eth0]/", "fe80::1", 80, "/", False),
    ("ws://example.com:080/", "example.com", 80, "/", False),
]


@pytest.mark.parametrize("url, host, port, resource, secure", PARSED_URLS)
def test_url_parts(url: str, host: str, port: int, resource: str, secure: bool) -> None:
    parsed = parse_url(url)
    assert parsed.host == host
    assert parsed.port == port
    assert parsed.resource == resource
    assert parsed.secure is secure


def test_url_fragment_dropped() -> None:
    # Section 3: fragment identifiers have no meaning in WebSocket URIs.
    assert parse_url("ws://example.com/feed?x=1#top").resource == "/feed?x=1"


INVALID_URLS = [
    "http://example.com/",
    "example.com",
    "ws://",
    "ws:///feed",
    "ws://example.com:0/",
    "ws://example.com:65536/",
    "ws://example.com:-1/",
    "ws://example.com:http/",
    "ws://[::1/",
    "ws://[not-an-address]/",
    "ws://exa mple.com/",
    "ws://exa\x01mple.com/",
    "ws://exa\x7fmple.com/",
]


@pytest.mark.parametrize("url", INVALID_URLS)
def test_url_invalid(url: str) -> None:
    with pytest.raises(InvalidURL):
        parse_url(url)


def test_url_not_a_str() -> None:
    with pytest.raises(InvalidURL, match="must be a str"):
        parse_url(b"ws://example.com/")  # type: ignore[arg-type]


# --- request-target: what may go on the request line ----------------------


RESOURCES = [
    # The request line is "GET <resource> HTTP/1.1" in latin-1, so spaces,
    # control characters and non-ASCII text are percent-encoded as UTF-8,
    # the way browsers encode them (RFC 3986 section 2.1).
    ("ws://example.com/a b", "/a%20b"),
    ("ws://example.com/caf\u00e9", "/caf%C3%A9"),
    ("ws://example.com/\u20ac?q=\u20ac", "/%E2%82%AC?q=%E2%82%AC"),
    ("ws://example.com/a%20b", "/a%20b"),
    ("ws://example.com/a\x00b", "/a%00b"),
    ("ws://example.com/~user/a-b_c.d!$&'()*+,;=:@", "/~user/a-b_c.d!$&'()*+,;=:@"),
]


@pytest.mark.parametrize("url, resource", RESOURCES)
def test_url_resource_encoded(url: str, resource: str) -> None:
    assert parse_url(url).resource == resource


def test_url_unicode_host_uses_idna() -> None:
    assert parse_url("ws://b\u00fccher.example/").host == "xn--bcher-kva.example"


# --- RFC 6455 section 4.1: the Host header ---------------------------------

HOST_HEADERS = [
    # (url, Host value): the port only when it is not the scheme's default,
    # and brackets around an IPv6 literal (RFC 7230 section 5.4).
    ("ws://example.com/", "example.com"),
    ("ws://example.com:80/", "example.com"),
    ("ws://example.com:443/", "example.com:443"),
    ("wss://example.com:443/", "example.com"),
    ("wss://example.com:80/", "example.com:80"),
    ("ws://example.com:8080/", "example.com:8080"),
    ("ws://[::1]/", "[::1]"),
    ("ws://[::1]:80/", "[::1]"),
    ("ws://[::1]:9001/", "[::1]:9001"),
    ("wss://[2001:db8::5]:443/", "[2001:db8::5]"),
    ("wss://[2001:db8::5]:4443/", "[2001:db8::5]:4443"),
    ("ws://127.0.0.1:8000/", "127.0.0.1:8000"),
]


@pytest.mark.parametrize("url, host_header", HOST_HEADERS)
def test_url_host_header(url: str, host_header: str) -> None:
    assert parse_url(url).host_header == host_header


# --- user-info never shown --------------------------------------------------


def test_url_credentials_kept_apart() -> None:
    parsed = parse_url("wss://alice:s%40cret@example.com/feed")
    assert parsed.username == "alice"
    assert parsed.password == "s@cret"
    assert parsed.safe_url == "wss://example.com/feed"
    assert "cret" not in repr(parsed.safe_url)


def test_url_redact() -> None:
    assert redact_url("wss://alice:secret@example.com/x") == "wss://***@example.com/x"
    assert redact_url("wss://example.com/x") == "wss://example.com/x"


def test_url_error_hides_credentials() -> None:
    with pytest.raises(InvalidURL) as caught:
        parse_url("ws://alice:secret@example.com:99999/")
    assert "secret" not in str(caught.value)


# --- Unix domain sockets ----------------------------------------------------


def test_url_unix_socket() -> None:
    parsed = parse_url("ws+unix:///tmp/app.sock:/feed?x=1")
    assert parsed.unix_socket == "/tmp/app.sock"
    assert parsed.resource == "/feed?x=1"
    assert parsed.host_header == "localhost"


def test_url_unix_socket_argument() -> None:
    parsed = parse_url("ws://example.com/feed", unix_socket="/run/app.sock")
    assert parsed.unix_socket == "/run/app.sock"
    assert parsed.host_header == "example.com"
