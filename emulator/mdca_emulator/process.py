"""Run the emulator as a child process (for the demo, benchmarks and end-to-end tests).

A separate process keeps the emulator's work off the measured process's GIL, and it is what a real
deployment looks like: the collector talks to a server it does not share memory with.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import requests

__all__ = ["EmulatorProcess"]


class EmulatorProcess:
    """``python -m mdca_emulator`` in a child process; stopped (never left behind) on exit.

    :param state_dir: where the CA and ``emulator.json`` go (a temporary directory when None).
    :param tenants: tenant configs as JSON-ready dicts (``TenantConfig.to_dict()``); None: the demo tenant.
    :param args: more command-line arguments, e.g. ``["--clock-rate", "60"]`` for a compressed clock.
    """

    def __init__(
        self,
        state_dir: Path | None = None,
        tenants: list[dict[str, Any]] | None = None,
        args: list[str] | None = None,
    ) -> None:
        self.state_dir = Path(state_dir or tempfile.mkdtemp(prefix="mdca-emulator-"))
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._tenants = tenants
        self._args = list(args or [])
        self._proc: subprocess.Popen[str] | None = None
        self.info: dict[str, Any] = {}

    def start(self) -> EmulatorProcess:
        """Start the child and wait for its one-line JSON description."""
        cmd = [sys.executable, "-m", "mdca_emulator", "--state-dir", str(self.state_dir)]
        if self._tenants is not None:
            config = self.state_dir / "tenants.json"
            config.write_text(json.dumps(self._tenants), encoding="utf-8")
            cmd += ["--config", str(config)]
        cmd += self._args
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, start_new_session=True)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            self.stop()
            raise RuntimeError("the emulator exited before it described itself (see its stderr above)")
        self.info = json.loads(line)
        return self

    def stop(self) -> None:
        """Stop the child (SIGTERM, then SIGKILL after 10 s)."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait()
        if self._proc.stdout:
            self._proc.stdout.close()
        self._proc = None

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def ca_bundle(self) -> str:
        return str(self.info["ca_bundle"])

    def tenant(self, tenant_id: str | None = None) -> dict[str, Any]:
        """The description of one tenant (the first when no id is given)."""
        tenants: list[dict[str, Any]] = self.info["tenants"]
        return next(t for t in tenants if tenant_id is None or t["tenant_id"] == tenant_id)

    def connection(self, tenant_id: str | None = None, **extra: Any) -> dict[str, Any]:
        """An Airflow ``mdca`` connection (JSON form) for one tenant."""
        tenant = self.tenant(tenant_id)
        return {
            "conn_type": "mdca",
            "host": tenant["mdca_url"],
            "login": tenant["client_id"],
            "password": tenant["client_secret"],
            "extra": {
                "tenant_id": tenant["tenant_id"],
                "token_url": self.info["token_url"],
                "files_access_token": tenant["files_access_token"],
                "verify": self.ca_bundle,
                **extra,
            },
        }

    def devo_connection(self) -> dict[str, Any]:
        """An Airflow ``devo`` connection (JSON form) to the emulated relay, over mutual TLS."""
        devo = self.info["devo"]
        return {
            "conn_type": "devo",
            "host": devo["relay_host"],
            "port": devo["relay_port"],
            "extra": {
                "transport": "tls",
                "cert": devo["client_cert"],
                "private_key": devo["client_key"],
                "chain": devo["ca_bundle"],
            },
        }

    def admin(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        """One admin API call (``path`` below ``/_admin/``); its JSON answer."""
        response = requests.request(
            method,
            f"{self.info['admin_url'].rstrip('/')}/{path}",
            params=params or None,
            json=body,
            verify=self.ca_bundle,
            timeout=60,
        )
        response.raise_for_status()
        return response.json()

    def truth(
        self,
        service: str,
        start_ms: int,
        end_ms: int,
        tenant_id: str | None = None,
        *,
        by: str | None = None,
        as_of: int | str = "now",
    ) -> list[str]:
        """The ids a complete read must return, from the admin API.

        Records stored by `as_of` (default: now; ``"horizon"``: every record, however late) in the range of `by`
        (default: the registry's window field).
        """
        tid = self.tenant(tenant_id)["tenant_id"]
        query: dict[str, Any] = {"service": service, "start": start_ms, "end": end_ms, "as_of": as_of}
        if by is not None:
            query["by"] = by
        ids: list[str] = self.admin("GET", f"tenants/{tid}/truth?{urlencode(query)}")["ids"]
        return ids

    def clock(self, tenant_id: str | None = None, **body: Any) -> dict[str, Any]:
        """The clock of one tenant (or the server's with ``tenant_id="*"``), changed first when `body` is given.

        ``now_ms=<ms>`` pins it, ``now_ms=None`` releases it, ``rate=60`` (``origin_ms=...``) compresses it.
        """
        path = "clock" if tenant_id == "*" else f"tenants/{self.tenant(tenant_id)['tenant_id']}/clock"
        answer: dict[str, Any] = self.admin("POST" if body else "GET", path, body or None)
        return answer
