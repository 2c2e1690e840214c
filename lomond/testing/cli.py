"""``python -m lomond serve``: run the test server from the command line.

It serves the echo script, or one of the named faults of
:mod:`lomond.testing.faults`, until interrupted, so that clients in other
languages or processes can be tested by hand::

    python -m lomond serve --port 9000
    python -m lomond serve --fault hello-drop --tls
    python -m lomond serve --list-faults
"""

from __future__ import annotations

import argparse
import signal
import sys

import gevent
import gevent.event

from .faults import FAULTS
from .server import Server
from .steps import ECHO

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    """Build the parser of the ``serve`` options."""
    parser = argparse.ArgumentParser(
        prog="python -m lomond serve",
        description="Run lomond's scriptable WebSocket test server until interrupted (Ctrl+C).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; ::1 for IPv6)")
    parser.add_argument("--port", type=int, default=8765, help="TCP port to listen on; 0 picks a free one (default 8765)")
    parser.add_argument("--tls", action="store_true", help="serve wss:// with a certificate from a throwaway CA, whose PEM file path is printed")
    parser.add_argument("--client-cert", action="store_true", help="with --tls, require a client certificate signed by the same CA")
    parser.add_argument("--fault", default="echo", metavar="NAME", help="named script to run on every connection (default echo; see --list-faults)")
    parser.add_argument("--list-faults", action="store_true", help="print the named faults and exit")
    return parser


def main(argv: list[str]) -> int:
    """Run ``serve`` with ``argv`` (the arguments after ``serve``); return the exit status."""
    args = build_parser().parse_args(argv)

    if args.list_faults:
        width = max(len(name) for name in FAULTS)
        for name, fault in FAULTS.items():
            print(f"{name:<{width}}  {fault.description}")
        return 0
    if args.fault not in FAULTS:
        print(f"error: unknown fault {args.fault!r}; run with --list-faults to see the names", file=sys.stderr)
        return 2

    # "/echo" always echoes, so that the "redirect" fault has a target.
    server = Server(
        FAULTS[args.fault].script,
        routes={"/echo": ECHO},
        host=args.host,
        port=args.port,
        tls=args.tls,
        client_cert=args.client_cert,
    )
    try:
        server.start()
    except OSError as error:
        print(f"error: cannot listen on {args.host} port {args.port}: {error}", file=sys.stderr)
        return 1

    # Stop on Ctrl+C or SIGTERM; the handlers run in the gevent loop.
    stop = gevent.event.Event()
    handlers = [gevent.signal_handler(number, stop.set) for number in (signal.SIGINT, signal.SIGTERM)]
    try:
        print(f"serving {args.fault!r} at {server.url}", flush=True)
        if server.tls is not None:
            print(f"CA certificate: {server.ca_file}", flush=True)
        # Each wait is bounded; the loop ends only on a signal.
        while not stop.wait(60):
            pass
    finally:
        for handler in handlers:
            handler.cancel()
        server.stop()
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
