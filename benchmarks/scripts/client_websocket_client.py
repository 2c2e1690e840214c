"""websocket-client (the `websocket` package) under gevent monkey-patching.

Its blocking create_connection() and recv() become cooperative after
gevent.monkey.patch_all(), which the runner requests with --monkey-patch.
Default options throughout: no keepalive pings, UTF-8 validation on.
"""

import bench_client as bench

bench.monkey_patch_if_requested()

import time  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402
import gevent.lock  # noqa: E402
import websocket  # noqa: E402

import bench_wire as wire  # noqa: E402


def recv(args):
    ws = websocket.create_connection(args.url)
    started = time.perf_counter()
    ws.send("go")
    for _ in range(args.count):
        ws.recv()
    seconds = time.perf_counter() - started
    ws.close()
    return bench.recv_result(args, seconds)


def send(args):
    ws = websocket.create_connection(args.url)
    payload = wire.make_payload(args.size, False)
    started = time.perf_counter()
    for _ in range(args.count):
        ws.send_binary(payload)
    ws.send("end")
    if ws.recv() != "ack":
        raise RuntimeError("expected the server's ack")
    seconds = time.perf_counter() - started
    ws.close()
    return bench.send_result(args, seconds)


def echo(args):
    ws = websocket.create_connection(args.url)
    payload = wire.make_payload(args.size, False)
    clock = time.perf_counter_ns
    rtts = []
    for _ in range(args.count):
        sent_at = clock()
        ws.send_binary(payload)
        ws.recv()
        rtts.append(clock() - sent_at)
    ws.close()
    return bench.echo_result(rtts)


class Opener:
    """Bound the handshakes in flight and count connections as they open."""

    def __init__(self, total, concurrency):
        self.total = total
        self.semaphore = gevent.lock.BoundedSemaphore(concurrency)
        self.opened = 0
        self.failed = 0
        self.all_settled = gevent.event.Event()

    def open(self, url):
        with self.semaphore:
            try:
                ws = websocket.create_connection(url)
            except (OSError, websocket.WebSocketException):
                ws = None
        if ws is None:
            self.failed += 1
        else:
            self.opened += 1
        if self.opened + self.failed == self.total:
            self.all_settled.set()
        return ws


def hold_connection(url, opener, start=None, lags=None):
    """Open one connection and read until the server closes it.

    Return the number of messages received.
    """
    ws = opener.open(url)
    if ws is None:
        return 0
    if start is not None:
        start.wait()
        ws.send("go")
    received = 0
    try:
        while True:
            message = ws.recv()
            # recv() returns "" for the server's close frame.
            if message == "":
                break
            received += 1
            if lags is not None:
                lags.append(time.monotonic() - float(message))
    except (OSError, websocket.WebSocketException):
        pass
    return received


def open_many(args, start=None, lags=None):
    opener = Opener(args.connections, args.open_concurrency)
    started = time.perf_counter()
    greenlets = [
        gevent.spawn(hold_connection, args.url, opener, start, lags)
        for _ in range(args.connections)
    ]
    opener.all_settled.wait(timeout=bench.WAIT_LIMIT_SECONDS)
    return opener, greenlets, time.perf_counter() - started


def idle(args):
    websocket.create_connection(args.url).close()
    rss_before = bench.rss_bytes()
    opener, _, open_seconds = open_many(args)
    bench.announce_opened()
    cpu_before = bench.cpu_seconds()
    started = time.monotonic()
    gevent.sleep(args.idle_seconds)
    idle_seconds = time.monotonic() - started
    cpu_used = bench.cpu_seconds() - cpu_before
    return bench.idle_result(args, opener.opened, open_seconds, rss_before, bench.rss_bytes(),
                             cpu_used, idle_seconds)


def fanin(args):
    start = gevent.event.Event()
    lags = []
    opener, greenlets, _ = open_many(args, start, lags)
    bench.announce_opened()
    cpu_before = bench.cpu_seconds()
    started = time.monotonic()
    start.set()
    gevent.joinall(greenlets, timeout=bench.WAIT_LIMIT_SECONDS)
    wall_seconds = time.monotonic() - started
    cpu_used = bench.cpu_seconds() - cpu_before
    delivered = sum(greenlet.value or 0 for greenlet in greenlets)
    return bench.fanin_result(args, delivered, lags, cpu_used, wall_seconds, opener.opened)


if __name__ == "__main__":
    bench.run({"recv": recv, "send": send, "echo": echo, "idle": idle, "fanin": fanin})
