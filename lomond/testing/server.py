"""The scriptable WebSocket test server.

::

    from lomond.testing import Server, steps

    with Server([steps.accept(), steps.send_text("hi"), steps.drop()]) as server:
        ...  # connect a client to server.url
        transcript = server.next_connection()
        transcript.wait_closed()

The server runs in the calling process as gevent greenlets: a StreamServer
accepts, and each connection gets a script greenlet and a reader greenlet.
Nothing needs monkey-patching, and no OS thread is started.
"""

from __future__ import annotations

import logging
import socket
from typing import Any, Callable, Iterable, Mapping, Union

import gevent
import gevent.server
import gevent.socket

from .connection import Connection, ConnectionClosed
from .steps import ECHO, Step
from .tls import TLSFiles
from .transcript import Transcript
from .waits import Signal, WaitTimeout, default_timeout, scaled

__all__ = ["Server", "Script", "run_script"]

log = logging.getLogger(__name__)

#: A script: a list of steps, or a function that takes the Connection.
Script = Union[Iterable[Step], Callable[[Connection], Any]]

# Seconds stop() lets each open connection take to send its 1001 close frame.
CLOSE_ON_STOP_TIMEOUT = 0.2


def run_script(script: Script | None, conn: Connection) -> None:
    """Run ``script`` (None: the echo script) on ``conn``."""
    if script is None:
        script = ECHO
    if callable(script) and not isinstance(script, Step):
        script(conn)
        return
    if isinstance(script, Step):
        script(conn)
        return
    for step in script:
        step(conn)


#: Length of the listening socket's accept queue.
LISTEN_BACKLOG = 4096

class Server:
    """A WebSocket server on an ephemeral loopback port that runs a script per connection.

    ``script`` serves every path, unless ``routes`` maps the request path
    to its own script; a path with no script gets 404. The default is echo.
    Use it as a context manager, or call :meth:`start` and :meth:`stop`.

    ``tls`` serves wss:// with a certificate from a throwaway CA
    (:attr:`ca`, :meth:`client_ssl_context`, :attr:`ca_file`), and
    ``client_cert`` makes the server require a client certificate.
    """

    def __init__(
        self,
        script: Script | None = None,
        *,
        routes: Mapping[str, Script] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        ipv6: bool = False,
        tls: bool = False,
        client_cert: bool = False,
        request_timeout: float | None = None,
    ) -> None:
        if ipv6 and host == "127.0.0.1":
            host = "::1"
        self.host = host
        self.requested_port = port
        self.default_script: Script | None = script
        self.routes: dict[str, Script] = dict(routes or {})
        # With routes and no script, unknown paths get 404 instead of echo.
        self._has_default = script is not None or not routes
        self.request_timeout = request_timeout
        self.tls: TLSFiles | None = TLSFiles(client_cert) if (tls or client_cert) else None

        self.transcripts: list[Transcript] = []
        self.connections: set[Connection] = set()
        self.errors: list[str] = []
        self._greenlets: list[gevent.Greenlet] = []
        self._sockets: list[socket.socket] = []
        self._server: gevent.server.StreamServer | None = None
        self._signal = Signal()
        self._cursor = 0
        self._stopping = False

    # --- addresses ----------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the server listens on (known once started)."""
        if self._server is None:
            raise RuntimeError("the server is not started: call start() first")
        return int(self._server.address[1])

    @property
    def url(self) -> str:
        """The server's base URL, such as ``ws://127.0.0.1:PORT/``."""
        return self.url_for("/")

    def url_for(self, path: str) -> str:
        """Return the URL of ``path`` on this server."""
        scheme = "wss" if self.tls else "ws"
        host = f"[{self.host}]" if ":" in self.host else self.host
        if not path.startswith("/"):
            path = "/" + path
        return f"{scheme}://{host}:{self.port}{path}"

    def route(self, path: str, script: Script) -> None:
        """Serve ``script`` on ``path`` from now on."""
        self.routes[path] = script

    # --- TLS ----------------------------------------------------------------

    def _require_tls(self) -> TLSFiles:
        if self.tls is None:
            raise RuntimeError("this server does not use TLS: create it with Server(tls=True)")
        return self.tls

    @property
    def ca(self) -> Any:
        """The trustme.CA that signed the server certificate."""
        return self._require_tls().ca

    @property
    def ca_file(self) -> str:
        """Path of a PEM file with the CA certificate (removed by stop())."""
        return self._require_tls().ca_file

    def client_ssl_context(self, with_client_cert: bool | None = None) -> Any:
        """Build an ssl.SSLContext that trusts the server (see :meth:`TLSFiles.client_context`)."""
        return self._require_tls().client_context(with_client_cert)

    # --- life cycle ---------------------------------------------------------

    def start(self) -> Server:
        """Listen on the loopback port and start accepting connections."""
        if self._server is not None:
            raise RuntimeError("the server is already started")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = gevent.socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.requested_port))
        # A deep accept queue: load tests open thousands of connections at
        # once, and a full queue drops SYNs that the client retries only
        # after a second. The kernel caps it at net.core.somaxconn.
        listener.listen(LISTEN_BACKLOG)
        self._server = gevent.server.StreamServer(listener, self._handle)
        self._server.start()
        log.info("test server listening on %s", self.url)
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Close every connection and the listener; wait up to ``timeout`` for the greenlets."""
        if self._server is None or self._stopping:
            return
        self._stopping = True
        self._server.close()

        # Tell each open WebSocket the server is going away, then close it.
        for conn in list(self.connections):
            with gevent.Timeout(CLOSE_ON_STOP_TIMEOUT, False):
                conn.going_away()
            conn.close_socket(delay=False)
        gevent.killall([g for g in self._greenlets if not g.dead], timeout=default_timeout(timeout))
        if self.tls is not None:
            self.tls.cleanup()
        self._signal.notify()
        log.info("test server on port %s stopped", self.port)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def leaks(self) -> list[str]:
        """Return what stop() left behind: live greenlets and open sockets (empty when clean)."""
        found = []
        for greenlet in self._greenlets:
            if not greenlet.dead:
                found.append(f"greenlet still running: {greenlet!r}")
        for sock in self._sockets:
            if sock.fileno() != -1:
                found.append(f"socket still open: {sock!r}")
        if self._server is not None and not self._server.closed:
            found.append("listening socket still open")
        return found

    def raise_errors(self) -> None:
        """Raise AssertionError listing script errors and client protocol violations, if any."""
        if self.errors:
            raise AssertionError("test server recorded errors:\n" + "\n".join(self.errors))

    # --- waits for tests ----------------------------------------------------

    def next_connection(self, timeout: float | None = None) -> Transcript:
        """Return the transcript of the next connection not yet returned by this method."""
        timeout = default_timeout(timeout)

        def arrived() -> bool:
            return self._cursor < len(self.transcripts)

        self._signal.wait_for(arrived, timeout, f"a connection to {self.url}")
        transcript = self.transcripts[self._cursor]
        self._cursor += 1
        return transcript

    def wait_idle(self, timeout: float | None = None) -> None:
        """Return once no connection is open."""
        self._signal.wait_for(lambda: not self.connections, default_timeout(timeout), "every connection to close")

    # --- per connection -----------------------------------------------------

    def _script_for(self, path: str) -> tuple[bool, Script | None]:
        if path in self.routes:
            return True, self.routes[path]
        return self._has_default, self.default_script

    def _handle(self, sock: socket.socket, address: tuple) -> None:
        """Serve one connection (run by the StreamServer in its own greenlet)."""
        self._greenlets.append(gevent.getcurrent())
        self._sockets.append(sock)
        transcript = Transcript(number=len(self.transcripts) + 1, peer=address)
        self.transcripts.append(transcript)
        self._signal.notify()
        if self._stopping:
            sock.close()
            return
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        # TLS: the handshake runs here, in the connection's own greenlet.
        if self.tls is not None:
            try:
                sock = self._wrap_tls(sock)
            except (OSError, gevent.Timeout) as error:
                transcript.end_reason = f"TLS handshake failed: {error}"
                transcript.closed_at = transcript.opened_at
                transcript.notify()
                return

        conn = Connection(sock, address, transcript)
        self.connections.add(conn)
        try:
            self._serve(conn)
        finally:
            conn.close_socket(delay=False)
            if conn.reader is not None:
                conn.reader.kill(block=True, timeout=scaled(1))
            self.connections.discard(conn)
            if transcript.protocol_errors:
                self.errors.append(
                    f"connection #{transcript.number}: client broke the protocol: {transcript.protocol_errors}"
                )
            transcript.notify()
            self._signal.notify()

    def _wrap_tls(self, sock: socket.socket) -> socket.socket:
        assert self.tls is not None
        context = self.tls.server_context()
        tls_sock = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        self._sockets.append(tls_sock)
        try:
            with gevent.Timeout(default_timeout(self.request_timeout)):
                tls_sock.do_handshake()
        except BaseException:
            tls_sock.close()
            raise
        return tls_sock

    def _serve(self, conn: Connection) -> None:
        transcript = conn.transcript
        try:
            request = conn.read_request(self.request_timeout)
            reader = conn.start_reader()
            self._greenlets.append(reader)
            found, script = self._script_for(request.path)
            if not found:
                conn.reject(404, body=f"no script for path {request.path}\n")
            else:
                run_script(script, conn)

            # After the script: an accepted WebSocket stays open, replying to
            # pings and to the client's close, until one side ends it.
            if transcript.response_status == 101:
                conn.hold()
        except ConnectionClosed:
            pass
        except (AssertionError, WaitTimeout) as error:
            transcript.script_error = str(error)
            self.errors.append(f"connection #{transcript.number} script failed: {error}")
        except gevent.GreenletExit:
            transcript.end_reason = transcript.end_reason or "server stopped"
            raise
        except Exception as error:
            # The outermost guard of the connection greenlet: a bug in a
            # script or in the kit must fail the test, not vanish.
            log.exception("test server script crashed on connection #%s", transcript.number)
            transcript.script_error = f"{type(error).__name__}: {error}"
            self.errors.append(f"connection #{transcript.number} script crashed: {transcript.script_error}")
