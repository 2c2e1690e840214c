"""The benchmark's catalog: clients, scenarios and their sizes.

A scenario's `kind` names the function that a client script runs (see
scripts/bench_client.py). Its sizes come from `full`, or from `quick` with
--quick, which is small enough for a smoke run of a few seconds.
"""

import dataclasses
from pathlib import Path

BENCHMARKS_DIR = Path(__file__).resolve().parent
SCRIPTS_DIR = BENCHMARKS_DIR / "scripts"
DEFAULT_PEERS_VENV = Path("/tmp/bench-peers-venv")
PEERS_REQUIREMENTS = BENCHMARKS_DIR / "peers-requirements.txt"

MIB = 1 << 20


@dataclasses.dataclass(frozen=True)
class Client:
    name: str
    label: str
    script: str
    # "project" runs under the runner's interpreter with this tree's lomond
    # first on sys.path; "peers" runs under the peers' virtualenv.
    interpreter: str
    modules: tuple
    distribution: str
    required_version: str = ""
    monkey_patch: bool = False
    gevent_capable: bool = False
    # Extra arguments for the client script.
    arguments: tuple = ()
    # The scenario kinds this client runs in (empty: all of them).
    kinds: tuple = ()


CLIENTS = (
    Client("raw", "raw socket (baseline)", "client_raw.py", "project", (), ""),
    # The same code on gevent's sockets: the floor for gevent clients.
    Client("raw-gevent", "raw socket, monkey-patched", "client_raw.py", "project",
           ("gevent",), "gevent", monkey_patch=True),
    # One greenlet per connection, blocked in recv(): the memory and CPU
    # floor of any client that gives each connection a greenlet.
    Client("raw-greenlet", "raw socket, a greenlet each", "client_raw.py", "project",
           ("gevent",), "gevent", monkey_patch=True, arguments=("--greenlet-each",),
           kinds=("idle",)),
    Client("lomond", "lomond (this tree)", "client_lomond.py", "project",
           ("lomond", "gevent"), "lomond", gevent_capable=True),
    Client("lomond-0.3.4", "lomond 0.3.4, monkey-patched", "client_lomond.py", "peers",
           ("lomond", "gevent"), "lomond", required_version="0.3.4", monkey_patch=True,
           gevent_capable=True),
    Client("websocket-client", "websocket-client, monkey-patched", "client_websocket_client.py",
           "peers", ("websocket", "gevent"), "websocket-client", monkey_patch=True,
           gevent_capable=True),
    # Runs with its own threads, unpatched. It counts as gevent-capable
    # because a gevent application can use it under monkey-patching.
    Client("websockets-sync", "websockets sync (threads)", "client_websockets_sync.py", "peers",
           ("websockets.sync.client",), "websockets", gevent_capable=True),
    Client("websockets-asyncio", "websockets asyncio", "client_websockets_asyncio.py", "peers",
           ("websockets.asyncio.client",), "websockets"),
    Client("aiohttp", "aiohttp", "client_aiohttp.py", "peers", ("aiohttp",), "aiohttp"),
    Client("picows", "picows", "client_picows.py", "peers", ("picows",), "picows"),
)

CLIENTS_BY_NAME = {client.name: client for client in CLIENTS}


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    kind: str
    title: str
    full: dict
    quick: dict
    # Scenarios bound by wall-clock time (an idle window, a message rate)
    # rather than by work; they repeat --repeat-long times.
    long: bool = False

    def path(self, sizes):
        """Return the server request path for these sizes."""
        if self.kind == "recv":
            return "/stream?count=%d&size=%d&type=%s" % (
                sizes["count"], sizes["size"], "text" if sizes.get("text") else "binary")
        if self.kind == "send":
            return "/discard"
        if self.kind == "echo":
            return "/echo"
        if self.kind == "idle":
            return "/idle"
        return "/fanin?count=%d&rate=%g" % (sizes["count"], sizes["rate"])

    def client_arguments(self, sizes):
        arguments = ["--scenario", self.kind, "--count", str(sizes.get("count", 1)),
                     "--size", str(sizes.get("size", 32))]
        if sizes.get("text"):
            arguments.append("--text")
        if "connections" in sizes:
            arguments += ["--connections", str(sizes["connections"])]
        if "idle_seconds" in sizes:
            arguments += ["--idle-seconds", str(sizes["idle_seconds"])]
        return arguments


def idle_scenario(connections, quick_connections):
    return Scenario(
        "idle-%d" % connections, "idle",
        "%s idle connections, one process: time to open, RSS per connection, "
        "CPU over the idle window" % format(connections, ","),
        {"connections": connections, "idle_seconds": 30.0},
        {"connections": quick_connections, "idle_seconds": 0.5},
        long=True)


SCENARIOS = (
    Scenario("recv-small", "recv", "receive 200,000 text messages of 32 bytes",
             {"count": 200000, "size": 32, "text": True},
             {"count": 2000, "size": 32, "text": True}),
    Scenario("recv-binary-1mib", "recv", "receive 200 binary messages of 1 MiB",
             {"count": 200, "size": MIB},
             {"count": 3, "size": MIB}),
    Scenario("recv-text-1mib", "recv", "receive 200 text messages of 1 MiB (UTF-8 validation)",
             {"count": 200, "size": MIB, "text": True},
             {"count": 3, "size": MIB, "text": True}),
    Scenario("send-binary-1mib", "send", "send 200 binary messages of 1 MiB (masking)",
             {"count": 200, "size": MIB},
             {"count": 3, "size": MIB}),
    Scenario("echo", "echo", "20,000 sequential echo round trips of 32 bytes",
             {"count": 20000, "size": 32},
             {"count": 200, "size": 32}),
    idle_scenario(1000, 10),
    idle_scenario(5000, 20),
    idle_scenario(10000, 30),
    Scenario("fanin", "fanin",
             "fan-in: 1,000 connections each receiving 10 messages/s for 30 s",
             {"connections": 1000, "count": 300, "rate": 10.0},
             {"connections": 20, "count": 10, "rate": 10.0},
             long=True),
)

SCENARIOS_BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}


def select(names, catalog, what):
    """Pick catalog entries by exact name, else by prefix ("idle" selects idle-*).

    Raise ValueError naming the unknown entry.
    """
    if not names:
        return list(catalog)
    chosen = []
    for name in names:
        matches = [item for item in catalog if item.name == name]
        if not matches:
            matches = [item for item in catalog if item.name.startswith(name + "-")]
        if not matches:
            known = ", ".join(item.name for item in catalog)
            raise ValueError("unknown %s %r (known: %s)" % (what, name, known))
        chosen += [item for item in matches if item not in chosen]
    return [item for item in catalog if item in chosen]
