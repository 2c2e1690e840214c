"""TLS (wss://) of the test server, with a throwaway CA."""

from __future__ import annotations

import ssl

import gevent.ssl
import pytest
from kit_raw import RawClient
from lomond.testing.frames import OP_TEXT


def test_tls_server_url_and_echo(lomond_tls_server):
    assert lomond_tls_server.url.startswith("wss://127.0.0.1:")
    with RawClient(lomond_tls_server.port, tls=lomond_tls_server.client_ssl_context()) as client:
        assert client.sock.version() in ("TLSv1.2", "TLSv1.3")
        client.handshake()
        client.send_frame(OP_TEXT, b"secret")
        assert client.recv_frame().payload == b"secret"


def test_tls_ca_file_loads(lomond_tls_server):
    context = gevent.ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=lomond_tls_server.ca_file)
    with RawClient(lomond_tls_server.port, tls=context) as client:
        client.handshake()


def test_tls_untrusted_client_fails_handshake(lomond_tls_server):
    context = gevent.ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_default_certs()  # system roots do not know the throwaway CA
    with pytest.raises(ssl.SSLCertVerificationError):
        RawClient(lomond_tls_server.port, tls=context)
    transcript = lomond_tls_server.next_connection().wait_closed()
    assert transcript.end_reason.startswith("TLS handshake failed")


def test_tls_client_cert_required(lomond_server_factory):
    server = lomond_server_factory(tls=True, client_cert=True)
    with RawClient(server.port, tls=server.client_ssl_context(with_client_cert=True)) as client:
        client.handshake()
        client.send_frame(OP_TEXT, b"with cert")
        assert client.recv_frame().payload == b"with cert"


def test_tls_client_cert_missing_rejected(lomond_server_factory):
    server = lomond_server_factory(tls=True, client_cert=True)
    with pytest.raises((ssl.SSLError, ConnectionError, EOFError)):
        # TLS 1.3 reports the missing certificate only at the first read.
        with RawClient(server.port, tls=server.client_ssl_context(with_client_cert=False)) as client:
            client.handshake()
    transcript = server.next_connection().wait_closed()
    assert "TLS handshake failed" in transcript.end_reason


def test_tls_files_are_removed_on_stop(lomond_server_factory):
    import os

    server = lomond_server_factory(tls=True)
    path = server.ca_file
    assert os.path.exists(path)
    server.stop()
    assert not os.path.exists(path)


def test_plain_server_has_no_ca(lomond_server):
    with pytest.raises(RuntimeError, match="tls=True"):
        lomond_server.ca
