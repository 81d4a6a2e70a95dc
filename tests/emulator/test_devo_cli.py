"""``mdca-emulator`` runs the Devo emulator beside MDCA's: one CA, one JSON description, one SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests

from tests.emulator.devo_support import event, syslog, unique_tag

_MDCA_KEYS = {"base_url", "token_url", "ca_bundle", "admin_url", "services", "tenants"}


def _send_over_relay(devo: dict[str, Any], payload: bytes) -> None:
    context = ssl.create_default_context(cafile=devo["ca_bundle"])
    context.load_cert_chain(devo["client_cert"], devo["client_key"])
    with (
        socket.create_connection((devo["relay_host"], devo["relay_port"]), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=devo["relay_host"]) as tls,
    ):
        tls.sendall(payload)
        tls.unwrap()


def test_starts_both_emulators_describes_devo_and_exits_0_on_sigterm(tmp_path):
    state = tmp_path / "state"
    command = [sys.executable, "-m", "mdca_emulator", "--state-dir", str(state)]
    tag = unique_tag("cli")
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            info = json.loads(proc.stdout.readline())
            assert json.loads((state / "emulator.json").read_text()) == info
            assert set(info) >= _MDCA_KEYS and info["tenants"][0]["tenant_id"] == "tenant-demo"
            devo = info["devo"]
            assert devo["ca_bundle"] == info["ca_bundle"] and devo["relay_host"] == "127.0.0.1"
            assert devo["http_url"].startswith("https://127.0.0.1:") and devo["domain"] == "emu_domain"
            _send_over_relay(devo, syslog(tag, event(1)))
            with requests.Session() as client:
                client.trust_env = False
                client.verify = devo["ca_bundle"]
                url = f"{devo['http_url']}/stream/{devo['domain']}/token!{devo['token']}/cli-host/{tag}"
                assert client.post(url, data=event(2).encode()).json() == {"status": "ok", "received": 1}
                assert client.get(f"{devo['admin_url']}tags").json()["tags"] == {tag: 2}
                assert client.get(f"{info['admin_url']}tenants").status_code == 200  # MDCA still answers
            stored = (Path(devo["store_dir"]) / f"{tag}.ndjson").read_text().splitlines()
            assert [json.loads(line)["_id"] for line in stored] == ["id-00001", "id-00002"]
        finally:
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=15)
    assert proc.returncode == 0, stderr


def test_no_devo_leaves_the_devo_emulator_and_its_key_out(tmp_path):
    command = [sys.executable, "-m", "mdca_emulator", "--state-dir", str(tmp_path), "--no-devo"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as proc:
        try:
            info = json.loads(proc.stdout.readline())
        finally:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=15)
    assert "devo" not in info and set(info) >= _MDCA_KEYS
    assert proc.returncode == 0


def test_refuses_a_devo_domain_with_a_slash(tmp_path):
    command = [sys.executable, "-m", "mdca_emulator", "--state-dir", str(tmp_path)]
    result = subprocess.run([*command, "--devo-domain", "a/b"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "--devo-domain" in result.stderr
