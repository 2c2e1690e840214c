"""The public WebSocket object."""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import platform
import ssl
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from . import __version__, events
from .errors import TransportFail, UsageError, WebSocketUnavailable
from .net import TLSOptions
from .protocol.connection import MAX_FRAME_SIZE, MAX_MESSAGE_SIZE, ClientConnection, State
from .protocol.frames import Opcode, build_close_payload
from .protocol.handshake import Handshake, check_header
from .protocol.response import MAX_HEADER_SIZE
from .protocol.url import WebSocketURL, parse_url
from .session import WebSocketSession
from .status import Status

if TYPE_CHECKING:
    from .protocol.deflate import DeflateOptions

__all__ = ["WebSocket", "USER_AGENT"]

log = logging.getLogger(__name__)

#: The default User-Agent header.
USER_AGENT = (
    f"Lomond/{__version__} {platform.python_implementation()}/{platform.python_version()}"
)

# Header names whose values are credentials: a redirect to another host
# does not carry them (lomond logs no header values at all).
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


class WebSocket:
    """A WebSocket client; iterate it (or :meth:`connect`) to run a connection.

    The arguments of lomond 0.3 keep their positions and meaning:

    :param str url: ``ws://``, ``wss://`` or ``ws+unix://`` URL. User-info
        (``wss://user:secret@host/``) is sent as Basic authentication and
        never logged.
    :param dict proxies: ``{"http": url, "https": url}``, or None to read
        the ``*_proxy`` environment variables; ``{}`` turns proxies off.
    :param list protocols: subprotocols to offer.
    :param str agent: the User-Agent header (default :data:`USER_AGENT`).
    :param compress: True to offer permessage-deflate with default
        settings, or a :class:`~lomond.protocol.deflate.DeflateOptions`.
    :param bool ssl_verify: verify the server's certificate (default True).
    :param str ssl_cafile: CA bundle to verify against (default: certifi's).
    :param ssl_context: an ``ssl.SSLContext`` used exactly as given.
    :param trace: a callable that receives a dict for each connection
        stage, for debugging.

    Options beyond lomond 0.3 are keyword-only:

    :param str origin: the Origin header.
    :param headers: extra request headers, as a mapping, a list of pairs,
        or a callable returning either (called for every connection
        attempt, so that :func:`~lomond.persist.persist` can send a fresh
        token on each reconnect).
    :param int max_message_size: largest message accepted, after
        decompression (default 16 MiB; 0 for no limit). A larger message
        fails the connection with close code 1009.
    :param int max_frame_size: largest frame payload accepted (default
        16 MiB; 0 for no limit).
    :param int max_header_size: largest handshake response header block.
    :param float connect_timeout: seconds allowed for DNS, TCP, proxy and
        TLS (default 10).
    :param float handshake_timeout: seconds allowed for the server to
        respond to the upgrade request (default 10).
    :param str unix_socket: connect to this Unix domain socket instead of
        the URL's host.
    :param str ssl_certfile: client certificate (PEM), with
        ``ssl_keyfile`` when the key is separate.
    :param str server_hostname: host name for SNI and certificate checks,
        when it differs from the URL's host.
    :param int max_redirects: redirects (301, 302, 303, 307, 308) followed
        per connection attempt (default 5; 0 turns following off). A
        redirect from wss:// to ws:// is never followed, and credentials
        go only to the same host.
    """

    def __init__(
        self,
        url: str,
        proxies: Mapping[str, str | None] | None = None,
        protocols: Iterable[str] | None = None,
        agent: str | None = None,
        compress: bool | DeflateOptions = False,
        ssl_verify: bool = True,
        ssl_cafile: str | None = None,
        ssl_context: Any = None,
        trace: Callable[[dict[str, Any]], None] | bool | None = None,
        *,
        origin: str | None = None,
        headers: Any = None,
        max_message_size: int = MAX_MESSAGE_SIZE,
        max_frame_size: int = MAX_FRAME_SIZE,
        max_header_size: int = MAX_HEADER_SIZE,
        connect_timeout: float = 10.0,
        handshake_timeout: float = 10.0,
        unix_socket: str | None = None,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        server_hostname: str | None = None,
        max_redirects: int = 5,
    ) -> None:
        # Every argument is checked here, so that misuse raises at once
        # instead of failing later inside the event loop.
        if unix_socket is not None and not isinstance(unix_socket, str):
            raise UsageError(f"unix_socket must be a str path, not {unix_socket!r}")
        self.url = url
        self.parsed_url = parse_url(url, unix_socket=unix_socket)
        self.proxies = _check_proxies(proxies)
        if isinstance(protocols, str):
            # A lone string is one subprotocol, not a list of letters.
            protocols = [protocols]
        self.protocols = list(protocols or [])
        if agent is not None and not isinstance(agent, str):
            raise UsageError(f"agent must be a str, not {type(agent).__name__}")
        if origin is not None and not isinstance(origin, str):
            raise UsageError(f"origin must be a str, not {type(origin).__name__}")
        if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
            raise UsageError(f"ssl_context must be an ssl.SSLContext, not {ssl_context!r}")
        if trace is not None and not isinstance(trace, bool) and not callable(trace):
            raise UsageError(f"trace must be a callable or a bool, not {trace!r}")
        self.agent = agent or USER_AGENT
        self.compress: DeflateOptions | None = (
            None if compress is False or compress is None else _deflate_options(compress)
        )
        self.tls = TLSOptions(
            verify=ssl_verify,
            cafile=ssl_cafile,
            context=ssl_context,
            certfile=ssl_certfile,
            keyfile=ssl_keyfile,
            server_hostname=server_hostname,
        )
        self.trace = trace
        self.origin = origin
        self._headers_source = headers
        self._headers: list[tuple[str, str]] = []
        if headers is not None and not callable(headers):
            self._headers.extend(_header_pairs(headers))
        for name, value in (("max_message_size", max_message_size),
                            ("max_frame_size", max_frame_size),
                            ("max_header_size", max_header_size)):
            if not isinstance(value, int) or value < 0:
                raise UsageError(f"{name} must be an int of 0 or more, not {value!r}")
        for name, timeout in (("connect_timeout", connect_timeout),
                              ("handshake_timeout", handshake_timeout)):
            if not _is_seconds(timeout) or timeout <= 0:
                raise UsageError(f"{name} must be a finite number of seconds above 0, not {timeout!r}")
        self.max_message_size = max_message_size
        self.max_frame_size = max_frame_size
        self.max_header_size = max_header_size
        self.connect_timeout = float(connect_timeout)
        self.handshake_timeout = float(handshake_timeout)
        if not isinstance(max_redirects, int) or max_redirects < 0:
            raise UsageError(f"max_redirects must be an int of 0 or more, not {max_redirects!r}")
        self.max_redirects = max_redirects
        # Build one handshake now: it checks the agent, origin, subprotocols
        # and headers the way every connection attempt will.
        Handshake(
            self.parsed_url,
            bytes(16),
            agent=self.agent,
            origin=self.origin,
            protocols=self.protocols,
            deflate=self.compress,
            headers=self._headers,
        )

        self.session: WebSocketSession | None = None
        self.key: bytes = b""
        #: Round-trip time in seconds of the last ping that got its pong.
        self.latency: float | None = None

    # --- identity ----------------------------------------------------------

    @property
    def safe_url(self) -> str:
        """The URL without credentials, for logs and events."""
        return self.parsed_url.safe_url

    def __repr__(self) -> str:
        return f"WebSocket({self.safe_url!r})"

    @property
    def scheme(self) -> str:
        return self.parsed_url.scheme

    @property
    def host(self) -> str:
        return self.parsed_url.host

    @property
    def port(self) -> int:
        return self.parsed_url.port

    @property
    def resource(self) -> str:
        return self.parsed_url.resource

    # --- state -------------------------------------------------------------

    @property
    def _connection(self) -> ClientConnection | None:
        session = self.session
        return session.connection if session is not None else None

    @property
    def is_secure(self) -> bool:
        """True for a TLS (``wss://``) connection."""
        return self.parsed_url.secure

    @property
    def is_closing(self) -> bool:
        """True after this side sent a close frame and before the server's arrived."""
        connection = self._connection
        return connection is not None and connection.state is State.CLOSING

    @property
    def is_closed(self) -> bool:
        """True once the connection is closed (or failed)."""
        connection = self._connection
        return connection is not None and connection.state is State.CLOSED

    @property
    def is_active(self) -> bool:
        """True while messages may be sent (the handshake is done and no close was sent)."""
        connection = self._connection
        return connection is not None and connection.state is State.OPEN

    @property
    def sent_close_time(self) -> float | None:
        """Session time (seconds) at which this side sent its close frame, or None."""
        session = self.session
        return session._close_time - session._start_time if session and session._close_time else None

    @property
    def supports_compression(self) -> bool:
        """True when the server agreed to permessage-deflate."""
        connection = self._connection
        return connection is not None and connection.deflate is not None

    @property
    def compression(self) -> dict[str, Any] | None:
        """The agreed permessage-deflate parameters, or None."""
        connection = self._connection
        if connection is None or connection.deflate is None:
            return None
        return connection.deflate.params

    # --- connecting --------------------------------------------------------

    def add_header(self, header: bytes | str, value: bytes | str) -> None:
        """Add a header to the handshake request of every later connection.

        Raises :class:`~lomond.errors.InvalidHeader` for a name that is not
        an HTTP token or a value containing CR or LF.
        """
        self._headers.append(check_header(header, value))

    def _request_headers(
        self, url: WebSocketURL | None = None, other_host: bool = False
    ) -> list[tuple[str, str]]:
        headers = list(self._headers)
        if callable(self._headers_source):
            headers.extend(_header_pairs(self._headers_source()))
        if other_host:
            # A redirect to another host gets none of the credentials.
            headers = [(name, value) for name, value in headers if name.lower() not in _SECRET_HEADERS]
        url = url or self.parsed_url
        if url.username is not None:
            credentials = f"{url.username}:{url.password or ''}".encode()
            headers.append(("Authorization", "Basic " + base64.b64encode(credentials).decode()))
        return headers

    def _new_connection(
        self, auto_pong: bool, url: WebSocketURL | None = None, other_host: bool = False
    ) -> ClientConnection:
        """Return the protocol state for a new connection attempt (to ``url``, after a redirect)."""
        key = os.urandom(16)
        handshake = Handshake(
            url or self.parsed_url,
            key,
            agent=self.agent,
            origin=self.origin,
            protocols=self.protocols,
            deflate=self.compress,
            headers=self._request_headers(url, other_host),
        )
        self.key = handshake.key
        return ClientConnection(
            handshake,
            max_message_size=self.max_message_size,
            max_frame_size=self.max_frame_size,
            max_header_size=self.max_header_size,
            auto_pong=auto_pong,
        )

    def connect(
        self,
        session_class: type[WebSocketSession] = WebSocketSession,
        poll: float = 5.0,
        ping_rate: float = 30.0,
        ping_timeout: float | None = None,
        auto_pong: bool = True,
        close_timeout: float | None = 30.0,
    ) -> Iterator[events.Event]:
        """Connect and return an iterator of events that ends with Disconnected.

        :param float poll: seconds between :class:`~lomond.events.Poll` events
            (0 turns them off).
        :param float ping_rate: seconds between automatic pings (0 turns them off).
        :param float ping_timeout: seconds to wait for a pong before
            :class:`~lomond.events.Unresponsive` and a disconnect (None: never).
            It also bounds a send that cannot write a single byte for that
            long (a server that stopped reading): the connection is then
            dropped and the send raises :class:`~lomond.errors.TransportFail`.
        :param bool auto_pong: reply to pings with pongs automatically (default True).
        :param float close_timeout: seconds to wait for the server's close
            frame after this side sent one, before dropping the connection.

        Every failure becomes an event; the only exceptions that leave the
        iterator are those raised by the loop body.
        """
        for name, value in (("poll", poll), ("ping_rate", ping_rate)):
            if not _is_seconds(value) or value < 0:
                raise UsageError(
                    f"{name} must be a finite number of seconds, 0 or more, not {value!r}"
                )
        for name, value in (("ping_timeout", ping_timeout), ("close_timeout", close_timeout)):
            if value is not None and (not _is_seconds(value) or value < 0):
                raise UsageError(
                    f"{name} must be None or a finite number of seconds, not {value!r}"
                )
        session = session_class(self)
        self.session = session
        return session.run(
            poll=poll,
            ping_rate=ping_rate,
            ping_timeout=ping_timeout,
            auto_pong=auto_pong,
            close_timeout=close_timeout,
        )

    __iter__ = connect

    def _on_session_end(self, session: WebSocketSession) -> None:
        """Called by the session when its generator ends."""

    def _emit_trace(self, stage: str, **fields: Any) -> None:
        """Send one trace record to ``trace`` (a callable), or log it at DEBUG when ``trace`` is True.

        Records carry the safe URL only: no credentials, no header values.
        """
        if not self.trace:
            return
        record = {"stage": stage, "url": self.safe_url, **fields}
        if callable(self.trace):
            try:
                self.trace(record)
            except Exception:
                # A failing trace callable must not end the connection.
                log.warning("%r: the trace callable failed on %r", self, stage, exc_info=True)
        else:
            log.debug("trace %r", record)

    def force_disconnect(self) -> None:
        """Close the socket at once, without a closing handshake (as in lomond 0.3)."""
        if self.session is not None:
            self.session.close()

    @property
    def ssl_verify(self) -> bool:
        """Whether the server's certificate is verified (the constructor argument)."""
        return self.tls.verify

    @property
    def ssl_cafile(self) -> str | None:
        """The CA bundle given to the constructor, or None for certifi's."""
        return self.tls.cafile

    @property
    def ssl_context(self) -> Any:
        """The ``ssl.SSLContext`` given to the constructor, or None."""
        return self.tls.context

    def __enter__(self) -> WebSocket:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.session is not None:
            self.session.close()

    # --- sending -----------------------------------------------------------

    def _session(self) -> WebSocketSession:
        session = self.session
        if session is None or session.connection is None:
            raise WebSocketUnavailable("the WebSocket is not connected; iterate it first")
        return session

    def send_text(self, text: str, compress: bool = True) -> None:
        """Send a text message.

        Raises TypeError when ``text`` is not a str,
        :class:`~lomond.errors.WebSocketUnavailable` when the WebSocket is
        not open, and :class:`~lomond.errors.TransportFail` when the socket
        fails (the frame was not sent).
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, not {type(text).__name__}")
        session = self._session()
        session.send(session.connection.send_text, text, compress)  # type: ignore[union-attr]

    def send_binary(self, data: bytes, compress: bool = True) -> None:
        """Send a binary message (``bytes``, ``bytearray`` or ``memoryview``); errors as :meth:`send_text`."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes, not {type(data).__name__}")
        session = self._session()
        session.send(session.connection.send_binary, bytes(data), compress)  # type: ignore[union-attr]

    def send_json(self, _obj: Any = Ellipsis, **kwargs: Any) -> None:
        """Send an object (or keyword arguments, as an object) as a JSON text message."""
        if kwargs and _obj is not Ellipsis:
            raise ValueError("send_json takes one positional argument or keyword arguments, not both")
        self.send_text(json.dumps(_obj if _obj is not Ellipsis else kwargs))

    def send_ping(self, data: bytes = b"") -> None:
        """Send a ping (payload at most 125 bytes); the Pong event reports the round-trip time."""
        session = self._session()
        session.send(session.connection.send_ping, data, time.time())  # type: ignore[union-attr]

    def send_pong(self, data: bytes = b"") -> None:
        """Send a pong (payload at most 125 bytes)."""
        session = self._session()
        session.send(session.connection.send_pong, data)  # type: ignore[union-attr]

    def close(self, code: int = Status.NORMAL, reason: str | bytes = b"goodbye") -> None:
        """Start the closing handshake; the iterator then yields Closed and Disconnected.

        Does nothing when the WebSocket is not open or already closing.
        Raises ValueError for a code that may not be sent (RFC 6455 section
        7.4) or a reason longer than 123 bytes.
        """
        if not isinstance(code, int) or isinstance(code, bool):
            raise TypeError(f"code must be an int close code, not {code!r}")
        if not isinstance(reason, (str, bytes)):
            raise TypeError(f"reason must be a str or bytes, not {type(reason).__name__}")
        # Raises ValueError for a code that may not be sent or a reason that
        # does not fit, before any state changes.
        build_close_payload(code, reason)
        session = self.session
        if session is None or session._ended:
            log.debug("%r: close() ignored, the WebSocket is not connected", self)
            return
        connection = session.connection
        if connection is None or connection.state is State.CONNECTING:
            # No WebSocket yet, so no closing handshake: give the attempt up.
            session.abort("closed by the client before the handshake completed")
            return
        if connection.state is not State.OPEN:
            log.debug("%r: close() ignored, the WebSocket is already closing", self)
            return
        # The close timeout runs from now, even when the close frame must
        # first wait for a stalled write.
        if session._close_time is None:
            session._close_time = time.monotonic()
        try:
            session.send(connection.close, code, reason, lock_timeout=session._close_timeout)
        except (WebSocketUnavailable, TransportFail) as error:
            # The connection is already gone or going: the loop reports it.
            log.debug("%r: close frame not sent (%s)", self, error)


def _deflate_options(compress: Any) -> DeflateOptions:
    """Return the permessage-deflate options for the ``compress`` argument."""
    from .protocol.deflate import DeflateOptions

    if compress is True:
        return DeflateOptions()
    if isinstance(compress, DeflateOptions):
        return compress
    raise UsageError(f"compress must be True, False or DeflateOptions, not {compress!r}")


def _is_seconds(value: Any) -> bool:
    """Return whether ``value`` is a finite int or float (NaN and infinity would stall the loop)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_proxies(proxies: Any) -> Any:
    """Check the ``proxies`` argument: None, or a mapping of scheme to URL (or None)."""
    if proxies is None:
        return None
    if not isinstance(proxies, Mapping):
        raise UsageError(
            # The type only: a proxy URL string may carry a password.
            "proxies must be a dict such as {'https': 'http://proxy:3128'},"
            f" not a {type(proxies).__name__}"
        )
    for key, value in proxies.items():
        if value is not None and not isinstance(value, str):
            raise UsageError(
                f"proxies[{key!r}] must be a URL string or None, not a {type(value).__name__}"
            )
    return proxies


def _header_pairs(headers: Any) -> list[tuple[str, str]]:
    """Return checked (name, value) pairs from a mapping or an iterable of pairs."""
    if isinstance(headers, (str, bytes)):
        raise UsageError(
            "headers must be a mapping or a list of (name, value) pairs, not a string"
        )
    items = headers.items() if isinstance(headers, Mapping) else headers
    pairs = []
    for item in items:
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise UsageError(f"invalid header {item!r}: use a (name, value) pair")
        pairs.append(check_header(item[0], item[1]))
    return pairs


# Opcode is re-exported for code written against lomond 0.3.
__all__ += ["Opcode"]
