"""Snapshots of what a test could leak: file descriptors and live greenlets."""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import gevent
from greenlet import greenlet

__all__ = ["Snapshot", "take_snapshot", "wait_for_no_leaks"]


def open_fds() -> set[int]:
    """Return the file descriptors open in this process (Linux: /proc/self/fd)."""
    return {int(name) for name in os.listdir("/proc/self/fd")}


def live_greenlets() -> set[int]:
    """Return the ids of greenlets that are started and not finished, except the hub's."""
    hub = gevent.get_hub()
    found = set()
    for obj in gc.get_objects():
        if not isinstance(obj, greenlet) or obj is hub or obj.parent is None:
            continue
        # A gevent Greenlet counts from spawn() on, before it first runs.
        started = obj.started if isinstance(obj, gevent.Greenlet) else bool(obj)
        if started and not obj.dead:
            found.add(id(obj))
    return found


@dataclass
class Snapshot:
    fds: set[int]
    greenlets: set[int]


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
        new_greenlets = live_greenlets() - before.greenlets
        if (not new_fds and not new_greenlets) or gevent.get_hub().loop.now() >= deadline:
            break
    problems = []
    for fd in sorted(new_fds):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            target = "?"
        problems.append(f"file descriptor {fd} left open ({target})")
    if new_greenlets:
        problems.append(f"{len(new_greenlets)} greenlet(s) left running")
    return problems
