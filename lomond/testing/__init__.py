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

Names are imported on first use, because pytest imports the plugin in
every environment where lomond is installed, with or without the testing
extra (wsproto and trustme). Without it, using a name raises
:class:`~lomond.errors.MissingExtra`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..errors import MissingExtra

if TYPE_CHECKING:
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

# The submodule that defines each public name (None: the name is a submodule).
_LOCATIONS = {
    "Server": "server",
    "Script": "server",
    "run_script": "server",
    "Step": "steps",
    "steps": None,
    "frames": None,
    "Connection": "connection",
    "ConnectionClosed": "connection",
    "Transcript": "transcript",
    "Request": "transcript",
    "Message": "transcript",
    "ConnectProxy": "proxy",
    "ProxyRequest": "proxy",
    "FAULTS": "faults",
    "TIME_UNIT": "waits",
    "scaled": "waits",
    "WaitTimeout": "waits",
    "ExpectationFailed": "waits",
}


def __getattr__(name: str) -> Any:
    if name not in _LOCATIONS:
        raise AttributeError(f"module 'lomond.testing' has no attribute {name!r}")
    module_name = _LOCATIONS[name] or name
    try:
        module = importlib.import_module(f"{__name__}.{module_name}")
    except ImportError as error:
        package = (error.name or "").split(".")[0]
        if package in ("wsproto", "h11", "trustme"):
            raise MissingExtra(
                f"lomond.testing needs {package}, which is not installed."
                " Install it with: pip install 'lomond[testing]'"
            ) from error
        raise
    value = module if _LOCATIONS[name] is None else getattr(module, name)
    globals()[name] = value
    return value
