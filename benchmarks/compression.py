"""Compare compressed throughput: lomond's client against the websockets clients.

Run by hand, with lomond installed (for example editable):

    python benchmarks/compression.py [--messages N] [--repeat N] [--seed N]

One server runs in a subprocess on 127.0.0.1: the ``websockets`` package's
asyncio server, with permessage-deflate and no limits of its own, so it
accepts each client's offer as it is. Every client talks to this server in
turn, so each row pays the same server cost. Two directions are measured:

- send: the client sends the feed, and the server inflates and counts it,
  then sends a summary;
- receive: the server sends the feed compressed, and the client inflates it.

The feed is the JSON-like feed of deflate_params.py (heartbeats, trades,
order-book updates, chat lines and a few large snapshots). Columns:

- msg/s and MB/s: feed messages and payload megabytes (10**6 bytes) per
  second of wall-clock time, from the end of the handshake to the summary;
- CPU us/msg: CPU time of this process per message. The server runs in its
  own process, so this is the client's cost alone;
- wire %: the payload bytes on the wire as a share of the feed's bytes,
  counted by the server from the frames that it decoded or encoded;
- x ws: msg/s and CPU time relative to the websockets asyncio client with
  compression, in the same direction.

Each row is the fastest of ``--repeat`` runs, interleaved across clients.
A last table measures the zlib memory of one lomond connection with
tracemalloc. Absolute numbers depend on the machine, so compare rows of one
run, not runs.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Any, Callable

from deflate_params import compressor_memory, decompressor_memory, make_feed

# The server's reply after the last message: this marker, a space, then a
# JSON summary. Feed messages are JSON objects, so none starts with it.
END = "__end__"
# Wall-clock limit of one session, in seconds.
SESSION_TIMEOUT = 120.0


# --- the server (subprocess) ------------------------------------------------------


def serve(feed: list[str]) -> None:
    """Run the websockets server: print ``PORT <n>``, serve until stdin closes."""
    from websockets.asyncio.server import serve as websockets_serve
    from websockets.extensions.permessage_deflate import (
        PerMessageDeflate,
        ServerPerMessageDeflateFactory,
    )
    from websockets.frames import Opcode

    data_opcodes = (Opcode.CONT, Opcode.TEXT, Opcode.BINARY)

    class CountingDeflate(PerMessageDeflate):
        """websockets' extension, counting the compressed payload bytes of data frames."""

        wire_in = 0
        wire_out = 0

        def decode(self, frame, *, max_size=None):
            if frame.opcode in data_opcodes:
                self.wire_in += len(frame.data)
            return super().decode(frame, max_size=max_size)

        def encode(self, frame):
            frame = super().encode(frame)
            if frame.opcode in data_opcodes:
                self.wire_out += len(frame.data)
            return frame

    class CountingFactory(ServerPerMessageDeflateFactory):
        def process_request_params(self, params, accepted_extensions):
            response, extension = super().process_request_params(params, accepted_extensions)
            extension.__class__ = CountingDeflate
            return response, extension

    def summary(messages: int, payload: int, wire: int, extension: Any) -> str:
        agreed = None
        if extension is not None:
            agreed = {
                "server_no_context_takeover": extension.local_no_context_takeover,
                "client_no_context_takeover": extension.remote_no_context_takeover,
                "server_max_window_bits": extension.local_max_window_bits,
                "client_max_window_bits": extension.remote_max_window_bits,
            }
        report = {"messages": messages, "payload": payload, "wire": wire, "agreed": agreed}
        return f"{END} {json.dumps(report)}"

    async def handler(ws: Any) -> None:
        extension = ws.protocol.extensions[0] if ws.protocol.extensions else None
        if ws.request.path == "/send":
            # The feed is ASCII JSON, so characters count bytes.
            messages = payload = wire = 0
            async for message in ws:
                if message == END:
                    break
                messages += 1
                payload += len(message)
                wire = extension.wire_in if extension is not None else payload
            await ws.send(summary(messages, payload, wire, extension))
        else:
            for message in feed:
                await ws.send(message)
            payload = sum(len(message) for message in feed)
            wire = extension.wire_out if extension is not None else payload
            await ws.send(summary(len(feed), payload, wire, extension))
        # The client starts the closing handshake.
        async for _ in ws:
            pass

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stopped = asyncio.Event()
        threading.Thread(
            target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(stopped.set)),
            daemon=True,
        ).start()
        async with websockets_serve(
            handler,
            "127.0.0.1",
            0,
            compression=None,
            extensions=[CountingFactory()],
            max_size=None,
            ping_interval=None,
        ) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            print(f"PORT {port}", flush=True)
            await stopped.wait()

    asyncio.run(main())


class ServerProcess:
    """The benchmark server in a subprocess, stopped by closing its stdin."""

    def __init__(self, messages: int, seed: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", "--messages", str(messages), "--seed", str(seed)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.process.stdout.readline() if self.process.stdout else ""
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"the benchmark server did not start: it printed {line!r}")
        self.url = f"ws://127.0.0.1:{int(line.split()[1])}"

    def stop(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# --- the clients ------------------------------------------------------------------


@dataclass
class Result:
    """One session: wall and CPU seconds from the end of the handshake, and the server's summary."""

    seconds: float
    cpu_seconds: float
    summary: dict[str, Any]


def finish(start: tuple[float, float], summary_text: str) -> Result:
    wall, cpu = start
    summary = json.loads(summary_text[len(END) + 1 :])
    return Result(time.perf_counter() - wall, time.process_time() - cpu, summary)


def clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def run_lomond(url: str, direction: str, feed: list[str], compress: Any) -> Result:
    import gevent

    from lomond import WebSocket

    websocket = WebSocket(f"{url}/{direction}", compress=compress)
    start = clocks()
    results: list[Result] = []
    received = 0
    with gevent.Timeout(SESSION_TIMEOUT):
        for event in websocket.connect(ping_rate=0, poll=SESSION_TIMEOUT, close_timeout=5):
            if event.name == "ready":
                start = clocks()
                if direction == "send":
                    for message in feed:
                        websocket.send_text(message)
                    websocket.send_text(END)
            elif event.name == "text" and event.text.startswith(END):
                results.append(finish(start, event.text))
                websocket.close()
            elif event.name == "text":
                received += 1
            elif event.name in ("rejected", "connect_fail", "protocol_error"):
                raise RuntimeError(f"lomond session failed: {event!r}")
    if not results:
        raise RuntimeError("lomond session ended before the server's summary")
    check_received(direction, received, feed)
    return results[0]


async def run_websockets_asyncio(url: str, direction: str, feed: list[str], compress: bool) -> Result:
    from websockets.asyncio.client import connect

    async with connect(
        f"{url}/{direction}",
        compression="deflate" if compress else None,
        max_size=None,
        ping_interval=None,
    ) as ws:
        start = clocks()
        received = 0
        if direction == "send":
            for message in feed:
                await ws.send(message)
            await ws.send(END)
        while True:
            message = await ws.recv()
            if message.startswith(END):
                break
            received += 1
        result = finish(start, message)
    check_received(direction, received, feed)
    return result


def run_websockets_sync(url: str, direction: str, feed: list[str], compress: bool) -> Result:
    from websockets.sync.client import connect

    with connect(
        f"{url}/{direction}",
        compression="deflate" if compress else None,
        max_size=None,
        ping_interval=None,
    ) as ws:
        start = clocks()
        received = 0
        if direction == "send":
            for message in feed:
                ws.send(message)
            ws.send(END)
        while True:
            message = ws.recv(timeout=SESSION_TIMEOUT)
            if message.startswith(END):
                break
            received += 1
        result = finish(start, message)
    check_received(direction, received, feed)
    return result


def check_received(direction: str, received: int, feed: list[str]) -> None:
    expected = len(feed) if direction == "receive" else 0
    if received != expected:
        raise RuntimeError(f"the client received {received} feed messages, expected {expected}")


def clients() -> list[tuple[str, Callable[[str, str, list[str]], Result]]]:
    """Return (label, run function) for each client, in table order."""
    from lomond.protocol.deflate import DeflateOptions

    def lomond(compress: Any) -> Callable[[str, str, list[str]], Result]:
        return lambda url, direction, feed: run_lomond(url, direction, feed, compress)

    def websockets_asyncio(compress: bool) -> Callable[[str, str, list[str]], Result]:
        return lambda url, direction, feed: asyncio.run(
            asyncio.wait_for(
                run_websockets_asyncio(url, direction, feed, compress), SESSION_TIMEOUT
            )
        )

    def websockets_sync(compress: bool) -> Callable[[str, str, list[str]], Result]:
        return lambda url, direction, feed: run_websockets_sync(url, direction, feed, compress)

    # websockets 17.4 clients compress at zlib's default level (6) with
    # memLevel 5 (enable_client_permessage_deflate).
    websockets_settings = DeflateOptions(compress_level=6, mem_level=5)
    # Two ways to save memory per connection (see the memory table).
    small_windows = DeflateOptions(
        client_max_window_bits=12, server_max_window_bits=12, mem_level=5
    )
    no_takeover = DeflateOptions(client_no_context_takeover=True)
    return [
        ("lomond compress=True", lomond(True)),
        ("lomond level 6, mem_level 5", lomond(websockets_settings)),
        ("lomond 12-bit windows, mem_level 5", lomond(small_windows)),
        ("lomond client_no_context_takeover", lomond(no_takeover)),
        ("lomond no compression", lomond(False)),
        (BASELINE, websockets_asyncio(True)),
        ("websockets asyncio no compression", websockets_asyncio(False)),
        ("websockets sync deflate", websockets_sync(True)),
    ]


BASELINE = "websockets asyncio deflate"
DIRECTIONS = ("send", "receive")


# --- tables -----------------------------------------------------------------------


def measure(url: str, feed: list[str], repeat: int) -> dict[tuple[str, str], Result]:
    """Run every client in both directions ``repeat`` times and return the fastest run of each."""
    best: dict[tuple[str, str], Result] = {}
    for _ in range(repeat):
        for direction in DIRECTIONS:
            for label, run in clients():
                result = run(url, direction, feed)
                key = (direction, label)
                if key not in best or result.seconds < best[key].seconds:
                    best[key] = result
    return best


def print_throughput_table(best: dict[tuple[str, str], Result], feed: list[str]) -> None:
    count = len(feed)
    print(
        f"{'direction':<9} {'client':<34} {'msg/s':>8} {'MB/s':>6} {'CPU us/msg':>10}"
        f" {'wire %':>6} {'msg/s x ws':>10} {'CPU x ws':>8}"
    )
    for direction in DIRECTIONS:
        baseline = best[(direction, BASELINE)]
        for label, _ in clients():
            result = best[(direction, label)]
            summary = result.summary
            if summary["messages"] != count:
                raise RuntimeError(f"{label}: the server counted {summary['messages']} messages")
            print(
                f"{direction:<9} {label:<34} {count / result.seconds:>8.0f}"
                f" {summary['payload'] / result.seconds / 1e6:>6.1f}"
                f" {1e6 * result.cpu_seconds / count:>10.1f}"
                f" {100 * summary['wire'] / summary['payload']:>6.1f}"
                f" {baseline.seconds / result.seconds:>10.2f}"
                f" {result.cpu_seconds / baseline.cpu_seconds:>8.2f}"
            )
    print()
    print("Parameters that the server agreed to (send direction):")
    for label, _ in clients():
        print(f"  {label}: {best[('send', label)].summary['agreed']}")


def print_memory_table(feed: list[str]) -> None:
    """Print the zlib memory that one lomond connection keeps after 20 messages each way."""
    from lomond.protocol.deflate import PerMessageDeflate

    rows = [
        ("defaults (15-bit windows, mem_level 8)", {}),
        ("mem_level 5", {"mem_level": 5}),
        ("12-bit windows, mem_level 5", {"client_max_window_bits": 12, "server_max_window_bits": 12, "mem_level": 5}),
        ("9-bit windows, mem_level 1", {"client_max_window_bits": 9, "server_max_window_bits": 9, "mem_level": 1}),
        ("client_no_context_takeover", {"client_no_context_takeover": True}),
        ("server_no_context_takeover", {"server_no_context_takeover": True}),
    ]
    messages = [message.encode() for message in feed[:20]]
    print("zlib memory of one lomond connection after 20 messages each way (KiB)")
    print(f"{'settings':<42} {'compressor':>10} {'decompressor':>12}")
    for label, settings in rows:

        def make(settings: dict[str, Any] = settings) -> PerMessageDeflate:
            return PerMessageDeflate(**settings)

        # The server's messages, compressed as the agreed parameters allow.
        server_side = PerMessageDeflate(
            client_max_window_bits=settings.get("server_max_window_bits", 15),
            client_no_context_takeover=settings.get("server_no_context_takeover", False),
        )
        payloads = [server_side.compress(message) for message in messages]
        compressor = compressor_memory(make, messages)
        decompressor = decompressor_memory(make, payloads)
        print(f"{label:<42} {compressor / 1024:>10.0f} {decompressor / 1024:>12.0f}")


def print_header(feed: list[str], repeat: int) -> None:
    import gevent
    import websockets

    import lomond

    sizes = [len(message) for message in feed]
    now = datetime.datetime.now(datetime.timezone.utc)
    print(f"date: {now:%Y-%m-%d %H:%M} UTC")
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}")
    print(
        f"Python {platform.python_version()}, zlib {zlib.ZLIB_RUNTIME_VERSION},"
        f" lomond {lomond.__version__}, websockets {websockets.__version__},"
        f" gevent {gevent.__version__}"
    )
    print(
        f"feed: {len(feed)} messages, {sum(sizes) / 1e6:.2f} MB,"
        f" median {statistics.median(sizes):.0f} bytes, largest {max(sizes)} bytes;"
        f" best of {repeat} runs"
    )
    print_load_average("before the runs")


def print_load_average(when: str) -> None:
    """Print the 1-minute load average, because other work on the machine slows every row."""
    if hasattr(os, "getloadavg"):
        print(f"load average {when}: {os.getloadavg()[0]:.2f}")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000, help="messages in the feed")
    parser.add_argument("--repeat", type=int, default=15, help="runs per row; the fastest is kept")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated feed")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.messages < 1 or args.repeat < 1:
        parser.error("--messages and --repeat must be 1 or more")

    feed = [message.decode() for message in make_feed(args.messages, args.seed)]
    if args.serve:
        serve(feed)
        return 0

    print_header(feed, args.repeat)
    server = ServerProcess(args.messages, args.seed)
    try:
        best = measure(server.url, feed, args.repeat)
    finally:
        server.stop()
    print_load_average("after the runs")
    print()
    print_throughput_table(best, feed)
    print()
    print_memory_table(feed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
