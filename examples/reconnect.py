"""Stay connected: reconnect with back-off, with a fresh token on each attempt.

    python examples/reconnect.py wss://example.org/feed

Without a URL it runs against the bundled test server, which drops every
connection after one message, and stops after three connections.
"""

from __future__ import annotations

import sys
import threading
import uuid

from lomond import WebSocket
from lomond.persist import persist


def fresh_headers() -> dict[str, str]:
    # Called for every connection attempt: put a new token here.
    return {"Authorization": f"Bearer {uuid.uuid4().hex}"}


def run(url: str, max_connections: int | None = None) -> None:
    websocket = WebSocket(url, headers=fresh_headers)
    stop = threading.Event()
    connections = 0
    for event in persist(websocket, min_wait=0.1, max_wait=2, exit_event=stop):
        print(event)
        if event.name == "ready":
            connections += 1
        elif event.name == "disconnected" and connections == max_connections:
            stop.set()


def main() -> None:
    if len(sys.argv) > 1:
        run(sys.argv[1])
        return
    from lomond.testing import Server, steps

    with Server([steps.accept(), steps.send_text("tick"), steps.drop()]) as server:
        run(server.url, max_connections=3)


if __name__ == "__main__":
    main()
