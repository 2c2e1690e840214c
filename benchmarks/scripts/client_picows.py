"""picows, a callback-based asyncio client written in Cython, for reference.

picows hands each frame to WSListener.on_ws_frame() and its payload is
valid only during that call. To deliver what the other clients deliver,
each message is copied out: get_payload_as_bytes() for binary and
get_payload_as_utf8_text() (which validates UTF-8) for text. The server
never fragments, so a frame here is a whole message. Runs on the default
asyncio event loop, not uvloop.
"""

import asyncio
import time

from picows import WSCloseCode, WSListener, WSMsgType, ws_connect

import bench_asyncio
import bench_client as bench
import bench_wire as wire


class Listener(WSListener):
    """Count messages, time echoes, apply flow control, record fan-in lags."""

    def __init__(self):
        self.transport = None
        self.received = 0
        self.target = 0
        self.done = asyncio.get_running_loop().create_future()
        self.writable = asyncio.Event()
        self.writable.set()
        self.lags = None
        self.echo_payload = None
        self.rtts = []
        self.sent_at = 0

    def on_ws_connected(self, transport):
        self.transport = transport

    def on_ws_frame(self, transport, frame):
        msg_type = frame.msg_type
        if msg_type == WSMsgType.TEXT:
            text = frame.get_payload_as_utf8_text()
            self.received += 1
            if self.lags is not None:
                self.lags.append(time.monotonic() - float(text))
            elif text == "ack":
                self.finish()
        elif msg_type == WSMsgType.BINARY:
            frame.get_payload_as_bytes()
            self.received += 1
            if self.echo_payload is not None:
                self.rtts.append(time.perf_counter_ns() - self.sent_at)
                if len(self.rtts) < self.target:
                    self.send_echo()
                    return
        elif msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()
            return
        if self.received == self.target:
            self.finish()

    def on_ws_disconnected(self, transport):
        self.finish()

    def finish(self):
        if not self.done.done():
            self.done.set_result(self.received)

    def send_echo(self):
        self.sent_at = time.perf_counter_ns()
        self.transport.send(WSMsgType.BINARY, self.echo_payload)

    def pause_writing(self):
        self.writable.clear()

    def resume_writing(self):
        self.writable.set()


async def close(transport):
    transport.send_close(WSCloseCode.OK)
    await asyncio.wait_for(transport.wait_disconnected(), 10.0)


async def recv(args):
    transport, listener = await ws_connect(Listener, args.url)
    listener.target = args.count
    started = time.perf_counter()
    transport.send(WSMsgType.TEXT, b"go")
    received = await listener.done
    seconds = time.perf_counter() - started
    if received < args.count:
        raise RuntimeError("disconnected after %d of %d messages" % (received, args.count))
    await close(transport)
    return bench.recv_result(args, seconds)


async def send(args):
    payload = wire.make_payload(args.size, False)
    transport, listener = await ws_connect(Listener, args.url)
    listener.target = -1
    started = time.perf_counter()
    for _ in range(args.count):
        await listener.writable.wait()
        transport.send(WSMsgType.BINARY, payload)
    transport.send(WSMsgType.TEXT, b"end")
    await listener.done
    seconds = time.perf_counter() - started
    await close(transport)
    return bench.send_result(args, seconds)


async def echo(args):
    transport, listener = await ws_connect(Listener, args.url)
    listener.target = args.count
    listener.echo_payload = wire.make_payload(args.size, False)
    listener.send_echo()
    await listener.done
    await close(transport)
    if len(listener.rtts) < args.count:
        raise RuntimeError("disconnected after %d round trips" % len(listener.rtts))
    return bench.echo_result(listener.rtts)


async def idle(args):
    async def open_one():
        transport, _ = await ws_connect(Listener, args.url)
        return transport

    return await bench_asyncio.idle(args, open_one, close)


async def fanin(args):
    async def open_one():
        return await ws_connect(Listener, args.url)

    async def consume(connection, start, lags):
        transport, listener = connection
        listener.lags = lags
        listener.target = -1
        await start.wait()
        transport.send(WSMsgType.TEXT, b"go")
        await transport.wait_disconnected()
        return listener.received

    return await bench_asyncio.fanin(args, open_one, consume)


if __name__ == "__main__":
    bench_asyncio.run({"recv": recv, "send": send, "echo": echo, "idle": idle, "fanin": fanin})
