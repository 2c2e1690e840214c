"""Autobahn|Testsuite testee for lomond: echo every message, permessage-deflate offered.

The fuzzingserver (``wstest -m fuzzingserver``) judges a client by what it
does with its default settings, so this testee uses lomond the way an
application would: ``WebSocket(url, compress=True)``, iterate the events,
echo text as text and binary as binary, and ignore everything else. Close
codes, fail-fast on invalid UTF-8 and the closing handshake are lomond's own.

Environment:

- ``WS_FUZZ_URL``: the fuzzingserver's URL (``ws://127.0.0.1:<port>``).
- ``WS_CASE_TIMEOUT``: seconds after which one case connection is abandoned
  (default 600).
- ``WS_AGENT``: the agent name in the reports (default ``lomond-<version>``).
"""

from __future__ import annotations

import os
import sys
import time

import lomond
from lomond import WebSocket
from lomond.errors import TransportFail, WebSocketUnavailable

FUZZ_URL = os.environ["WS_FUZZ_URL"]
AGENT = os.environ.get("WS_AGENT", f"lomond-{lomond.__version__}")
CASE_TIMEOUT = float(os.environ.get("WS_CASE_TIMEOUT", "600"))


def run(url: str, echo: bool = True) -> str | None:
    """Run one connection to ``url``, echoing data messages; return the first text message."""
    first_text = None
    started = time.monotonic()
    websocket = WebSocket(url, compress=True)
    for event in websocket.connect(poll=1, ping_rate=0, close_timeout=10):
        if event.name == "text" and first_text is None:
            first_text = event.text
        if event.name == "poll" and time.monotonic() - started > CASE_TIMEOUT:
            print(f"abandoning {url} after {CASE_TIMEOUT:g}s", file=sys.stderr)
            break
        if not echo or event.name not in ("text", "binary"):
            continue
        try:
            if event.name == "text":
                websocket.send_text(event.text)
            else:
                websocket.send_binary(event.data)
        except (WebSocketUnavailable, TransportFail):
            # The server closed, or failed the connection, before the echo
            # went out; the iterator reports it next.
            pass
    return first_text


def main() -> None:
    # The fuzzingserver numbers the cases it was started with from 1.
    count = int(run(f"{FUZZ_URL}/getCaseCount", echo=False) or 0)
    for case in range(1, count + 1):
        run(f"{FUZZ_URL}/runCase?case={case}&agent={AGENT}")
    run(f"{FUZZ_URL}/updateReports?agent={AGENT}", echo=False)


if __name__ == "__main__":
    main()
