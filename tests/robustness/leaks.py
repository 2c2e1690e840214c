"""Snapshots of what a test could leak: file descriptors and live greenlets."""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import gevent
import gevent.threadpool
from greenlet import greenlet

__all__ = ["Snapshot", "take_snapshot", "wait_for_no_leaks"]

# Workers of gevent's thread pool (used by its default DNS resolver) start
# on demand and outlive connections by design, so they are not leaks.
_POOL_WORKER: type = getattr(gevent.threadpool, "_WorkerGreenlet", type(None))


def open_fds() -> set[int]:
    """Return the file descriptors open in this process (Linux: /proc/self/fd)."""
    return {int(name) for name in os.listdir("/proc/self/fd")}


def live_greenlets() -> dict[int, str]:
    """Return the greenlets that are started and not finished, except the hub, by id with their repr."""
    hub = gevent.get_hub()
    found = {}
    for obj in gc.get_objects():
        if not isinstance(obj, greenlet) or obj is hub or obj.parent is None:
            continue
        if isinstance(obj, _POOL_WORKER):
            continue
        # A gevent Greenlet counts from spawn() on, before it first runs.
        started = obj.started if isinstance(obj, gevent.Greenlet) else bool(obj)
        if started and not obj.dead:
            found[id(obj)] = repr(obj)
    return found


@dataclass
class Snapshot:
    fds: set[int]
    greenlets: dict[int, str]


def take_snapshot() -> Snapshot:
    gc.collect()
    return Snapshot(open_fds(), live_greenlets())


def wait_for_no_leaks(before: Snapshot, timeout: float) -> list[str]:
    """Return what is open now and was not in ``before``, after letting ``timeout`` seconds pass for cleanup.

    Sockets closed by the other side's greenlets (the test server's) may
    need one more turn of the hub, so the check retries until ``timeout``.
    """
    deadline = gevent.get_hub().loop.now() + timeout
    while True:
        gevent.sleep(0.01)
        gc.collect()
        new_fds = open_fds() - before.fds
        new_greenlets = {
            key: text for key, text in live_greenlets().items() if key not in before.greenlets
        }
        if (not new_fds and not new_greenlets) or gevent.get_hub().loop.now() >= deadline:
            break
    problems = []
    for fd in sorted(new_fds):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            target = "?"
        problems.append(f"file descriptor {fd} left open ({target})")
    for text in new_greenlets.values():
        problems.append(f"greenlet left running: {text}")
    return problems
