"""lomond.testing: a scriptable WebSocket test server and its pytest plugin.

Install with ``pip install lomond[testing]``. The server's well-behaved
side is wsproto, an implementation independent of lomond's client, and
faults are written as raw bytes. It runs in-process as gevent greenlets on
an ephemeral loopback port::

    from lomond.testing import Server, steps

    with Server([steps.accept(), steps.send_text("hi"), steps.close(1000)]) as server:
        ...  # point a client at server.url

The pytest plugin (loaded automatically) adds the fixtures
``lomond_server``, ``lomond_server_factory``, ``lomond_tls_server``,
``lomond_proxy`` and ``lomond_proxy_factory``.
"""

from __future__ import annotations

from . import frames, steps
from .connection import Connection, ConnectionClosed
from .faults import FAULTS
from .proxy import ConnectProxy, ProxyRequest
from .server import Script, Server, run_script
from .steps import Step
from .transcript import Message, Request, Transcript
from .waits import TIME_UNIT, ExpectationFailed, WaitTimeout, scaled

__all__ = [
    "Server",
    "Script",
    "Step",
    "steps",
    "frames",
    "Connection",
    "ConnectionClosed",
    "Transcript",
    "Request",
    "Message",
    "ConnectProxy",
    "ProxyRequest",
    "FAULTS",
    "TIME_UNIT",
    "scaled",
    "WaitTimeout",
    "ExpectationFailed",
    "run_script",
]
