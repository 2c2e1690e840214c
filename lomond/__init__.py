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

from typing import TYPE_CHECKING, Any

__version__ = "0.4.0.dev0"

__all__ = ["WebSocket", "__version__"]

if TYPE_CHECKING:
    from .websocket import WebSocket


def __getattr__(name: str) -> Any:
    # WebSocket is imported on first use (PEP 562) because it brings in
    # gevent, socket and ssl: importing lomond.protocol, which runs this
    # file first, must not load them.
    if name == "WebSocket":
        from .websocket import WebSocket

        globals()["WebSocket"] = WebSocket
        return WebSocket
    raise AttributeError(f"module 'lomond' has no attribute {name!r}")
