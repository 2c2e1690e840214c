"""Raw-socket baseline: the fastest a Python process here can handle frames.

It reads with recv_into() into one preallocated buffer and walks the frame
headers to count messages, without copying payloads, decoding text or
reassembling fragments. Frames it sends are encoded and masked once, before
the clock starts. Every other client's result is divided by this one's.

With --monkey-patch the same code runs on gevent's cooperative sockets,
which gives the limit for any client that waits through gevent's hub.
"""

import bench_client as bench

bench.monkey_patch_if_requested()

import selectors  # noqa: E402
import time  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import bench_wire as wire  # noqa: E402

# A fixed key is fine here: the baseline measures the socket, not masking.
MASK = b"\x37\xfa\x21\x3d"
READ_BUFFER_BYTES = 1 << 18


def open_url(url):
    parts = urlsplit(url)
    path = parts.path + ("?" + parts.query if parts.query else "")
    return wire.open_client_socket(parts.hostname, parts.port, path)


def close_socket(sock):
    """Start the closing handshake and wait for the server to end TCP."""
    try:
        sock.sendall(wire.encode_frame(wire.OP_CLOSE, wire.CLOSE_NORMAL, MASK))
        sock.settimeout(5.0)
        while sock.recv(65536):
            pass
    except OSError:
        pass
    sock.close()


def count_frames(sock, initial, count):
    """Receive until `count` whole frames have arrived; payloads are skipped."""
    buf = bytearray(READ_BUFFER_BYTES)
    view = memoryview(buf)
    buf[:len(initial)] = initial
    start, end = 0, len(initial)
    frames = 0
    skip = 0
    while frames < count:
        # Walk the complete headers in the buffer.
        while True:
            available = end - start
            if available < 2:
                break
            length = buf[start + 1] & 0x7F
            if length < 126:
                total = 2 + length
            elif length == 126:
                if available < 4:
                    break
                total = 4 + int.from_bytes(buf[start + 2:start + 4], "big")
            else:
                if available < 10:
                    break
                total = 10 + int.from_bytes(buf[start + 2:start + 10], "big")
            if available >= total:
                start += total
                frames += 1
            else:
                skip = total - available
                start = end
                break
        if frames >= count:
            break

        # Keep a partial header at the front, then read more.
        if start:
            buf[:end - start] = buf[start:end]
            end -= start
            start = 0
        received = sock.recv_into(view[end:])
        if not received:
            raise ConnectionError("server closed the connection after %d frames" % frames)
        if skip:
            if received < skip:
                skip -= received
                continue
            frames += 1
            start = end + skip
            skip = 0
        end += received
    return frames


def read_exactly(sock, view, length):
    got = 0
    while got < length:
        received = sock.recv_into(view[got:length])
        if not received:
            raise ConnectionError("server closed the connection")
        got += received


def recv(args):
    sock, initial = open_url(args.url)
    go = wire.encode_frame(wire.OP_TEXT, b"go", MASK)
    started = time.perf_counter()
    sock.sendall(go)
    count_frames(sock, initial, args.count)
    seconds = time.perf_counter() - started
    close_socket(sock)
    return bench.recv_result(args, seconds)


def send(args):
    sock, initial = open_url(args.url)
    frame = wire.encode_frame(wire.OP_BINARY, wire.make_payload(args.size, False), MASK)
    marker = wire.encode_frame(wire.OP_TEXT, b"end", MASK)
    started = time.perf_counter()
    for _ in range(args.count):
        sock.sendall(frame)
    sock.sendall(marker)
    count_frames(sock, initial, 1)
    seconds = time.perf_counter() - started
    close_socket(sock)
    return bench.send_result(args, seconds)


def echo(args):
    sock, initial = open_url(args.url)
    if initial:
        raise ConnectionError("unexpected data after the handshake")
    frame = wire.encode_frame(wire.OP_BINARY, wire.make_payload(args.size, False), MASK)
    reply_length = len(wire.encode_frame(wire.OP_BINARY, b"\0" * args.size))
    view = memoryview(bytearray(reply_length))
    rtts = []
    clock = time.perf_counter_ns
    for _ in range(args.count):
        sent_at = clock()
        sock.sendall(frame)
        read_exactly(sock, view, reply_length)
        rtts.append(clock() - sent_at)
    close_socket(sock)
    return bench.echo_result(rtts)


def open_many(args):
    """Open connections one after another; return (sockets, seconds)."""
    sockets = []
    started = time.perf_counter()
    for _ in range(args.connections):
        sock, _ = open_url(args.url)
        sock.setblocking(False)
        sockets.append(sock)
    return sockets, time.perf_counter() - started


def warm_up(args):
    sock, _ = open_url(args.url)
    close_socket(sock)


def idle(args):
    warm_up(args)
    rss_before = bench.rss_bytes()
    sockets, open_seconds = open_many(args)
    if args.greenlet_each:
        return idle_greenlets(args, sockets, open_seconds, rss_before)
    bench.announce_opened()

    selector = selectors.DefaultSelector()
    for sock in sockets:
        selector.register(sock, selectors.EVENT_READ)
    cpu_before = bench.cpu_seconds()
    started = time.monotonic()
    end = started + args.idle_seconds
    while True:
        remaining = end - time.monotonic()
        if remaining <= 0:
            break
        for key, _ in selector.select(remaining):
            if not key.fileobj.recv(65536):
                selector.unregister(key.fileobj)
    idle_seconds = time.monotonic() - started
    cpu_used = bench.cpu_seconds() - cpu_before
    return bench.idle_result(args, len(sockets), open_seconds, rss_before, bench.rss_bytes(),
                             cpu_used, idle_seconds)


def idle_greenlets(args, sockets, open_seconds, rss_before):
    """Hold each connection in its own greenlet, blocked in recv().

    The floor of memory and CPU for a client that gives every connection a
    greenlet: the greenlet, its stacks and the socket's watcher, no
    WebSocket state.
    """
    import gevent

    def hold(sock):
        sock.setblocking(True)
        while sock.recv(65536):
            pass

    greenlets = [gevent.spawn(hold, sock) for sock in sockets]
    gevent.sleep(0)
    bench.announce_opened()
    cpu_before = bench.cpu_seconds()
    started = time.monotonic()
    gevent.sleep(args.idle_seconds)
    idle_seconds = time.monotonic() - started
    cpu_used = bench.cpu_seconds() - cpu_before
    rss_after = bench.rss_bytes()
    gevent.killall(greenlets, timeout=5)
    return bench.idle_result(args, len(sockets), open_seconds, rss_before, rss_after,
                             cpu_used, idle_seconds)


def fanin(args):
    sockets, _ = open_many(args)
    bench.announce_opened()
    go = wire.encode_frame(wire.OP_TEXT, b"go", MASK)
    close = wire.encode_frame(wire.OP_CLOSE, wire.CLOSE_NORMAL, MASK)
    selector = selectors.DefaultSelector()
    buffers = {}
    for sock in sockets:
        selector.register(sock, selectors.EVENT_READ)
        buffers[sock] = bytearray()

    lags = []
    delivered = 0
    cpu_before = bench.cpu_seconds()
    started = time.monotonic()
    for sock in sockets:
        sock.sendall(go)
    limit = bench.deadline()
    while buffers and time.monotonic() < limit:
        for key, _ in selector.select(1.0):
            sock = key.fileobj
            data = sock.recv(65536)
            now = time.monotonic()
            buf = buffers[sock]
            buf += data
            start = 0
            closed = not data
            while not closed:
                header = wire.parse_header(buf, start, len(buf))
                if header is None or len(buf) - start < header[1] + header[2]:
                    break
                opcode, header_length, length, _ = header
                if opcode == wire.OP_TEXT:
                    payload = buf[start + header_length:start + header_length + length]
                    lags.append(now - float(payload))
                    delivered += 1
                elif opcode == wire.OP_CLOSE:
                    sock.sendall(close)
                    closed = True
                start += header_length + length
            del buf[:start]
            if closed:
                selector.unregister(sock)
                sock.close()
                del buffers[sock]
    wall_seconds = time.monotonic() - started
    cpu_used = bench.cpu_seconds() - cpu_before
    return bench.fanin_result(args, delivered, lags, cpu_used, wall_seconds, len(sockets))


if __name__ == "__main__":
    bench.run({"recv": recv, "send": send, "echo": echo, "idle": idle, "fanin": fanin})
