"""TLS: verification by default, CA files, contexts used as given, client certificates, SNI, failures."""

from __future__ import annotations

import ssl

import gevent.server
import pytest

from lomond import WebSocket
from lomond.net import TLSOptions, build_ssl_context
from lomond.testing import TIME_UNIT

from .conftest import first, names, needs_ipv6, run


def fail_reason(websocket):
    seen = run(websocket)
    assert names(seen)[-2:] == ["connect_fail", "disconnected"], names(seen)
    return first(seen, "connect_fail").reason


# --- verification ----------------------------------------------------------------


def test_default_verifies_against_certifi(lomond_tls_server):
    # The kit's throwaway CA is not in certifi's bundle.
    reason = fail_reason(WebSocket(lomond_tls_server.url))
    assert "signed by an unknown CA" in reason
    assert "ssl_cafile=" in reason


def test_cafile_trusts_server(lomond_tls_server):
    seen = run(WebSocket(lomond_tls_server.url, ssl_cafile=lomond_tls_server.ca_file))
    assert names(seen)[:3] == ["connecting", "connected", "ready"]


def test_verify_false_is_explicit(lomond_tls_server):
    seen = run(WebSocket(lomond_tls_server.url, ssl_verify=False))
    assert "ready" in names(seen)


def test_expired_certificate(mini_server_factory, certificates):
    server = mini_server_factory(ssl_context=certificates.expired_server_context())
    reason = fail_reason(WebSocket(server.url(), ssl_cafile=certificates.ca_file))
    assert "has expired" in reason


def test_wrong_host(mini_server_factory, certificates):
    server = mini_server_factory(ssl_context=certificates.server_context("example.test"))
    reason = fail_reason(WebSocket(server.url(), ssl_cafile=certificates.ca_file))
    assert "not valid for host 127.0.0.1" in reason
    assert "server_hostname=" in reason


def test_unknown_ca_with_other_cafile(mini_server_factory, certificates, lomond_tls_server):
    server = mini_server_factory(ssl_context=certificates.server_context())
    reason = fail_reason(WebSocket(server.url(), ssl_cafile=lomond_tls_server.ca_file))
    assert "unknown CA" in reason


def test_server_hostname_sets_sni_and_check(mini_server_factory, certificates):
    server = mini_server_factory(ssl_context=certificates.server_context("example.test"))
    websocket = WebSocket(
        server.url(), ssl_cafile=certificates.ca_file, server_hostname="example.test"
    )
    seen = run(websocket)
    assert "ready" in names(seen)
    assert server.server_names == ["example.test"]


def test_sni_is_url_host(mini_server_factory, certificates):
    server = mini_server_factory(ssl_context=certificates.server_context())
    seen = run(WebSocket(f"wss://localhost:{server.port}/", ssl_cafile=certificates.ca_file))
    assert "ready" in names(seen)
    assert server.server_names == ["localhost"]


def test_plain_server_on_wss():
    # An HTTP server replies to the ClientHello with a plain-text error.
    def answer(sock, address):
        sock.recv(4096)
        sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        sock.close()

    server = gevent.server.StreamServer(("127.0.0.1", 0), answer)
    server.start()
    try:
        reason = fail_reason(WebSocket(f"wss://127.0.0.1:{server.address[1]}/"))
    finally:
        server.stop(timeout=0.1)
    assert "did not respond with TLS" in reason


def test_tls_handshake_timeout():
    # A server that accepts TCP and never speaks.
    silent_sockets = []
    server = gevent.server.StreamServer(
        ("127.0.0.1", 0), lambda sock, address: silent_sockets.append(sock) or gevent.sleep(10)
    )
    server.start()
    try:
        url = f"wss://127.0.0.1:{server.address[1]}/"
        reason = fail_reason(WebSocket(url, connect_timeout=0.3 * TIME_UNIT))
    finally:
        server.stop(timeout=0.1)
    assert "TLS handshake with 127.0.0.1 timed out" in reason


def test_missing_cafile():
    reason = fail_reason(WebSocket("wss://127.0.0.1:9/", ssl_cafile="/nonexistent/ca.pem"))
    assert "could not load the TLS certificates" in reason


# --- ssl_context ---------------------------------------------------------------------


def context_settings(context):
    return (
        context.verify_mode,
        context.check_hostname,
        context.minimum_version,
        context.maximum_version,
        context.options,
        context.verify_flags,
    )


def test_context_used_as_given(lomond_tls_server):
    context = ssl.create_default_context(cafile=lomond_tls_server.ca_file)
    before = context_settings(context)
    seen = run(WebSocket(lomond_tls_server.url, ssl_context=context))
    assert "ready" in names(seen)
    assert context_settings(context) == before


def test_context_not_strengthened(lomond_tls_server):
    # A context that verifies nothing is the caller's choice: lomond adds no check.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    before = context_settings(context)
    seen = run(WebSocket(lomond_tls_server.url, ssl_context=context))
    assert "ready" in names(seen)
    assert context_settings(context) == before


def test_context_not_weakened(lomond_tls_server):
    # ssl_verify=False and ssl_cafile do not touch a given context.
    context = ssl.create_default_context()
    before = context_settings(context)
    websocket = WebSocket(
        lomond_tls_server.url,
        ssl_context=context,
        ssl_verify=False,
        ssl_cafile=lomond_tls_server.ca_file,
    )
    reason = fail_reason(websocket)
    assert "unknown CA" in reason
    assert context_settings(context) == before


def test_build_context_returns_given_object():
    context = ssl.create_default_context()
    assert build_ssl_context(TLSOptions(context=context)) is context


def test_build_context_defaults():
    context = build_ssl_context(TLSOptions())
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_build_context_cached(certificates):
    first_context = build_ssl_context(TLSOptions(cafile=certificates.ca_file))
    assert build_ssl_context(TLSOptions(cafile=certificates.ca_file)) is first_context
    assert build_ssl_context(TLSOptions()) is not first_context
    assert build_ssl_context(TLSOptions(verify=False)).verify_mode == ssl.CERT_NONE


# --- client certificates ------------------------------------------------------------


def test_client_certificate(lomond_server_factory):
    server = lomond_server_factory(client_cert=True)
    websocket = WebSocket(
        server.url, ssl_cafile=server.ca_file, ssl_certfile=server.tls.client_cert_file
    )
    seen = run(websocket)
    assert "ready" in names(seen)


def test_client_certificate_missing(lomond_server_factory):
    server = lomond_server_factory(client_cert=True)
    seen = run(WebSocket(server.url, ssl_cafile=server.ca_file))
    # TLS 1.3 finishes the client's side of the handshake before the server
    # checks the certificate. The failure then shows as ConnectFail or as a
    # disconnect during the upgrade, but never as Ready.
    assert "ready" not in names(seen)
    assert names(seen)[-1] == "disconnected"


def test_client_certificate_separate_key(lomond_server_factory, tmp_path):
    server = lomond_server_factory(client_cert=True)
    cert = server.ca.issue_cert("client@example.org")
    certfile = tmp_path / "client.pem"
    keyfile = tmp_path / "client.key"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    websocket = WebSocket(
        server.url, ssl_cafile=server.ca_file, ssl_certfile=str(certfile), ssl_keyfile=str(keyfile)
    )
    assert "ready" in names(run(websocket))


@needs_ipv6
def test_tls_over_ipv6(mini_server_factory, certificates):
    server = mini_server_factory(host="::1", ssl_context=certificates.server_context())
    seen = run(WebSocket(server.url(), ssl_cafile=certificates.ca_file))
    assert "ready" in names(seen)


# --- cleanup ---------------------------------------------------------------------------


def test_failed_connects_close_sockets(lomond_tls_server, lomond_proxy_factory, tunnel_proxy_factory, certificates):
    # A socket left open is reported as a ResourceWarning when it is collected.
    import gc
    import warnings

    rejecting_proxy = lomond_proxy_factory(status=403)
    tls_proxy = tunnel_proxy_factory(ssl_context=certificates.server_context())
    attempts = [
        WebSocket(lomond_tls_server.url),
        WebSocket(lomond_tls_server.url, proxies={"https": rejecting_proxy.url}),
        WebSocket(lomond_tls_server.url, proxies={"https": tls_proxy.url}),
        WebSocket(lomond_tls_server.url, proxies={"https": tls_proxy.url}, ssl_cafile=certificates.ca_file),
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for websocket in attempts:
            assert "connect_fail" in names(run(websocket))
        del attempts, websocket
        gc.collect()
    unclosed = [str(warning.message) for warning in caught if issubclass(warning.category, ResourceWarning)]
    assert unclosed == []
