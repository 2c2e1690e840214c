"""lomond.load: open many WebSocket connections from one process and report.

``python -m lomond load [URL]`` is the command line (see
:mod:`lomond.load.cli`). Its parts can be used from Python too::

    from lomond.load import LoadConfig, LoadRunner, EchoBehaviour

    config = LoadConfig(url="ws://127.0.0.1:8000/", clients=100, rate=50, duration=10)
    report = LoadRunner(config, EchoBehaviour(interval=1.0, size=32)).run()
    print(report["connections"]["opened"])

Every connection runs in its own greenlet of one gevent hub, so the client
side needs neither threads nor monkey-patching.
"""

from __future__ import annotations

from .behaviours import (
    Behaviour,
    EchoBehaviour,
    ListenBehaviour,
    ScriptBehaviour,
    load_script,
)
from .runner import LoadConfig, LoadRunner
from .stats import LoadStats, Samples, percentile

__all__ = [
    "Behaviour",
    "EchoBehaviour",
    "ListenBehaviour",
    "ScriptBehaviour",
    "load_script",
    "LoadConfig",
    "LoadRunner",
    "LoadStats",
    "Samples",
    "percentile",
]
