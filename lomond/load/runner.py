"""Run a load test: open connections at a rate, hold each for a duration, close them all.

The run has three phases, each bounded in time:

1. **Ramp and hold.** A spawner greenlet starts client ``i`` at
   ``i / rate`` seconds. Each client runs its behaviour in its own greenlet;
   when its handshake completes, its close time is ``Ready + duration``.
2. **Close.** A closer greenlet closes each connection at its close time
   (code 1000). Every connection has the same duration, so close times come
   in the order of Ready events and a FIFO queue is enough.
3. **Drain.** After the last close, or after :meth:`LoadRunner.stop`
   (Ctrl-C), clients get ``close_timeout`` plus :data:`DRAIN_MARGIN`
   seconds to finish their closing handshakes. Those still running are
   then killed, which closes their sockets.

A sampler greenlet wakes once a second to read the counters, the resident
memory and the CPU time, and to draw the progress line.
"""

from __future__ import annotations

import collections
import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

import gevent
import gevent.event
import gevent.pool

from .behaviours import Behaviour
from .client import Client, CountingWebSocket
from .report import build_report
from .resources import cpu_seconds, rss_bytes
from .stats import LoadStats

__all__ = ["LoadConfig", "LoadRunner", "DRAIN_MARGIN"]

log = logging.getLogger(__name__)

#: Seconds added to ``close_timeout`` for the drain phase, so that a close
#: that times out still records its outcome before the run kills it.
DRAIN_MARGIN = 2.0

#: Seconds between two samples of counters, memory and CPU.
SAMPLE_INTERVAL = 1.0


@dataclass
class LoadConfig:
    """Settings of a load run; times are in seconds."""

    url: str
    clients: int = 100
    rate: float = 100.0
    duration: float = 10.0
    connect_timeout: float = 10.0
    close_timeout: float = 5.0
    ping_rate: float = 0.0
    ping_timeout: float | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    protocols: list[str] = field(default_factory=list)
    compress: bool = False
    ssl_verify: bool = True

    def __post_init__(self) -> None:
        if self.clients < 1:
            raise ValueError(f"clients must be 1 or more, not {self.clients!r}")
        if self.rate <= 0:
            raise ValueError(f"rate must be above 0 connections per second, not {self.rate!r}")
        if self.duration < 0:
            raise ValueError(f"duration must be 0 seconds or more, not {self.duration!r}")
        if self.connect_timeout <= 0 or self.close_timeout <= 0:
            raise ValueError("connect_timeout and close_timeout must be above 0 seconds")

    @property
    def planned_seconds(self) -> float:
        """The maximum seconds a run takes without Ctrl-C: ramp, connect, hold, close and drain."""
        ramp = (self.clients - 1) / self.rate
        # The connect timeout covers TCP and TLS, and again the handshake.
        connect = 2 * self.connect_timeout
        return ramp + connect + self.duration + self.close_timeout + DRAIN_MARGIN


class LoadRunner:
    """One load run; call :meth:`run` once, and :meth:`stop` from a signal handler."""

    def __init__(
        self,
        config: LoadConfig,
        behaviour: Behaviour,
        *,
        progress: TextIO | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.behaviour = behaviour
        self.stats = LoadStats()
        self.progress = progress
        #: Extra facts for the report (server, open files limit), set by the caller.
        self.details = dict(details or {})
        self.interrupted = False
        self._aborted = False
        self._wake = gevent.event.Event()
        self._group = gevent.pool.Group()
        # The clients that have not ended yet, with their greenlets.
        self._live: dict[Client, gevent.Greenlet] = {}
        self._close_queue: collections.deque[Client] = collections.deque()
        self._queue_changed = gevent.event.Event()
        self._spawning = True
        self._killed = 0
        self._samples: list[dict[str, Any]] = []

    # --- control ---------------------------------------------------------------

    def stop(self) -> None:
        """Stop early: close every connection and report (a second call stops at once).

        Safe to call from a gevent signal handler: it only sets flags and
        events.
        """
        if self.interrupted:
            self._aborted = True
        self.interrupted = True
        self._wake.set()
        self._queue_changed.set()

    # --- the run -----------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Run the load test and return the report as a JSON-ready dict."""
        config = self.config
        rss_before = rss_bytes()
        cpu_before = cpu_seconds()
        started = time.monotonic()
        deadline = started + config.planned_seconds
        self._record_sample(started, rss_before)

        spawner = gevent.spawn(self._spawn_clients, started)
        closer = gevent.spawn(self._close_due_clients)
        sampler = gevent.spawn(self._sample_every_second, started)
        try:
            # 1 and 2. Ramp, hold and close, until every client ended, the
            # planned time ran out, or stop() was called.
            while not self.interrupted and not self._all_done():
                self._wake.clear()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log.warning("the run took longer than planned (%.1f s): stopping it", config.planned_seconds)
                    self.details["stopped_at_planned_time"] = True
                    break
                self._wake.wait(min(remaining, SAMPLE_INTERVAL))

            # 3. Drain.
            spawner.kill()
            self._spawning = False
            self._drain()
        finally:
            for greenlet in (spawner, closer, sampler):
                greenlet.kill()
            self._group.kill(timeout=config.close_timeout)

        ended = time.monotonic()
        self._record_sample(ended, rss_bytes())
        if self.progress is not None:
            self.progress.write("\n")
            self.progress.flush()
        resources = {
            "cpu_seconds": cpu_seconds() - cpu_before,
            "rss_before": rss_before,
            "samples": self._samples,
        }
        return build_report(
            config=config,
            behaviour=self.behaviour,
            stats=self.stats,
            elapsed=ended - started,
            resources=resources,
            interrupted=self.interrupted,
            killed=self._killed,
            details=self.details,
        )

    def _all_done(self) -> bool:
        return not self._spawning and not self._live

    def _spawn_clients(self, started: float) -> None:
        """Start client ``i`` at ``started + i / rate``, until all are started or the run stops."""
        config = self.config
        connect_options = {
            "poll": self.behaviour.poll,
            "ping_rate": config.ping_rate,
            "ping_timeout": config.ping_timeout,
            "close_timeout": config.close_timeout,
        }
        try:
            for number in range(config.clients):
                delay = started + number / config.rate - time.monotonic()
                if delay > 0:
                    gevent.sleep(delay)
                if self.interrupted:
                    return
                websocket = CountingWebSocket(
                    config.url,
                    self.stats,
                    headers=config.headers,
                    protocols=config.protocols,
                    compress=config.compress,
                    ssl_verify=config.ssl_verify,
                    connect_timeout=config.connect_timeout,
                    handshake_timeout=config.connect_timeout,
                )
                client = Client(number, websocket, connect_options, config.duration, self._queue_close)
                self._live[client] = self._group.spawn(self._run_client, client)
        finally:
            self._spawning = False
            self._wake.set()

    def _run_client(self, client: Client) -> None:
        try:
            self.behaviour.run(client)
        finally:
            client.finish("the behaviour returned before Disconnected")
            self._live.pop(client, None)
            if not self._live:
                self._wake.set()

    # --- closing -------------------------------------------------------------------

    def _queue_close(self, client: Client) -> None:
        """Called at each Ready: queue the client for closing at its close time."""
        self._close_queue.append(client)
        self._queue_changed.set()

    def _close_due_clients(self) -> None:
        """Close each queued client at its close time (the closer greenlet)."""
        queue = self._close_queue
        while not self.interrupted:
            self._queue_changed.clear()
            if not queue:
                self._queue_changed.wait(SAMPLE_INTERVAL)
                continue
            client = queue[0]
            assert client.close_at is not None
            wait = client.close_at - time.monotonic()
            if wait > 0:
                self._queue_changed.wait(wait)
                continue
            queue.popleft()
            client.close()

    def _drain(self) -> None:
        """Close every live connection, wait for the closing handshakes, kill what is left."""
        config = self.config

        # Connections still in their handshake have nothing to close yet.
        for client, greenlet in list(self._live.items()):
            if client.opened:
                if not client.close_requested:
                    client.close()
            else:
                client.end_reason = "the run stopped before the handshake completed"
                greenlet.kill(block=False)
        drain_deadline = time.monotonic() + config.close_timeout + DRAIN_MARGIN
        while self._live and not self._aborted:
            remaining = drain_deadline - time.monotonic()
            if remaining <= 0:
                break
            self._wake.clear()
            self._wake.wait(min(remaining, SAMPLE_INTERVAL))
        if self._live:
            self._killed = len(self._live)
            log.info("killing %d connections still open after the drain phase", self._killed)
            for client in self._live:
                client.end_reason = "killed at the end of the drain phase"
            self._group.kill(timeout=config.close_timeout)

    # --- sampling and progress -------------------------------------------------------

    def _sample_every_second(self, started: float) -> None:
        while True:
            gevent.sleep(SAMPLE_INTERVAL)
            now = time.monotonic()
            self._record_sample(now, rss_bytes())
            if self.progress is not None:
                self._draw_progress(now - started)

    def _record_sample(self, now: float, rss: int | None) -> None:
        stats = self.stats
        self._samples.append(
            {
                "time": now,
                "open": stats.open_now,
                "rss": rss,
                "cpu": cpu_seconds(),
                "sent": stats.messages_sent,
                "received": stats.messages_received,
            }
        )

    def _draw_progress(self, elapsed: float) -> None:
        stats = self.stats
        previous, current = self._samples[-2], self._samples[-1]
        seconds = max(current["time"] - previous["time"], 1e-9)
        sent_rate = (current["sent"] - previous["sent"]) / seconds
        received_rate = (current["received"] - previous["received"]) / seconds
        line = (
            f"{elapsed:6.1f}s  open {stats.open_now}  opened {stats.opened}/{self.config.clients}"
            f"  sent {sent_rate:,.0f}/s  received {received_rate:,.0f}/s"
            f"  errors {stats.error_count}"
        )
        # Carriage return and "erase to end of line" redraw the line in place.
        self.progress.write("\r" + line + "\x1b[K")  # type: ignore[union-attr]
        self.progress.flush()  # type: ignore[union-attr]


def progress_stream(enabled: bool | None) -> TextIO | None:
    """Return stderr when the progress line should be drawn: on a terminal, unless turned off."""
    if enabled is False:
        return None
    if enabled is None and not sys.stderr.isatty():
        return None
    return sys.stderr
