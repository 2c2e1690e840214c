"""Plumbing shared by the client scripts: arguments, measurements, output.

Each client script calls run() with one function per scenario it supports.
The runner starts the script in its own process and reads its standard
output: an optional {"phase": "opened"} line when every connection of a
many-connection scenario is open, then one {"result": {...}} line.
Standard library only, because the peers' virtualenv imports it too.
"""

import argparse
import cProfile
import json
import os
import resource
import sys
import time

SCENARIOS = ("recv", "send", "echo", "idle", "fanin")

# Opening handshakes in flight at once in the many-connection scenarios.
# The same bound applies to every client, so time-to-open compares fairly.
DEFAULT_OPEN_CONCURRENCY = 256

# Upper bound on any wait inside a client, so a stuck run cannot hang.
WAIT_LIMIT_SECONDS = 600.0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="run one benchmark scenario with one client")
    parser.add_argument("--scenario", choices=SCENARIOS, required=True)
    parser.add_argument("--url", required=True, help="ws:// URL on the benchmark server")
    parser.add_argument("--count", type=int, default=1,
                        help="messages to receive, send or echo (per connection in fanin)")
    parser.add_argument("--size", type=int, default=32, help="message size in bytes")
    parser.add_argument("--text", action="store_true", help="messages are text, not binary")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--idle-seconds", type=float, default=30.0,
                        help="length of the idle window in seconds")
    parser.add_argument("--open-concurrency", type=int, default=DEFAULT_OPEN_CONCURRENCY)
    parser.add_argument("--monkey-patch", action="store_true",
                        help="call gevent.monkey.patch_all() before importing the client")
    parser.add_argument("--greenlet-each", action="store_true",
                        help="raw client, idle scenario: block in recv() in one greenlet "
                             "per connection (needs --monkey-patch)")
    parser.add_argument("--profile", metavar="PATH",
                        help="write cProfile statistics of the scenario to PATH")
    return parser.parse_args(argv)


def raise_file_limit():
    """Raise RLIMIT_NOFILE as far as this process may (65536 if root)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 65536:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (65536, 65536))
            return
        except (ValueError, OSError):
            pass
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_bytes():
    """Return the resident set size of this process (Linux /proc)."""
    with open("/proc/self/statm") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def cpu_seconds():
    """Return user plus system CPU time of this process, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def announce_opened():
    print(json.dumps({"phase": "opened"}), flush=True)


def percentile(values, fraction):
    """Return the nearest-rank percentile of `values` (fraction in 0..1)."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = min(len(ordered) - 1, max(0, int(round(fraction * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def recv_result(args, seconds):
    return {
        "seconds": seconds,
        "messages": args.count,
        "msgs_per_s": args.count / seconds,
        "mb_per_s": args.count * args.size / seconds / 1e6,
    }


def send_result(args, seconds):
    return recv_result(args, seconds)


def echo_result(rtts_ns):
    return {
        "round_trips": len(rtts_ns),
        "median_us": percentile(rtts_ns, 0.5) / 1000.0,
        "p99_us": percentile(rtts_ns, 0.99) / 1000.0,
    }


def idle_result(args, opened, open_seconds, rss_before, rss_after, cpu_used, idle_seconds):
    failed = args.connections - opened
    return {
        "connections": args.connections,
        "opened": opened,
        "failed": failed,
        "open_s": open_seconds,
        "rss_kib_per_conn": (rss_after - rss_before) / 1024.0 / max(1, opened),
        "rss_mib": rss_after / 1048576.0,
        "cpu_s": cpu_used,
        "idle_s": idle_seconds,
    }


def fanin_result(args, delivered, lags, cpu_used, wall_seconds, opened):
    expected = args.connections * args.count
    return {
        "connections": args.connections,
        "opened": opened,
        "expected": expected,
        "delivered": delivered,
        "all_delivered": delivered == expected,
        "msgs_per_s": delivered / wall_seconds if wall_seconds else 0.0,
        "wall_s": wall_seconds,
        "cpu_s": cpu_used,
        "cpu_share": cpu_used / wall_seconds if wall_seconds else 0.0,
        "max_lag_ms": max(lags) * 1000.0 if lags else None,
        "p99_lag_ms": percentile(lags, 0.99) * 1000.0 if lags else None,
    }


def monkey_patch_if_requested():
    """Monkey-patch before any other import when --monkey-patch is given.

    Client scripts call this first, so sockets created by the client
    library itself become cooperative.
    """
    if "--monkey-patch" in sys.argv[1:]:
        from gevent import monkey
        monkey.patch_all()


def run(handlers):
    """Run the scenario named on the command line and print its result."""
    args = parse_args()
    raise_file_limit()
    handler = handlers.get(args.scenario)
    if handler is None:
        print(json.dumps({"error": "scenario %s is not supported by this client" % args.scenario}),
              flush=True)
        sys.exit(2)

    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    result = handler(args)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)

    print(json.dumps({"result": result}), flush=True)
    sys.stdout.flush()
    # Many-connection scenarios leave thousands of sockets open: let the
    # kernel close them instead of running every client's closing handshake.
    os._exit(0)


def deadline(seconds=WAIT_LIMIT_SECONDS):
    return time.monotonic() + seconds
