"""lomond: a WebSocket client that turns a connection into a stream of events.

    from lomond import WebSocket

    websocket = WebSocket("wss://example.org/feed")
    for event in websocket:
        if event.name == "ready":
            websocket.send_text("hello")
        elif event.name == "text":
            print(event.text)
"""

from __future__ import annotations

__version__ = "0.4.0.dev0"

from .websocket import WebSocket  # noqa: E402

__all__ = ["WebSocket", "__version__"]
