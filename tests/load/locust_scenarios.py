"""Drive WebSocketUser through failure cases without Locust's runner; print the recorded entries.

Run as a script (``python locust_scenarios.py``), never imported by pytest:
importing locust monkey-patches the whole process. Each scenario is
labelled through the user's ``context()``, and the last line of output is
a JSON list of the request events that Locust would have counted.
"""

import json
import socket
import sys
import time

import gevent
import locust  # noqa: F401  (the import monkey-patches this process, as Locust itself does)
from locust.env import Environment

from lomond.contrib.locust import WebSocketUser
from lomond.errors import UsageError
from lomond.testing import Server, steps
from lomond.testing.steps import ECHO
from lomond.testing.waits import scaled

records = []


def record(request_type, name, response_time, response_length, exception=None, context=None, **_):
    records.append({
        "label": (context or {}).get("label"),
        "type": request_type,
        "name": name,
        "ms": response_time,
        "length": response_length,
        "error": None if exception is None else str(exception),
    })


def entries(label, name=None):
    return [r for r in records if r["label"] == label and (name is None or r["name"] == name)]


def wait_until(predicate, timeout=None):
    deadline = time.monotonic() + (scaled(5) if timeout is None else timeout)
    while not predicate() and time.monotonic() < deadline:
        gevent.sleep(0.01)


def make_user(environment, label, url, **attributes):
    """Return a user of a new WebSocketUser subclass whose entries carry ``label``."""

    def context(self):
        return {"label": label}

    def reply_key(self, event):
        return event.text

    namespace = {"url": url, "abstract": False, "context": context, "reply_key": reply_key, **attributes}
    return type(f"User_{label}", (WebSocketUser,), namespace)(environment)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main():
    environment = Environment()
    environment.events.request.add_listener(record)
    routes = {
        "/echo": ECHO,
        "/reject": [steps.reject(503, body="busy")],
        "/drop": [steps.accept(), steps.delay(0.2), steps.drop()],
        "/close-1011": [steps.accept(), steps.delay(0.2), steps.close(1011, "server bug")],
        "/silent": [steps.accept(), steps.hold()],
        "/slow-accept": [steps.delay(0.5), steps.accept(), steps.hold()],
    }
    with Server(routes=routes) as server:
        # 1. Connect failures: a refused port, a rejected handshake.
        refused = make_user(environment, "refused", f"ws://127.0.0.1:{free_port()}/", connect_timeout=2.0)
        refused.on_start()
        rejected = make_user(environment, "rejected", server.url_for("/reject"))
        rejected.on_start()

        # 2. Abnormal ends: a dropped TCP connection, close code 1011.
        dropped = make_user(environment, "dropped", server.url_for("/drop"))
        dropped.on_start()
        closed_1011 = make_user(environment, "close-1011", server.url_for("/close-1011"))
        closed_1011.on_start()
        wait_until(lambda: entries("dropped", "session") and entries("close-1011", "session"))

        # 3. A request that times out does not block another user.
        silent = make_user(environment, "silent", server.url_for("/silent"), request_timeout=1.0)
        silent.on_start()
        echo = make_user(environment, "echo", server.url_for("/echo"))
        echo.on_start()
        waiting = gevent.spawn(silent.request, "anyone there?", key="anyone there?", name="ask")
        replies = 0
        for number in range(10_000):  # bounded; the silent request ends after 1 s
            if waiting.dead:
                break
            if echo.request(f"echo {number}", key=f"echo {number}", name="echo") is not None:
                replies += 1
            gevent.sleep(0.01)
        echo.send("unmatched", name="send")
        wait_until(lambda: entries("echo", "push"))
        echo.on_stop()
        silent.on_stop()

        # 4. The push hooks: push_name names the entry, and on_message gets the event.
        handled = []
        hooked = make_user(
            environment, "hooked", server.url_for("/echo"),
            push_name=lambda self, event: f"pushed {event.text}",
            on_message=lambda self, event: handled.append(event.text),
        )
        hooked.on_start()
        hooked.send("news", name="send")
        wait_until(lambda: handled)
        hooked.on_stop()
        print(f"on_message received {handled}")

        # 5. request() without reply_key is a usage error.
        plain = type("Plain", (WebSocketUser,), {"url": server.url_for("/echo"), "abstract": False})(environment)
        plain.on_start()
        try:
            plain.request("x", key="x")
        except UsageError as error:
            print(f"usage error: {error}")
        plain.on_stop()

        # 6. Reconnecting with back-off after drops, until the user stops.
        persistent = make_user(
            environment, "persistent", server.url_for("/drop"), reconnect=True, reconnect_min_wait=0.05, reconnect_max_wait=0.1
        )
        persistent.on_start()
        wait_until(lambda: len(entries("persistent", "connect")) >= 3)
        persistent.on_stop()

        # 7. Stopped during the handshake: the connection closes at Ready.
        slow = make_user(environment, "slow", server.url_for("/slow-accept"), reconnect=True)
        slow.connect(timeout=0.1)
        stop_started = time.monotonic()
        slow.on_stop()
        print(f"stop during handshake took {time.monotonic() - stop_started:.2f} s")

        for user in (refused, rejected, dropped, closed_1011):
            user.on_stop()
        server.errors.clear()
    print(json.dumps(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
