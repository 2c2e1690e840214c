"""A Locust user class on lomond's gevent WebSocket client.

Install with ``pip install lomond[locust]``. Each simulated user has one
WebSocket, read by a greenlet of its own, while Locust runs the user's
tasks in the user's greenlet::

    from locust import constant, task
    from lomond.contrib.locust import WebSocketUser

    class EchoUser(WebSocketUser):
        path = "/"
        wait_time = constant(1)

        def reply_key(self, event):
            return event.text  # an echo server's reply equals the request

        @task
        def echo(self):
            self.request(f"hello from {id(self)}", key=f"hello from {id(self)}", name="echo")

Run it with ``locust -f FILE --host ws://server:port``. Every entry is
reported with the request type :attr:`WebSocketUser.request_type` ("WS"):

==========  ==============================================================
name        what one entry is
==========  ==============================================================
connect     connect time, from Connecting to Ready; a failure names the
            reason (refused, timeout, rejected with the HTTP status)
send        one message written by :meth:`~WebSocketUser.send`, timed to
            the end of the write
(yours)     one :meth:`~WebSocketUser.request`: the time from the send to
            the reply that :meth:`~WebSocketUser.reply_key` matched
push        a message from the server that matched no request (length only)
ping        the round trip of a ping sent every :attr:`ping_rate` seconds
session     from Ready to Disconnected; an abnormal close (no closing
            handshake, or a close code outside :attr:`normal_close_codes`)
            is a failure that names the code
==========  ==============================================================

All waits are cooperative and bounded, so a slow server delays only the
user that waits for it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable, Iterator
from typing import Any, ClassVar

import gevent
import gevent.event
from locust import User

from .. import events
from ..errors import TransportFail, UsageError, WebSocketUnavailable
from ..persist import persist
from ..websocket import WebSocket

__all__ = ["WebSocketUser", "WebSocketFailure"]

log = logging.getLogger(__name__)


class WebSocketFailure(Exception):
    """The failure reported to Locust for a connect, send, request or session; the message gives the reason."""


class WebSocketUser(User):
    """A Locust user with one WebSocket connection; subclass it and add tasks.

    Set :attr:`path` (joined to Locust's ``--host``) or a full :attr:`url`.
    The connection opens in :meth:`on_start` and closes in :meth:`on_stop`;
    a subclass that overrides either calls ``super()``.
    """

    abstract = True

    # --- where -------------------------------------------------------------------
    #: Full ws:// or wss:// URL; None joins :attr:`host` and :attr:`path`.
    url: ClassVar[str | None] = None
    #: Path (with any query) appended to ``host`` when :attr:`url` is None.
    path: ClassVar[str] = "/"
    #: Extra keyword arguments for :class:`~lomond.websocket.WebSocket`
    #: (headers, protocols, compress, ssl_verify, ...).
    websocket_options: ClassVar[dict[str, Any]] = {}

    # --- timeouts, in seconds ----------------------------------------------------
    #: Time allowed for TCP and TLS, and again for the opening handshake.
    connect_timeout: ClassVar[float] = 10.0
    #: Time a :meth:`request` waits for its reply.
    request_timeout: ClassVar[float] = 10.0
    #: Time to wait for the server's close frame after sending ours.
    close_timeout: ClassVar[float] = 5.0
    #: Seconds between pings whose round trips are reported as "ping" (0: off).
    ping_rate: ClassVar[float] = 0.0
    #: Drop the connection when a pong is this late (None: never).
    ping_timeout: ClassVar[float | None] = None

    # --- reconnecting --------------------------------------------------------------
    #: Reconnect after every disconnect, with the back-off of
    #: :func:`lomond.persist.persist`, until the user stops.
    reconnect: ClassVar[bool] = False
    #: Back-off bounds in seconds: the wait is ``reconnect_min_wait`` plus
    #: a random share of a window that doubles with each failed attempt, up
    #: to ``reconnect_max_wait``. (Locust's own ``min_wait`` and ``max_wait``
    #: are deprecated task waits in milliseconds, hence the longer names.)
    reconnect_min_wait: ClassVar[float] = 1.0
    reconnect_max_wait: ClassVar[float] = 10.0

    # --- reporting -------------------------------------------------------------------
    #: The request type of every entry in Locust's statistics.
    request_type: ClassVar[str] = "WS"
    #: Close codes that end a session successfully: 1000 (normal) and 1001
    #: (going away, which a server sends when it shuts down).
    normal_close_codes: ClassVar[frozenset[int]] = frozenset({1000, 1001})

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.websocket: WebSocket | None = None
        self._reader: gevent.Greenlet | None = None
        self._stopping = gevent.event.Event()
        self._ready = gevent.event.Event()
        self._pending: dict[Hashable, gevent.event.AsyncResult] = {}
        self._connect_started = 0.0
        self._session_started: float | None = None
        self._close_code: int | None = None
        self._close_reason = ""
        self._failure: str | None = None

    # --- hooks for subclasses ------------------------------------------------------------

    def reply_key(self, event: events.Text | events.Binary) -> Hashable | None:
        """Return the key of the request that ``event`` replies to, or None for a push.

        Override it to use :meth:`request`: for example return a JSON
        message's ``"id"``, or the text itself for an echo server. It is
        called in the reader greenlet, only while a request is waiting.
        """
        return None

    def on_message(self, event: events.Text | events.Binary) -> None:
        """Handle a message that matches no request (called in the reader greenlet)."""

    def push_name(self, event: events.Text | events.Binary) -> str:
        """Return the statistics entry name of a server push (default "push")."""
        return "push"

    def make_websocket(self) -> WebSocket:
        """Build the WebSocket; override to add headers that differ per user."""
        options = {
            "connect_timeout": self.connect_timeout,
            "handshake_timeout": self.connect_timeout,
            **self.websocket_options,
        }
        return WebSocket(self.target_url(), **options)

    def target_url(self) -> str:
        """Return :attr:`url`, or Locust's ``host`` joined with :attr:`path`."""
        if self.url:
            return self.url
        if not self.host:
            raise UsageError(
                f"{type(self).__name__} has no URL: set its url or host attribute, or pass --host"
            )
        path = self.path if self.path.startswith("/") else "/" + self.path
        return self.host.rstrip("/") + path

    # --- Locust's life cycle ---------------------------------------------------------------

    def on_start(self) -> None:
        """Connect, and wait (cooperatively) until the handshake succeeds or fails."""
        self.connect()

    def on_stop(self) -> None:
        """Close the WebSocket and wait, bounded by :attr:`close_timeout`, for the close."""
        self.disconnect()

    # --- for tasks ------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while messages may be sent."""
        return self.websocket is not None and self.websocket.is_active

    def connect(self, timeout: float | None = None) -> bool:
        """Start the connection unless it is running; return whether it is ready within ``timeout`` seconds.

        The wait ends early when the attempt fails and :attr:`reconnect` is
        off. The default timeout covers TCP, TLS and the handshake: twice
        :attr:`connect_timeout`.
        """
        if self._reader is None or self._reader.dead:
            self._stopping.clear()
            self.websocket = self.make_websocket()
            self._reader = gevent.spawn(self._read_events)
        wait = 2 * self.connect_timeout if timeout is None else timeout
        gevent.wait([self._ready, self._reader], timeout=wait, count=1)
        return self._ready.is_set()

    def close(self, code: int = 1000, reason: str = "goodbye") -> None:
        """Start the closing handshake; with :attr:`reconnect` on, a new connection follows.

        Does nothing when the WebSocket is not open. The session entry is
        reported when the close completes.
        """
        # From now on connect() waits for the next Ready.
        self._ready.clear()
        if self.websocket is not None:
            try:
                self.websocket.close(code, reason)
            except TransportFail:
                pass  # the reader gets the socket error and reports the session

    def disconnect(self) -> None:
        """Close the connection (code 1000), stop reconnecting, and end the reader greenlet.

        Waits at most :attr:`close_timeout` plus one second for the closing
        handshake, then kills the reader, which closes the socket.
        """
        self._stopping.set()
        reader = self._reader
        if reader is None:
            return
        self.close()
        reader.join(timeout=self.close_timeout + 1.0)
        if not reader.dead:
            reader.kill(timeout=self.close_timeout)

    def send(self, message: str | bytes, name: str = "send") -> bool:
        """Send a text (str) or binary (bytes) message; report it as ``name``; return True if sent."""
        size = len(message.encode("utf-8")) if isinstance(message, str) else len(message)
        started = time.perf_counter()
        try:
            self._send(message)
        except (TransportFail, WebSocketUnavailable) as error:
            self._fire(name, started, size, WebSocketFailure(f"send failed: {error}"))
            return False
        self._fire(name, started, size)
        return True

    def request(
        self,
        message: str | bytes,
        key: Hashable,
        name: str = "request",
        timeout: float | None = None,
    ) -> events.Text | events.Binary | None:
        """Send ``message`` and wait for the reply whose :meth:`reply_key` is ``key``.

        Reports one entry named ``name``: the time from the send to the
        reply, or a failure when the send fails, no reply comes within
        ``timeout`` (default :attr:`request_timeout`) seconds, or the
        connection ends first. Returns the reply event, or None on failure.
        """
        if type(self).reply_key is WebSocketUser.reply_key:
            raise UsageError(f"{type(self).__name__}.request() needs a reply_key() method that matches replies")
        if key in self._pending:
            raise UsageError(f"a request with key {key!r} is already waiting for its reply")
        result = gevent.event.AsyncResult()
        self._pending[key] = result
        started = time.perf_counter()
        wait = self.request_timeout if timeout is None else timeout
        try:
            self._send(message)
            reply = result.get(timeout=wait)
        except (TransportFail, WebSocketUnavailable) as error:
            self._fire(name, started, 0, WebSocketFailure(f"send failed: {error}"))
            return None
        except gevent.Timeout:
            self._fire(name, started, 0, WebSocketFailure(f"no reply within {wait:g} s"))
            return None
        except WebSocketFailure as error:
            self._fire(name, started, 0, error)
            return None
        finally:
            self._pending.pop(key, None)
        self._fire(name, started, _payload_size(reply))
        return reply  # type: ignore[no-any-return]

    # --- the reader greenlet ---------------------------------------------------------------------

    def _send(self, message: str | bytes) -> None:
        websocket = self.websocket
        if websocket is None:
            raise WebSocketUnavailable("the WebSocket is not connected")
        if isinstance(message, str):
            websocket.send_text(message)
        else:
            websocket.send_binary(message)

    def _event_stream(self) -> Iterator[events.Event]:
        assert self.websocket is not None
        if self.reconnect:
            return persist(
                self.websocket,
                poll=0,
                min_wait=self.reconnect_min_wait,
                max_wait=self.reconnect_max_wait,
                ping_rate=self.ping_rate,
                ping_timeout=self.ping_timeout,
                exit_event=self._stopping,
                close_timeout=self.close_timeout,
            )
        return self.websocket.connect(
            poll=0,
            ping_rate=self.ping_rate,
            ping_timeout=self.ping_timeout,
            close_timeout=self.close_timeout,
        )

    def _read_events(self) -> None:
        """Run the connection (and reconnections) and report its events (the reader greenlet)."""
        stream = self._event_stream()
        try:
            for event in stream:
                handler = getattr(self, "_on_" + event.name, None)
                if handler is not None:
                    handler(event)
        except Exception as error:
            # The outermost guard of the reader greenlet: a bug in a hook
            # such as reply_key is logged once and shown in Locust's
            # exceptions, and ends this user's connection only.
            log.exception("%s: the WebSocket reader failed", type(self).__name__)
            self.environment.events.user_error.fire(user_instance=self, exception=error, tb=error.__traceback__)
        finally:
            stream.close()  # type: ignore[attr-defined]
            if self._session_started is not None:
                self._end_session("the connection was ended before Disconnected", graceful=False)

    def _on_connecting(self, event: events.Connecting) -> None:
        self._connect_started = time.perf_counter()
        self._failure = None
        self._close_code = None
        self._close_reason = ""

    def _on_ready(self, event: events.Ready) -> None:
        self._fire("connect", self._connect_started, 0)
        self._session_started = time.perf_counter()
        if self._stopping.is_set():
            # disconnect() came during the handshake, when there was nothing
            # to close yet: close now rather than hold the connection until
            # the reader is killed.
            self.close()
            return
        self._ready.set()

    def _on_connect_fail(self, event: events.ConnectFail) -> None:
        self._fire("connect", self._connect_started, 0, WebSocketFailure(f"connect failed: {event.reason}"))

    def _on_rejected(self, event: events.Rejected) -> None:
        self._fire("connect", self._connect_started, 0, WebSocketFailure(f"rejected: {event.reason}"))

    def _on_text(self, event: events.Text) -> None:
        self._on_message(event)

    def _on_binary(self, event: events.Binary) -> None:
        self._on_message(event)

    def _on_message(self, event: events.Text | events.Binary) -> None:
        key = self.reply_key(event) if self._pending else None
        result = self._pending.get(key) if key is not None else None
        if result is not None and not result.ready():
            result.set(event)
            return
        self.environment.events.request.fire(
            request_type=self.request_type,
            name=self.push_name(event),
            response_time=0,
            response_length=_payload_size(event),
            exception=None,
            context=self.context(),
        )
        self.on_message(event)

    def _on_pong(self, event: events.Pong) -> None:
        if event.latency is not None:
            self.environment.events.request.fire(
                request_type=self.request_type,
                name="ping",
                response_time=event.latency * 1000.0,
                response_length=0,
                exception=None,
                context=self.context(),
            )

    def _on_closing(self, event: events.Closing) -> None:
        self._ready.clear()
        self._close_code, self._close_reason = event.code, event.reason

    def _on_closed(self, event: events.Closed) -> None:
        if self._close_code is None:
            self._close_code, self._close_reason = event.code, event.reason

    def _on_protocol_error(self, event: events.ProtocolError) -> None:
        self._failure = f"protocol error: {event.error}"

    def _on_unresponsive(self, event: events.Unresponsive) -> None:
        self._failure = "unresponsive: no pong within the ping timeout"

    def _on_disconnected(self, event: events.Disconnected) -> None:
        self._ready.clear()
        if self._session_started is not None:
            self._end_session(event.reason, event.graceful)

    def _end_session(self, reason: str, graceful: bool) -> None:
        """Report the session entry, and fail the requests still waiting for replies."""
        started, self._session_started = self._session_started, None
        code = self._close_code
        failure = None
        if self._failure is not None:
            failure = WebSocketFailure(self._failure)
        elif not graceful or code is None:
            failure = WebSocketFailure(f"abnormal close (1006): {reason}")
        elif code not in self.normal_close_codes:
            failure = WebSocketFailure(f"close code {code}: {self._close_reason or 'no reason'}")
        assert started is not None
        self._fire("session", started, 0, failure)

        gone = WebSocketFailure(f"the connection ended before the reply: {reason}")
        for result in self._pending.values():
            if not result.ready():
                result.set_exception(gone)

    def _fire(self, name: str, started: float, length: int, exception: Exception | None = None) -> None:
        self.environment.events.request.fire(
            request_type=self.request_type,
            name=name,
            response_time=(time.perf_counter() - started) * 1000.0,
            response_length=length,
            exception=exception,
            context=self.context(),
        )


def _payload_size(event: Any) -> int:
    """Return the size in bytes of a Text or Binary event's payload."""
    if isinstance(event, events.Text):
        return len(event.text.encode("utf-8"))
    return len(event.data)
