"""Timeouts for the test kit: one time unit, scaled by an environment variable.

Every wait in the kit takes a timeout in seconds. Defaults are multiples of
:data:`TIME_UNIT`, which is 1.0 second times ``LOMOND_TEST_TIMEOUT_SCALE``
(default 1), so a slow CI machine sets ``LOMOND_TEST_TIMEOUT_SCALE=5``
instead of every test growing its own sleeps.
"""

from __future__ import annotations

import os
import time
from typing import Callable, TypeVar

import gevent.event

__all__ = ["TIME_UNIT", "scaled", "WaitTimeout", "ExpectationFailed", "Signal"]

T = TypeVar("T")


def _read_scale() -> float:
    raw = os.environ.get("LOMOND_TEST_TIMEOUT_SCALE", "1")
    try:
        scale = float(raw)
    except ValueError:
        raise ValueError(
            f"LOMOND_TEST_TIMEOUT_SCALE must be a number, not {raw!r}"
        ) from None
    if scale <= 0:
        raise ValueError(f"LOMOND_TEST_TIMEOUT_SCALE must be positive, not {raw!r}")
    return scale


#: Seconds in one unit of test time.
TIME_UNIT = 1.0 * _read_scale()

# Default timeout of every wait (expectations, next connection, next message).
DEFAULT_TIMEOUT_UNITS = 5


def scaled(units: float) -> float:
    """Return ``units`` of test time in seconds."""
    return units * TIME_UNIT


def default_timeout(timeout: float | None) -> float:
    """Return ``timeout``, or the default wait when it is None."""
    return scaled(DEFAULT_TIMEOUT_UNITS) if timeout is None else timeout


class WaitTimeout(AssertionError):
    """A wait of the kit timed out; the message names the awaited event."""


class ExpectationFailed(AssertionError):
    """A script expected one thing from the client and received another."""


class Signal:
    """Wake greenlets that wait for a condition on shared state.

    Writers call :meth:`notify` after each change, and readers call
    :meth:`wait_for` with a predicate, so that no greenlet polls.
    """

    def __init__(self) -> None:
        self._event = gevent.event.Event()

    def notify(self) -> None:
        event, self._event = self._event, gevent.event.Event()
        event.set()

    def wait_for(self, predicate: Callable[[], T], timeout: float, description: str) -> T:
        """Return the first true value of ``predicate()``; raise WaitTimeout after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            event = self._event
            value = predicate()
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WaitTimeout(f"timed out after {timeout:.2f}s waiting for {description}")
            event.wait(remaining)
