"""Parser for the Sec-WebSocket-Extensions header (RFC 6455 section 9.1).

The grammar, with the list and whitespace rules of RFC 7230 section 7::

    extension-list  = 1#extension
    extension       = extension-token *( ";" extension-param )
    extension-param = token [ "=" ( token / quoted-string ) ]

A quoted-string value must still be a token once unescaped (RFC 6455
section 9.1). Empty list elements, as in ``"a, , b"``, are skipped because
RFC 7230 section 7 requires recipients to accept and ignore them.

This module is pure: it only looks at the strings it is given.
"""

from __future__ import annotations

import string
from typing import TypeAlias

from lomond.errors import HandshakeError

__all__ = ["ExtensionParams", "Extension", "parse_extensions"]

# One extension parameter: (name in lowercase, value or None when bare).
ExtensionParams: TypeAlias = list[tuple[str, str | None]]
# One extension: (name in lowercase, its parameters in header order).
Extension: TypeAlias = tuple[str, ExtensionParams]

# tchar in RFC 7230 section 3.2.6.
_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~" + string.digits + string.ascii_letters)
# OWS (optional whitespace) in RFC 7230 section 3.2.3.
_WHITESPACE = frozenset(" \t")
# Characters that an error message shows of a header value before cutting it.
_MAX_SHOWN_CHARS = 120


def parse_extensions(values: list[str]) -> list[Extension]:
    """Parse Sec-WebSocket-Extensions header values into extensions.

    ``values`` contains one string for each occurrence of the header, in the
    order received. Extension and parameter names are returned in
    lowercase, because RFC 6455 section 9.1 makes them case-insensitive
    tokens. Values are returned unquoted and otherwise unchanged. A
    parameter without ``=`` has the value None.

    Raises HandshakeError, naming the header value and the position of the
    first invalid character, when a value breaks the grammar.
    """
    extensions: list[Extension] = []
    for value in values:
        extensions.extend(_HeaderScanner(value).parse())
    return extensions


class _HeaderScanner:
    """Cursor over one header value; each ``_read_*`` method moves it forward."""

    def __init__(self, value: str) -> None:
        self.value = value
        self.pos = 0

    def parse(self) -> list[Extension]:
        extensions: list[Extension] = []
        while True:
            # Skip whitespace and empty list elements before the next extension.
            self._skip_whitespace()
            if self._at_end():
                return extensions
            if self._peek() == ",":
                self.pos += 1
                continue

            name = self._read_token("an extension name").lower()
            params = self._read_params()
            extensions.append((name, params))

            # An extension ends at a comma or at the end of the value.
            self._skip_whitespace()
            if self._at_end():
                return extensions
            if self._peek() != ",":
                raise self._error("expected ';' or ','")
            self.pos += 1

    def _read_params(self) -> ExtensionParams:
        params: ExtensionParams = []
        while True:
            self._skip_whitespace()
            if self._at_end() or self._peek() != ";":
                return params
            self.pos += 1

            self._skip_whitespace()
            name = self._read_token("a parameter name").lower()
            self._skip_whitespace()
            value: str | None = None
            if not self._at_end() and self._peek() == "=":
                self.pos += 1
                self._skip_whitespace()
                value = self._read_param_value()
            params.append((name, value))

    def _read_param_value(self) -> str:
        if self._at_end() or self._peek() != '"':
            return self._read_token("a parameter value")

        start = self.pos
        value = self._read_quoted_string()
        # RFC 6455 section 9.1: the unescaped value must conform to token.
        if not value or not all(char in _TOKEN_CHARS for char in value):
            raise self._error(
                "the quoted parameter value must be a token once unescaped",
                position=start,
            )
        return value

    def _read_token(self, expected: str) -> str:
        start = self.pos
        while not self._at_end() and self._peek() in _TOKEN_CHARS:
            self.pos += 1
        if self.pos == start:
            raise self._error(f"expected {expected}")
        return self.value[start : self.pos]

    def _read_quoted_string(self) -> str:
        """Read a quoted-string (RFC 7230 section 3.2.6) and return it unescaped."""
        start = self.pos
        self.pos += 1  # the opening quote
        chars: list[str] = []
        while not self._at_end():
            char = self._peek()
            if char == '"':
                self.pos += 1
                return "".join(chars)
            if char == "\\":
                # quoted-pair: a backslash and any HTAB, SP, VCHAR or obs-text.
                self.pos += 1
                if self._at_end():
                    break
                char = self._peek()
                if not (char == "\t" or " " <= char <= "~" or "\x80" <= char <= "\xff"):
                    raise self._error("invalid character after '\\' in a quoted value")
            elif not _is_qdtext(char):
                raise self._error("invalid character in a quoted value")
            chars.append(char)
            self.pos += 1
        raise self._error("unterminated quoted value", position=start)

    def _skip_whitespace(self) -> None:
        while not self._at_end() and self._peek() in _WHITESPACE:
            self.pos += 1

    def _peek(self) -> str:
        return self.value[self.pos]

    def _at_end(self) -> bool:
        return self.pos >= len(self.value)

    def _error(self, problem: str, position: int | None = None) -> HandshakeError:
        if position is None:
            position = self.pos
        shown = self.value
        if len(shown) > _MAX_SHOWN_CHARS:
            shown = shown[:_MAX_SHOWN_CHARS] + "..."
        return HandshakeError(
            f"invalid Sec-WebSocket-Extensions header {shown!r}: "
            f"{problem} at position {position}"
        )


def _is_qdtext(char: str) -> bool:
    """Return whether ``char`` may appear unescaped inside a quoted-string."""
    return (
        char in "\t !"
        or "\x23" <= char <= "\x5b"
        or "\x5d" <= char <= "\x7e"
        or "\x80" <= char <= "\xff"
    )
