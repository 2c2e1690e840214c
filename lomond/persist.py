"""Keep a WebSocket connected: reconnect with exponential back-off and jitter."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from typing import Any

import gevent
import gevent.event

from . import events

__all__ = ["persist", "backoff_delays", "parse_retry_after"]

log = logging.getLogger(__name__)

# A Retry-After longer than this is capped, so that a misconfigured server
# cannot park a client for days.
MAX_RETRY_AFTER = 3600.0

# How often a wait on a threading.Event (which gevent cannot wait on
# cooperatively without monkey-patching) checks whether it was set.
_EXIT_CHECK_INTERVAL = 0.1


def backoff_delays(
    min_wait: float, max_wait: float, rng: random.Random | None = None
) -> Iterator[float]:
    """Yield reconnect delays: ``min_wait`` plus a random share of a doubling window.

    The window grows 2, 4, 8, ... seconds up to ``max_wait - min_wait``;
    the random share (full jitter) spreads reconnects of many clients.
    """
    rng = rng or random.Random()
    spread = max(0.0, max_wait - min_wait)
    attempt = 0
    while True:
        attempt += 1
        window = min(spread, 2.0 ** min(attempt, 32))
        yield min_wait + rng.random() * window


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Return the delay in seconds that a ``Retry-After`` header requests, or None.

    The header contains seconds or an HTTP date (RFC 9110 section 10.2.3).
    Invalid values give None; negative delays give 0; long delays are capped
    at :data:`MAX_RETRY_AFTER`.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        delay = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        delay = when.timestamp() - (time.time() if now is None else now)
    if delay != delay:  # NaN
        return None
    return min(max(delay, 0.0), MAX_RETRY_AFTER)


def _wait(exit_event: Any, delay: float) -> bool:
    """Wait up to ``delay`` seconds without blocking other greenlets; return True if exit was set."""
    if isinstance(exit_event, gevent.event.Event):
        return bool(exit_event.wait(delay))
    deadline = time.monotonic() + delay
    while True:
        if exit_event.is_set():
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return bool(exit_event.is_set())
        gevent.sleep(min(remaining, _EXIT_CHECK_INTERVAL))


def persist(
    websocket: Any,
    poll: float = 5,
    min_wait: float = 5,
    max_wait: float = 30,
    ping_rate: float = 30,
    ping_timeout: float | None = None,
    exit_event: Any = None,
    respect_retry_after: bool = True,
    max_retries: int | None = None,
    **connect_options: Any,
) -> Iterator[events.Event]:
    """Run ``websocket`` forever, reconnecting after each disconnect.

    Yields every event of every connection, and a
    :class:`~lomond.events.BackOff` before each wait. The wait is
    ``min_wait`` plus a random share of a window that doubles with each
    failed attempt up to ``max_wait``. A successful handshake (Ready)
    resets it. A Rejected answer with ``Retry-After`` (in seconds or as an
    HTTP date) sets the wait instead, when ``respect_retry_after`` is True.

    The loop ends when ``exit_event`` (a ``threading.Event`` or
    ``gevent.event.Event``) is set: an open connection is closed at the
    next event (at most ``poll`` seconds later) and no reconnect follows.
    It also ends after ``max_retries`` reconnects in a row without reaching
    Ready. Waits never block other greenlets.
    Extra keyword arguments go to :meth:`~lomond.websocket.WebSocket.connect`.
    """
    if exit_event is None:
        exit_event = gevent.event.Event()
    delays = backoff_delays(min_wait, max_wait)
    failures = 0
    while not exit_event.is_set():
        retry_after = None
        for event in websocket.connect(
            poll=poll, ping_rate=ping_rate, ping_timeout=ping_timeout, **connect_options
        ):
            if event.name == "ready":
                delays = backoff_delays(min_wait, max_wait)
                failures = 0
            elif event.name == "rejected" and respect_retry_after:
                response = getattr(event, "response", None)
                if response is not None:
                    retry_after = parse_retry_after(response.get("retry-after"))
            yield event
            if exit_event.is_set() and websocket.is_active:
                # Checked after every event, so at least every ``poll``
                # seconds: close, and let the stream end with Disconnected.
                websocket.close()
        failures += 1
        if exit_event.is_set():
            return
        if max_retries is not None and failures > max_retries:
            log.warning(
                "%r: giving up after %d reconnect attempts without a handshake",
                websocket,
                max_retries,
            )
            return
        delay = retry_after if retry_after is not None else next(delays)
        log.info("%r: reconnecting in %.1fs", websocket, delay)
        yield events.BackOff(delay, time.time())
        if _wait(exit_event, delay):
            return
