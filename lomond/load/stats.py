"""Counters and duration samples of a load run.

Percentiles are exact: each duration is kept as an 8-byte float in an
``array('d')`` and the series is sorted once, when the report is built. A
series that passes :data:`MAX_SAMPLES` switches to reservoir sampling
(Vitter's algorithm R), which keeps a uniform random subset so that memory
stays bounded. Its summary then has ``"exact": false``. The maximum, the
mean and the count stay exact in every case.
"""

from __future__ import annotations

import math
import random
from array import array
from collections import Counter
from collections.abc import Sequence
from typing import Any

__all__ = ["MAX_SAMPLES", "Samples", "LoadStats", "percentile"]

#: Samples kept per series before reservoir sampling starts: 40 MB of floats.
MAX_SAMPLES = 5_000_000

#: The percentiles every summary reports, as fractions.
PERCENTILES = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99))


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Return the nearest-rank percentile of ascending ``sorted_values``.

    That is the smallest sample such that at least ``fraction`` of all
    samples are less than or equal to it, so the result is always one of
    the samples and never an interpolation. Raises ValueError when the
    sequence is empty or ``fraction`` is outside (0, 1].
    """
    if not sorted_values:
        raise ValueError("no samples to take a percentile of")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], not {fraction!r}")
    rank = math.ceil(fraction * len(sorted_values))
    return sorted_values[max(rank, 1) - 1]


class Samples:
    """A series of durations in seconds, for exact percentiles."""

    __slots__ = ("values", "count", "total", "max", "max_samples", "_rng")

    def __init__(self, max_samples: int = MAX_SAMPLES, seed: int | None = None) -> None:
        if max_samples < 1:
            raise ValueError(f"max_samples must be 1 or more, not {max_samples!r}")
        self.values = array("d")
        self.count = 0
        self.total = 0.0
        self.max = 0.0
        self.max_samples = max_samples
        self._rng = random.Random(seed)

    def add(self, seconds: float) -> None:
        """Record one duration."""
        self.count += 1
        self.total += seconds
        self.max = max(self.max, seconds)
        if len(self.values) < self.max_samples:
            self.values.append(seconds)
            return

        # Algorithm R: the n-th sample replaces a kept one with probability
        # max_samples / n, which keeps every sample equally likely to stay.
        slot = self._rng.randrange(self.count)
        if slot < self.max_samples:
            self.values[slot] = seconds

    @property
    def exact(self) -> bool:
        """True while every sample is kept, so the percentiles are exact."""
        return self.count == len(self.values)

    def summary(self) -> dict[str, Any]:
        """Return count, mean, p50, p90, p99 and max in seconds (None when empty)."""
        result: dict[str, Any] = {"count": self.count, "exact": self.exact}
        if not self.count:
            for name, _ in PERCENTILES:
                result[name] = None
            result.update(mean=None, max=None)
            return result
        ordered = sorted(self.values)
        result["mean"] = self.total / self.count
        for name, fraction in PERCENTILES:
            result[name] = percentile(ordered, fraction)
        result["max"] = self.max
        return result


class LoadStats:
    """What every client of a run recorded, summed; greenlets update it without locks.

    A connection ends in exactly one of three outcomes. It failed when it
    never reached Ready, and it closed cleanly when this side closed it and
    the closing handshake completed. Any other end counts as dropped: the
    server closed it early, the TCP connection broke, or a close timed out.
    """

    def __init__(self) -> None:
        # Connections.
        self.attempted = 0
        self.opened = 0
        self.open_now = 0
        self.max_open = 0
        self.closed_cleanly = 0
        self.failed: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.close_codes: Counter[int] = Counter()

        # Messages (payload bytes, without frame headers).
        self.messages_sent = 0
        self.messages_received = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        self.replies = 0
        self.unanswered = 0

        # Errors that did not end a connection by themselves being counted
        # above: protocol errors, unresponsive servers, failed sends, script
        # exceptions.
        self.errors: Counter[str] = Counter()

        # Durations in seconds.
        self.connect_time = Samples()
        self.round_trip = Samples()
        self.ping_round_trip = Samples()

    @property
    def error_count(self) -> int:
        """Failed and dropped connections plus other errors, for the progress line."""
        return sum(self.failed.values()) + sum(self.dropped.values()) + sum(self.errors.values())

    def connection_opened(self, connect_seconds: float) -> None:
        """Record a handshake that completed after ``connect_seconds``."""
        self.opened += 1
        self.open_now += 1
        self.max_open = max(self.max_open, self.open_now)
        self.connect_time.add(connect_seconds)

    def message_sent(self, size: int) -> None:
        self.messages_sent += 1
        self.bytes_sent += size

    def message_received(self, size: int) -> None:
        self.messages_received += 1
        self.bytes_received += size
