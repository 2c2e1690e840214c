"""One connection of a load run: its WebSocket, its events and what they count."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

from .. import events
from ..errors import TransportFail
from ..websocket import WebSocket
from .stats import LoadStats

__all__ = ["Client", "CountingWebSocket"]


class CountingWebSocket(WebSocket):
    """A WebSocket that adds every text and binary message it sends to the run's counters.

    Counting here, rather than in the behaviours, also counts what a user
    script sends with ``websocket.send_text`` directly. A message is
    counted only once its frame reached the socket.
    """

    def __init__(self, url: str, stats: LoadStats, **options: Any) -> None:
        super().__init__(url, **options)
        self.stats = stats

    def send_text(self, text: str, compress: bool = True) -> None:
        super().send_text(text, compress)
        self.stats.message_sent(len(text.encode("utf-8")))

    def send_binary(self, data: bytes, compress: bool = True) -> None:
        super().send_binary(data, compress)
        self.stats.message_sent(len(data))


class Client:
    """One connection of a load run; iterate it for the connection's events.

    Iterating connects the WebSocket and yields each event after adding it
    to the run's :class:`~lomond.load.stats.LoadStats`: connect time at
    Ready, messages and their bytes, ping round trips, close codes, and at
    the end exactly one outcome (failed, closed cleanly or dropped).

    A user script receives a Client as its ``events`` argument, so it can
    also call :meth:`record_round_trip` for replies its own protocol
    matches.
    """

    def __init__(
        self,
        number: int,
        websocket: CountingWebSocket,
        connect_options: dict[str, Any],
        duration: float,
        on_ready: Callable[[Client], None],
    ) -> None:
        #: The client's number in the run, from 0.
        self.number = number
        self.websocket = websocket
        self.stats = websocket.stats
        self.duration = duration
        #: ``time.monotonic()`` at which the run closes this connection (set at Ready).
        self.close_at: float | None = None
        #: True once the run asked this connection to close.
        self.close_requested = False
        #: Echo requests waiting for their reply: sequence number to send time.
        self.pending: dict[int, float] = {}
        self.next_sequence = 0
        #: The outcome recorded when the events stop before Disconnected
        #: (the runner sets it before it kills the client's greenlet).
        self.end_reason = "the connection was ended before Disconnected"
        self._connect_options = connect_options
        self._on_ready = on_ready
        self._started_at = 0.0
        self._opened = False
        self._failure: str | None = None
        self._server_close_code: int | None = None
        self._finished = False
        self._iterator: Generator[events.Event, None, None] | None = None

    def __repr__(self) -> str:
        return f"<load client {self.number} {self.websocket.safe_url}>"

    # --- for behaviours and scripts ------------------------------------------

    def record_round_trip(self, seconds: float) -> None:
        """Add a request/reply round trip (in seconds) to the run's latency percentiles."""
        self.stats.round_trip.add(seconds)
        self.stats.replies += 1

    def close(self) -> None:
        """Start the closing handshake (code 1000); the events then end with Disconnected.

        Does nothing more when the connection is not open yet: its connect
        and handshake timeouts, or the drain phase, end it.
        """
        self.close_requested = True
        try:
            self.websocket.close()
        except TransportFail as error:
            # The socket failed under the close frame. The client's own
            # greenlet then reads the failure and records the outcome.
            self.stats.errors[f"sending the close frame failed: {error}"] += 1

    @property
    def opened(self) -> bool:
        """True once the handshake completed."""
        return self._opened

    # --- the event stream ------------------------------------------------------

    def __iter__(self) -> Iterator[events.Event]:
        if self._iterator is None:
            self._iterator = self._run()
        return self._iterator

    def end(self, reason: str) -> None:
        """Close the socket now and record ``reason`` as the outcome, unless one is recorded.

        For the code that iterates this client, after it stopped iterating.
        """
        self.end_reason = reason
        if self._iterator is not None:
            self._iterator.close()
        self.finish(reason)

    def _run(self) -> Generator[events.Event, None, None]:
        self._started_at = time.monotonic()
        self.stats.attempted += 1
        stream = self.websocket.connect(**self._connect_options)
        try:
            for event in stream:
                self._record(event)
                yield event
        finally:
            # A script that stops iterating, or a kill at the drain
            # deadline, lands here before Disconnected: close the socket
            # now and still record one outcome.
            stream.close()  # type: ignore[attr-defined]
            self.finish(self.end_reason)

    def _record(self, event: events.Event) -> None:
        name = event.name
        stats = self.stats
        if name == "text":
            stats.message_received(len(event.text.encode("utf-8")))  # type: ignore[attr-defined]
        elif name == "binary":
            stats.message_received(len(event.data))  # type: ignore[attr-defined]
        elif name == "pong":
            latency = event.latency  # type: ignore[attr-defined]
            if latency is not None:
                stats.ping_round_trip.add(latency)
        elif name == "ready":
            now = time.monotonic()
            self._opened = True
            stats.connection_opened(now - self._started_at)
            self.close_at = now + self.duration
            self._on_ready(self)
        elif name == "connect_fail":
            self._failure = event.reason  # type: ignore[attr-defined]
        elif name == "rejected":
            self._failure = f"rejected: {event.reason}"  # type: ignore[attr-defined]
        elif name in ("closed", "closing"):
            code = event.code  # type: ignore[attr-defined]
            stats.close_codes[code] += 1
            if name == "closing":
                self._server_close_code = code
        elif name == "disconnected":
            self.finish(event.reason, event.graceful)  # type: ignore[attr-defined]

    def finish(self, reason: str, graceful: bool = False) -> None:
        """Record the connection's outcome, once; later calls do nothing."""
        if self._finished:
            return
        self._finished = True
        stats = self.stats
        if self.pending:
            stats.unanswered += len(self.pending)
            self.pending.clear()
        if not self._opened:
            stats.failed[self._failure or reason] += 1
            return
        stats.open_now -= 1
        if self._server_close_code is not None and not self.close_requested:
            stats.dropped[f"closed by the server with code {self._server_close_code}"] += 1
        elif graceful and self.close_requested:
            stats.closed_cleanly += 1
        else:
            stats.dropped[reason] += 1
