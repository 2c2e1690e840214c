"""``python -m lomond load [URL]``: open many connections, hold them, report.

Without URL, the bundled test server is started in a child process on
127.0.0.1 and the report adds what that server recorded. The progress line
and notes go to standard error, the report to standard output.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from typing import Any

import gevent

from ..errors import UsageError
from .behaviours import (
    Behaviour,
    EchoBehaviour,
    ListenBehaviour,
    ScriptBehaviour,
    load_script,
)
from .report import format_report
from .resources import FILES_RESERVED, raise_open_files_limit
from .runner import LoadConfig, LoadRunner, progress_stream
from .server import EmbeddedServer

__all__ = ["main", "build_parser"]

log = logging.getLogger(__name__)

#: Seconds the bundled server may outlive the planned run before it stops
#: by itself, in case this process dies without stopping it.
SERVER_LIFETIME_MARGIN = 120.0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``python -m lomond load``."""
    parser = argparse.ArgumentParser(
        prog="python -m lomond load",
        description=(
            "Open --clients WebSocket connections at --rate per second, run a behaviour on"
            " each for --duration seconds, close them, and print a report. Without URL,"
            " start the bundled test server (needs lomond[testing]) in a child process on"
            " 127.0.0.1 and load it."
        ),
    )
    parser.add_argument("url", nargs="?", help="ws:// or wss:// URL of the server to load")

    load = parser.add_argument_group("load")
    load.add_argument("-c", "--clients", type=int, default=100, metavar="N",
                      help="number of connections to open (default 100)")
    load.add_argument("-r", "--rate", type=float, default=100.0, metavar="PER_SECOND",
                      help="new connections per second (default 100)")
    load.add_argument("-d", "--duration", type=float, default=10.0, metavar="SECONDS",
                      help="seconds each connection stays open after its handshake (default 10)")

    behaviour = parser.add_argument_group("behaviour")
    behaviour.add_argument("-b", "--behaviour", choices=("echo", "listen"), default="echo",
                           help="echo: send a message every --interval and time the reply;"
                                " listen: send nothing and count server pushes (default echo)")
    behaviour.add_argument("--script", metavar="MODULE:FUNCTION",
                           help="run FUNCTION(websocket, events) on each connection instead;"
                                " MODULE may be a path to a .py file")
    behaviour.add_argument("-i", "--interval", type=float, default=1.0, metavar="SECONDS",
                           help="seconds between echo messages, and between Poll events of a"
                                " script; also the push interval of the bundled server (default 1)")
    behaviour.add_argument("-s", "--size", type=int, default=32, metavar="BYTES",
                           help="size of each echo message, and of each push of the bundled"
                                " server (default 32)")

    connection = parser.add_argument_group("connection")
    connection.add_argument("--connect-timeout", type=float, default=10.0, metavar="SECONDS",
                            help="seconds allowed for TCP and TLS, and again for the handshake (default 10)")
    connection.add_argument("--close-timeout", type=float, default=5.0, metavar="SECONDS",
                            help="seconds to wait for the server's close frame (default 5)")
    connection.add_argument("--ping-rate", type=float, default=0.0, metavar="SECONDS",
                            help="seconds between pings, whose round trips are reported (default 0: off)")
    connection.add_argument("--ping-timeout", type=float, default=None, metavar="SECONDS",
                            help="drop a connection whose pong is this late (default: never)")
    connection.add_argument("-H", "--header", action="append", default=[], metavar="'NAME: VALUE'",
                            help="extra handshake header (repeatable)")
    connection.add_argument("-p", "--protocol", action="append", default=[], metavar="NAME",
                            help="subprotocol to offer (repeatable)")
    connection.add_argument("--compress", action="store_true", help="offer permessage-deflate")
    connection.add_argument("--insecure", action="store_true",
                            help="do not verify the server's TLS certificate")

    output = parser.add_argument_group("output")
    output.add_argument("--json", metavar="FILE", help="also write the report to FILE as JSON")
    output.add_argument("--progress", choices=("auto", "on", "off"), default="auto",
                        help="the live progress line on standard error (default auto: on a terminal)")
    output.add_argument("-v", "--verbose", action="count", default=0,
                        help="log to standard error (-vv for debug)")
    return parser


def _check_args(args: argparse.Namespace) -> str | None:
    """Return what is wrong with the arguments, or None."""
    if args.clients < 1:
        return f"--clients must be 1 or more, not {args.clients}"
    if args.rate <= 0:
        return f"--rate must be above 0, not {args.rate:g}"
    if args.duration < 0:
        return f"--duration must be 0 or more, not {args.duration:g}"
    if args.interval <= 0:
        return f"--interval must be above 0, not {args.interval:g}"
    if args.size < 0:
        return f"--size must be 0 or more, not {args.size}"
    if args.connect_timeout <= 0 or args.close_timeout <= 0:
        return "--connect-timeout and --close-timeout must be above 0"
    if args.ping_rate < 0:
        return f"--ping-rate must be 0 or more, not {args.ping_rate:g}"
    for header in args.header:
        if ":" not in header:
            return f"invalid header {header!r}: use 'Name: value'"
    return None


def _make_behaviour(args: argparse.Namespace) -> Behaviour:
    if args.script:
        return ScriptBehaviour(load_script(args.script), args.script, args.interval)
    if args.behaviour == "listen":
        return ListenBehaviour()
    return EchoBehaviour(args.interval, args.size)


def _fit_open_files(clients: int) -> tuple[int, dict[str, Any]]:
    """Raise the open files limit; return the clients that fit and the facts for the report."""
    limits = raise_open_files_limit(clients + FILES_RESERVED)
    if limits is None:
        return clients, {}
    soft, hard = limits
    facts: dict[str, Any] = {"open_files_limit": soft, "open_files_hard_limit": hard}
    fitting = soft - FILES_RESERVED
    if clients > fitting:
        print(
            f"note: the open files limit is {soft} (hard limit {hard}), so only {max(fitting, 0)}"
            f" of {clients} clients fit; raise the hard limit (ulimit -Hn, or nofile in"
            " /etc/security/limits.conf) to run more",
            file=sys.stderr,
        )
        facts["clients_limited_to"] = max(fitting, 0)
        clients = max(fitting, 0)
    return clients, facts


def main(argv: list[str]) -> int:
    """Run ``python -m lomond load`` with ``argv`` (the arguments after "load"); return the exit code.

    Exit codes: 0 when every connection opened and closed cleanly with no
    error, 1 when some failed, dropped or erred, 2 for invalid arguments or
    a server that did not start, 130 after Ctrl-C.
    """
    args = build_parser().parse_args(argv)
    problem = _check_args(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if args.verbose:
        logging.basicConfig(
            level=logging.DEBUG if args.verbose > 1 else logging.INFO,
            format="%(asctime)s %(name)s %(levelname)s %(message)s",
            stream=sys.stderr,
        )

    # 1. Behaviour and limits.
    try:
        behaviour = _make_behaviour(args)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    clients, details = _fit_open_files(args.clients)
    if clients < 1:
        print("error: no client fits under the open files limit", file=sys.stderr)
        return 2

    try:
        config = _make_config(args, clients)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    # 2. The server: the one given, or the bundled one in a child process.
    server = None
    if args.url is None:
        server = _start_bundled_server(args, config, behaviour, details)
        if server is None:
            return 2
    else:
        details["server"] = {"embedded": False}

    # 3. The run, then the report.
    try:
        report = _run(args, config, behaviour, details)
        if server is not None:
            report["server"]["recorded"] = server.stop()
    finally:
        if server is not None:
            server.stop()
    return _print_report(report, args.json, clients)


def _start_bundled_server(
    args: argparse.Namespace, config: LoadConfig, behaviour: Behaviour, details: dict[str, Any]
) -> EmbeddedServer | None:
    """Start the bundled server and point ``config`` at it; return None when it does not start."""
    server = EmbeddedServer(
        push_interval=args.interval,
        push_size=args.size,
        max_seconds=config.planned_seconds + SERVER_LIFETIME_MARGIN,
    )
    try:
        base_url = server.start()
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return None
    config.url = base_url.rstrip("/") + behaviour.server_path
    route = "pushes messages" if behaviour.server_path == "/push" else "echoes messages"
    print(
        f"no URL given: started the bundled test server at {base_url}"
        f" (process {server.process.pid}, {behaviour.server_path} {route})",  # type: ignore[union-attr]
        file=sys.stderr,
    )
    details["server"] = {"embedded": True, "url": base_url}
    return server


def _print_report(report: dict[str, Any], json_path: str | None, clients: int) -> int:
    """Print the report, write it as JSON when asked, and return the exit code."""
    print(format_report(report), flush=True)
    if json_path:
        try:
            with open(json_path, "w", encoding="utf-8") as json_file:
                json.dump(report, json_file, indent=2)
                json_file.write("\n")
        except OSError as error:
            print(f"error: writing the JSON report to {json_path} failed: {error}", file=sys.stderr)
            return 2
    if report["interrupted"]:
        return 130
    connections = report["connections"]
    clean = connections["closed_cleanly"] == connections["attempted"] == clients and not report["errors"]
    return 0 if clean else 1


def _make_config(args: argparse.Namespace, clients: int) -> LoadConfig:
    headers = []
    for header in args.header:
        name, _, value = header.partition(":")
        headers.append((name.strip(), value.strip()))
    return LoadConfig(
        url=args.url or "",
        clients=clients,
        rate=args.rate,
        duration=args.duration,
        connect_timeout=args.connect_timeout,
        close_timeout=args.close_timeout,
        ping_rate=args.ping_rate,
        ping_timeout=args.ping_timeout,
        headers=headers,
        protocols=args.protocol,
        compress=args.compress,
        ssl_verify=not args.insecure,
    )


def _run(
    args: argparse.Namespace,
    config: LoadConfig,
    behaviour: Behaviour,
    details: dict[str, Any],
) -> dict[str, Any]:
    """Run the load with Ctrl-C and SIGTERM turned into a clean stop; return the report."""
    enabled = {"auto": None, "on": True, "off": False}[args.progress]
    runner = LoadRunner(config, behaviour, progress=progress_stream(enabled), details=details)
    handlers = [gevent.signal_handler(signum, runner.stop) for signum in (signal.SIGINT, signal.SIGTERM)]
    try:
        return runner.run()
    finally:
        for handler in handlers:
            handler.cancel()
