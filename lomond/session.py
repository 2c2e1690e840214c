"""Drive one WebSocket connection over a gevent socket.

The session owns the socket and the timers of one connection. It runs as a
generator in the greenlet that iterates the WebSocket: each turn of its
loop waits once for readability, with a timeout that is the earliest of the
next poll, the next automatic ping, the ping timeout, the close timeout and
the handshake timeout. No timer greenlet runs per connection, and an idle
connection wakes only for its own deadlines, on a 50 ms grid shared with
the other connections of the process.

A plain TCP or Unix socket is read and written through its descriptor,
and the loop waits on it with one read watcher and one timer per wait
(see _bind_reader). A TLS socket is read through the socket object.

Sends may come from any greenlet (and, through the hub, from other OS
threads); a lock serializes whole frames so that they never interleave.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import socket as _stdlib_socket
import time
from collections.abc import Generator, Iterator
from math import ceil
from typing import TYPE_CHECKING, Any

import gevent
import gevent.socket
from gevent.hub import Waiter
from gevent.lock import Semaphore
from gevent.monkey import get_original

from . import events
from .errors import (
    ConnectFail,
    HandshakeError,
    TransportFail,
    UsageError,
    WebSocketClosed,
    WebSocketUnavailable,
)
from .net import (
    REDIRECT_STATUSES,
    Transport,
    open_transport,
    resolve_redirect,
    same_host,
)
from .protocol.connection import ClientConnection, State
from .proxy import select_proxy

if TYPE_CHECKING:
    from .websocket import WebSocket

__all__ = ["WebSocketSession", "WebsocketSession"]

log = logging.getLogger(__name__)

# Bytes requested per read. Large reads let one wake-up parse many small
# frames. The buffer is freed after each read, so an idle connection
# keeps none.
READ_SIZE = 256 * 1024

# The share of the poll and ping intervals by which those timers may fire
# early, so that one wake-up serves both when they fall close together.
_EARLY = 0.01

# The grid that long waits end on (see coalesce_deadline).
_TIMER_GRID = 0.05
_GRID_MIN_WAIT = 1.0

# When the closing handshake is complete, RFC 6455 section 7.1.1 lets the
# server close TCP first; lomond waits at most this long for it.
_FINAL_EOF_WAIT = 2.0

def coalesce_deadline(deadline: float, now: float) -> float:
    """Return when a wait that should end at ``deadline`` ends.

    A wait of at least _GRID_MIN_WAIT seconds ends on the next multiple of
    _TIMER_GRID on the monotonic clock, up to 50 ms late. Idle connections
    whose timers fall close together then wake in one turn of the hub,
    which costs one system call and one context switch for all of them.
    Shorter waits end on time.
    """
    if deadline - now < _GRID_MIN_WAIT:
        return deadline
    return ceil(deadline / _TIMER_GRID) * _TIMER_GRID


class _WriteStalled(Exception):
    """Raised inside _sendall() when the socket took no byte for the ping timeout."""


# A send handed over from another OS thread gives up after this long.
_THREAD_SEND_TIMEOUT = 60.0

# The real thread id and lock, even when threading is monkey-patched (then
# threading.get_ident returns greenlet ids and locks block only greenlets).
_get_thread_id = get_original("_thread", "get_ident")
_allocate_thread_lock = get_original("_thread", "allocate_lock")


# The attribute that marks an exception thrown into the session's greenlet
# during a wait, so that the outermost guard passes it on to the caller.
_EXTERNAL = "_lomond_thrown_in_wait"


def _mark_external(error: BaseException) -> None:
    try:
        setattr(error, _EXTERNAL, True)
    except AttributeError:  # exception types with __slots__ and no __dict__
        pass


class WebSocketSession:
    """The I/O of one connection attempt of a :class:`~lomond.websocket.WebSocket`."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.connection: ClientConnection | None = None
        self.transport: Transport | None = None
        self._sock: Any = None
        self._write_lock = Semaphore()
        self._start_time = time.monotonic()
        self._close_time: float | None = None
        # Set by run(): bounds a write that makes no progress (None: no bound).
        self._ping_timeout: float | None = None
        # Why _sendall() dropped the connection, for the Disconnected event.
        self._drop_reason: str | None = None
        self._ping_time: float | None = None
        # Set by run(): how long close() may wait for the write lock.
        self._close_timeout: float | None = None
        # True once close() gave up on a connection still in its handshake.
        self._aborted = False
        # True once the stream yielded its Disconnected event.
        self._ended = False
        self._thread_id = _get_thread_id()
        self._hub = gevent.get_hub()
        # The descriptor that the loop reads directly, or -1 when reads go
        # through the socket object (TLS); see _bind_reader().
        self._fd = -1
        # The read watcher and waiter of the loop's waits on that descriptor.
        self._read_io: Any = None
        self._waiter: Waiter | None = None

    def __repr__(self) -> str:
        return f"<WebSocketSession {self.websocket.safe_url}>"

    @property
    def session_time(self) -> float:
        """Seconds since the session started."""
        return time.monotonic() - self._start_time

    # --- sending -----------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Write bytes to the socket, whole, under the write lock.

        Raises :class:`~lomond.errors.TransportFail` when the socket fails
        and :class:`~lomond.errors.WebSocketClosed` when it is gone.
        """
        if not data:
            return
        sock = self._sock
        if sock is None:
            raise WebSocketClosed("the WebSocket is not connected")
        with self._write_lock:
            self._sendall(sock, data)

    def _sendall(self, sock: Any, data: bytes) -> None:
        """Write all of ``data``; call with the write lock held.

        Without a ping timeout, a full socket buffer blocks the caller until
        the server reads (back-pressure). With one, a write that cannot pass
        a single byte to the socket for that long drops the connection,
        because the frame is then cut short on the wire.
        """
        stall_timeout = self._ping_timeout
        try:
            fd = self._fd
            if fd >= 0:
                # Most frames fit in the socket buffer: one write, without
                # the socket object's bookkeeping. What does not fit goes
                # through the socket below, which waits for the buffer.
                try:
                    sent = os.write(fd, data)
                except BlockingIOError:
                    sent = 0
                if sent == len(data):
                    return
                data = memoryview(data)[sent:]
            if not stall_timeout:
                sock.sendall(data)
                return
            view = memoryview(data)
            while view:
                with gevent.Timeout(stall_timeout, _WriteStalled):
                    sent = sock.send(view)
                view = view[sent:]
        except _WriteStalled:
            self._drop(
                f"send timed out: the server read nothing for {stall_timeout:g}s (ping_timeout)"
            )
            raise TransportFail(self._drop_reason) from None
        except OSError as error:
            raise TransportFail(f"send failed ({error})") from None
        except BaseException as error:
            # An exception thrown in while the write waited (gevent.Timeout,
            # kill) can leave part of a frame on the wire, and the server
            # would then read the next frame as its payload: drop the
            # connection.
            _mark_external(error)
            self._drop(
                f"send interrupted by {type(error).__name__}: part of a frame may be on the wire"
            )
            raise

    def send(self, build: Any, *args: Any, lock_timeout: float | None = None) -> None:
        """Build a frame with ``build(*args)`` and write it, both under the write lock.

        Building under the lock keeps compressed frames in the order of the
        compressor's context (RFC 7692 context takeover). With
        ``lock_timeout``, a lock held that long by a stalled write drops the
        connection and raises :class:`~lomond.errors.TransportFail`.
        """
        sock = self._sock
        if sock is None or self.connection is None:
            # Checked before any hand-over too: once the session has ended,
            # the iterating thread may no longer run the hub that would
            # have to run a send from another thread.
            raise WebSocketUnavailable("the WebSocket is not connected")
        if _get_thread_id() != self._thread_id:
            self._send_from_thread(build, *args)
            return
        if lock_timeout and not self._write_lock.acquire(timeout=lock_timeout):
            self._drop(f"send timed out: another write stalled for {lock_timeout:g}s")
            raise TransportFail(self._drop_reason)
        if not lock_timeout:
            self._write_lock.acquire()
        try:
            data = build(*args)
            if data:
                self._sendall(sock, data)
        finally:
            self._write_lock.release()

    def _send_from_thread(self, build: Any, *args: Any) -> None:
        """Hand a send from another OS thread to this connection's hub and wait for it."""
        done = _allocate_thread_lock()
        done.acquire()
        outcome: list[BaseException | None] = [None]

        def run() -> None:
            try:
                self.send(build, *args)
            except BaseException as error:  # handed back to the calling thread
                outcome[0] = error
            finally:
                done.release()

        # The callback runs in this connection's hub, which owns the socket.
        self._hub.loop.run_callback_threadsafe(gevent.spawn, run)
        if not done.acquire(timeout=_THREAD_SEND_TIMEOUT):
            raise TransportFail(
                f"send from another thread timed out after {_THREAD_SEND_TIMEOUT:g}s"
            )
        if outcome[0] is not None:
            raise outcome[0]

    def close(self) -> None:
        """Close the socket now (the closing handshake is the WebSocket's job)."""
        sock, self._sock = self._sock, None
        self._fd = -1
        io, waiter = self._read_io, self._waiter
        if io is not None and waiter is not None:
            # The socket's close() does not know the loop's own watcher, so
            # stop it before the descriptor goes. A loop waiting on it wakes
            # with the error of a socket closed by another greenlet.
            self._read_io = self._waiter = None
            if io.active:
                io.stop()
                closed = OSError(errno.EBADF, "the socket was closed while the loop waited on it")
                self._hub.loop.run_callback(waiter.throw, closed)
            io.close()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    force_disconnect = close

    def abort(self, reason: str) -> None:
        """End a connection that has no WebSocket yet (still connecting or in its handshake)."""
        self._aborted = True
        self._drop(reason)

    def _drop(self, reason: str) -> None:
        """Close the socket now, keeping ``reason`` for the Disconnected event, and log it."""
        self._drop_reason = reason
        log.info("%s: %s", self.websocket.safe_url, reason)
        self.close()

    # --- the event loop ------------------------------------------------------

    def run(
        self,
        poll: float = 5.0,
        ping_rate: float = 30.0,
        ping_timeout: float | None = None,
        auto_pong: bool = True,
        close_timeout: float | None = 30.0,
    ) -> Iterator[events.Event]:
        """Connect, then yield events until the connection ends with Disconnected."""
        websocket = self.websocket
        wall = time.time
        self._ended = False
        # The loop runs in the thread that iterates, which need not be the
        # one that called connect(): its watchers belong to that thread's hub.
        self._thread_id = _get_thread_id()
        self._hub = gevent.get_hub()
        yield events.Connecting(websocket.safe_url, wall())
        try:
            monotonic = time.monotonic
            read = os.read
            self._disconnect_reason = "closed"
            self._ping_timeout = ping_timeout
            self._close_timeout = close_timeout

            # 1. TCP, proxy and TLS.
            yield from self._connect()
            if self._sock is None:
                self._ended = True
                yield events.Disconnected(self._disconnect_reason, False, wall())
                return

            # 2. The opening handshake.
            try:
                connection = websocket._new_connection(auto_pong)
            except UsageError as error:
                # The headers callable returned something that cannot be sent.
                reason = f"invalid handshake headers ({error})"
                log.warning("%s: %s", websocket.safe_url, reason)
                self.close()
                yield events.ConnectFail(reason, wall())
                self._ended = True
                yield events.Disconnected(reason, False, wall())
                return
            self.connection = connection
            sock = self._sock
            self._bind_reader(sock)
            try:
                self.write(connection.request())
            except (TransportFail, WebSocketUnavailable) as error:
                self._ended = True
                yield events.Disconnected(f"handshake request failed ({error})", False, wall())
                return
            pending = self.transport.leftover if self.transport else b""

            handshake_deadline = monotonic() + websocket.handshake_timeout
            next_poll = monotonic() + poll if poll else None
            next_ping = None
            graceful = False
            reason = "closed"
            read_first = False

            # 3. One loop for the handshake and the connection: wait once, with
            # the earliest deadline, then feed what arrived to the protocol.
            while True:
                now = monotonic()
                if pending or connection.failure_pending:
                    # A pending failure is reported by feeding no bytes, after
                    # the events before it were handled.
                    data, pending = pending, b""
                else:
                    # 3a. Deadlines.
                    if connection.state is State.CONNECTING:
                        if now >= handshake_deadline:
                            reason = (
                                "handshake timed out: no answer after"
                                f" {websocket.handshake_timeout:g}s"
                            )
                            log.info("%s: %s", websocket.safe_url, reason)
                            yield events.ConnectFail(reason, wall())
                            break
                        deadline = handshake_deadline
                    else:
                        if next_ping is None and ping_rate:
                            next_ping = now + ping_rate
                        # A timer due within 1% of its interval is handled now,
                        # so that a ping due just after a poll shares its wake-up.
                        if next_poll is not None and now >= next_poll - poll * _EARLY:
                            # A steady cadence: a late wake-up does not push
                            # the next poll back, unless a whole interval passed.
                            next_poll += poll
                            if next_poll <= now:
                                next_poll = now + poll
                            yield events.Poll(wall())
                            now = monotonic()
                        if next_ping is not None and now >= next_ping - ping_rate * _EARLY:
                            # The same steady cadence as polls. A ping due
                            # while closing is skipped, and so is one while
                            # a send blocked on a full socket holds the write
                            # lock: waiting for it here would stop the loop
                            # (the stalled write has its own bound when
                            # ping_timeout is set).
                            next_ping += ping_rate
                            if next_ping <= now:
                                next_ping = now + ping_rate
                            if connection.state is State.OPEN and not self._write_lock.locked():
                                if self._ping_time is None:
                                    self._ping_time = now
                                try:
                                    self.send(connection.send_ping, b"", wall())
                                except (TransportFail, WebSocketUnavailable) as error:
                                    reason = str(error)
                                    break
                        if (
                            ping_timeout
                            and self._ping_time is not None
                            and now - self._ping_time >= ping_timeout
                        ):
                            # A loaded hub can wake this loop late: bytes that
                            # arrived meanwhile (perhaps the pong) count first.
                            late = self._read_waiting()
                            if late:
                                pending = late
                                continue
                            reason = f"unresponsive: no pong within {ping_timeout:g}s"
                            log.info("%s: %s", websocket.safe_url, reason)
                            yield events.Unresponsive(wall())
                            break
                        if connection.state is State.CLOSING and self._close_time is None:
                            self._close_time = now
                        if close_timeout and self._close_time is not None:
                            if now - self._close_time >= close_timeout:
                                late = self._read_waiting()
                                if late:
                                    pending = late
                                    continue
                                reason = f"close timed out: no close frame within {close_timeout:g}s"
                                log.info("%s: %s", websocket.safe_url, reason)
                                break
                        # A close() from another greenlet cannot shorten a wait
                        # already started, so no wait is longer than the close
                        # timeout.
                        deadline = now + (close_timeout or 3600.0)
                        if next_poll is not None and next_poll < deadline:
                            deadline = next_poll
                        if next_ping is not None and next_ping < deadline:
                            deadline = next_ping
                        if ping_timeout and self._ping_time is not None:
                            deadline = min(deadline, self._ping_time + ping_timeout)
                        if close_timeout and self._close_time is not None:
                            deadline = min(deadline, self._close_time + close_timeout)
                        deadline = coalesce_deadline(deadline, now)

                    # 3b. Wait for data or the deadline.
                    if self._sock is None:
                        reason = self._drop_reason or "socket closed"
                        break
                    data = None
                    try:
                        fd = self._fd
                        if fd >= 0:
                            # After a full read more bytes are likely waiting: try
                            # to read before waiting. Otherwise wait first, which
                            # saves a failed read per message and per idle wake-up.
                            size = connection.read_size(READ_SIZE)
                            timeout = deadline - monotonic()
                            if read_first or timeout <= 0:
                                # A wait with no time left only reads what
                                # has arrived: its timer would fire before
                                # the read watcher.
                                try:
                                    data = read(fd, size)
                                except BlockingIOError:
                                    pass
                            if data is None and timeout > 0 and self._wait_readable(timeout):
                                data = read(fd, size)
                            read_first = data is not None and len(data) == size
                        else:
                            # A greenlet-local timeout, not a socket timeout: the
                            # socket's timeout would also bound sendall() in other
                            # greenlets and could cut a frame off halfway.
                            with gevent.Timeout(max(deadline - monotonic(), 0.0), False):
                                data = sock.recv(READ_SIZE)
                    except BlockingIOError:
                        # Readable, yet nothing to read: wait again.
                        data = None
                    except OSError as error:
                        reason = self._drop_reason or f"socket error ({error})"
                        log.info("%s: %s", websocket.safe_url, reason)
                        if connection.state is State.CONNECTING and not self._aborted:
                            # The same failure as an EOF here: no WebSocket yet.
                            yield events.ConnectFail(reason, wall())
                        break
                    except BaseException as error:
                        _mark_external(error)
                        raise
                    if data is None:
                        continue
                    if not data:
                        during_handshake = connection.state is State.CONNECTING
                        connection.receive_eof()
                        if connection.close_received is not None:
                            graceful = True
                            reason = "closed"
                        elif during_handshake:
                            reason = "the server closed the connection during the handshake"
                            yield events.ConnectFail(reason, wall())
                        else:
                            reason = "the server closed the connection without a close frame"
                        break

                # 3c. Feed the protocol and write the frames it queued (pongs, close frames).
                received = connection.receive(data, wall())
                if connection.should_drop and connection.response is not None:
                    # A rejected handshake, perhaps a redirect to follow.
                    hop = yield from self._follow_redirect(connection, received, auto_pong)
                    if isinstance(hop, str):
                        reason = hop
                        break
                    if hop is not None:
                        connection, pending = hop
                        sock = self._sock
                        self._bind_reader(sock)
                        handshake_deadline = monotonic() + websocket.handshake_timeout
                        continue
                reply = connection.data_to_send()
                if reply:
                    try:
                        self.write(reply)
                    except (TransportFail, WebSocketUnavailable):
                        pass
                for event in received:
                    if event.name == "pong":
                        self._ping_time = None
                        if event.latency is not None:  # type: ignore[attr-defined]
                            websocket.latency = event.latency  # type: ignore[attr-defined]
                    yield event
                # Drop the last chunk and events before the next wait, so that an
                # idle connection keeps neither.
                received = event = data = None  # type: ignore[assignment]
                if connection.should_drop:
                    reason = connection.failure or "connection failed"
                    break
                if connection.state is State.CLOSED and connection.close_received is not None:
                    # Both close frames exchanged: wait briefly for the server
                    # to close TCP (section 7.1.1), then close it ourselves.
                    graceful = True
                    reason = "closed"
                    self._wait_for_eof(min(close_timeout or _FINAL_EOF_WAIT, _FINAL_EOF_WAIT))
                    break

            self.close()
            log.info("disconnected from %s: %s", websocket.safe_url, reason)
            websocket._emit_trace("disconnected", reason=reason, graceful=graceful)
            self._ended = True
            yield events.Disconnected(reason, graceful, wall())
        except Exception as error:
            # The outermost guard. An exception thrown into this greenlet
            # while it waited (gevent.Timeout with an exception, kill()) and
            # a UsageError from the user's own callables belong to the
            # caller: they propagate unchanged. Anything else is a bug in
            # lomond: log it once, and still end the stream with Disconnected.
            if getattr(error, _EXTERNAL, False) or isinstance(error, UsageError):
                raise
            log.exception("lomond bug: the event loop of %s failed", websocket.safe_url)
            if not self._ended:
                self._ended = True
                yield events.Disconnected(f"internal error in lomond ({error!r})", False, wall())
        finally:
            self.close()
            websocket._on_session_end(self)


    def _connect(self) -> Iterator[events.Event]:
        """Open TCP, proxy and TLS; on failure set the reason and leave ``_sock`` unset."""
        websocket = self.websocket
        websocket._emit_trace("connect_start")
        proxy = select_proxy(websocket.parsed_url, websocket.proxies)
        try:
            transport = open_transport(
                websocket.parsed_url, websocket.tls, websocket.connect_timeout, proxy=proxy
            )
        except ConnectFail as error:
            if self._drop_reason is not None:
                # close() was called while connecting: that is the reason.
                self._disconnect_reason = self._drop_reason
                return
            log.info("connect to %s failed: %s", websocket.safe_url, error)
            websocket._emit_trace("connect_fail", reason=str(error))
            self._disconnect_reason = str(error)
            yield events.ConnectFail(str(error), time.time())
            return
        except BaseException as error:
            _mark_external(error)
            raise

        self.transport = transport
        if self._drop_reason is not None:
            # close() was called while connecting: give this connection up.
            transport.sock.close()
            self._disconnect_reason = self._drop_reason
            return
        self._sock = transport.sock
        # Writes block until done, which is the back-pressure on senders;
        # the loop bounds its own reads (see the wait in run()).
        self._sock.settimeout(None)
        log.info("connected to %s", websocket.safe_url)
        websocket._emit_trace("connected", proxy=transport.proxy)
        yield events.Connected(websocket.safe_url, transport.proxy, time.time())

    def _follow_redirect(
        self, connection: ClientConnection, received: list[events.Event], auto_pong: bool
    ) -> Generator[events.Event, None, tuple[ClientConnection, bytes] | str | None]:
        """Connect to the Location of a redirect response to the handshake.

        Returns None when the response is not a redirect to follow (then its
        Rejected event goes out as usual, with the reason for not following
        it when there is one), a reason string after a failed hop (a
        ConnectFail event was yielded), or the new connection and the bytes
        already read for it. Credentials (URL user-info, Authorization and
        Cookie headers) go to the new URL only on the WebSocket's own host,
        so a later hop cannot pick them up again after leaving it.
        """
        websocket = self.websocket
        response = connection.response
        if not connection.should_drop or response is None:
            return None
        location = response.get("location")
        if response.status_code not in REDIRECT_STATUSES or not location:
            return None
        rejected = next((event for event in received if isinstance(event, events.Rejected)), None)
        hops = self.transport.hops if self.transport is not None else []

        # 1. The rules: the limit, and where Location may lead.
        current = connection.handshake.url
        rejection: str | None = None
        try:
            target = resolve_redirect(current, location)
        except HandshakeError as error:
            rejection = str(error)
        else:
            if len(hops) >= websocket.max_redirects:
                rejection = (
                    f"redirect to {target.safe_url} not followed: max_redirects is"
                    f" {websocket.max_redirects}"
                )
        if rejection is not None:
            connection.failure = rejection
            if rejected is not None:
                rejected.reason = rejection
            return None

        # 2. Close this connection and open one to the new URL.
        self.close()
        other_host = not same_host(websocket.parsed_url, target)
        tls = websocket.tls
        if other_host and tls.server_hostname is not None:
            tls = dataclasses.replace(tls, server_hostname=None)
        log.info(
            "%s redirects (%s) to %s", current.safe_url, response.status_code, target.safe_url
        )
        websocket._emit_trace(
            "redirect", status=response.status_code, location=target.safe_url, hop=len(hops) + 1
        )
        try:
            transport = open_transport(
                target,
                tls,
                websocket.connect_timeout,
                proxy=select_proxy(target, websocket.proxies),
            )
        except ConnectFail as error:
            log.info("connect to %s failed: %s", target.safe_url, error)
            websocket._emit_trace("connect_fail", reason=str(error))
            yield events.ConnectFail(str(error), time.time())
            return str(error)
        transport.hops = [*hops, current.safe_url]
        self.transport = transport
        self._sock = transport.sock
        # As in _connect: writes block until done, and the loop bounds its reads.
        self._sock.settimeout(None)

        # 3. The handshake request on the new connection.
        connection = websocket._new_connection(auto_pong, url=target, other_host=other_host)
        self.connection = connection
        try:
            self.write(connection.request())
        except (TransportFail, WebSocketUnavailable) as error:
            return f"handshake request failed ({error})"
        return connection, transport.leftover

    def _bind_reader(self, sock: Any) -> None:
        """Choose how the loop reads ``sock``.

        A plain gevent socket (TCP or Unix) is non-blocking underneath, so
        the loop reads its descriptor with os.read() and waits with one
        read watcher and one timer. A timed-out wait then raises no
        exception, and an idle wake-up costs a few microseconds. TLS
        sockets (and other platforms) read through the socket object under
        a gevent.Timeout, because readable bytes on the descriptor need
        not make a whole TLS record.
        """
        self._fd = -1
        self._read_io = self._waiter = None
        if os.name != "posix" or type(sock) is not gevent.socket.socket:
            return
        fd = sock.fileno()
        if fd >= 0 and not os.get_blocking(fd):
            self._fd = fd
            self._read_io = self._hub.loop.io(fd, 1)
            self._waiter = Waiter(self._hub)

    def _wait_readable(self, timeout: float) -> bool:
        """Wait until the descriptor is readable (True) or ``timeout`` seconds pass (False).

        close() from another greenlet ends the wait with an OSError.
        """
        io, waiter = self._read_io, self._waiter
        timer = self._hub.loop.timer(timeout)
        try:
            io.start(waiter.switch, True)
            timer.start(waiter.switch, False, update=True)
            return waiter.get()  # type: ignore[no-any-return]
        finally:
            io.stop()
            timer.stop()

    def _read_waiting(self) -> bytes | None:
        """Return bytes that already arrived, without waiting; None when there are none (or at EOF)."""
        sock = self._sock
        if sock is None:
            return None
        if self._fd >= 0:
            try:
                return os.read(self._fd, READ_SIZE) or None
            except OSError:  # BlockingIOError included: nothing has arrived
                return None
        data = None
        try:
            with gevent.Timeout(0.0, False):
                data = sock.recv(READ_SIZE)
        except OSError:
            return None
        return data or None

    def _wait_for_eof(self, timeout: float) -> None:
        """Read and discard until the server closes TCP, for at most ``timeout`` seconds."""
        sock = self._sock
        if sock is None:
            return
        deadline = time.monotonic() + timeout
        for _ in range(64):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            sock.settimeout(remaining)
            try:
                if not sock.recv(4096):
                    return
            except (OSError, _stdlib_socket.timeout):
                return
            except BaseException as error:
                _mark_external(error)
                raise



# lomond 0.3 spelled it WebsocketSession (and passed it to connect() as
# session_class).
WebsocketSession = WebSocketSession
