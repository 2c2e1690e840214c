"""Subscribe to a JSON feed and print each update.

    python examples/ticker.py wss://example.org/feed

Without a URL it starts the bundled test server, which sends three ticks.
"""

from __future__ import annotations

import sys

from lomond import WebSocket


def follow(url: str, limit: int | None = None) -> None:
    websocket = WebSocket(url)
    received = 0
    for event in websocket:
        if event.name == "ready":
            websocket.send_json(type="subscribe", channels=["ticker"])
        elif event.name == "text":
            print(event.json)
            received += 1
            if limit is not None and received >= limit:
                websocket.close()
        elif event.name in ("connect_fail", "rejected", "disconnected"):
            print(event, file=sys.stderr)


def main() -> None:
    if len(sys.argv) > 1:
        follow(sys.argv[1])
        return
    from lomond.testing import Server, steps

    ticks = [steps.send_text(f'{{"price": {price}}}') for price in (100, 101, 99)]
    with Server([steps.accept(), steps.expect_text(), *ticks, steps.hold()]) as server:
        follow(server.url, limit=3)


if __name__ == "__main__":
    main()
