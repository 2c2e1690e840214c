"""lomond client: this tree's lomond, or lomond 0.3.4 with --monkey-patch.

Both use the lomond 0.3 API: iterate ws.connect() and act on events. This
tree's lomond runs on gevent without monkey-patching. lomond 0.3.4 uses
blocking sockets, so it only cooperates with greenlets after
gevent.monkey.patch_all(). Every connection runs in its own greenlet.
"""

import bench_client as bench

bench.monkey_patch_if_requested()

import time  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402
import gevent.lock  # noqa: E402
import lomond  # noqa: E402

import bench_wire as wire  # noqa: E402

# This tree's lomond imports WebSocket lazily: import it now, so that a
# profile of the scenario does not include the import.
WebSocket = lomond.WebSocket

# Events that end a connection attempt without a Ready event.
FAILURE_EVENTS = ("connect_fail", "rejected", "protocol_error", "unresponsive")


def check_event(event):
    if event.name in FAILURE_EVENTS:
        raise RuntimeError("connection failed: %r" % (event,))


def recv(args):
    ws = WebSocket(args.url)
    received = 0
    started = seconds = None
    for event in ws.connect(ping_rate=0):
        name = event.name
        if name == "text" or name == "binary":
            received += 1
            if received == args.count:
                seconds = time.perf_counter() - started
                ws.close()
        elif name == "ready":
            started = time.perf_counter()
            ws.send_text("go")
        else:
            check_event(event)
    if seconds is None:
        raise RuntimeError("disconnected after %d of %d messages" % (received, args.count))
    return bench.recv_result(args, seconds)


def send(args):
    ws = WebSocket(args.url)
    payload = wire.make_payload(args.size, False)
    started = seconds = None
    for event in ws.connect(ping_rate=0):
        name = event.name
        if name == "ready":
            started = time.perf_counter()
            for _ in range(args.count):
                ws.send_binary(payload)
            ws.send_text("end")
        elif name == "text":
            # The server's "ack": every binary message has arrived.
            seconds = time.perf_counter() - started
            ws.close()
        else:
            check_event(event)
    if seconds is None:
        raise RuntimeError("disconnected before the server acknowledged the messages")
    return bench.send_result(args, seconds)


def echo(args):
    ws = WebSocket(args.url)
    payload = wire.make_payload(args.size, False)
    clock = time.perf_counter_ns
    rtts = []
    sent_at = 0
    for event in ws.connect(ping_rate=0):
        name = event.name
        if name == "binary":
            rtts.append(clock() - sent_at)
            if len(rtts) == args.count:
                ws.close()
            else:
                sent_at = clock()
                ws.send_binary(payload)
        elif name == "ready":
            sent_at = clock()
            ws.send_binary(payload)
        else:
            check_event(event)
    if len(rtts) < args.count:
        raise RuntimeError("disconnected after %d of %d round trips" % (len(rtts), args.count))
    return bench.echo_result(rtts)


class Opener:
    """Bound the handshakes in flight and count connections as they open."""

    def __init__(self, total, concurrency):
        self.total = total
        self.semaphore = gevent.lock.BoundedSemaphore(concurrency)
        self.opened = 0
        self.failed = 0
        self.all_settled = gevent.event.Event()

    def settle(self, opened):
        if opened:
            self.opened += 1
        else:
            self.failed += 1
        if self.opened + self.failed == self.total:
            self.all_settled.set()


def hold_connection(url, opener, on_ready=None, on_text=None):
    """Run one connection with the default connect() settings.

    Return the number of text messages received before it disconnected.
    """
    ws = WebSocket(url)
    settled = False
    received = 0
    opener.semaphore.acquire()
    try:
        for event in ws.connect():
            name = event.name
            if name == "text":
                received += 1
                if on_text is not None:
                    on_text(event.text)
            elif name == "ready":
                opener.semaphore.release()
                settled = True
                opener.settle(True)
                if on_ready is not None:
                    on_ready(ws)
            elif name in FAILURE_EVENTS and not settled:
                opener.semaphore.release()
                settled = True
                opener.settle(False)
    finally:
        if not settled:
            opener.semaphore.release()
            opener.settle(False)
    return received


def warm_up(args):
    opener = Opener(1, 1)
    greenlet = gevent.spawn(hold_connection, args.url, opener, on_ready=lambda ws: ws.close())
    greenlet.join(timeout=30)


def open_many(args, on_ready=None, on_text=None):
    """Spawn one greenlet per connection; return (opener, greenlets, seconds)."""
    opener = Opener(args.connections, args.open_concurrency)
    started = time.perf_counter()
    greenlets = [
        gevent.spawn(hold_connection, args.url, opener, on_ready, on_text)
        for _ in range(args.connections)
    ]
    opener.all_settled.wait(timeout=bench.WAIT_LIMIT_SECONDS)
    return opener, greenlets, time.perf_counter() - started


def idle(args):
    warm_up(args)
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

    def on_ready(ws):
        start.wait()
        ws.send_text("go")

    def on_text(text):
        lags.append(time.monotonic() - float(text))

    opener, greenlets, _ = open_many(args, on_ready, on_text)
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
