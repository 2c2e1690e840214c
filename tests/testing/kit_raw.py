"""A raw WebSocket client for byte-level tests of the test server.

It speaks just enough HTTP and framing by hand (through gevent sockets, so
the in-process server keeps running while it waits) to show exactly which
bytes the server sent.
"""

from __future__ import annotations

import base64
import os
import socket
import ssl
import time

import gevent.socket
from lomond.testing.frames import OP_CLOSE, Frame, FrameParser, build_frame
from lomond.testing.waits import scaled


class RawClient:
    """One TCP connection to the test server, driven byte by byte."""

    def __init__(self, port: int, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> None:
        sock = gevent.socket.create_connection((host, port), timeout=scaled(5))
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname=host)
        self.sock = sock
        self.buffer = bytearray()
        self.parser = FrameParser()
        self.pending_frames: list[Frame] = []
        self.key = base64.b64encode(os.urandom(16)).decode()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- sending --------------------------------------------------------

    def send_request(self, path: str = "/", headers: list[tuple[str, str]] = (), key: str | None = None) -> None:
        lines = [
            f"GET {path} HTTP/1.1",
            "Host: 127.0.0.1",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key or self.key}",
            "Sec-WebSocket-Version: 13",
        ]
        lines += [f"{name}: {value}" for name, value in headers]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def send_frame(self, opcode: int, payload: bytes = b"", **options: object) -> None:
        options.setdefault("mask", True)
        self.sock.sendall(build_frame(opcode, payload, **options))  # type: ignore[arg-type]

    def send_close(self, code: int = 1000, reason: bytes = b"") -> None:
        self.send_frame(OP_CLOSE, code.to_bytes(2, "big") + reason)

    # --- receiving ------------------------------------------------------

    def _fill(self, timeout: float) -> bool:
        """Read once into the buffer; return False at EOF."""
        self.sock.settimeout(timeout)
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buffer += data
        return True

    def read_head(self, timeout: float | None = None) -> tuple[int, dict[str, str], list[tuple[str, str]]]:
        """Read an HTTP response head: status, headers as a dict (lowercase names) and a list."""
        deadline = time.monotonic() + (timeout or scaled(5))
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill(max(0.01, deadline - time.monotonic())):
                raise EOFError(f"connection closed inside the response head: {bytes(self.buffer)!r}")
        head, _, rest = bytes(self.buffer).partition(b"\r\n\r\n")
        self.buffer = bytearray(rest)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        pairs = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            pairs.append((name.strip(), value.strip()))
        return status, {name.lower(): value for name, value in pairs}, pairs

    def handshake(self, path: str = "/", headers: list[tuple[str, str]] = ()) -> dict[str, str]:
        self.send_request(path, headers)
        status, response_headers, _ = self.read_head()
        assert status == 101, (status, response_headers)
        return response_headers

    def recv_frame(self, timeout: float | None = None) -> Frame:
        """Return the next frame; raise EOFError at the end of the stream."""
        deadline = time.monotonic() + (timeout or scaled(5))
        while True:
            if self.buffer:
                data, self.buffer = bytes(self.buffer), bytearray()
                self.pending_frames += self.parser.feed(data)
            if self.pending_frames:
                return self.pending_frames.pop(0)
            if not self._fill(max(0.01, deadline - time.monotonic())):
                raise EOFError("connection closed")

    def recv_segments(self, timeout: float | None = None) -> list[bytes]:
        """Read every recv() result until EOF; return them in order."""
        deadline = time.monotonic() + (timeout or scaled(5))
        segments = [bytes(self.buffer)] if self.buffer else []
        self.buffer = bytearray()
        while True:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            data = self.sock.recv(65536)
            if not data:
                return segments
            segments.append(data)

    def recv_all(self, timeout: float | None = None) -> bytes:
        """Read until EOF and return everything not yet consumed."""
        return b"".join(self.recv_segments(timeout))

    def is_closed_by_peer(self, timeout: float | None = None) -> bool:
        """Return True when the server closes the connection within ``timeout``."""
        try:
            self.recv_all(timeout)
        except (socket.timeout, TimeoutError):
            return False
        return True

