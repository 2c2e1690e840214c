"""The many-connection scenarios for asyncio clients, written once.

Each asyncio client script supplies coroutines that open one connection,
close one, and consume one connection's fan-in messages. The functions
here count and measure the same way for all of those clients.
"""

import asyncio
import time

import bench_client as bench


async def open_many(args, open_one):
    """Open args.connections connections, args.open_concurrency at a time.

    Return (connections, failed count, seconds).
    """
    semaphore = asyncio.Semaphore(args.open_concurrency)

    async def guarded():
        async with semaphore:
            return await open_one()

    started = time.perf_counter()
    results = await asyncio.wait_for(
        asyncio.gather(*(guarded() for _ in range(args.connections)), return_exceptions=True),
        bench.WAIT_LIMIT_SECONDS)
    seconds = time.perf_counter() - started
    connections = [result for result in results if not isinstance(result, BaseException)]
    return connections, len(results) - len(connections), seconds


async def idle(args, open_one, close_one):
    """Open the connections, then measure CPU time over the idle window.

    open_one() must also start whatever reads the connection (a task or a
    protocol callback), so the idle window includes the client's real work.
    """
    await close_one(await open_one())
    rss_before = bench.rss_bytes()
    connections, _, open_seconds = await open_many(args, open_one)
    bench.announce_opened()
    cpu_before = bench.cpu_seconds()
    started = time.monotonic()
    await asyncio.sleep(args.idle_seconds)
    idle_seconds = time.monotonic() - started
    cpu_used = bench.cpu_seconds() - cpu_before
    return bench.idle_result(args, len(connections), open_seconds, rss_before, bench.rss_bytes(),
                             cpu_used, idle_seconds)


async def fanin(args, open_one, consume):
    """Open the connections, start them together, and collect message lags.

    consume(connection, start, lags) waits for the `start` event, sends the
    client's first message, appends each message's lag in seconds to `lags`
    and returns how many messages arrived before the server closed.
    """
    connections, _, _ = await open_many(args, open_one)
    start = asyncio.Event()
    lags = []
    tasks = [asyncio.create_task(consume(connection, start, lags)) for connection in connections]
    bench.announce_opened()
    cpu_before = bench.cpu_seconds()
    started = time.monotonic()
    start.set()
    done = set()
    if tasks:
        done, _ = await asyncio.wait(tasks, timeout=bench.WAIT_LIMIT_SECONDS)
    wall_seconds = time.monotonic() - started
    cpu_used = bench.cpu_seconds() - cpu_before
    delivered = sum(task.result() for task in done if task.exception() is None)
    return bench.fanin_result(args, delivered, lags, cpu_used, wall_seconds, len(connections))


def run(handlers):
    """Run bench_client.run() with each coroutine handler wrapped in asyncio.run()."""
    bench.run({name: (lambda args, handler=handler: asyncio.run(handler(args)))
               for name, handler in handlers.items()})
