"""Placeholder: the public WebSocket class is being written."""


class WebSocket:  # pragma: no cover - replaced by the client core
    def __init__(self, *args, **kwargs):
        raise NotImplementedError("lomond.websocket is not written yet")
