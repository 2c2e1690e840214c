"""websockets' threaded client (websockets.sync.client), not monkey-patched.

Each connection starts a thread that reads the socket and, with the default
ping_interval of 20 seconds, a second thread that sends keepalive pings
(read in websockets 17.4, the pinned version). Connections are opened from a pool of threads
so that handshakes overlap, as greenlets do for the gevent clients.
"""

import concurrent.futures
import threading
import time

from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.sync.client import connect

import bench_client as bench
import bench_wire as wire

# Threads calling connect() at once in the many-connection scenarios.
OPEN_THREADS = 64


def recv(args):
    with connect(args.url) as ws:
        started = time.perf_counter()
        ws.send("go")
        for _ in range(args.count):
            ws.recv()
        seconds = time.perf_counter() - started
    return bench.recv_result(args, seconds)


def send(args):
    payload = wire.make_payload(args.size, False)
    with connect(args.url) as ws:
        started = time.perf_counter()
        for _ in range(args.count):
            ws.send(payload)
        ws.send("end")
        if ws.recv() != "ack":
            raise RuntimeError("expected the server's ack")
        seconds = time.perf_counter() - started
    return bench.send_result(args, seconds)


def echo(args):
    payload = wire.make_payload(args.size, False)
    clock = time.perf_counter_ns
    rtts = []
    with connect(args.url) as ws:
        for _ in range(args.count):
            sent_at = clock()
            ws.send(payload)
            ws.recv()
            rtts.append(clock() - sent_at)
    return bench.echo_result(rtts)


def try_connect(url):
    # legacy=True returns the connection directly, without the warning that
    # websockets 17 gives when connect() is not used as a context manager.
    try:
        return connect(url, legacy=True)
    except (OSError, WebSocketException, TimeoutError) as exc:
        return exc


def open_many(args):
    """Open connections from a thread pool; return (connections, failed, seconds)."""
    started = time.perf_counter()
    workers = min(OPEN_THREADS, args.open_concurrency)
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(try_connect, [args.url] * args.connections))
    seconds = time.perf_counter() - started
    connections = [result for result in results if not isinstance(result, BaseException)]
    return connections, len(results) - len(connections), seconds


def idle(args):
    connect(args.url, legacy=True).close()
    rss_before = bench.rss_bytes()
    connections, _, open_seconds = open_many(args)
    bench.announce_opened()
    cpu_before = bench.cpu_seconds()
    started = time.monotonic()
    time.sleep(args.idle_seconds)
    idle_seconds = time.monotonic() - started
    cpu_used = bench.cpu_seconds() - cpu_before
    return bench.idle_result(args, len(connections), open_seconds, rss_before, bench.rss_bytes(),
                             cpu_used, idle_seconds)


def fanin(args):
    connections, _, _ = open_many(args)
    start = threading.Event()
    lags = []
    counts = [0] * len(connections)

    def consume(index, ws):
        start.wait()
        ws.send("go")
        received = 0
        try:
            for message in ws:
                lags.append(time.monotonic() - float(message))
                received += 1
        except ConnectionClosed:
            pass
        counts[index] = received

    threads = [threading.Thread(target=consume, args=(index, ws), daemon=True)
               for index, ws in enumerate(connections)]
    for thread in threads:
        thread.start()
    bench.announce_opened()
    cpu_before = bench.cpu_seconds()
    started = time.monotonic()
    start.set()
    limit = bench.deadline()
    for thread in threads:
        thread.join(timeout=max(0.0, limit - time.monotonic()))
    wall_seconds = time.monotonic() - started
    cpu_used = bench.cpu_seconds() - cpu_before
    return bench.fanin_result(args, sum(counts), lags, cpu_used, wall_seconds, len(connections))


if __name__ == "__main__":
    bench.run({"recv": recv, "send": send, "echo": echo, "idle": idle, "fanin": fanin})
