"""The load process's own costs: CPU time, resident memory, open file limit."""

from __future__ import annotations

import logging
import os
import time

__all__ = ["cpu_seconds", "rss_bytes", "raise_open_files_limit", "FILES_RESERVED"]

log = logging.getLogger(__name__)

#: File descriptors kept free for Python, the terminal, pipes to the
#: bundled server and imports, when working out how many sockets fit.
FILES_RESERVED = 64


def cpu_seconds() -> float:
    """Return the user plus system CPU seconds this process has used."""
    return time.process_time()


def rss_bytes() -> int | None:
    """Return this process's resident set size in bytes, or None where it cannot be read.

    psutil is used when installed; on Linux /proc/self/statm serves without
    it.
    """
    try:
        import psutil
    except ImportError:
        pass
    else:
        return int(psutil.Process().memory_info().rss)
    try:
        with open("/proc/self/statm", "rb") as statm:
            resident_pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def raise_open_files_limit(needed: int) -> tuple[int, int] | None:
    """Raise the soft RLIMIT_NOFILE as far as the hard limit allows; return (soft, hard).

    Each connection is one socket, so the soft limit (often 1024) caps the
    number of clients. The limit is raised to the hard limit, or to
    ``needed`` when the hard limit is unlimited. Returns None where the
    ``resource`` module does not exist (Windows).
    """
    try:
        import resource
    except ImportError:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as error:
            # macOS rejects values above kern.maxfilesperproc even when the
            # hard limit is higher, so fall back to what the run needs.
            log.info("raising the open files limit to %d failed (%s)", target, error)
            if soft < needed:
                try:
                    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
                except (ValueError, OSError):
                    pass
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft, hard
