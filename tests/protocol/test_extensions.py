"""Tests of the Sec-WebSocket-Extensions parser (RFC 6455 section 9.1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lomond.errors import HandshakeError
from lomond.protocol.extensions import parse_extensions

# --- RFC 6455 section 9.1: valid headers -------------------------------------

VALID_HEADERS = [
    # (header values, expected extensions)
    ([], []),
    (["permessage-deflate"], [("permessage-deflate", [])]),
    (
        ["permessage-deflate; client_max_window_bits"],
        [("permessage-deflate", [("client_max_window_bits", None)])],
    ),
    (
        ["permessage-deflate; server_max_window_bits=10; server_no_context_takeover"],
        [
            (
                "permessage-deflate",
                [("server_max_window_bits", "10"), ("server_no_context_takeover", None)],
            )
        ],
    ),
    # A quoted-string value is returned unquoted.
    (['foo; bar="10"'], [("foo", [("bar", "10")])]),
    # A quoted-pair is unescaped.
    (['foo; bar="a\\b"'], [("foo", [("bar", "ab")])]),
    # Names are case-insensitive and returned in lowercase; values keep their case.
    (["Permessage-Deflate; Server_Max_Window_Bits=AbC"], [("permessage-deflate", [("server_max_window_bits", "AbC")])]),
    # Optional whitespace around ';', ',' and '='.
    (
        [" foo \t;\tbar = 1 ; baz ,  qux ; x=\"y\" "],
        [("foo", [("bar", "1"), ("baz", None)]), ("qux", [("x", "y")])],
    ),
    # Several extensions in one value, and several header lines, in order.
    (
        ["a, b; c", "d"],
        [("a", []), ("b", [("c", None)]), ("d", [])],
    ),
    # RFC 7230 section 7: empty list elements are ignored.
    ([", a, , b,"], [("a", []), ("b", [])]),
    (["", " "], []),
    # The same extension twice is returned twice: rejecting it is the caller's job.
    (["a; x=1, a; x=2"], [("a", [("x", "1")]), ("a", [("x", "2")])]),
    # Every tchar of RFC 7230 section 3.2.6.
    (["!#$%&'*+-.^_`|~09azAZ"], [("!#$%&'*+-.^_`|~09azaz", [])]),
]


@pytest.mark.parametrize(("values", "expected"), VALID_HEADERS)
def test_parse_valid_header(values: list[str], expected: object) -> None:
    assert parse_extensions(values) == expected


# --- RFC 6455 section 9.1: malformed headers ---------------------------------

INVALID_HEADERS = [
    # (header value, expected words in the error, position)
    ("foo;", "expected a parameter name", 4),
    (";foo", "expected an extension name", 0),
    ("foo bar", "expected ';' or ','", 4),
    ("foo; =1", "expected a parameter name", 5),
    ("foo; bar=", "expected a parameter value", 9),
    ("foo; bar= ;", "expected a parameter value", 10),
    ("foo; bar=1=2", "expected ';' or ','", 10),
    ("foo; bar=1 2", "expected ';' or ','", 11),
    ("foo;; bar", "expected a parameter name", 4),
    ('foo; bar="1', "unterminated quoted value", 9),
    ('foo; bar="1\\', "unterminated quoted value", 9),
    ('foo; bar=""', "must be a token once unescaped", 9),
    ('foo; bar="1 2"', "must be a token once unescaped", 9),
    ('foo; bar="a,b"', "must be a token once unescaped", 9),
    ('foo; bar="\x00"', "invalid character in a quoted value", 10),
    ('foo; bar="\\\x00"', "invalid character after '\\' in a quoted value", 11),
    ("foo; bar=1\x00", "expected ';' or ','", 10),
    ("f\u00f6o", "expected ';' or ','", 1),
    ("\u00e9", "expected an extension name", 0),
    ("foo; b\u00e1r", "expected ';' or ','", 6),
    ("foo; bar=\u2603", "expected a parameter value", 9),
    ('foo; bar="\u2603"', "invalid character in a quoted value", 10),
    ("foo\r\n", "expected ';' or ','", 3),
]


@pytest.mark.parametrize(("value", "problem", "position"), INVALID_HEADERS)
def test_parse_invalid_header(value: str, problem: str, position: int) -> None:
    with pytest.raises(HandshakeError) as caught:
        parse_extensions([value])
    message = str(caught.value)
    assert message.startswith("invalid Sec-WebSocket-Extensions header")
    assert problem in message
    assert f"at position {position}" in message


def test_parse_error_names_which_value() -> None:
    with pytest.raises(HandshakeError, match="'bad;'"):
        parse_extensions(["good", "bad;"])


def test_parse_error_cuts_long_value() -> None:
    value = "a" * 1000 + ";"
    with pytest.raises(HandshakeError) as caught:
        parse_extensions([value])
    message = str(caught.value)
    assert len(message) < 300
    assert "at position 1001" in message


# --- properties ----------------------------------------------------------------

TOKEN_ALPHABET = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
tokens = st.text(alphabet=TOKEN_ALPHABET, min_size=1, max_size=8)
params = st.lists(st.tuples(tokens, st.none() | tokens), max_size=4)
extension_lists = st.lists(st.tuples(tokens, params), max_size=4)


@given(st.lists(st.text(max_size=40), max_size=3))
def test_parse_arbitrary_text(values: list[str]) -> None:
    try:
        result = parse_extensions(values)
    except HandshakeError:
        return
    assert isinstance(result, list)
    for name, extension_params in result:
        assert name == name.lower()
        assert all(param == param.lower() for param, _ in extension_params)


@given(
    st.lists(
        st.text(alphabet="ab;,= \t\"\\1\x00\u00e9", max_size=30),
        max_size=3,
    )
)
def test_parse_grammar_characters(values: list[str]) -> None:
    # Arbitrary text rarely hits the grammar's punctuation, so this draws
    # mostly from the characters that the parser branches on.
    try:
        parse_extensions(values)
    except HandshakeError:
        pass


@given(extension_lists, st.booleans())
def test_parse_formatted_extensions(
    extensions: list[tuple[str, list[tuple[str, str | None]]]], quote: bool
) -> None:
    def format_param(name: str, value: str | None) -> str:
        if value is None:
            return name
        if quote:
            escaped = "".join("\\" + char for char in value)
            return f'{name} = "{escaped}"'
        return f"{name}={value}"

    header = ", ".join(
        "; ".join([name] + [format_param(*param) for param in extension_params])
        for name, extension_params in extensions
    )
    assert parse_extensions([header]) == extensions
