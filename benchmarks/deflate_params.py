"""Measure permessage-deflate settings on a JSON-like message feed.

Run by hand, with lomond installed (for example editable):

    python benchmarks/deflate_params.py [--messages N] [--repeat N] [--seed N]

It compresses the same deterministic feed (heartbeats and acks, market-data
ticks, order-book updates, chat lines and a few large snapshots) through
lomond.protocol.deflate.PerMessageDeflate and prints three tables:

1. compress_level x mem_level with context takeover: input throughput, the
   share of bytes saved, the zlib memory that one connection's compressor
   uses (measured with tracemalloc, which sees zlib's allocations through
   Python's raw allocator), and the time to compress the feed and send the
   result over a 10 and a 100 Mbit/s link;
2. threshold, with and without context takeover, at the default level:
   payload bytes sent, throughput and the same send times;
3. window bits at the default level: throughput both ways, bytes saved,
   and the memory of the compressor and of the decompressor.

Times are the least CPU time of ``--repeat`` runs. Absolute numbers depend
on the machine and the zlib build, so compare rows of one run, not runs.
The defaults in lomond/protocol/deflate.py quote the numbers they rest on.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import tracemalloc
import zlib
from collections.abc import Callable

from lomond.protocol.deflate import (
    DEFAULT_COMPRESS_LEVEL,
    DEFAULT_MEM_LEVEL,
    DEFAULT_THRESHOLD,
    PerMessageDeflate,
)

COMPRESS_LEVELS = (1, 2, 3, 4, 5, 6, 9)
MEM_LEVELS = (4, 6, 8, 9)
THRESHOLDS = (0, 16, 32, 64, 128, 256)
WINDOW_BITS = (9, 12, 15)
# Links, in bits per second, for the "compress and send" time: the time to
# compress the feed plus the time to put the compressed bytes on the link.
LINK_RATES = (10e6, 100e6)
SYMBOLS = ("BTC-USD", "ETH-USD", "SOL-EUR", "XRP-USDT", "DOGE-USD", "ADA-BTC")
WORDS = (
    "order filled partially cancelled price size market limit the a to of "
    "please check status again later thanks ok confirmed pending review"
).split()


def make_feed(count: int, seed: int) -> list[bytes]:
    """Return ``count`` JSON messages: mostly small ticks, some large snapshots."""
    rng = random.Random(seed)
    feed = []
    for sequence in range(count):
        roll = rng.random()
        record: dict[str, object]
        if roll < 0.15:
            tiny: list[dict[str, object]] = [
                {"type": "heartbeat", "sequence": sequence},
                {"ok": True, "id": sequence},
                {"op": "ping"},
            ]
            record = rng.choice(tiny)
        elif roll < 0.60:
            record = {
                "type": "trade",
                "symbol": rng.choice(SYMBOLS),
                "price": f"{rng.uniform(0.1, 60000):.2f}",
                "size": f"{rng.uniform(0.0001, 5):.4f}",
                "side": rng.choice(("buy", "sell")),
                "trade_id": 10_000_000 + sequence,
                "time": f"2024-05-01T12:{sequence // 60 % 60:02d}:{sequence % 60:02d}.{rng.randrange(1000):03d}Z",
            }
        elif roll < 0.85:
            record = {
                "type": "l2update",
                "symbol": rng.choice(SYMBOLS),
                "changes": [
                    [rng.choice(("buy", "sell")), f"{rng.uniform(1, 60000):.2f}", f"{rng.random():.6f}"]
                    for _ in range(rng.randint(1, 12))
                ],
            }
        elif roll < 0.99:
            record = {
                "type": "chat",
                "user": f"user{rng.randrange(500)}",
                "channel": rng.choice(("general", "support", "alerts")),
                "text": " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 40))),
            }
        else:
            record = {
                "type": "snapshot",
                "symbol": rng.choice(SYMBOLS),
                "bids": [[f"{rng.uniform(1, 60000):.2f}", f"{rng.random():.6f}"] for _ in range(400)],
                "asks": [[f"{rng.uniform(1, 60000):.2f}", f"{rng.random():.6f}"] for _ in range(400)],
            }
        feed.append(json.dumps(record, separators=(",", ":")).encode())
    return feed


def best_time(run: Callable[[], object], repeat: int) -> float:
    """Return the least CPU time of ``repeat`` runs, in seconds.

    CPU time of this process, not wall time, so that other work on the
    machine changes the rows less.
    """
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        run()
        best = min(best, time.process_time() - start)
    return best


def compressed_size(feed: list[bytes], make: Callable[[], PerMessageDeflate]) -> int:
    """Return the payload bytes sent for the feed, honouring the threshold."""
    deflate = make()
    total = 0
    for message in feed:
        if len(message) < deflate.threshold:
            total += len(message)
        else:
            total += len(deflate.compress(message))
    return total


def compressor_memory(make: Callable[[], PerMessageDeflate], feed: list[bytes]) -> int:
    """Return the bytes that one connection's compressor uses after a few messages."""
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        deflate = make()
        for message in feed[:20]:
            deflate.compress(message)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del deflate
    return after - before


def send_times(seconds: float, size: int) -> str:
    """Format the compress-and-send time of the feed, in ms, for each link in LINK_RATES."""
    return " ".join(f"{1000 * (seconds + size * 8 / rate):>9.0f}" for rate in LINK_RATES)


def link_headers() -> str:
    return " ".join(f"{f'ms@{rate / 1e6:.0f}Mb':>9}" for rate in LINK_RATES)


def decompressor_memory(make: Callable[[], PerMessageDeflate], payloads: list[bytes]) -> int:
    """Return the bytes that one connection's decompressor uses after a few messages."""
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        deflate = make()
        for payload in payloads[:20]:
            output = deflate.decompress(payload, True, 0)
        del output
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del deflate
    return after - before


def print_level_table(feed: list[bytes], repeat: int) -> None:
    raw = sum(len(message) for message in feed)
    print("compress_level x mem_level, 15-bit window, context takeover, threshold 0")
    print(
        f"{'level':>5} {'mem':>3} {'MB/s':>7} {'saved %':>8} {'ratio':>6}"
        f" {'memory KiB':>10} {link_headers()}"
    )
    for level in COMPRESS_LEVELS:
        for mem_level in MEM_LEVELS:

            def make() -> PerMessageDeflate:
                return PerMessageDeflate(compress_level=level, mem_level=mem_level)

            def run() -> None:
                deflate = make()
                for message in feed:
                    deflate.compress(message)

            seconds = best_time(run, repeat)
            size = compressed_size(feed, make)
            memory = compressor_memory(make, feed)
            print(
                f"{level:>5} {mem_level:>3} {raw / seconds / 1e6:>7.1f}"
                f" {100 * (1 - size / raw):>8.1f} {size / raw:>6.3f} {memory / 1024:>10.0f}"
                f" {send_times(seconds, size)}"
            )
    print()


def print_threshold_table(feed: list[bytes], repeat: int, level: int, mem_level: int) -> None:
    raw = sum(len(message) for message in feed)
    print(f"threshold, compress_level {level}, mem_level {mem_level}")
    print(
        f"{'takeover':>8} {'threshold':>9} {'MB/s':>7} {'bytes sent':>10} {'saved %':>8}"
        f" {link_headers()}"
    )
    for no_context_takeover in (False, True):
        for threshold in THRESHOLDS:

            def make() -> PerMessageDeflate:
                return PerMessageDeflate(
                    compress_level=level,
                    mem_level=mem_level,
                    threshold=threshold,
                    client_no_context_takeover=no_context_takeover,
                )

            def run() -> None:
                deflate = make()
                for message in feed:
                    if len(message) >= deflate.threshold:
                        deflate.compress(message)

            seconds = best_time(run, repeat)
            size = compressed_size(feed, make)
            takeover = "no" if no_context_takeover else "yes"
            print(
                f"{takeover:>8} {threshold:>9} {raw / seconds / 1e6:>7.1f}"
                f" {size:>10} {100 * (1 - size / raw):>8.1f} {send_times(seconds, size)}"
            )
    print()


def print_window_table(feed: list[bytes], repeat: int, level: int, mem_level: int) -> None:
    raw = sum(len(message) for message in feed)
    print(f"window bits, compress_level {level}, mem_level {mem_level}, context takeover")
    print(
        f"{'bits':>4} {'MB/s':>7} {'saved %':>8} {'compressor KiB':>14}"
        f" {'decompress MB/s':>15} {'decompressor KiB':>16}"
    )
    for bits in WINDOW_BITS:

        def make_sender() -> PerMessageDeflate:
            return PerMessageDeflate(
                compress_level=level, mem_level=mem_level, client_max_window_bits=bits
            )

        def compress_all() -> None:
            sender = make_sender()
            for message in feed:
                sender.compress(message)

        sender = make_sender()
        payloads = [sender.compress(message) for message in feed]

        def make_receiver() -> PerMessageDeflate:
            return PerMessageDeflate(server_max_window_bits=bits)

        def decompress_all() -> None:
            receiver = make_receiver()
            for payload in payloads:
                receiver.decompress(payload, True, 0)

        compress_seconds = best_time(compress_all, repeat)
        decompress_seconds = best_time(decompress_all, repeat)
        size = sum(len(payload) for payload in payloads)
        compressor = compressor_memory(make_sender, feed)
        decompressor = decompressor_memory(make_receiver, payloads)
        print(
            f"{bits:>4} {raw / compress_seconds / 1e6:>7.1f} {100 * (1 - size / raw):>8.1f}"
            f" {compressor / 1024:>14.0f} {raw / decompress_seconds / 1e6:>15.1f}"
            f" {decompressor / 1024:>16.0f}"
        )
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000, help="messages in the feed")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row; the best is kept")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated feed")
    args = parser.parse_args(argv)

    feed = make_feed(args.messages, args.seed)
    sizes = sorted(len(message) for message in feed)
    print(
        f"feed: {len(feed)} messages, {sum(sizes)} bytes, median {sizes[len(sizes) // 2]} bytes;"
        f" Python {sys.version.split()[0]}, zlib {zlib.ZLIB_RUNTIME_VERSION}"
    )
    print(
        f"current defaults: compress_level {DEFAULT_COMPRESS_LEVEL},"
        f" mem_level {DEFAULT_MEM_LEVEL}, threshold {DEFAULT_THRESHOLD}"
    )
    print()
    print_level_table(feed, args.repeat)
    print_threshold_table(feed, args.repeat, DEFAULT_COMPRESS_LEVEL, DEFAULT_MEM_LEVEL)
    print_window_table(feed, args.repeat, DEFAULT_COMPRESS_LEVEL, DEFAULT_MEM_LEVEL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
