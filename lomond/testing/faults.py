"""Named fault scripts, for ``python -m lomond serve --fault NAME`` and for reuse.

Each entry maps a name to a one-line description and a script. They cover
the classic faults; tests that need other variants write their own list of
steps.
"""

from __future__ import annotations

from typing import NamedTuple

from . import steps
from .server import Script

__all__ = ["Fault", "FAULTS"]


class Fault(NamedTuple):
    """A named script and what it does."""

    description: str
    script: Script


FAULTS: dict[str, Fault] = {
    "echo": Fault("accept and echo every message", steps.ECHO),
    "echo-deflate": Fault(
        "accept with permessage-deflate when offered, then echo",
        [steps.accept(extensions=["permessage-deflate"]), steps.echo()],
    ),
    "reject-503": Fault(
        "answer 503 with Retry-After: 1",
        [steps.reject(503, headers=[("Retry-After", "1")], body="try again later\n")],
    ),
    "reject-401": Fault("answer 401 Unauthorized", [steps.reject(401)]),
    "redirect": Fault("redirect (302) to /echo on the same server", [steps.redirect("/echo")]),
    "never-answer": Fault("read the request and never answer", [steps.never_answer()]),
    "garbage": Fault("answer with bytes that are not HTTP", [steps.send_garbage()]),
    "bad-accept-key": Fault("answer 101 with a wrong Sec-WebSocket-Accept", [steps.accept_wrong_key()]),
    "hello-drop": Fault("send 'hello', then close TCP without a close frame", [
        steps.accept(), steps.send_text("hello"), steps.drop(),
    ]),
    "drop-mid-frame": Fault("close TCP in the middle of a frame", [steps.accept(), steps.drop_mid_frame()]),
    "reset": Fault("accept, then reset the TCP connection", [steps.accept(), steps.reset()]),
    "stall": Fault("accept, then stop reading and writing", [steps.accept(), steps.stall()]),
    "slicer": Fault("echo with every write cut into 1-byte segments", [
        steps.accept(), steps.slicer(1, 0.001), steps.echo(),
    ]),
    "no-pong": Fault("accept and never answer pings", [steps.accept(), steps.no_pong(), steps.hold()]),
    "invalid-utf8": Fault("send a text message that is not UTF-8", [steps.accept(), steps.invalid_utf8(), steps.hold()]),
    "reserved-opcode": Fault("send a frame with opcode 0x3", [steps.accept(), steps.reserved_opcode(), steps.hold()]),
    "masked-frame": Fault("send a masked frame", [steps.accept(), steps.masked_frame(), steps.hold()]),
    "bad-close-code": Fault("close with code 1005, which is never valid on the wire", [
        steps.accept(), steps.close(1005),
    ]),
    "ignore-close": Fault("echo, but never answer the client's close frame", [
        steps.accept(), steps.ignore_close(), steps.echo(), steps.never_answer(),
    ]),
}
