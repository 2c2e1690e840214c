"""The bundled test server for load runs, in a process of its own, counting what it serves.

::

    python -m lomond.load.server [--port 0] [--push-interval 1] [--push-size 32]
                                 [--max-seconds 600] [--stats FILE]

It runs :class:`lomond.testing.Server` (wsproto on gevent) with two
routes: ``/`` echoes every text and binary message, and ``/push`` sends a
text message of ``--push-size`` bytes every ``--push-interval`` seconds.
The first line of standard output is ``listening on URL``. The server
stops on SIGTERM or SIGINT, after ``--max-seconds``, or when the process
that started it exits. Open connections then get close code 1001, and the
last line of output is ``stats JSON``, which ``--stats FILE`` also writes
to FILE.

:class:`EmbeddedServer` starts and stops this process for
``python -m lomond load`` run without a URL. A separate process keeps the
server's CPU time off the client's measurements, and lets the two use both
cores of a machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from collections import Counter
from typing import Any

import gevent
import gevent.event
import gevent.subprocess

from .resources import cpu_seconds, raise_open_files_limit, rss_bytes

__all__ = ["EmbeddedServer", "ServerCounts", "main"]

log = logging.getLogger(__name__)

#: Seconds the load command waits for the server's "listening on" line.
START_TIMEOUT = 20.0

#: Seconds the server process gets to close its connections and print its
#: counts after SIGTERM, before it is killed.
STOP_TIMEOUT = 20.0

# How long the echo and push scripts wait in one call before they check
# again whether the connection is gone.
_IDLE_WAIT = 60.0


class ServerCounts:
    """Messages the server's scripts received and sent, summed over connections."""

    def __init__(self) -> None:
        self.messages_received = 0
        self.bytes_received = 0
        self.messages_sent = 0
        self.bytes_sent = 0

    def echo(self, conn: Any) -> None:
        """Run the script of ``/``: accept, then send back each text and binary message."""
        from lomond.testing import ExpectationFailed, WaitTimeout

        conn.accept()
        while not conn.is_disconnected:
            try:
                message = conn.receive(_IDLE_WAIT)
            except WaitTimeout:
                continue
            except ExpectationFailed:
                return  # the client left
            if message.kind == "close":
                return
            if message.kind not in ("text", "binary"):
                continue
            self.messages_received += 1
            self.bytes_received += len(message.payload)
            if not conn.is_open:
                continue
            if message.kind == "text":
                conn.send_text(message.text)
            else:
                conn.send_binary(message.payload)
            self.messages_sent += 1
            self.bytes_sent += len(message.payload)

    def push(self, conn: Any, interval: float, size: int) -> None:
        """Run the script of ``/push``: accept, then send a text message every ``interval`` seconds."""
        conn.accept()
        payload = "x" * size
        while conn.is_open:
            conn.send_text(payload)
            self.messages_sent += 1
            self.bytes_sent += size
            conn.wait_for(lambda: not conn.is_open, interval, "the end of the connection", fail=False)


def summarize(server: Any, counts: ServerCounts, started: float) -> dict[str, Any]:
    """Return what the server recorded, from its transcripts and the scripts' counts."""
    transcripts = list(server.transcripts)
    close_codes: Counter[str] = Counter()
    for transcript in transcripts:
        if transcript.close_received is not None:
            close_codes[str(transcript.close_code)] += 1
    return {
        "connections": len(transcripts),
        "accepted": sum(1 for t in transcripts if t.response_status == 101),
        "closing_handshakes": sum(1 for t in transcripts if t.closing_handshake_completed),
        "close_codes_received": dict(sorted(close_codes.items())),
        "messages_received": counts.messages_received,
        "bytes_received": counts.bytes_received,
        "messages_sent": counts.messages_sent,
        "bytes_sent": counts.bytes_sent,
        "errors": list(server.errors[:20]),
        "error_count": len(server.errors),
        "cpu_seconds": cpu_seconds(),
        "rss_bytes": rss_bytes(),
        "seconds": time.monotonic() - started,
    }


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lomond.load.server",
        description="Run the bundled echo and push server for load tests until SIGTERM.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default 0: any free port)")
    parser.add_argument(
        "--push-interval", type=float, default=1.0, metavar="SECONDS",
        help="seconds between messages on /push (default 1)",
    )
    parser.add_argument(
        "--push-size", type=int, default=32, metavar="BYTES",
        help="size of each message on /push (default 32)",
    )
    parser.add_argument(
        "--max-seconds", type=float, default=3600.0, metavar="SECONDS",
        help="stop after this many seconds at most (default 3600)",
    )
    parser.add_argument("--stats", metavar="FILE", help="also write the final counts to FILE as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the server until a signal, the time limit or the parent's exit; return the exit code."""
    args = _build_parser().parse_args(argv)
    if args.push_interval <= 0:
        print(f"error: --push-interval must be above 0, not {args.push_interval:g}", file=sys.stderr)
        return 2
    if args.push_size < 0:
        print(f"error: --push-size must be 0 or more, not {args.push_size}", file=sys.stderr)
        return 2
    try:
        from lomond.testing import Server
    except ImportError as error:
        print(
            f"error: the bundled server needs the testing extra ({error});"
            " install it with: pip install 'lomond[testing]'",
            file=sys.stderr,
        )
        return 2
    raise_open_files_limit(0)

    # 1. Start, and print the URL for the process that started this one.
    counts = ServerCounts()
    started = time.monotonic()
    server = Server(
        counts.echo,
        routes={"/push": lambda conn: counts.push(conn, args.push_interval, args.push_size)},
        host=args.host,
        port=args.port,
    )
    server.start()
    print(f"listening on {server.url}", flush=True)

    # 2. Serve until a signal, the time limit, or the parent's exit.
    stop = gevent.event.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, stop.set)
    parent = os.getppid()
    deadline = started + args.max_seconds
    while not stop.is_set() and time.monotonic() < deadline and os.getppid() == parent:
        stop.wait(1.0)

    # 3. Stop and report.
    server.stop()
    stats = summarize(server, counts, started)
    line = json.dumps(stats)
    if args.stats:
        with open(args.stats, "w", encoding="utf-8") as stats_file:
            stats_file.write(line + "\n")
    print(f"stats {line}", flush=True)
    return 0


class EmbeddedServer:
    """Start ``python -m lomond.load.server`` as a child process and stop it.

    The child gets its own session, so the Ctrl-C that a terminal sends to
    its foreground process group reaches only the load command, which then
    closes its connections before it stops the server.
    """

    def __init__(self, push_interval: float = 1.0, push_size: int = 32, max_seconds: float = 3600.0) -> None:
        self.push_interval = push_interval
        self.push_size = push_size
        self.max_seconds = max_seconds
        self.url: str | None = None
        self.process: gevent.subprocess.Popen | None = None

    def start(self) -> str:
        """Start the server process and return its URL; raise RuntimeError when it does not start."""
        command = [
            sys.executable, "-m", "lomond.load.server",
            "--port", "0",
            "--push-interval", repr(self.push_interval),
            "--push-size", str(self.push_size),
            "--max-seconds", repr(self.max_seconds),
        ]
        process = gevent.subprocess.Popen(
            command,
            stdin=gevent.subprocess.DEVNULL,
            stdout=gevent.subprocess.PIPE,
            start_new_session=True,
        )
        self.process = process
        line = b""
        with gevent.Timeout(START_TIMEOUT, False):
            line = process.stdout.readline()
        text = line.decode("utf-8", "replace").strip()
        if not text.startswith("listening on "):
            self._kill()
            raise RuntimeError(
                f"the bundled server did not start within {START_TIMEOUT:g} s"
                f" (exit code {process.poll()}, output {text!r})"
            )
        self.url = text[len("listening on "):]
        return self.url

    def stop(self) -> dict[str, Any] | None:
        """Stop the server process; return the counts it printed, or None when it printed none."""
        process = self.process
        if process is None or process.returncode is not None:
            return None
        output = b""
        try:
            process.send_signal(signal.SIGTERM)
            output, _ = process.communicate(timeout=STOP_TIMEOUT)
        except gevent.subprocess.TimeoutExpired:
            log.warning("the bundled server did not stop within %g s: killing it", STOP_TIMEOUT)
            self._kill()
        except ProcessLookupError:
            pass
        for line in output.decode("utf-8", "replace").splitlines():
            if line.startswith("stats "):
                return json.loads(line[len("stats "):])  # type: ignore[no-any-return]
        return None

    def _kill(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()


if __name__ == "__main__":
    sys.exit(main())
