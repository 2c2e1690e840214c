"""Soak test: many persistent connections, random faults, and an account of every message.

Usage (run by hand, not in CI)::

    python soak/soak.py --connections 1000 --duration 600 --report soak-report.json

The test server (:mod:`lomond.testing`) runs in a child process, so that
the client process measures only itself. Each connection attempt of each
client picks a server behaviour at random: a clean close by the server, a
clean close by the client, or a fault (TCP drop or reset, an invalid frame,
an invalid close code, a stall, a rejected handshake, no handshake
response, a close frame that never gets a reply). Each client runs
:func:`lomond.persist`, so it reconnects after every end.

Both sides number their messages. Each attempt carries an
``X-Soak-Attempt`` header, and both sides record per attempt what they sent
and received. Every 30 s, and at the end, the client process matches the
attempts that ended with the server's log and checks:

- each attempt ended with exactly one Disconnected event;
- the server's messages arrived in order without gaps or duplicates, all
  of them when the connection ended with a close handshake, a TCP FIN or a
  protocol error, and a prefix of them otherwise;
- the client's messages whose send returned reached the server in order,
  all of them for a clean close and a prefix otherwise;
- file descriptors and greenlets are back to their count before the run,
  and resident memory grew less than 5% over the second half of the run.

The exit status is 0 when every check passed.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import random
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import gevent
import gevent.event
import gevent.threadpool
from greenlet import greenlet

# --- server side (child process) -----------------------------------------------

# (behaviour, weight). Clean endings are the majority, as on a real network.
BEHAVIOURS = [
    ("server-close", 30),
    ("client-close", 30),
    ("drop", 7),
    ("reset", 5),
    ("invalid-frame", 6),
    ("bad-close-code", 3),
    ("stall", 5),
    ("reject", 5),
    ("never-answer", 4),
    ("ignore-close", 5),
]

# Behaviours after which every message written before the fault must
# arrive: TCP delivers what precedes a FIN, and lomond delivers what
# precedes an invalid frame.
COMPLETE_DELIVERY = {"server-close", "client-close", "drop", "invalid-frame", "bad-close-code", "ignore-close"}

# Disconnected reasons of connections that the client ended on a timeout:
# messages still in flight then are lost by design, whatever the behaviour.
CLIENT_GAVE_UP = ("unresponsive", "timed out")


def serve(log_path: str) -> None:
    """Run the test server until stdin closes; append one JSON line per connection to ``log_path``."""
    from lomond.testing import ConnectionClosed, steps
    from lomond.testing.server import Server

    def script(conn: Any) -> None:
        attempt = conn.request.header("X-Soak-Attempt") or "unknown"
        rng = random.Random(attempt)
        behaviour = rng.choices([b for b, _ in BEHAVIOURS], [w for _, w in BEHAVIOURS])[0]
        record = {"attempt": attempt, "behaviour": behaviour, "sent": 0}
        sender = None
        try:
            if behaviour == "reject":
                conn.reject(503, headers=[("Retry-After", "1")])
                return
            if behaviour == "never-answer":
                conn.hold()
                return
            offered = "permessage-deflate" in (conn.request.header("Sec-WebSocket-Extensions") or "")
            conn.accept(extensions=["permessage-deflate"] if offered else [])
            if behaviour == "ignore-close":
                conn.answer_close = False

            # The server's own numbered messages, from a second greenlet,
            # while this one echoes what the client sends.
            count = rng.randint(0, 30)
            interval = rng.uniform(0.05, 1.0)

            def send_numbered() -> None:
                try:
                    for number in range(count):
                        conn.send_text(f"s:{number}")
                        record["sent"] = number + 1
                        gevent.sleep(interval)
                except ConnectionClosed:
                    pass  # the client left or closed; "sent" counts what was written

            sender = gevent.spawn(send_numbered)
            if behaviour in ("client-close", "ignore-close"):
                conn.echo()
                return
            sender.join()
            if behaviour == "server-close":
                conn.close(1000)
            elif behaviour == "drop":
                conn.drop()
            elif behaviour == "reset":
                conn.reset()
            elif behaviour == "invalid-frame":
                steps.reserved_opcode()(conn)
                conn.hold()
            elif behaviour == "bad-close-code":
                conn.close(1005)
            elif behaviour == "stall":
                # Longer than the client's ping timeout; bounded so that the
                # server does not collect stalled connections.
                conn.stall(15)
        except ConnectionClosed:
            pass
        finally:
            if sender is not None:
                sender.kill()
            numbers = [
                int(message.text[2:])
                for message in conn.transcript.messages
                if message.kind == "text" and message.text.startswith("c:")
            ]
            record["received"] = len(numbers)
            record["in_order"] = numbers == list(range(len(numbers)))
            log_file.write(json.dumps(record) + "\n")

    with open(log_path, "a", buffering=1) as log_file:
        server = Server(script, request_timeout=30)
        server.start()
        print(f"PORT {server.port}", flush=True)
        # Serve until the parent closes stdin; the read does not block the hub.
        gevent.get_hub().threadpool.spawn(sys.stdin.read).get()
        server.stop(timeout=10)


# --- client side ----------------------------------------------------------------


@dataclass(slots=True)
class Attempt:
    """The client's record of one connection attempt.

    Counts, not lists, so that the records of tens of thousands of
    attempts do not show up as memory growth of the client.
    """

    attempt: str
    # Server messages received, and whether each had the next number.
    received: int = 0
    in_order: bool = True
    sent: int = 0
    echoes: int = 0
    disconnects: int = 0
    reason: str = ""
    graceful: bool = False
    ready: bool = False
    last_event: str = ""


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def live_greenlets() -> int:
    # Workers of gevent's thread pool (its DNS resolver) start on demand and
    # outlive connections by design, so they are not counted.
    hub = gevent.get_hub()
    pool_worker = getattr(gevent.threadpool, "_WorkerGreenlet", type(None))
    return sum(
        1
        for obj in gc.get_objects()
        if isinstance(obj, greenlet)
        and obj is not hub
        and obj.parent is not None
        and bool(obj)
        and not isinstance(obj, pool_worker)
    )


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def sample(started: float) -> dict[str, Any]:
    gc.collect()
    return {
        "time": round(time.monotonic() - started, 1),
        "fds": open_fds(),
        "greenlets": live_greenlets(),
        "rss_kib": rss_kib(),
    }


def run_client(
    number: int,
    url: str,
    stop: gevent.event.Event,
    attempts: dict[str, Attempt],
    seed: int,
    websockets: list[Any],
    compress_share: float,
) -> None:
    """Run one persistent WebSocket until ``stop`` is set, recording each attempt."""
    from lomond import WebSocket
    from lomond.errors import TransportFail, WebSocketUnavailable
    from lomond.persist import persist

    rng = random.Random(seed * 100_003 + number)
    counter = itertools.count()
    current: list[Attempt] = []

    def headers() -> list[tuple[str, str]]:
        # Called by lomond once per connection attempt.
        attempt = Attempt(f"{number}-{next(counter)}")
        attempts[attempt.attempt] = attempt
        current[:] = [attempt]
        return [("X-Soak-Attempt", attempt.attempt)]

    websocket = WebSocket(url, compress=rng.random() < compress_share, proxies={}, headers=headers,
                          connect_timeout=10, handshake_timeout=5)
    websockets.append(websocket)

    def close_later(attempt: Attempt, delay: float) -> None:
        gevent.sleep(delay)
        if current and current[0] is attempt:
            try:
                websocket.close()
            except TransportFail:
                pass  # the socket failed first; the loop reports it

    closer = None
    for event in persist(websocket, poll=1, min_wait=0.5, max_wait=5, ping_rate=2, ping_timeout=5,
                         close_timeout=3, exit_event=stop):
        attempt = current[0] if current else None
        if attempt is None:
            continue
        name = event.name
        attempt.last_event = name
        if name == "ready":
            attempt.ready = True
            closer = gevent.spawn(close_later, attempt, rng.uniform(2, 30))
        elif name == "text":
            text = event.text
            if text.startswith("s:"):
                if int(text[2:]) != attempt.received:
                    attempt.in_order = False
                attempt.received += 1
            elif text.startswith("c:"):
                attempt.echoes += 1
        elif name == "poll" and attempt.ready and rng.random() < 0.7:
            try:
                websocket.send_text(f"c:{attempt.sent}")
            except (WebSocketUnavailable, TransportFail):
                pass  # not sent: the loop reports the end of the connection next
            else:
                attempt.sent += 1
        elif name == "disconnected":
            attempt.disconnects += 1
            attempt.reason = event.reason
            attempt.graceful = event.graceful
            if closer is not None:
                closer.kill()
                closer = None
            if stop.is_set():
                break
    if closer is not None:
        closer.kill()


def check_attempt(key: str, attempt: Attempt, record: dict[str, Any]) -> list[str]:
    """Return the problems of one attempt, given the server's record of it."""
    problems = []
    behaviour = record["behaviour"]
    if attempt.disconnects != 1:
        problems.append(f"{key}: {attempt.disconnects} Disconnected events")

    # Server to client: in order, and complete unless the TCP connection
    # was reset or the client gave up waiting.
    if not attempt.in_order or attempt.received > record["sent"]:
        problems.append(
            f"{key} ({behaviour}): {attempt.received} server messages received out of order"
            f" or more than the {record['sent']} sent"
        )
    elif (
        behaviour in COMPLETE_DELIVERY
        and not any(marker in attempt.reason for marker in CLIENT_GAVE_UP)
        and attempt.received != record["sent"]
    ):
        problems.append(
            f"{key} ({behaviour}): received {attempt.received} of {record['sent']} server messages"
            f" ({attempt.reason})"
        )

    # Client to server: every send that returned, in order.
    if not record["in_order"] or record["received"] > attempt.sent:
        problems.append(
            f"{key} ({behaviour}): the server received {record['received']} client messages out of"
            f" order or more than the {attempt.sent} sent"
        )
    elif attempt.graceful and record["received"] != attempt.sent:
        problems.append(
            f"{key} ({behaviour}): server received {record['received']} of {attempt.sent}"
            " client messages on a clean close"
        )
    return problems


# Substrings of Disconnected reasons, in the order they are tried.
ENDING_KINDS = [
    ("unresponsive", "client ping timeout"),
    ("close timed out", "client close timeout"),
    ("handshake timed out", "client handshake timeout"),
    ("send timed out", "client send timeout"),
    ("without a close frame", "server FIN"),
    ("during the handshake", "server FIN"),
    ("reset", "TCP reset"),
    ("instead of 101", "handshake rejected"),
    ("reserved opcode", "protocol error"),
    ("invalid close code", "protocol error"),
]


def ending_kind(attempt: Attempt) -> str:
    """Return a short name for how an attempt ended."""
    if attempt.graceful:
        return "close handshake"
    for marker, kind in ENDING_KINDS:
        if marker in attempt.reason:
            return kind
    return "other: " + attempt.reason[:40]


class Ledger:
    """Matches finished attempts with the server's log as the run goes, then drops them.

    Checking during the run keeps the client's memory bounded by the
    attempts in flight, so that its resident size measures lomond and not
    this bookkeeping.
    """

    def __init__(self, log_path: str) -> None:
        self.log_file = open(log_path)  # noqa: SIM115  (read for the whole run)
        self.partial = ""
        self.records: dict[str, dict[str, Any]] = {}
        self.totals = {
            "attempts": 0, "ready": 0, "graceful": 0,
            "server_sent": 0, "server_delivered": 0, "client_sent": 0, "client_delivered": 0,
            "echoes": 0,
        }
        self.behaviours: dict[str, int] = {}
        # How attempts ended, by the kind of Disconnected reason.
        self.endings: dict[str, int] = {}
        self.problems: list[str] = []
        self.problem_count = 0

    def read_log(self) -> None:
        """Read the server records written since the last call."""
        text = self.partial + self.log_file.read()
        lines = text.split("\n")
        self.partial = lines.pop()  # an unfinished last line, or ""
        for line in lines:
            if line:
                record = json.loads(line)
                self.records[record["attempt"]] = record

    def settle(self, attempts: dict[str, Attempt], final: bool = False) -> None:
        """Check each finished attempt that has a server record, and drop both."""
        self.read_log()
        for key in list(attempts):
            attempt = attempts[key]
            record = self.records.pop(key, None)
            if record is None:
                if not final:
                    continue
                # The connection never reached the server's script (for
                # example, refused while the server was stopping).
                record = {"behaviour": "no server record", "sent": 0, "received": 0, "in_order": True}
            elif attempt.disconnects == 0 and not final:
                self.records[key] = record
                continue
            del attempts[key]
            self.count(key, attempt, record)

    def count(self, key: str, attempt: Attempt, record: dict[str, Any]) -> None:
        totals = self.totals
        totals["attempts"] += 1
        totals["ready"] += attempt.ready
        totals["graceful"] += attempt.graceful
        totals["server_sent"] += record["sent"]
        totals["server_delivered"] += attempt.received
        totals["client_sent"] += attempt.sent
        totals["client_delivered"] += record["received"]
        totals["echoes"] += attempt.echoes
        behaviour = record["behaviour"]
        self.behaviours[behaviour] = self.behaviours.get(behaviour, 0) + 1
        ending = ending_kind(attempt)
        self.endings[ending] = self.endings.get(ending, 0) + 1
        if behaviour == "no server record":
            return
        found = check_attempt(key, attempt, record)
        self.problem_count += len(found)
        self.problems.extend(found[: max(0, 50 - len(self.problems))])


def main() -> int:
    parser = argparse.ArgumentParser(description="Soak lomond against its test server with random faults.")
    parser.add_argument("--connections", type=int, default=1000, help="persistent clients (default 1000)")
    parser.add_argument("--duration", type=float, default=600, help="seconds of load (default 600)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--compress", type=float, default=0.5,
                        help="share of clients that offer permessage-deflate, 0 to 1 (default 0.5)")
    parser.add_argument("--report", help="write the JSON report to this file")
    parser.add_argument("--serve", metavar="LOG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0

    # Two descriptors per connection in the server, one in the client, plus slack.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = min(hard, max(soft, 2 * args.connections + 256))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))

    log_path = f"/tmp/lomond-soak-server-{os.getpid()}.jsonl"
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", log_path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    line = server.stdout.readline() if server.stdout else ""
    if not line.startswith("PORT "):
        print(f"error: the soak server did not start: {line!r}", file=sys.stderr)
        return 1
    url = f"ws://127.0.0.1:{int(line.split()[1])}/soak"

    # Opened before the baseline, so that its descriptor is in both counts.
    ledger = Ledger(log_path)

    # Warm the hub (resolver thread pool, event loop) before the baseline.
    from lomond import WebSocket
    from lomond.errors import TransportFail

    warm_up = WebSocket(url, proxies={}, headers=[("X-Soak-Attempt", "warm-up")], handshake_timeout=5)
    with gevent.Timeout(30, False):
        for event in warm_up.connect(poll=0, ping_rate=0, close_timeout=1):
            if event.name == "ready":
                warm_up.close()

    started = time.monotonic()
    baseline = sample(started)
    samples = [baseline]
    stop = gevent.event.Event()
    attempts: dict[str, Attempt] = {}
    websockets: list[Any] = []
    clients = []
    ramp_up = min(30.0, args.duration / 10)
    for number in range(args.connections):
        clients.append(gevent.spawn_later(ramp_up * number / args.connections, run_client,
                                          number, url, stop, attempts, args.seed, websockets,
                                          args.compress))

    # Load phase: settle finished attempts and sample every 30 s.
    while time.monotonic() - started < args.duration:
        gevent.sleep(min(30.0, args.duration - (time.monotonic() - started)))
        ledger.settle(attempts)
        samples.append(sample(started))
        print(json.dumps(samples[-1]), flush=True)

    # Shut down: stop reconnecting, close what is open, wait (bounded).
    stop.set()
    for websocket in websockets:
        try:
            websocket.close()
        except TransportFail:
            pass  # the socket failed just now; that client's loop reports it
    gevent.joinall(clients, timeout=60)
    stuck = [client for client in clients if not client.dead]
    unfinished = [f"{key} (last event: {a.last_event})" for key, a in attempts.items() if not a.disconnects]
    gevent.killall(stuck, timeout=10)
    gevent.sleep(1)
    end = sample(started)
    samples.append(end)

    if server.stdin:
        server.stdin.close()
    server.wait(timeout=60)
    ledger.settle(attempts, final=True)
    ledger.log_file.close()
    os.unlink(log_path)

    # Problems of the run as a whole. The ledger keeps those of single attempts.
    problems: list[str] = []
    if stuck:
        problems.append(
            f"{len(stuck)} client greenlets did not end within 60 s of the stop: {unfinished[:10]}"
        )
    if end["fds"] != baseline["fds"]:
        problems.append(f"file descriptors: {baseline['fds']} before, {end['fds']} after")
    if end["greenlets"] != baseline["greenlets"]:
        problems.append(f"greenlets: {baseline['greenlets']} before, {end['greenlets']} after")
    # Resident memory climbs for minutes while zlib and the allocator reach
    # their working set, so "flat" means no growth over the second half.
    second_half = [s for s in samples[1:-1] if s["time"] >= args.duration / 2] or samples[1:-1]
    if second_half:
        steady = second_half[0]["rss_kib"]
        peak = max(s["rss_kib"] for s in second_half)
        # NOTE: 5% is a tolerance for allocator noise, not a measured bound.
        if peak > steady * 1.05:
            problems.append(f"resident memory grew from {steady} KiB to {peak} KiB in the second half")

    totals = ledger.totals
    report = {
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "connections": args.connections,
        "duration_s": args.duration,
        "seed": args.seed,
        "attempts": totals["attempts"],
        "ready": totals["ready"],
        "graceful": totals["graceful"],
        "behaviours": ledger.behaviours,
        "endings": ledger.endings,
        "server_messages": {"sent": totals["server_sent"], "delivered": totals["server_delivered"]},
        "client_messages": {"sent": totals["client_sent"], "delivered": totals["client_delivered"]},
        "echoes_received": totals["echoes"],
        "samples": samples,
        "problems": problems + ledger.problems,
        "problem_count": len(problems) + ledger.problem_count,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.report:
        with open(args.report, "w") as report_file:
            report_file.write(text + "\n")
    return 0 if report["problem_count"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
