"""One server-side connection: the primitives that script steps are built from.

A :class:`Connection` owns one accepted socket. Its reader greenlet reads
whatever the client sends, records it in the :class:`Transcript`, replies
to pings and to the client's close (unless a script turned that off), and lets
wsproto judge every frame. The script greenlet writes: well-formed frames
through wsproto, faults as hand-built bytes, and every write goes through
the TCP shaping that the ``slicer``, ``latency``, ``bandwidth`` and
``limit_data`` steps configure.
"""

from __future__ import annotations

import logging
import socket
import struct
import time
import zlib
from http import HTTPStatus
from typing import Any, Callable, Iterable, Sequence, TypeVar

import gevent
import gevent.event
import gevent.lock
from wsproto.connection import Connection as WsprotoConnection
from wsproto.connection import ConnectionState, ConnectionType
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    TextMessage,
)
from wsproto.events import Request as WsprotoRequest
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.handshake import H11Handshake
from wsproto.utilities import RemoteProtocolError, generate_accept_token

from .frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_TEXT,
    Frame,
    FrameParser,
    Inflater,
    build_close_payload,
    build_frame,
    is_valid_close_code,
)
from .transcript import Message, Request, Transcript, matches
from .waits import ExpectationFailed, WaitTimeout, default_timeout, scaled

__all__ = ["Connection", "ConnectionClosed"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# Largest opening handshake request the server reads; a longer one is cut off.
MAX_REQUEST_BYTES = 64 * 1024
# Largest message the transcript reassembles; a longer one fails the connection.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# Bytes read per recv() call.
READ_SIZE = 65536


class ConnectionClosed(Exception):
    """The socket is gone (closed by either side): the script stops quietly."""


def _header_bytes(headers: Iterable[tuple[str | bytes, str | bytes]]) -> list[tuple[bytes, bytes]]:
    result = []
    for name, value in headers:
        name_bytes = name.encode("latin-1") if isinstance(name, str) else name
        value_bytes = value.encode("latin-1") if isinstance(value, str) else value
        result.append((name_bytes, value_bytes))
    return result


def parse_request(raw: bytes) -> Request:
    """Parse an HTTP request head without validating it, so that any request is recorded."""
    text = raw.decode("latin-1")
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    method = parts[0] if parts else ""
    target = parts[1] if len(parts) > 1 else ""
    version = parts[2] if len(parts) > 2 else ""
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return Request(method, target, version, headers, raw)


class Connection:
    """The server side of one client connection, driven by a script.

    Methods that write raise :class:`ConnectionClosed` once the socket is
    gone, which ends the script without an error. Expectations raise
    :class:`~lomond.testing.waits.ExpectationFailed` or
    :class:`~lomond.testing.waits.WaitTimeout`, which the server records
    as a script error.
    """

    def __init__(self, sock: socket.socket, peer: tuple, transcript: Transcript) -> None:
        self.sock = sock
        self.peer = peer
        self.transcript = transcript

        # Protocol state: wsproto's handshake and, once accepted, its frames.
        self._handshake = H11Handshake(ConnectionType.SERVER)
        self._handshake_request: WsprotoRequest | None = None
        self._ws: WsprotoConnection | None = None
        self._parser = FrameParser(max_frame=MAX_MESSAGE_BYTES)
        self._inflater: Inflater | None = None
        self._fragments: list[Frame] = []
        self._pending = bytearray()
        self._close_frames_seen = 0
        self._script_cursor = 0

        # Behaviour switches that steps set.
        self.auto_pong = True
        self.answer_close = True
        # While echo() runs, the reply to the client's close frame waits
        # until the messages that arrived before it are echoed.
        self._defer_close_reply = False
        self._deferred_close: CloseConnection | None = None

        # TCP shaping, in Toxiproxy's vocabulary.
        self.slice_size: int | None = None
        self.slice_delay = 0.0
        self.latency = 0.0
        self.bandwidth: float | None = None
        self.data_limit: int | None = None
        self.slow_close_delay = 0.0

        # Synchronisation: one writer at a time, a stall gate, and disconnection.
        self._write_lock = gevent.lock.Semaphore()
        self._process_lock = gevent.lock.Semaphore()
        self._running = gevent.event.Event()
        self._running.set()
        self._disconnected = gevent.event.Event()
        self._socket_closed = False
        self.reader: gevent.Greenlet | None = None

    # --- state --------------------------------------------------------------

    @property
    def request(self) -> Request:
        """The client's handshake request (read before the script starts)."""
        if self.transcript.request is None:
            raise ConnectionClosed("no request was received")
        return self.transcript.request

    @property
    def is_disconnected(self) -> bool:
        """True once the client disconnected or the server closed the socket."""
        return self._disconnected.is_set()

    @property
    def is_open(self) -> bool:
        """True while the WebSocket is accepted and no close frame was sent."""
        return self._ws is not None and self.transcript.close_sent is None and not self.is_disconnected

    def _mark_disconnected(self, reason: str) -> None:
        if not self._disconnected.is_set():
            if self.transcript.end_reason is None:
                self.transcript.end_reason = reason
            self._disconnected.set()
        self.transcript.notify()

    # --- opening handshake: reading the request -----------------------------

    def read_request(self, timeout: float | None = None) -> Request:
        """Read the request head (up to a blank line) and record it."""
        buffer = bytearray()
        timer = gevent.Timeout(default_timeout(timeout))
        try:
            with timer:
                while b"\r\n\r\n" not in buffer and len(buffer) <= MAX_REQUEST_BYTES:
                    chunk = self.sock.recv(READ_SIZE)
                    if not chunk:
                        break
                    self.transcript.bytes_in += len(chunk)
                    buffer += chunk
        except gevent.Timeout as error:
            if error is not timer:
                raise
            self._mark_disconnected("no request before the timeout")
            raise ConnectionClosed("no request before the timeout") from None
        except OSError as error:
            self._mark_disconnected(f"read failed: {error}")
            raise ConnectionClosed(str(error)) from None

        head, separator, rest = bytes(buffer).partition(b"\r\n\r\n")
        if not separator and len(buffer) > MAX_REQUEST_BYTES:
            self._handshake_request = None
            self.transcript.request = parse_request(bytes(buffer[:MAX_REQUEST_BYTES]))
            self.reject(431, body=f"request head over {MAX_REQUEST_BYTES} bytes\n")
            self._mark_disconnected(f"request head over {MAX_REQUEST_BYTES} bytes")
            raise ConnectionClosed("request head too large")
        if not separator:
            self._mark_disconnected("client closed before the end of the request")
            raise ConnectionClosed("incomplete request")
        self._pending += rest
        request = parse_request(head)
        self.transcript.request = request
        self.transcript.notify()

        # Let wsproto judge the request too: accept() needs its verdict.
        try:
            self._handshake.receive_data(head + separator)
            for event in self._handshake.events():
                if isinstance(event, WsprotoRequest):
                    self._handshake_request = event
        except RemoteProtocolError as error:
            log.debug("request from %s is not a WebSocket upgrade: %s", self.peer, error)
        return request

    def start_reader(self) -> gevent.Greenlet:
        """Start the greenlet that reads and records everything the client sends."""
        self.reader = gevent.spawn(self._read_loop)
        return self.reader

    # --- opening handshake: responses ---------------------------------------

    def accept(
        self,
        subprotocol: str | None = None,
        extensions: Iterable[str] = (),
        headers: Iterable[tuple[str, str]] = (),
        messages: Iterable[str | bytes] = (),
    ) -> None:
        """Accept the upgrade through wsproto.

        ``extensions`` may name "permessage-deflate", which wsproto then
        negotiates against the client's offer; other names are sent as a
        Sec-WebSocket-Extensions header as they are. ``messages`` are sent in
        the same write as the 101 response, so they share its TCP segment.
        """
        if self._handshake_request is None:
            self.reject(400, body="not a WebSocket upgrade request\n")
            raise ExpectationFailed(
                f"cannot accept: the request is not a valid WebSocket upgrade ({self.request.method} {self.request.target})"
            )
        if subprotocol is not None and subprotocol not in self._handshake_request.subprotocols:
            raise ValueError(
                f"the client did not offer subprotocol {subprotocol!r}; "
                "use accept_raw(subprotocol=...) to send it anyway"
            )

        # Split extensions into those wsproto negotiates and raw header values.
        negotiated: list[Extension] = []
        extra = _header_bytes(headers)
        for name in extensions:
            if name == "permessage-deflate":
                negotiated.append(PerMessageDeflate())
            else:
                extra.append((b"Sec-WebSocket-Extensions", name.encode("latin-1")))

        response = self._handshake.send(
            AcceptConnection(subprotocol=subprotocol, extensions=negotiated, extra_headers=extra)
        )
        ws = self._handshake.connection
        assert ws is not None
        for extension in negotiated:
            if isinstance(extension, PerMessageDeflate) and extension.enabled():
                self._inflater = Inflater(extension.client_no_context_takeover, MAX_MESSAGE_BYTES)
        first_frames = b"".join(ws.send(self._message_event(m)) for m in messages)
        self._switch_protocols(ws)
        self.write(response + first_frames)

    def accept_raw(
        self,
        status: int = 101,
        reason: str = "Switching Protocols",
        accept_key: str | bool | None = True,
        upgrade: str | None = "websocket",
        connection: str | None = "Upgrade",
        subprotocol: str | None = None,
        extensions: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        trailing: bytes = b"",
    ) -> None:
        """Write a hand-made 101 response, malformed as requested.

        ``accept_key`` True sends the correct Sec-WebSocket-Accept, a string
        sends that value, and None leaves the header out. ``upgrade`` and
        ``connection`` set those headers (None leaves them out), and
        ``trailing`` bytes follow the response in the same write.
        """
        lines = [f"HTTP/1.1 {status} {reason}"]
        if upgrade is not None:
            lines.append(f"Upgrade: {upgrade}")
        if connection is not None:
            lines.append(f"Connection: {connection}")
        if accept_key is True:
            key = self.request.header("Sec-WebSocket-Key", "") or ""
            lines.append("Sec-WebSocket-Accept: " + generate_accept_token(key.encode()).decode())
        elif accept_key:
            lines.append(f"Sec-WebSocket-Accept: {accept_key}")
        if subprotocol is not None:
            lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
        if extensions is not None:
            lines.append(f"Sec-WebSocket-Extensions: {extensions}")
        lines.extend(f"{name}: {value}" for name, value in headers)
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + trailing
        if status == 101:
            self._switch_protocols(WsprotoConnection(ConnectionType.SERVER))
        else:
            self.transcript.response_status = status
        self.write(data)

    def reject(
        self,
        status: int = 403,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes | str = b"",
        reason: str | None = None,
    ) -> None:
        """Reject the handshake with a non-101 HTTP response.

        wsproto builds it, with an empty reason phrase, unless ``reason`` is
        given or wsproto rejected the request itself. In those cases it is
        written by hand, with ``reason`` or the standard phrase of ``status``.
        """
        body_bytes = body.encode("utf-8") if isinstance(body, str) else body
        header_list = _header_bytes(headers)
        if body_bytes and not any(name.lower() == b"content-length" for name, _ in header_list):
            header_list.append((b"Content-Length", str(len(body_bytes)).encode()))
        self.transcript.response_status = status

        if self._handshake_request is not None and reason is None:
            data = self._handshake.send(
                RejectConnection(status_code=status, headers=header_list, has_body=bool(body_bytes))
            )
            if body_bytes:
                data += self._handshake.send(RejectData(data=body_bytes, body_finished=True))
        else:
            if reason is None:
                try:
                    reason = HTTPStatus(status).phrase
                except ValueError:
                    reason = "Rejected"
            lines = [f"HTTP/1.1 {status} {reason}"]
            lines += [f"{n.decode('latin-1')}: {v.decode('latin-1')}" for n, v in header_list]
            if not body_bytes:
                lines.append("Content-Length: 0")
            data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body_bytes
        self.write(data)

    def _switch_protocols(self, ws: WsprotoConnection) -> None:
        with self._process_lock:
            self._ws = ws
            self.transcript.response_status = 101
            pending, self._pending = bytes(self._pending), bytearray()
        if pending:
            self._process(pending)

    # --- sending ------------------------------------------------------------

    @staticmethod
    def _message_event(message: str | bytes) -> TextMessage | BytesMessage:
        if isinstance(message, str):
            return TextMessage(data=message)
        return BytesMessage(data=bytes(message))

    def _require_ws(self) -> WsprotoConnection:
        if self._ws is None:
            raise ExpectationFailed("the handshake was not accepted: add an accept step first")
        return self._ws

    def _send_event(self, event: object) -> None:
        ws = self._require_ws()
        if ws.state not in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            raise ConnectionClosed(f"the WebSocket is {ws.state.name}")
        if ws.state is ConnectionState.REMOTE_CLOSING and isinstance(event, (TextMessage, BytesMessage)):
            # RFC 6455 section 5.5.1 lets a server send data after the
            # client's close frame and before its own, but wsproto refuses,
            # so the frame is built here (uncompressed, which is always valid).
            if isinstance(event, TextMessage):
                self.write(build_frame(OP_TEXT, event.data.encode("utf-8")))
            else:
                self.write(build_frame(OP_BINARY, bytes(event.data)))
            return
        self.write(ws.send(event))  # type: ignore[arg-type]

    def send_text(self, text: str) -> None:
        """Send a text message through wsproto."""
        self._send_event(TextMessage(data=text))

    def send_binary(self, data: bytes) -> None:
        """Send a binary message through wsproto."""
        self._send_event(BytesMessage(data=bytes(data)))

    def send_fragments(self, fragments: Sequence[str | bytes], ping: bytes | None = None) -> None:
        """Send one message as the given frames (str fragments make a text message).

        With ``ping``, a ping with that payload goes after the first frame,
        inside the message, as RFC 6455 section 5.4 allows.
        """
        for index, fragment in enumerate(fragments):
            last = index == len(fragments) - 1
            if isinstance(fragment, str):
                self._send_event(TextMessage(data=fragment, message_finished=last))
            else:
                self._send_event(BytesMessage(data=bytes(fragment), message_finished=last))
            if index == 0 and ping is not None:
                self.ping(ping)

    def ping(self, payload: bytes = b"") -> None:
        """Send a ping through wsproto."""
        self._send_event(Ping(payload=payload))

    def pong(self, payload: bytes = b"") -> None:
        """Send a pong through wsproto (unsolicited unless it replies to a ping)."""
        self._send_event(Pong(payload=payload))

    def send_frame(self, opcode: int, payload: bytes = b"", **options: Any) -> None:
        """Send one hand-built frame; ``options`` are those of :func:`~lomond.testing.frames.build_frame`."""
        self.write(build_frame(opcode, payload, **options))

    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are."""
        self.write(data)

    # --- closing ------------------------------------------------------------

    def close(
        self,
        code: int | None = 1000,
        reason: str | bytes = "",
        wait: bool = True,
        timeout: float | None = None,
        payload: bytes | None = None,
    ) -> None:
        """Send a close frame, wait for the client's, then close the TCP connection.

        Valid codes with a str reason go through wsproto; invalid codes,
        bytes reasons and an explicit ``payload`` are written by hand. With
        ``wait`` False the socket is closed right after the frame.
        """
        ws = self._require_ws()
        well_formed = (
            payload is None
            and isinstance(reason, str)
            and code is not None
            and is_valid_close_code(code)
            and ws.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING)
        )
        if well_formed:
            assert code is not None and isinstance(reason, str)
            data = ws.send(CloseConnection(code=code, reason=reason or None))
            payload = data[2:]
        else:
            if payload is None:
                payload = build_close_payload(code, reason)
            data = build_frame(OP_CLOSE, payload)
        self.transcript.close_sent = bytes(payload)
        self.write(data)
        if wait:
            self.wait_for(
                lambda: self.transcript.close_received is not None or self.is_disconnected,
                timeout,
                "the client's close frame",
                fail=False,
            )
        self.close_socket()

    def going_away(self) -> None:
        """Send a 1001 (going away) close frame if the WebSocket is open; ignore a closed socket."""
        if self.is_open:
            payload = build_close_payload(1001)
            self.transcript.close_sent = payload
            self._write_quietly(build_frame(OP_CLOSE, payload))

    # --- TCP faults ---------------------------------------------------------

    def drop(self) -> None:
        """Close the TCP connection with a FIN, without any close frame."""
        self.close_socket(delay=False)

    def reset(self) -> None:
        """Abort the TCP connection with an RST (SO_LINGER with a zero timeout)."""
        if not self._socket_closed:
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        self.close_socket(delay=False, shutdown=False)

    def stall(self, seconds: float | None = None) -> None:
        """Stop reading and writing for ``seconds`` (None: until the server stops)."""
        self._running.clear()
        try:
            if seconds is None:
                # Bounded by the connection's life: stop() closes the socket.
                while not self._socket_closed:
                    self._disconnected.wait(scaled(60))
            else:
                gevent.sleep(seconds)
        finally:
            self._running.set()

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or less if the client leaves first (nothing later could reach it)."""
        self._disconnected.wait(seconds)

    # --- expectations -------------------------------------------------------

    def wait_for(
        self, predicate: Callable[[], T], timeout: float | None, description: str, fail: bool = True
    ) -> T | None:
        """Return ``predicate()`` once true; on timeout raise WaitTimeout, or return None when ``fail`` is False."""
        try:
            return self.transcript.wait_until(predicate, timeout, description)
        except WaitTimeout:
            if fail:
                raise
            return None

    def receive(self, timeout: float | None = None) -> Message:
        """Return the next message or control frame the script has not seen yet."""

        def ready() -> bool:
            return self._script_cursor < len(self.transcript.messages) or self.is_disconnected

        self.wait_for(ready, timeout, "a message from the client")
        if self._script_cursor >= len(self.transcript.messages):
            raise ExpectationFailed(
                f"the client disconnected ({self.transcript.end_reason}) before sending the expected message"
            )
        message = self.transcript.messages[self._script_cursor]
        self._script_cursor += 1
        return message

    def expect(self, kind: str, match: object = None, timeout: float | None = None) -> Message:
        """Wait for the next message of ``kind`` and check it against ``match``.

        Pings and pongs are passed over unless ``kind`` is "ping" or "pong".
        ``match`` is a value compared with ``message.data``, a compiled
        regular expression searched in text, or a predicate.
        """
        deadline = time.monotonic() + default_timeout(timeout)
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            message = self.receive(remaining)
            if message.kind in ("ping", "pong") and kind not in ("ping", "pong"):
                continue
            if message.kind != kind:
                raise ExpectationFailed(f"expected a {kind} from the client, received {message!r}")
            value = message.code if kind == "close" else message.data
            if not matches(match, value):
                raise ExpectationFailed(f"expected a {kind} matching {match!r}, received {message!r}")
            return message

    def echo(self) -> None:
        """Send back every text and binary message until the client closes or leaves.

        Messages that arrived before the client's close frame are echoed
        before the close reply, as a real echo server would.
        """
        self._defer_close_reply = True
        try:
            while not self.is_disconnected:
                try:
                    message = self.receive(scaled(60))
                except WaitTimeout:
                    continue
                except ExpectationFailed:
                    return
                if message.kind == "close":
                    return
                if message.kind in ("text", "binary") and self.is_open:
                    try:
                        self._send_event(self._message_event(message.data))
                    except ConnectionClosed:
                        return
        finally:
            self._defer_close_reply = False
            self._send_deferred_close()

    def _send_deferred_close(self) -> None:
        event, self._deferred_close = self._deferred_close, None
        if event is not None and self.answer_close and self.transcript.close_sent is None:
            reply = self._require_ws().send(event.response())
            self._write_quietly(reply)
            self.transcript.close_sent = bytes(reply[2:])

    def hold(self) -> None:
        """Wait until the client leaves or the closing handshake completes (bounded by stop())."""

        def finished() -> bool:
            return self.is_disconnected or self.transcript.closing_handshake_completed

        while not finished():
            self.wait_for(finished, scaled(60), "the end of the connection", fail=False)

    # --- I/O ----------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Write ``data`` through the TCP shaping; raise ConnectionClosed when the socket is gone."""
        with self._write_lock:
            while not self._running.is_set():
                self._running.wait(scaled(1))
            if self._socket_closed:
                raise ConnectionClosed("the socket is closed")
            if self.latency:
                gevent.sleep(self.latency)
            for chunk in self._chunks(data):
                self._write_chunk(chunk)

    def _chunks(self, data: bytes) -> list[bytes]:
        size = self.slice_size
        if self.bandwidth is not None:
            # About ten writes a second keeps the rate smooth.
            rate_chunk = max(1, int(self.bandwidth / 10))
            size = rate_chunk if size is None else min(size, rate_chunk)
        if size is None or len(data) <= size:
            return [data]
        return [data[i : i + size] for i in range(0, len(data), size)]

    def _write_chunk(self, chunk: bytes) -> None:
        # limit_data: write what is left of the allowance, then FIN.
        cut = False
        if self.data_limit is not None:
            if len(chunk) >= self.data_limit:
                chunk, cut = chunk[: self.data_limit], True
            self.data_limit -= len(chunk)
        try:
            if chunk:
                self.sock.sendall(chunk)
        except OSError as error:
            self._mark_disconnected(f"write failed: {error}")
            raise ConnectionClosed(str(error)) from None
        self.transcript.bytes_out += len(chunk)
        if cut:
            self.close_socket(delay=False)
            raise ConnectionClosed("limit_data reached")
        if self.bandwidth is not None:
            gevent.sleep(len(chunk) / self.bandwidth)
        if self.slice_size is not None and self.slice_delay:
            gevent.sleep(self.slice_delay)

    def close_socket(self, delay: bool = True, shutdown: bool = True) -> None:
        """Close the socket once (after the slow_close delay when ``delay`` is True)."""
        if self._socket_closed:
            return
        if delay:
            # A graceful close lets a write in progress finish first.
            if self._write_lock.acquire(timeout=scaled(5)):
                self._write_lock.release()
            if self.slow_close_delay:
                gevent.sleep(self.slow_close_delay)
        if self._socket_closed:
            return
        self._socket_closed = True
        if shutdown:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        try:
            self.sock.close()
        except OSError:
            pass
        self.transcript.closed_at = time.monotonic()
        self._mark_disconnected("closed by the server")
        self._running.set()

    # --- reading ------------------------------------------------------------

    def _read_loop(self) -> None:
        while not self._socket_closed:
            if not self._running.is_set():
                self._running.wait(scaled(1))
                continue
            try:
                data = self.sock.recv(READ_SIZE)
            except OSError as error:
                self._mark_disconnected(f"read failed: {error}")
                return
            if not data:
                self._mark_disconnected("closed by the client")
                return
            self.transcript.bytes_in += len(data)
            while not self._running.is_set() and not self._socket_closed:
                self._running.wait(scaled(1))
            if self._ws is None:
                # Frames before the 101 are a client bug; keep them (bounded)
                # so that the transcript shows them once the script accepts.
                self._pending += data
                if len(self._pending) > MAX_MESSAGE_BYTES:
                    self._mark_disconnected("client sent too much before the handshake response")
                    self.close_socket(delay=False)
                    return
            else:
                self._process(data)
            self.transcript.notify()

    def _process(self, data: bytes) -> None:
        with self._process_lock:
            ws = self._ws
            assert ws is not None
            now = time.monotonic()
            try:
                frames = self._parser.feed(data, now)
            except ValueError as error:
                self._client_error(1009, str(error))
                return
            for frame in frames:
                self.transcript.frames.append(frame)
                self._collect(frame)
            if ws.state is ConnectionState.CLOSED:
                return
            ws.receive_data(data)
            for event in ws.events():
                self._judge(event)

    def _collect(self, frame: Frame) -> None:
        """Add a frame to the transcript's messages, reassembling fragments."""
        if frame.is_control:
            if frame.opcode == OP_CLOSE:
                self._close_frames_seen += 1
            self.transcript.messages.append(
                Message(frame.kind, frame.payload, [frame], frame.time, frame.time)
            )
            return
        if frame.opcode in (OP_TEXT, OP_BINARY):
            self._fragments = [frame]
        elif frame.opcode == OP_CONTINUATION and self._fragments:
            self._fragments.append(frame)
        else:
            return  # an orphan continuation or reserved opcode: wsproto reports it
        if not frame.fin:
            return

        # The message is complete: join the frames, and inflate them when the
        # first frame has RSV1 set (RFC 7692 section 6).
        first = self._fragments[0]
        payload = b"".join(f.payload for f in self._fragments)
        compressed = first.rsv1 and self._inflater is not None
        if compressed:
            assert self._inflater is not None
            try:
                payload = self._inflater.inflate(payload)
            except (zlib.error, ValueError) as error:
                self._client_error(1007, f"failed to inflate message: {error}")
                return
        self.transcript.messages.append(
            Message(first.kind, payload, self._fragments, first.time, frame.time, compressed)
        )
        self._fragments = []

    def _judge(self, event: object) -> None:
        """React to one wsproto event: reply to pings and closes, record violations."""
        if isinstance(event, Ping):
            if self.auto_pong and self.is_open:
                self._write_quietly(self._require_ws().send(event.response()))
        elif isinstance(event, CloseConnection):
            close = self.transcript.close_received
            genuine = (
                close is not None
                and close.code == (None if event.code == 1005 else event.code)
                and (event.reason or "") == close.reason
            )
            if not genuine:
                self._client_error(event.code, event.reason or "protocol error")
                return
            if self._defer_close_reply:
                self._deferred_close = event
                return
            if self.answer_close and self.transcript.close_sent is None:
                reply = self._require_ws().send(event.response())
                self._write_quietly(reply)
                # Recorded once written, so that hold() cannot close the
                # socket while a sliced or slowed reply is still going out.
                self.transcript.close_sent = bytes(reply[2:])

    def _client_error(self, code: int, reason: str) -> None:
        """Fail the connection after a client violation: close frame, then TCP close (RFC 6455 section 7.1.7)."""
        log.debug("client %s broke the protocol: %s", self.peer, reason)
        self.transcript.protocol_errors.append(f"{code}: {reason}")
        if self.transcript.close_sent is None:
            payload = build_close_payload(code, reason.encode("utf-8")[:100])
            self.transcript.close_sent = payload
            self._write_quietly(build_frame(OP_CLOSE, payload))
        self.close_socket(delay=False)

    def _write_quietly(self, data: bytes) -> None:
        try:
            self.write(data)
        except ConnectionClosed:
            pass
