"""aiohttp's WebSocket client, for reference.

Every connection is opened from one ClientSession. Its connector is created with
limit=0, because the default of 100 connections per session would stall
the many-connection scenarios. Other options keep their defaults: no
heartbeat, automatic pongs, 4 MiB maximum message size.
"""

import asyncio
import time

import aiohttp

import bench_asyncio
import bench_client as bench
import bench_wire as wire

CLOSED_TYPES = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR)


def new_session():
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))


async def recv(args):
    async with new_session() as session:
        async with session.ws_connect(args.url) as ws:
            started = time.perf_counter()
            await ws.send_str("go")
            for _ in range(args.count):
                message = await ws.receive()
                if message.type in CLOSED_TYPES:
                    raise RuntimeError("connection closed early: %r" % (message,))
            seconds = time.perf_counter() - started
    return bench.recv_result(args, seconds)


async def send(args):
    payload = wire.make_payload(args.size, False)
    async with new_session() as session:
        async with session.ws_connect(args.url) as ws:
            started = time.perf_counter()
            for _ in range(args.count):
                await ws.send_bytes(payload)
            await ws.send_str("end")
            message = await ws.receive()
            if message.data != "ack":
                raise RuntimeError("expected the server's ack, got %r" % (message,))
            seconds = time.perf_counter() - started
    return bench.send_result(args, seconds)


async def echo(args):
    payload = wire.make_payload(args.size, False)
    clock = time.perf_counter_ns
    rtts = []
    async with new_session() as session:
        async with session.ws_connect(args.url) as ws:
            for _ in range(args.count):
                sent_at = clock()
                await ws.send_bytes(payload)
                await ws.receive()
                rtts.append(clock() - sent_at)
    return bench.echo_result(rtts)


async def idle(args):
    async with new_session() as session:
        async def open_one():
            ws = await session.ws_connect(args.url)
            # An application task waiting for messages, as a real client has.
            ws.reader_task = asyncio.create_task(drain(ws))
            return ws

        async def close_one(ws):
            await ws.close()

        return await bench_asyncio.idle(args, open_one, close_one)


async def drain(ws):
    async for _ in ws:
        pass


async def fanin(args):
    async with new_session() as session:
        async def open_one():
            return await session.ws_connect(args.url)

        async def consume(ws, start, lags):
            await start.wait()
            await ws.send_str("go")
            received = 0
            async for message in ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    lags.append(time.monotonic() - float(message.data))
                    received += 1
            return received

        return await bench_asyncio.fanin(args, open_one, consume)


if __name__ == "__main__":
    bench_asyncio.run({"recv": recv, "send": send, "echo": echo, "idle": idle, "fanin": fanin})
