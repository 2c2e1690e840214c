"""pytest plugin of lomond.testing, registered through the ``pytest11`` entry point.

Fixtures (each server or proxy listens on its own ephemeral loopback port,
so they are safe under pytest-xdist):

``lomond_server``
    A started echo :class:`~lomond.testing.Server`.
``lomond_server_factory``
    A function that takes a script (and the other Server arguments) and
    returns a started server.
``lomond_tls_server``
    A started echo server on wss:// with a throwaway CA
    (``server.client_ssl_context()``, ``server.ca_file``).
``lomond_proxy``, ``lomond_proxy_factory``
    A started HTTP CONNECT :class:`~lomond.testing.ConnectProxy`, and a
    function that builds one with options.

On teardown every server and proxy is stopped, and the test fails if a
greenlet or socket was left behind, or if a script recorded an error (a
failed expectation, or a protocol violation by the client). A test that
expects such an error clears ``server.errors`` after checking it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator

import pytest

if TYPE_CHECKING:
    from .proxy import ConnectProxy
    from .server import Script, Server

# pytest imports this plugin wherever lomond is installed, also without the
# testing extra. So the server and proxy modules are imported inside the
# fixtures, and only a fixture in use fails (with MissingExtra).

__all__ = [
    "lomond_server",
    "lomond_server_factory",
    "lomond_tls_server",
    "lomond_proxy",
    "lomond_proxy_factory",
]


def _stop_and_check(servers: list[Any]) -> None:
    problems = []
    for server in servers:
        server.stop()
        problems += server.leaks()
        problems += getattr(server, "errors", [])
    if problems:
        pytest.fail("lomond.testing teardown found problems:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def lomond_server_factory() -> Iterator[Callable[..., Server]]:
    """Return a function that builds and starts a Server from a script."""
    from lomond.testing import Server

    servers: list[Server] = []

    def build(script: Script | None = None, **options: Any) -> Server:
        server = Server(script, **options)
        servers.append(server)
        return server.start()

    yield build
    _stop_and_check(servers)


@pytest.fixture
def lomond_server(lomond_server_factory: Callable[..., Server]) -> Server:
    """A started echo server at ``lomond_server.url``."""
    return lomond_server_factory()


@pytest.fixture
def lomond_tls_server(lomond_server_factory: Callable[..., Server]) -> Server:
    """A started echo server on wss:// with a certificate from a throwaway CA."""
    return lomond_server_factory(tls=True)


@pytest.fixture
def lomond_proxy_factory() -> Iterator[Callable[..., ConnectProxy]]:
    """Return a function that builds and starts a ConnectProxy with options."""
    from lomond.testing import ConnectProxy

    proxies: list[ConnectProxy] = []

    def build(**options: Any) -> ConnectProxy:
        proxy = ConnectProxy(**options)
        proxies.append(proxy)
        return proxy.start()

    yield build
    _stop_and_check(proxies)


@pytest.fixture
def lomond_proxy(lomond_proxy_factory: Callable[..., ConnectProxy]) -> ConnectProxy:
    """A started HTTP CONNECT proxy (no authentication) at ``lomond_proxy.url``."""
    return lomond_proxy_factory()
