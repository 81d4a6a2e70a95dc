"""Whom the Devo senders trust and what they send of their own accord, over real TLS sockets on 127.0.0.1."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from airflow_provider_mdca.errors import DeliveryError
from airflow_provider_mdca.hooks.devo import DevoHook
from mdca_emulator import CertificateAuthority
from mdca_emulator.devo import DevoEmulator
from tests.integration.test_devo_delivery import hook_for, tls_connection


@pytest.fixture(scope="module")
def devo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevoEmulator]:
    with DevoEmulator(tmp_path_factory.mktemp("devo")) as emulator:
        yield emulator


def test_with_a_chain_the_relay_must_chain_to_it_not_to_a_system_ca(
    devo: DevoEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The relay's real CA is one the system trusts; the connection names another chain: the relay is not the one
    # the user meant, so nothing may be sent to it.
    monkeypatch.setenv("SSL_CERT_FILE", str(devo.ca_bundle))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    other = CertificateAuthority.load_or_create(tmp_path / "other-ca")
    hook = hook_for(monkeypatch, tls_connection(devo, chain=str(other.ca_cert_path)))
    try:
        with pytest.raises(DeliveryError) as info:
            hook.send("casb.microsoft_defender.cloud_apps.alerts.trust", [{"_id": "never"}])
    finally:
        hook.close()
    assert info.value.code == 503 and "certificate verification failed" in str(info.value)


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).seen.append({"path": self.path, "authorization": self.headers.get("Authorization")})
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def https_recorder(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    ca = CertificateAuthority.load_or_create(tmp_path / "ca")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.socket = ca.server_context().wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Recorder.seen = []
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", ca.ca_cert_path
    finally:
        server.shutdown()
        server.server_close()


def test_the_http_sender_never_sends_netrc_credentials(
    https_recorder: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, ca_bundle = https_recorder
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password netrc-secret-0123456789\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    conn = {
        "conn_type": "devo",
        "host": url,
        "password": "ingestion-token-0123456789",
        "extra": json.dumps({"transport": "http", "domain": "acme", "verify": str(ca_bundle)}),
    }
    hook: DevoHook = hook_for(monkeypatch, conn)
    try:
        assert hook.send("my.app.tag", [{"_id": "a"}]).events == 1
    finally:
        hook.close()
    assert _Recorder.seen and all(request["authorization"] is None for request in _Recorder.seen)
    assert _Recorder.seen[0]["path"].startswith("/stream/acme/token!")
