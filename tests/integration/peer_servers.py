"""Independent WebSocket echo servers for the integration tests.

Run as ``python peer_servers.py {websockets,aiohttp,gevent-websocket}``: the
server listens on 127.0.0.1 on a free port, prints ``PORT <n>`` on one line
and serves until standard input closes (so it dies with the test process).

Each server echoes text and binary messages and obeys a few text commands,
so that tests can make the server act first:

- ``close <code> <reason>``: the server starts the closing handshake;
- ``ping <payload>``: the server sends a ping, then reports the pong it got
  as the text message ``pong <payload>``.
"""

from __future__ import annotations

import struct
import sys
import threading


def _watch_stdin(stop) -> None:
    threading.Thread(target=lambda: (sys.stdin.read(), stop()), daemon=True).start()


def serve_websockets() -> None:
    import asyncio

    import websockets
    from websockets.asyncio.server import serve

    async def handler(ws) -> None:
        async for message in ws:
            if isinstance(message, str) and message.startswith("close "):
                _, code, reason = message.split(" ", 2)
                await ws.close(int(code), reason)
                return
            if isinstance(message, str) and message.startswith("ping "):
                payload = message[5:].encode()
                waiter = await ws.ping(payload)
                await waiter
                await ws.send(f"pong {payload.decode()}")
                continue
            await ws.send(message)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stopped = asyncio.Event()
        _watch_stdin(lambda: loop.call_soon_threadsafe(stopped.set))
        async with serve(handler, "127.0.0.1", 0, max_size=None, compression="deflate") as server:
            port = next(iter(server.sockets)).getsockname()[1]
            print(f"PORT {port}", flush=True)
            await stopped.wait()

    del websockets
    asyncio.run(main())


def serve_aiohttp() -> None:
    import asyncio

    from aiohttp import WSMsgType, web

    async def handler(request):
        # autoping=False delivers pongs to this loop, so it can report them;
        # pings are then answered by hand below.
        ws = web.WebSocketResponse(max_msg_size=0, autoping=False)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                if msg.data.startswith("close "):
                    _, code, reason = msg.data.split(" ", 2)
                    await ws.close(code=int(code), message=reason.encode())
                    break
                if msg.data.startswith("ping "):
                    await ws.ping(msg.data[5:].encode())
                    continue
                await ws.send_str(msg.data)
            elif msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
            elif msg.type == WSMsgType.PING:
                await ws.pong(msg.data)
            elif msg.type == WSMsgType.PONG:
                await ws.send_str(f"pong {msg.data.decode()}")
        return ws

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        print(f"PORT {port}", flush=True)
        loop = asyncio.get_running_loop()
        stopped = asyncio.Event()
        _watch_stdin(lambda: loop.call_soon_threadsafe(stopped.set))
        await stopped.wait()
        await runner.cleanup()

    asyncio.run(main())


def serve_gevent_websocket() -> None:
    from gevent import monkey

    monkey.patch_all()
    import gevent
    from gevent import pywsgi
    from geventwebsocket.handler import WebSocketHandler
    from geventwebsocket.websocket import WebSocket

    def close(self, code=1000, message=b""):
        # gevent-websocket 0.10.1 sends the reason without the 2-byte close
        # code, a close frame that RFC 6455 section 5.5.1 forbids and lomond
        # rightly rejects; this sends the code too.
        if self.closed:
            return
        if isinstance(message, str):
            message = message.encode()
        payload = struct.pack("!H", code) + (message or b"")
        self.send_frame(payload, opcode=self.OPCODE_CLOSE)
        self.closed = True
        self.stream = None
        self.raw_write = None
        self.raw_read = None

    WebSocket.close = close

    def app(environ, start_response):
        ws = environ.get("wsgi.websocket")
        if ws is None:
            start_response("400 Bad Request", [])
            return [b"websocket only"]
        while True:
            message = ws.receive()
            if message is None:
                break
            if isinstance(message, str) and message.startswith("close "):
                _, code, reason = message.split(" ", 2)
                ws.close(int(code), reason)
                break
            if isinstance(message, str) and message.startswith("ping "):
                # send_frame encodes ping payloads itself: bytes would be
                # sent as their repr.
                ws.send_frame(message[5:], ws.OPCODE_PING)
                continue
            ws.send(message, binary=isinstance(message, (bytes, bytearray)))
        return []

    server = pywsgi.WSGIServer(("127.0.0.1", 0), app, handler_class=WebSocketHandler, log=None)
    server.start()
    print(f"PORT {server.server_port}", flush=True)
    # Read standard input in a thread of the hub's pool: a plain read would
    # block every greenlet.
    gevent.get_hub().threadpool.apply(sys.stdin.read)
    server.stop()


SERVERS = {
    "websockets": serve_websockets,
    "aiohttp": serve_aiohttp,
    "gevent-websocket": serve_gevent_websocket,
}

if __name__ == "__main__":
    SERVERS[sys.argv[1]]()
