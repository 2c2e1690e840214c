"""Command line: ``python -m lomond [URL]``, ``serve`` and ``load``.

``python -m lomond URL`` connects, prints each event on a line (``--json``
for JSON lines), sends each line of standard input as a text message, and
closes at end of input or on Ctrl-C. Without a URL it starts the bundled
echo server in this process and connects to it.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from typing import Any

import gevent
from gevent.fileobject import FileObjectThread

from . import __version__

__all__ = ["main"]

log = logging.getLogger("lomond.cli")

_SUBCOMMANDS = ("serve", "load")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lomond",
        description=(
            "Connect to a WebSocket server and print its events; each line of"
            " standard input is sent as a text message. Without URL, start the"
            " bundled echo server and connect to it. Other commands:"
            " 'python -m lomond serve --help' (test server) and"
            " 'python -m lomond load --help' (load test)."
        ),
    )
    parser.add_argument("url", nargs="?", help="ws://, wss:// or ws+unix:// URL")
    parser.add_argument("--json", action="store_true", help="print events as JSON lines")
    parser.add_argument(
        "-H", "--header", action="append", default=[], metavar="'NAME: VALUE'",
        help="extra handshake header (repeatable)",
    )
    parser.add_argument(
        "-p", "--protocol", action="append", default=[], metavar="NAME",
        help="subprotocol to offer (repeatable)",
    )
    parser.add_argument("--compress", action="store_true", help="offer permessage-deflate")
    parser.add_argument(
        "--ping-rate", type=float, default=30.0, metavar="SECONDS",
        help="seconds between automatic pings, 0 to turn off (default 30)",
    )
    parser.add_argument(
        "--poll", type=float, default=0.0, metavar="SECONDS",
        help="seconds between Poll events, 0 to hide them (default 0)",
    )
    parser.add_argument(
        "--insecure", action="store_true",
        help="do not verify the server's TLS certificate",
    )
    parser.add_argument("--cafile", metavar="PATH", help="CA bundle to verify the server with")
    parser.add_argument(
        "--proxy", metavar="URL",
        help="HTTP CONNECT or SOCKS proxy URL (default: from *_proxy environment variables)",
    )
    parser.add_argument(
        "--close-after", type=float, default=None, metavar="SECONDS",
        help="close the connection after this many seconds",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log to stderr (-vv for debug)")
    parser.add_argument("--version", action="version", version=f"lomond {__version__}")
    return parser


def _print_event(event: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(event.to_dict()), flush=True)
    else:
        print(repr(event), flush=True)


def _send_stdin(websocket: Any, ready: gevent.event.Event) -> None:
    """Send each line of standard input as a text message, then close."""
    ready.wait()
    stdin = FileObjectThread(sys.stdin, "r")
    try:
        for line in stdin:
            if not websocket.is_active:
                return
            websocket.send_text(line.rstrip("\r\n"))
    except (OSError, ValueError) as error:
        log.warning("reading standard input failed: %s", error)
    finally:
        websocket.close()


def run_client(args: argparse.Namespace, stdin_lines: bool = True) -> int:
    """Connect to ``args.url`` and print events until Disconnected; return the exit code."""
    from gevent.event import Event

    from .errors import UsageError
    from .websocket import WebSocket

    headers = []
    for header in args.header:
        name, colon, value = header.partition(":")
        if not colon:
            print(f"error: invalid header {header!r}; use 'Name: value'", file=sys.stderr)
            return 2
        headers.append((name.strip(), value.strip()))
    options: dict[str, Any] = {}
    if args.proxy:
        options["proxies"] = {"http": args.proxy, "https": args.proxy}
    try:
        websocket = WebSocket(
            args.url,
            protocols=args.protocol,
            compress=args.compress,
            ssl_verify=not args.insecure,
            ssl_cafile=args.cafile,
            headers=headers,
            **options,
        )
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    ready = Event()
    sender = gevent.spawn(_send_stdin, websocket, ready) if stdin_lines else None
    closer = None
    if args.close_after is not None:
        closer = gevent.spawn_later(args.close_after, websocket.close)
    exit_code = 1
    try:
        for event in websocket.connect(poll=args.poll, ping_rate=args.ping_rate):
            if event.name == "poll" and not args.poll:
                continue
            _print_event(event, args.json)
            if event.name == "ready":
                ready.set()
            elif event.name == "disconnected":
                exit_code = 0 if event.graceful else 1
    except KeyboardInterrupt:
        websocket.close()
        exit_code = 130
    finally:
        for greenlet in (sender, closer):
            if greenlet is not None:
                greenlet.kill(block=False)
    return exit_code


def run_embedded(args: argparse.Namespace) -> int:
    """Start the bundled echo server, connect to it, send a few messages and close."""
    try:
        from .testing import Server
    except ImportError as error:
        # MissingExtra already names the install command; a plain
        # ImportError does not.
        hint = "" if "pip install" in str(error) else "; install it with: pip install 'lomond[testing]'"
        print(f"error: the embedded server is not available ({error}){hint}", file=sys.stderr)
        return 2
    from .websocket import WebSocket

    with Server() as server:
        print(f"started the bundled echo server at {server.url}", file=sys.stderr)
        websocket = WebSocket(server.url, compress=args.compress)
        messages = ["hello", "from", "lomond"]
        exit_code = 1
        for event in websocket.connect(poll=0, ping_rate=args.ping_rate):
            _print_event(event, args.json)
            if event.name == "ready":
                for text in messages:
                    websocket.send_text(text)
                websocket.send_binary(b"\x00\x01\x02")
                websocket.send_ping(b"ping")
            elif event.name == "binary":
                websocket.close()
            elif event.name == "disconnected":
                exit_code = 0 if event.graceful else 1
    return exit_code


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "serve":
        from .testing.cli import main as serve_main

        return serve_main(argv[1:])
    if argv and argv[0] == "load":
        from .load.cli import main as load_main

        return load_main(argv[1:])

    args = _build_parser().parse_args(argv)
    if args.verbose:
        logging.basicConfig(
            level=logging.DEBUG if args.verbose > 1 else logging.INFO,
            format="%(asctime)s %(name)s %(levelname)s %(message)s",
            stream=sys.stderr,
        )
    # Ctrl-C raises KeyboardInterrupt in the main greenlet.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if args.url is None:
        return run_embedded(args)
    return run_client(args)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:
        # The reader of standard output went away (for example `| head`).
        sys.stderr.close()
        sys.exit(1)
