"""The behaviours of a load run: the work each connection does while it is open.

A behaviour consumes one :class:`~lomond.load.client.Client`'s events from
the handshake to Disconnected. The run closes every connection when its
duration is over, so a behaviour only reacts to events:

- :class:`EchoBehaviour` sends a text message every ``interval`` seconds
  and times the reply of an echo server;
- :class:`ListenBehaviour` sends nothing and counts what the server pushes;
- :class:`ScriptBehaviour` hands the WebSocket and its events to a user
  function named as ``module:function`` or ``path/to/file.py:function``.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from ..errors import TransportFail, UsageError, WebSocketUnavailable
from .client import Client

__all__ = ["Behaviour", "EchoBehaviour", "ListenBehaviour", "ScriptBehaviour", "load_script"]

log = logging.getLogger(__name__)

#: Echo requests kept per connection while their replies are awaited.
#: Past this the oldest is counted as unanswered, so a server that never
#: replies cannot grow a client's memory without bound.
MAX_PENDING = 1024


class Behaviour:
    """The base class: consume the events and do nothing else."""

    #: The name used on the command line and in the report.
    name = "behaviour"
    #: The path to request on the bundled server, which serves echo on "/"
    #: and pushes on "/push".
    server_path = "/"

    @property
    def poll(self) -> float:
        """Seconds between the Poll events that this behaviour acts on (0: none)."""
        return 0.0

    def describe(self) -> str:
        """Return a short phrase for the report's first line."""
        return self.name

    def settings(self) -> dict[str, Any]:
        """Return the behaviour's settings for the JSON report."""
        return {"name": self.name}

    def run(self, client: Client) -> None:
        """Consume ``client``'s events until the connection ends."""
        for _ in client:
            pass


class ListenBehaviour(Behaviour):
    """Send nothing; count the messages that the server pushes."""

    name = "listen"
    server_path = "/push"

    def describe(self) -> str:
        return "listen to server pushes"


class EchoBehaviour(Behaviour):
    """Send a text message every ``interval`` seconds and time the server's echo of it.

    The first message goes out at Ready, and none in the last half
    interval before the connection's close. Each message starts with its
    sequence number and a space, and is padded with "x" to ``size`` bytes
    (longer when the number alone needs more). A reply is matched to its
    request by that number, so replies may arrive out of order.
    """

    name = "echo"
    server_path = "/"

    def __init__(self, interval: float = 1.0, size: int = 32) -> None:
        if interval <= 0:
            raise UsageError(f"the echo interval must be above 0 seconds, not {interval!r}")
        if size < 0:
            raise UsageError(f"the message size must be 0 bytes or more, not {size!r}")
        self.interval = interval
        self.size = size

    @property
    def poll(self) -> float:
        return self.interval

    def describe(self) -> str:
        return f"echo {self.size} bytes every {self.interval:g} s"

    def settings(self) -> dict[str, Any]:
        return {"name": self.name, "interval": self.interval, "size": self.size}

    def run(self, client: Client) -> None:
        for event in client:
            name = event.name
            if name == "text":
                self._match_reply(client, event.text)  # type: ignore[attr-defined]
            elif name in ("ready", "poll"):
                self._send_request(client)

    def _send_request(self, client: Client) -> None:
        websocket = client.websocket
        if client.close_requested or not websocket.is_active:
            return

        # A request sent in the last half interval before the close would
        # race the close frame: a server may answer the close first and
        # leave the request unanswered, which would read as a lost reply.
        close_at = client.close_at
        if close_at is not None and close_at - time.monotonic() < self.interval / 2:
            return

        sequence = client.next_sequence
        client.next_sequence += 1
        text = f"{sequence} ".ljust(self.size, "x")
        pending = client.pending
        if len(pending) >= MAX_PENDING:
            del pending[next(iter(pending))]
            client.stats.unanswered += 1
        pending[sequence] = time.monotonic()
        try:
            websocket.send_text(text)
        except (TransportFail, WebSocketUnavailable) as error:
            # The connection is ending, and its Disconnected event gives the reason.
            del pending[sequence]
            client.stats.errors[f"send failed: {error}"] += 1

    @staticmethod
    def _match_reply(client: Client, text: str) -> None:
        head = text.partition(" ")[0]
        sent_at = client.pending.pop(int(head), None) if head.isdigit() else None
        if sent_at is None:
            client.stats.errors["received a message that answers no request"] += 1
            return
        client.record_round_trip(time.monotonic() - sent_at)


#: A user script: called with the WebSocket and an iterator of its events.
ScriptFunction = Callable[[Any, Client], Any]


class ScriptBehaviour(Behaviour):
    """Run a user function for each connection: ``function(websocket, events)``.

    ``events`` is the connection's :class:`~lomond.load.client.Client`:
    iterating it connects and yields each event, and its
    ``record_round_trip(seconds)`` adds a latency sample. Messages sent
    through ``websocket`` are counted. The run closes the connection when
    its duration is over, so the function normally iterates until the
    events end. An exception raised by the function is counted as an error
    and ends that connection only.
    """

    name = "script"

    def __init__(self, function: ScriptFunction, spec: str, interval: float = 1.0) -> None:
        self.function = function
        self.spec = spec
        self.interval = interval

    @property
    def poll(self) -> float:
        return self.interval

    def describe(self) -> str:
        return f"script {self.spec}"

    def settings(self) -> dict[str, Any]:
        return {"name": self.name, "script": self.spec, "interval": self.interval}

    def run(self, client: Client) -> None:
        try:
            self.function(client.websocket, client)
        except Exception as error:
            # The outermost guard of a user script: one connection's bug is
            # counted and logged once per kind, and the run goes on.
            key = f"script raised {type(error).__name__}: {error}"
            if key not in client.stats.errors:
                log.exception("load script %s raised on client %d", self.spec, client.number)
            client.stats.errors[key] += 1
            client.end(f"the script raised {type(error).__name__}")
            return
        client.end("the script returned before Disconnected")


def load_script(spec: str) -> ScriptFunction:
    """Import the function that ``spec`` names, as ``module:function`` or ``file.py:function``.

    Raises :class:`~lomond.errors.UsageError` when the spec is malformed,
    the module or file cannot be imported, or the name is not callable.
    """
    module_name, colon, function_name = spec.rpartition(":")
    if not colon or not module_name or not function_name:
        raise UsageError(f"invalid script {spec!r}: use module:function or path/to/file.py:function")

    # 1. The module, from a file path or by import name.
    try:
        if module_name.endswith(".py") or os.sep in module_name:
            module = _import_file(module_name)
        else:
            module = importlib.import_module(module_name)
    except (ImportError, OSError, SyntaxError) as error:
        raise UsageError(f"cannot import the script module {module_name!r}: {error}") from None

    # 2. The function in it.
    function = getattr(module, function_name, None)
    if not callable(function):
        raise UsageError(f"the script module {module_name!r} has no function {function_name!r}")
    return function  # type: ignore[no-any-return]


def _import_file(path: str) -> Any:
    if not os.path.isfile(path):
        raise OSError(f"no such file: {path}")
    name = "lomond_load_script_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
