"""TLS for the test server: a throwaway CA from trustme, and contexts built on it.

Each :class:`TLSFiles` has its own CA, so no two servers (or pytest-xdist
workers) share a certificate or a file.
"""

from __future__ import annotations

import os
import tempfile

import gevent.ssl as ssl
import trustme

__all__ = ["TLSFiles"]

# Names the server certificate is valid for: the loopback addresses the kit
# listens on and "localhost".
SERVER_NAMES = ("127.0.0.1", "::1", "localhost")


class TLSFiles:
    """A throwaway CA, a server certificate it signed, and optionally a client certificate."""

    def __init__(self, require_client_cert: bool = False) -> None:
        self.ca = trustme.CA()
        self.server_cert = self.ca.issue_cert(*SERVER_NAMES)
        self.require_client_cert = require_client_cert
        self.client_cert = self.ca.issue_cert("lomond-test-client@example.org")
        self._temp_dir: tempfile.TemporaryDirectory[str] | None = None

    def server_context(self) -> ssl.SSLContext:
        """Build the server's context (gevent's ssl, so handshakes are cooperative)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.server_cert.configure_cert(context)
        if self.require_client_cert:
            context.verify_mode = ssl.CERT_REQUIRED
            self.ca.configure_trust(context)
        return context

    def client_context(self, with_client_cert: bool | None = None) -> ssl.SSLContext:
        """Build a client context (gevent's ssl) that trusts the CA.

        It verifies the certificate and host name. The client certificate
        is loaded when ``with_client_cert`` is True, or when it is None and
        the server requires one. Code that does not run on gevent builds its
        own context from :attr:`ca_file` instead.
        """
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.ca.configure_trust(context)
        if with_client_cert or (with_client_cert is None and self.require_client_cert):
            self.client_cert.configure_cert(context)
        return context

    def _directory(self) -> str:
        if self._temp_dir is None:
            self._temp_dir = tempfile.TemporaryDirectory(prefix="lomond-tls-")
        return self._temp_dir.name

    @property
    def ca_file(self) -> str:
        """Path of a PEM file that contains the CA certificate (written on first use)."""
        path = os.path.join(self._directory(), "ca.pem")
        if not os.path.exists(path):
            self.ca.cert_pem.write_to_path(path)
        return path

    @property
    def client_cert_file(self) -> str:
        """Path of a PEM file that contains the client certificate chain and key."""
        path = os.path.join(self._directory(), "client.pem")
        if not os.path.exists(path):
            self.client_cert.private_key_and_cert_chain_pem.write_to_path(path)
        return path

    def cleanup(self) -> None:
        """Remove the files written so far."""
        if self._temp_dir is not None:
            self._temp_dir.cleanup()
            self._temp_dir = None
