"""Azurite, the Azure Storage emulator (npm package ``azurite``, installed by ``make`` from package-lock.json).

One Blob service per test process, on 127.0.0.1 and a free port, its data in a temporary folder, telemetry off
(Azurite reports usage to Microsoft unless told not to: this workplace reaches no such host). Stopped after the run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness.airflow_stack import free_port

ROOT = Path(__file__).resolve().parents[2]
AZURITE = ROOT / "node_modules" / ".bin" / "azurite-blob"

#: Azurite's well-known development account and key: public test values, the same in every Azurite.
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass(frozen=True)
class Azurite:
    """A running Azurite Blob service."""

    port: int
    location: Path

    @property
    def blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    def connection_string(self, key: str = ACCOUNT_KEY) -> str:
        """The storage connection string (the only form adlfs takes for a plain-http endpoint)."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={key};BlobEndpoint={self.blob_endpoint};"
        )


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def _start(location: Path, log: Path) -> tuple[subprocess.Popen[bytes], int] | None:
    port = free_port()
    command = [
        str(AZURITE),
        *("--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(location)),
        *("--silent", "--skipApiVersionCheck", "--loose", "--disableTelemetry"),
    ]
    with open(log, "ab") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return None  # most likely the port was taken between the probe and the start: try another
        if _listening(port):
            return process, port
        time.sleep(0.1)
    _stop(process)
    return None


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    if not AZURITE.exists():
        pytest.fail(f"Azurite is not installed: run `make {AZURITE.relative_to(ROOT)}` (npm ci from package-lock.json)")
    folder = tmp_path_factory.mktemp("azurite")
    location, log = folder / "data", folder / "azurite.log"
    location.mkdir()
    for _ in range(3):
        started = _start(location, log)
        if started is not None:
            break
    else:
        pytest.fail(f"Azurite did not start; its output:\n{log.read_text(errors='replace')}")
    process, port = started
    try:
        yield Azurite(port=port, location=location)
    finally:
        _stop(process)
