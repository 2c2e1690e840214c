"""Benchmark server: a WebSocket peer that does as little work as possible.

The request path selects what the server does after the opening handshake:

/stream?count=N&size=S&type=text|binary
    Wait for one message from the client, then send N unmasked frames of
    S bytes from one pre-encoded buffer, then wait for the closing handshake.
/echo
    Send every data frame back unmasked.
/discard
    Walk the headers of incoming frames without copying their payloads, and
    reply to each text frame with the text message "ack". A client sends a
    text frame after its binary ones, so the ack means all of them arrived.
/idle
    Reply to pings and to the closing handshake, nothing else.
/fanin?count=N&rate=R
    Half a second after the client's first message, send N text messages
    at R per second,
    each carrying the server's time.monotonic() when it was sent, then
    close with status 1000.

Single-connection modes (stream, echo, discard) run in a thread on a
blocking socket, so sendall() and recv_into() loop in C without the GIL.
The many-connection modes (idle, fanin) share one selector loop. The server
prints {"port": N} on stdout once it listens, and exits when its standard
input closes, which ties its lifetime to the runner's.
"""

import argparse
import heapq
import json
import os
import selectors
import socket
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

import bench_wire as wire
from bench_client import raise_file_limit

LISTEN_BACKLOG = 4096
# Largest handshake request the server reads before it drops the connection.
MAX_REQUEST_BYTES = 16384
# Frames per pre-encoded chunk target this many bytes per sendall().
STREAM_CHUNK_BYTES = 65536
# The first fan-in message of successive connections is spread over this
# many steps of one interval, so sends do not arrive in one burst.
FANIN_SPREAD_STEPS = 100
# Seconds between a connection's first client message and its first fan-in
# message. The client sends that message on every connection at once, and
# the delay keeps that burst out of the measured lags.
FANIN_START_DELAY = 0.5

_stream_buffers = {}
_stream_buffers_lock = threading.Lock()


# Blocking helpers for the single-connection modes.

class FrameReader:
    """Read whole frames from a blocking socket, unmasking payloads."""

    def __init__(self, sock, initial=b""):
        self.sock = sock
        self.buffer = bytearray(initial)

    def read_frame(self):
        """Return (opcode, payload), or None once the peer closed TCP."""
        while True:
            header = wire.parse_header(self.buffer, 0, len(self.buffer))
            if header is not None:
                opcode, header_length, length, mask = header
                total = header_length + length
                if len(self.buffer) >= total:
                    payload = bytes(self.buffer[header_length:total])
                    del self.buffer[:total]
                    if mask is not None:
                        payload = wire.apply_mask(mask, payload)
                    return opcode, payload
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk


def finish_connection(sock, reader):
    """Serve control frames until the closing handshake or EOF, then close."""
    try:
        while True:
            frame = reader.read_frame()
            if frame is None:
                break
            opcode, payload = frame
            if opcode == wire.OP_CLOSE:
                sock.sendall(wire.encode_frame(wire.OP_CLOSE, payload[:2]))
                break
            if opcode == wire.OP_PING:
                sock.sendall(wire.encode_frame(wire.OP_PONG, payload))
    except OSError:
        pass
    finally:
        sock.close()


def stream_buffers(size, text):
    """Return (chunk, frames per chunk, one frame), built once per shape."""
    key = (size, text)
    with _stream_buffers_lock:
        if key not in _stream_buffers:
            opcode = wire.OP_TEXT if text else wire.OP_BINARY
            frame = wire.encode_frame(opcode, wire.make_payload(size, text))
            per_chunk = max(1, STREAM_CHUNK_BYTES // len(frame))
            _stream_buffers[key] = (frame * per_chunk, per_chunk, frame)
        return _stream_buffers[key]


def serve_stream(sock, response, rest, params):
    count = int(params.get("count", "1"))
    size = int(params.get("size", "32"))
    text = params.get("type", "binary") == "text"
    # Encode before the handshake response, so that the client, which
    # starts its clock as soon as it is connected, never waits for it.
    chunk, per_chunk, frame = stream_buffers(size, text)
    reader = FrameReader(sock, rest)
    try:
        sock.sendall(response)
        # The client's first message starts the clock on its side.
        if reader.read_frame() is None:
            sock.close()
            return
        full_chunks, remainder = divmod(count, per_chunk)
        for _ in range(full_chunks):
            sock.sendall(chunk)
        if remainder:
            sock.sendall(frame * remainder)
    except OSError:
        sock.close()
        return
    finish_connection(sock, reader)


def serve_echo(sock, response, rest, params):
    reader = FrameReader(sock, rest)
    try:
        sock.sendall(response)
        while True:
            frame = reader.read_frame()
            if frame is None:
                break
            opcode, payload = frame
            if opcode == wire.OP_CLOSE:
                sock.sendall(wire.encode_frame(wire.OP_CLOSE, payload[:2]))
                break
            if opcode == wire.OP_PING:
                sock.sendall(wire.encode_frame(wire.OP_PONG, payload))
            elif opcode in (wire.OP_TEXT, wire.OP_BINARY):
                sock.sendall(wire.encode_frame(opcode, payload))
    except OSError:
        pass
    finally:
        sock.close()


def serve_discard(sock, response, rest, params):
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    buf[:len(rest)] = rest
    start, end = 0, len(rest)
    skip = 0
    try:
        sock.sendall(response)
        while True:
            # Walk every complete header in the buffer.
            while True:
                header = wire.parse_header(buf, start, end)
                if header is None:
                    break
                opcode, header_length, length, mask = header
                if opcode >= wire.OP_CLOSE:
                    # Control frames are at most 125 bytes (RFC 6455 5.5),
                    # so they fit in the buffer once it is compacted.
                    if end - start < header_length + length:
                        break
                    payload = bytes(buf[start + header_length:start + header_length + length])
                    payload = wire.apply_mask(mask, payload) if mask else payload
                    start += header_length + length
                    if opcode == wire.OP_CLOSE:
                        sock.sendall(wire.encode_frame(wire.OP_CLOSE, payload[:2]))
                        return
                    if opcode == wire.OP_PING:
                        sock.sendall(wire.encode_frame(wire.OP_PONG, payload))
                    continue
                if opcode == wire.OP_TEXT:
                    sock.sendall(wire.encode_frame(wire.OP_TEXT, b"ack"))
                total = header_length + length
                if end - start >= total:
                    start += total
                else:
                    skip = total - (end - start)
                    start = end
                    break

            # Keep an incomplete header, then read; skipped payload bytes
            # are overwritten in place.
            if start:
                buf[:end - start] = buf[start:end]
                end -= start
                start = 0
            received = sock.recv_into(view[end:])
            if not received:
                return
            if skip:
                if received <= skip:
                    skip -= received
                    continue
                start = end + skip
                skip = 0
            end += received
    except OSError:
        pass
    finally:
        sock.close()


THREAD_MODES = {"/stream": serve_stream, "/echo": serve_echo, "/discard": serve_discard}


# The selector loop for the many-connection modes.

class Connection:
    __slots__ = ("sock", "inbuf", "outbuf", "mode", "params", "remaining", "interval",
                 "closing")

    def __init__(self, sock):
        self.sock = sock
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.mode = None
        self.params = {}
        self.remaining = 0
        self.interval = 0.0
        self.closing = False


class SelectorServer:
    def __init__(self, listener):
        self.listener = listener
        self.selector = selectors.DefaultSelector()
        self.selector.register(listener, selectors.EVENT_READ, None)
        self.schedule = []
        self.schedule_seq = 0
        self.fanin_started = 0

    def run(self):
        while True:
            timeout = None
            if self.schedule:
                timeout = max(0.0, self.schedule[0][0] - time.monotonic())
            for key, events in self.selector.select(timeout):
                if key.data is None:
                    self.accept()
                    continue
                conn = key.data
                if events & selectors.EVENT_WRITE:
                    self.flush(conn)
                if events & selectors.EVENT_READ and conn.sock.fileno() >= 0:
                    self.on_readable(conn)
            self.send_due_messages()

    def accept(self):
        for _ in range(LISTEN_BACKLOG):
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.selector.register(sock, selectors.EVENT_READ, Connection(sock))

    def drop(self, conn):
        if conn.sock.fileno() >= 0:
            self.selector.unregister(conn.sock)
            conn.sock.close()

    def on_readable(self, conn):
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.drop(conn)
            return
        conn.inbuf += data
        if conn.mode is None:
            self.on_handshake_data(conn)
        else:
            self.on_frames(conn)

    def on_handshake_data(self, conn):
        end = conn.inbuf.find(b"\r\n\r\n")
        if end < 0:
            if len(conn.inbuf) > MAX_REQUEST_BYTES:
                self.drop(conn)
            return
        head = bytes(conn.inbuf[:end]).decode("latin-1")
        rest = bytes(conn.inbuf[end + 4:])
        lines = head.split("\r\n")
        parts = lines[0].split(" ")
        key = None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "sec-websocket-key":
                key = value.strip()
        url = urlsplit(parts[1]) if len(parts) == 3 else None
        if key is None or url is None:
            self.drop(conn)
            return
        params = {name: values[-1] for name, values in parse_qs(url.query).items()}
        response = (
            "HTTP/1.1 101 Switching Protocols\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            "Sec-WebSocket-Accept: %s\r\n\r\n" % wire.accept_key(key)
        ).encode("ascii")

        if url.path in THREAD_MODES:
            self.selector.unregister(conn.sock)
            conn.sock.setblocking(True)
            thread = threading.Thread(
                target=THREAD_MODES[url.path], args=(conn.sock, response, rest, params),
                daemon=True)
            thread.start()
            return
        if url.path not in ("/idle", "/fanin"):
            self.drop(conn)
            return
        conn.mode = url.path
        conn.params = params
        conn.inbuf = bytearray(rest)
        self.write(conn, response)
        self.on_frames(conn)

    def on_frames(self, conn):
        buf = conn.inbuf
        start = 0
        while True:
            header = wire.parse_header(buf, start, len(buf))
            if header is None:
                break
            opcode, header_length, length, mask = header
            total = header_length + length
            if len(buf) - start < total:
                break
            payload = bytes(buf[start + header_length:start + total])
            start += total
            if mask is not None:
                payload = wire.apply_mask(mask, payload)
            if opcode == wire.OP_PING:
                self.write(conn, wire.encode_frame(wire.OP_PONG, payload))
            elif opcode == wire.OP_CLOSE:
                if not conn.closing:
                    self.write(conn, wire.encode_frame(wire.OP_CLOSE, payload[:2]))
                conn.remaining = 0
                self.drop(conn)
                return
            elif opcode in (wire.OP_TEXT, wire.OP_BINARY) and conn.mode == "/fanin":
                self.start_fanin(conn)
        del buf[:start]

    def start_fanin(self, conn):
        if conn.remaining:
            return
        conn.remaining = int(conn.params.get("count", "1"))
        conn.interval = 1.0 / float(conn.params.get("rate", "10"))
        step = self.fanin_started % FANIN_SPREAD_STEPS
        self.fanin_started += 1
        due = time.monotonic() + FANIN_START_DELAY + conn.interval * step / FANIN_SPREAD_STEPS
        self.push(due, conn)

    def push(self, due, conn):
        self.schedule_seq += 1
        heapq.heappush(self.schedule, (due, self.schedule_seq, conn))

    def send_due_messages(self):
        now = time.monotonic()
        while self.schedule and self.schedule[0][0] <= now:
            due, _, conn = heapq.heappop(self.schedule)
            if conn.sock.fileno() < 0 or not conn.remaining:
                continue
            stamp = ("%.6f" % time.monotonic()).ljust(32).encode("ascii")
            self.write(conn, wire.encode_frame(wire.OP_TEXT, stamp))
            conn.remaining -= 1
            if conn.remaining:
                # Anchor on the schedule, not on now, so lateness never
                # lowers the rate.
                self.push(due + conn.interval, conn)
            else:
                conn.closing = True
                self.write(conn, wire.encode_frame(wire.OP_CLOSE, wire.CLOSE_NORMAL))
            now = time.monotonic()

    def write(self, conn, data):
        if conn.sock.fileno() < 0:
            return
        if conn.outbuf:
            conn.outbuf += data
            return
        try:
            sent = conn.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self.drop(conn)
            return
        if sent < len(data):
            conn.outbuf += data[sent:]
            self.selector.modify(
                conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, conn)

    def flush(self, conn):
        try:
            sent = conn.sock.send(conn.outbuf)
        except BlockingIOError:
            return
        except OSError:
            self.drop(conn)
            return
        del conn.outbuf[:sent]
        if not conn.outbuf:
            self.selector.modify(conn.sock, selectors.EVENT_READ, conn)


def exit_when_stdin_closes():
    try:
        sys.stdin.buffer.read()
    finally:
        os._exit(0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()

    raise_file_limit()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.host, args.port))
    listener.listen(LISTEN_BACKLOG)
    listener.setblocking(False)

    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    print(json.dumps({"port": listener.getsockname()[1], "pid": os.getpid()}), flush=True)
    SelectorServer(listener).run()


if __name__ == "__main__":
    main()
