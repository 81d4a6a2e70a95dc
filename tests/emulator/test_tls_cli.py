"""TLS (the CA, untrusted clients, client certificates) and the ``mdca-emulator`` command line."""

from __future__ import annotations

import json
import signal
import socket
import ssl
import stat
import subprocess
import sys
import threading

import pytest
import requests
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from mdca_emulator import CertificateAuthority
from tests.emulator.support import T0
from tests.service_table import ALL, SERVICE_TABLE


class TestTls:
    def test_a_client_without_the_emulator_ca_is_refused(self, emu):
        with requests.Session() as untrusting:  # system CAs only
            untrusting.trust_env = False
            with pytest.raises(requests.exceptions.SSLError):
                untrusting.get(f"{emu.base_url}/_admin/tenants", verify=True)
        with requests.Session() as trusting:  # the server is still fine afterwards
            trusting.trust_env = False
            response = trusting.get(f"{emu.base_url}/_admin/tenants", verify=str(emu.ca_bundle))
            assert response.status_code == 200

    def test_server_certificate_names_loopback_ip_and_localhost(self, emu):
        cert = x509.load_pem_x509_certificate(emu.ca.server_cert_path.read_bytes())
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
        assert names.get_values_for_type(x509.DNSName) == ["localhost"]
        assert cert.issuer == emu.ca.cert.subject

    def test_keys_are_private_and_files_are_reused(self, state_dir):
        ca = CertificateAuthority.load_or_create(state_dir)
        for key in ("ca-key.pem", "server-key.pem"):
            assert stat.S_IMODE((state_dir / key).stat().st_mode) == 0o600
        again = CertificateAuthority.load_or_create(state_dir)
        assert again.cert == ca.cert
        assert (state_dir / "server.pem").read_bytes() == (state_dir / "server.pem").read_bytes()

    def test_client_certificates_for_mutual_tls(self, state_dir):
        ca = CertificateAuthority.load_or_create(state_dir)
        cert_path, key_path = ca.issue_client_cert("devo-relay-client")
        assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        assert cert.subject.rfc4514_string() == "CN=devo-relay-client"
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert ExtendedKeyUsageOID.CLIENT_AUTH in usage

        server_ctx = ca.server_context(require_client_cert=True)
        with socket.create_server(("127.0.0.1", 0)) as listener:
            port = listener.getsockname()[1]
            seen: list[str] = []

            def serve_once() -> None:
                for _ in range(2):
                    conn, _ = listener.accept()
                    try:
                        with server_ctx.wrap_socket(conn, server_side=True) as tls:
                            seen.append(dict(x[0] for x in tls.getpeercert()["subject"])["commonName"])
                    except (ssl.SSLError, OSError):
                        seen.append("refused")

            thread = threading.Thread(target=serve_once)
            thread.start()
            with_cert = ca.client_context()
            with_cert.load_cert_chain(cert_path, key_path)
            with socket.create_connection(("127.0.0.1", port)) as raw:
                with_cert.wrap_socket(raw, server_hostname="localhost").close()
            with socket.create_connection(("127.0.0.1", port)) as raw:
                try:
                    with ca.client_context().wrap_socket(raw, server_hostname="localhost") as tls:
                        tls.sendall(b"x")
                        tls.recv(1)
                except (ssl.SSLError, OSError):
                    pass
            thread.join(5)
        assert seen == ["devo-relay-client", "refused"]


class TestCommandLine:
    def test_starts_writes_emulator_json_answers_and_exits_0_on_sigterm(self, tmp_path):
        config = {
            "tenant_id": "cli",
            "requests_per_minute": None,
            "alerts": {"segments": [{"start_ms": T0, "end_ms": T0 + 1_000, "count": 12}]},
        }
        (tmp_path / "tenants.json").write_text(json.dumps([config]))
        state = tmp_path / "state"
        command = [sys.executable, "-m", "mdca_emulator", "--port", "0", "--seed", "3"]
        command += ["--state-dir", str(state), "--config", str(tmp_path / "tenants.json")]
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
            try:
                info = json.loads(proc.stdout.readline())
                assert json.loads((state / "emulator.json").read_text()) == info
                assert stat.S_IMODE((state / "emulator.json").stat().st_mode) == 0o600
                tenant = info["tenants"][0]
                assert tenant["tenant_id"] == "cli" and tenant["mdca_url"].startswith("https://127.0.0.1:")
                assert info["token_url"] == info["base_url"] + "/" and info["admin_url"].endswith("/_admin/")
                with requests.Session() as client:
                    client.trust_env = False
                    client.verify = info["ca_bundle"]
                    token = client.post(
                        f"{info['token_url']}cli/oauth2/v2.0/token",
                        data={
                            "grant_type": "client_credentials",
                            "client_id": tenant["client_id"],
                            "client_secret": tenant["client_secret"],
                            "scope": "05a65629-4c1b-48c1-a78b-804c4abdd4af/.default",
                        },
                    ).json()["access_token"]
                    page = client.post(
                        f"{tenant['mdca_url']}api/v1/alerts/",
                        json={},
                        headers={"Authorization": f"Bearer {token}"},
                    ).json()
                    assert len(page["data"]) == 12
                    assert client.get(f"{info['admin_url']}tenants/cli").json()["seed"] == 3
            finally:
                proc.send_signal(signal.SIGTERM)
                _, stderr = proc.communicate(timeout=10)
        assert proc.returncode == 0, stderr

    def test_default_demo_tenant(self, tmp_path):
        command = [sys.executable, "-m", "mdca_emulator", "--state-dir", str(tmp_path)]
        with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as proc:
            try:
                info = json.loads(proc.stdout.readline())
                tenant = info["tenants"][0]
                assert tenant["tenant_id"] == "tenant-demo"
                with requests.Session() as client:
                    client.trust_env = False
                    client.verify = info["ca_bundle"]
                    headers = {"Authorization": f"Token {tenant['files_access_token']}"}
                    for service in ALL:
                        url = f"{tenant['mdca_url']}{SERVICE_TABLE[service].endpoint}"
                        page = client.post(url, json={}, headers=headers).json()
                        assert page["data"], service
                    config = client.get(f"{info['admin_url']}tenants/tenant-demo").json()
                    assert config["requests_per_minute"] == 30 and config["entities"]["count"] == 500
            finally:
                proc.send_signal(signal.SIGINT)
                proc.communicate(timeout=10)
        assert proc.returncode == 0

    def test_refuses_a_non_loopback_host(self, tmp_path):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "mdca_emulator",
                "--host",
                "0.0.0.0",
                "--state-dir",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 2 and "127.0.0.1" in result.stderr
