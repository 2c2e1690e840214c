"""The server's HTTP response to the opening handshake."""

from __future__ import annotations

__all__ = ["Response", "ResponseReader", "MAX_HEADER_SIZE"]

from ..errors import HandshakeError

#: Default limit on the size of the response's header block, in bytes. Real
#: upgrade responses are a few hundred bytes. 64 KiB leaves room for long
#: cookies and still bounds what a hostile server can make lomond buffer.
MAX_HEADER_SIZE = 64 * 1024


class Response:
    """A parsed HTTP response (compatible with lomond 0.3's ``Response``).

    ``status_code`` is an int (None when the status line is malformed),
    ``status`` the reason phrase, ``http_ver`` the version string, ``raw``
    the header block as received, and ``headers`` maps each lowercase
    header name to its value; repeated headers are joined with commas.
    ``header_list`` keeps every (name, value) pair in order, and ``body``
    holds the bytes that followed the header block of a non-101 answer,
    up to the connection's body limit.
    """

    def __init__(self, header_data: bytes) -> None:
        self.raw = header_data
        self.body = b""
        lines = header_data.split(b"\r\n")
        status_line = lines[0].decode("latin-1")
        version, _, rest = status_line.partition(" ")
        code, _, reason = rest.partition(" ")
        self.http_ver = version
        self.status = reason.strip()
        # isdigit() alone accepts latin-1 digits such as "\xb2", which int() rejects.
        self.status_code: int | None = (
            int(code) if code.isascii() and code.isdigit() else None
        )
        self.header_list: list[tuple[str, str]] = []
        headers: dict[str, str] = {}
        for raw_line in lines[1:]:
            if not raw_line:
                continue
            line = raw_line.decode("latin-1")
            if line[0] in " \t" and self.header_list:
                # Obsolete line folding (RFC 7230 section 3.2.4): the line
                # continues the previous header's value.
                name, value = self.header_list[-1]
                value = f"{value} {line.strip()}"
                self.header_list[-1] = (name, value)
                headers[name] = value
                continue
            name, colon, value = line.partition(":")
            if not colon:
                raise HandshakeError(f"invalid header line in response: {line[:80]!r}")
            name = name.strip().lower()
            value = value.strip()
            self.header_list.append((name, value))
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        self.headers = headers

    def __repr__(self) -> str:
        return f"<response {self.http_ver} {self.status_code} {self.status}>"

    def get(self, name: str, default: str | None = None) -> str | None:
        """Return the value of header ``name`` (any case), or ``default``."""
        return self.headers.get(name.lower(), default)

    def get_list(self, name: str) -> list[str]:
        """Return the comma-separated items of header ``name``, stripped."""
        value = self.headers.get(name.lower(), "")
        return [item.strip() for item in value.split(",") if item.strip()]


class ResponseReader:
    """Collect bytes until the end of the header block (``CRLF CRLF``).

    Call :meth:`feed` with each chunk read from the socket. It returns None
    while the header block is incomplete, then a tuple of the
    :class:`Response` and the bytes that followed the header block in the
    same reads: those are WebSocket frames (or the start of a body) and the
    caller must not drop them.
    """

    def __init__(self, max_size: int = MAX_HEADER_SIZE) -> None:
        self.max_size = max_size
        self._buffer = bytearray()

    def feed(self, data: bytes) -> tuple[Response, bytes] | None:
        """Add ``data``; return (response, extra bytes) once the header block is complete.

        Raises :class:`~lomond.errors.HandshakeError` when the header block
        passes ``max_size`` or does not start with an HTTP status line.
        """
        # Search from a little before the new data, in case CRLF CRLF
        # straddles two reads.
        start = max(0, len(self._buffer) - 3)
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n", start)
        if end == -1:
            # The last 3 bytes may be the start of CRLF CRLF, which is not
            # part of the header block. Without this margin the limit would
            # depend on how the bytes were split into reads.
            if len(self._buffer) > self.max_size + 3:
                raise HandshakeError(
                    f"response header block is larger than {self.max_size} bytes"
                )
            if len(self._buffer) >= 5 and not self._buffer.startswith(b"HTTP/"):
                raise HandshakeError(
                    f"the server did not respond with HTTP: {bytes(self._buffer[:40])!r}"
                )
            return None
        if end > self.max_size:
            raise HandshakeError(f"response header block is larger than {self.max_size} bytes")
        header_data = bytes(self._buffer[:end])
        extra = bytes(self._buffer[end + 4 :])
        self._buffer = bytearray()
        if not header_data.startswith(b"HTTP/"):
            raise HandshakeError(
                f"the server did not respond with HTTP: {header_data[:40]!r}"
            )
        return Response(header_data), extra
