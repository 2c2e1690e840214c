"""websockets' asyncio client (websockets.asyncio.client), for reference.

Default options: keepalive pings every 20 seconds, 1 MiB maximum message
size (the largest message here is exactly 1 MiB, which that limit allows).
"""

import asyncio
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

import bench_asyncio
import bench_client as bench
import bench_wire as wire


async def recv(args):
    async with connect(args.url) as ws:
        started = time.perf_counter()
        await ws.send("go")
        for _ in range(args.count):
            await ws.recv()
        seconds = time.perf_counter() - started
    return bench.recv_result(args, seconds)


async def send(args):
    payload = wire.make_payload(args.size, False)
    async with connect(args.url) as ws:
        started = time.perf_counter()
        for _ in range(args.count):
            await ws.send(payload)
        await ws.send("end")
        if await ws.recv() != "ack":
            raise RuntimeError("expected the server's ack")
        seconds = time.perf_counter() - started
    return bench.send_result(args, seconds)


async def echo(args):
    payload = wire.make_payload(args.size, False)
    clock = time.perf_counter_ns
    rtts = []
    async with connect(args.url) as ws:
        for _ in range(args.count):
            sent_at = clock()
            await ws.send(payload)
            await ws.recv()
            rtts.append(clock() - sent_at)
    return bench.echo_result(rtts)


async def idle(args):
    async def open_one():
        ws = await connect(args.url)
        # An application task waiting for messages, as a real client has.
        ws.reader_task = asyncio.create_task(drain(ws))
        return ws

    async def close_one(ws):
        await ws.close()

    return await bench_asyncio.idle(args, open_one, close_one)


async def drain(ws):
    try:
        async for _ in ws:
            pass
    except ConnectionClosed:
        pass


async def fanin(args):
    async def open_one():
        return await connect(args.url)

    async def consume(ws, start, lags):
        await start.wait()
        await ws.send("go")
        received = 0
        try:
            async for message in ws:
                lags.append(time.monotonic() - float(message))
                received += 1
        except ConnectionClosed:
            pass
        return received

    return await bench_asyncio.fanin(args, open_one, consume)


if __name__ == "__main__":
    bench_asyncio.run({"recv": recv, "send": send, "echo": echo, "idle": idle, "fanin": fanin})
